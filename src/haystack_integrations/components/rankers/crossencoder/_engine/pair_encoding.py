"""Token ids of (query, document) pairs with the query tokenized once per request, not once per pair.

A Hugging Face tokenizer encodes a pair by tokenizing each side on its own, truncating, then wrapping both in the
model's special tokens (`[CLS] q [SEP] d [SEP]` for BERT, `<s> q </s></s> d </s>` for RoBERTa). We do the same
steps ourselves so the query is tokenized once: the special-token layout is read off the tokenizer once
(`PairTemplate`) and truncation follows the tokenizers library's `longest_first` strategy, which is what
sentence-transformers' `CrossEncoder` uses. The ids equal `tokenizer(query, text, truncation="longest_first",
max_length=max_length)` (tested); a tokenizer whose layout cannot be read off falls back to exactly that call.
"""

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from haystack_integrations.components.rankers.crossencoder._engine.checks import check_choice
from haystack_integrations.components.rankers.crossencoder._engine.passage_selection import (
    query_token_weights,
    select_passage,
)

TRUNCATIONS: tuple[str, ...] = ("longest_first", "query_window")

# Two texts that every subword vocabulary keeps as distinct tokens; used only to locate the special tokens.
_PROBE_FIRST = "a"
_PROBE_SECOND = "b"


@dataclass(frozen=True)
class EncodedPair:
    """The model inputs of one (query, text) pair, unpadded."""

    input_ids: list[int]
    token_type_ids: list[int]


@dataclass(frozen=True)
class PairTemplate:
    """Where a tokenizer puts its special tokens around a pair, and the token type of each part."""

    prefix: tuple[int, ...]
    middle: tuple[int, ...]
    suffix: tuple[int, ...]
    prefix_types: tuple[int, ...]
    middle_types: tuple[int, ...]
    suffix_types: tuple[int, ...]
    first_type: int
    second_type: int

    @property
    def num_special_tokens(self) -> int:
        return len(self.prefix) + len(self.middle) + len(self.suffix)

    @classmethod
    def from_tokenizer(cls, tokenizer: Any) -> "PairTemplate | None":
        """Read the pair layout off `tokenizer` by encoding a probe pair; None if the layout is not a plain one."""
        first = tokenizer(_PROBE_FIRST, add_special_tokens=False)["input_ids"]
        second = tokenizer(_PROBE_SECOND, add_special_tokens=False)["input_ids"]
        pair = tokenizer(_PROBE_FIRST, _PROBE_SECOND, return_token_type_ids=True)
        ids = list(pair["input_ids"])
        types = list(pair.get("token_type_ids") or [0] * len(ids))
        if len(first) != 1 or len(second) != 1 or first == second or ids.count(first[0]) != 1:
            return None
        if ids.count(second[0]) != 1:
            return None
        i, j = ids.index(first[0]), ids.index(second[0])
        if not i < j or len(ids) - 2 != tokenizer.num_special_tokens_to_add(pair=True):
            return None
        return cls(
            prefix=tuple(ids[:i]),
            middle=tuple(ids[i + 1 : j]),
            suffix=tuple(ids[j + 1 :]),
            prefix_types=tuple(types[:i]),
            middle_types=tuple(types[i + 1 : j]),
            suffix_types=tuple(types[j + 1 :]),
            first_type=types[i],
            second_type=types[j],
        )

    def build(self, first: Sequence[int], second: Sequence[int]) -> EncodedPair:
        input_ids = [*self.prefix, *first, *self.middle, *second, *self.suffix]
        token_type_ids = [
            *self.prefix_types,
            *([self.first_type] * len(first)),
            *self.middle_types,
            *([self.second_type] * len(second)),
            *self.suffix_types,
        ]
        return EncodedPair(input_ids, token_type_ids)


def longest_first_lengths(first: int, second: int, budget: int) -> tuple[int, int]:
    """
    How many tokens of each side survive `longest_first` truncation to `budget` tokens (special tokens excluded).

    The same arithmetic as the tokenizers library: the longer side is cut first; when both are longer than half
    the budget each keeps half (the longer one the odd token).
    """
    if first + second <= budget:
        return first, second
    swapped = first > second
    shorter, longer = (second, first) if swapped else (first, second)
    longer = shorter if shorter > budget else max(shorter, budget - shorter)
    if shorter + longer > budget:
        shorter = budget // 2
        longer = shorter + budget % 2
    return (longer, shorter) if swapped else (shorter, longer)


_CHARS_PER_TOKEN = 8  # an opening of this many characters per needed token nearly always holds enough tokens
_CUT_MARGIN = 8  # tokens between the last kept token and the cut


def _cut_at_space(text: str, limit: int) -> str:
    """`text` itself when it is at most `limit` characters or has no space before them, else its part before the
    last space within `limit` characters."""
    if len(text) <= limit:
        return text
    cut = text.rfind(" ", 0, limit)
    return text[:cut] if cut > 0 else text


class PairEncoder:
    """
    Encodes (query, text) pairs for a cross-encoder with truncation to `max_length` tokens.

    Not thread-safe (fast tokenizers are not): callers serialize calls.

    :param tokenizer: The model's Hugging Face fast tokenizer.
    :param max_length: Tokens per pair, special tokens included.
    :param truncation: `"longest_first"` (what the tokenizer and sentence-transformers do) or `"query_window"`:
        the same lengths, but a text cut short keeps its first `lead_tokens` and then the window of the rest
        that matches the query best (see `passage_selection`).
    :param lead_tokens: With `"query_window"`, how many first tokens of a long text are always kept.
    """

    def __init__(
        self, tokenizer: Any, max_length: int, truncation: str = "longest_first", lead_tokens: int = 32
    ) -> None:
        check_choice("truncation", truncation, TRUNCATIONS)
        self.tokenizer = tokenizer
        self.max_length = max_length
        self.truncation = truncation
        self.lead_tokens = lead_tokens
        self.template = PairTemplate.from_tokenizer(tokenizer)

    def encode(self, query: str, texts: Sequence[str]) -> list[EncodedPair]:
        """One `EncodedPair` per text, in the order of `texts`."""
        if not texts:
            return []
        if self.template is None and self.truncation == "longest_first":
            return self._encode_with_tokenizer(query, texts)
        if self.template is None:
            msg = "truncation='query_window' needs a tokenizer whose pair layout can be read off; use 'longest_first'."
            raise ValueError(msg)
        budget = max(self.max_length - self.template.num_special_tokens, 0)
        # verbose=False: texts longer than the model's limit are expected here; they are truncated below.
        query_ids = self.tokenizer(query, add_special_tokens=False, verbose=False)["input_ids"]
        if self.truncation == "longest_first":
            text_ids = self._heads_ids(texts, max(budget, len(query_ids)) + 1)
        else:  # the window is searched in the whole text
            text_ids = self._ids(texts)
        weights = query_token_weights(query_ids, text_ids) if self.truncation == "query_window" else {}
        pairs = []
        for ids in text_ids:
            keep_query, keep_text = longest_first_lengths(len(query_ids), len(ids), budget)
            kept = select_passage(ids, keep_text, weights, self.lead_tokens) if weights else ids[:keep_text]
            pairs.append(self.template.build(query_ids[:keep_query], kept))
        return pairs

    def _ids(self, texts: Sequence[str]) -> list[list[int]]:
        # verbose=False: texts longer than the model's limit are expected here; they are truncated by the caller.
        return self.tokenizer(list(texts), add_special_tokens=False, verbose=False)["input_ids"]

    def _heads_ids(self, texts: Sequence[str], needed: int) -> list[list[int]]:
        """
        Each text's token ids, or (for a long text) the ids of an opening that holds more than `needed` tokens.

        Truncation keeps at most `needed - 1` tokens of a text, so tokenizing all of a long document is wasted work
        (a third of a query's time for SciFact abstracts at 128 tokens). A long text is cut at a space after
        `needed * _CHARS_PER_TOKEN` characters; word-level pre-tokenizers (WordPiece, BPE, SentencePiece) give the
        words before a space the same tokens either way. If the opening holds fewer than `needed + _CUT_MARGIN`
        tokens, the whole text is tokenized: the kept tokens are the same as without the cut.
        """
        limit = needed * _CHARS_PER_TOKEN
        heads = [_cut_at_space(text, limit) for text in texts]
        ids = self._ids(heads)
        short = [i for i, (text, head) in enumerate(zip(texts, heads, strict=True)) if head is not text]
        redo = [i for i in short if len(ids[i]) < needed + _CUT_MARGIN]
        if redo:
            for i, whole in zip(redo, self._ids([texts[i] for i in redo]), strict=True):
                ids[i] = whole
        return ids

    def _encode_with_tokenizer(self, query: str, texts: Sequence[str]) -> list[EncodedPair]:
        encoded = self.tokenizer(
            [query] * len(texts),
            list(texts),
            truncation="longest_first",
            max_length=self.max_length,
            return_token_type_ids=True,
        )
        type_ids = encoded.get("token_type_ids") or [[0] * len(ids) for ids in encoded["input_ids"]]
        return [EncodedPair(list(ids), list(types)) for ids, types in zip(encoded["input_ids"], type_ids, strict=True)]

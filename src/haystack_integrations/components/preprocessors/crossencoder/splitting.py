"""Cutting texts into passages that fit a cross-encoder, measured in the model's own tokenizer.

Shared by `PassageSplitter` and by `CrossEncoderRanker(split_long_documents=True)`.

What a passage is, precisely:
- The text is tokenized once, without special tokens, with offsets into the original string (normalization such as
  lowercasing "İ" or stripping accents never shifts an offset).
- A passage is a run of whole tokens. It starts where its first token starts (the first passage at 0) and ends where
  the next token after its last one starts (the last passage at `len(text)`). So whitespace, and characters the
  tokenizer drops (control characters, combining marks folded into a letter), stay at the end of the passage they
  follow, and without overlap the passages tile the text: their concatenation is the text.
- A passage ends at a sentence end (see `sentences.py`) when one lies within the budget, else at a word boundary,
  else (a single word longer than the budget) between any two tokens.
- Consecutive passages share exactly `overlap_tokens` tokens of the parent's tokenization: the next passage starts
  `overlap_tokens` tokens before the previous one ends (the overlap is not snapped to a sentence start). Two cases
  move that start forward and so shrink the overlap: when that token shares a character with the one before it
  (BERT splits a Hangul syllable into jamo tokens, byte-level tokenizers split an emoji) or has empty offsets, the
  start moves to the next token that begins a new character; and a passage always starts at least one token after
  the previous passage's start, which matters only when a passage has no more than `overlap_tokens` tokens (it
  could not reach past the overlap within the budget: the overlap is close to the budget and a word cut in the
  middle re-tokenized longer).
- The budget holds for the passage tokenized on its own, which is what the cross-encoder sees. Re-tokenizing a
  substring can only differ from the parent's tokens in its first and last word (a word cut in the middle loses
  its context), so those two words are re-tokenized to check, and the passage shrinks if they grew. For tokenizers
  that split words at whitespace and punctuation and tokenize each word alone (BERT's WordPiece), a passage whose
  edges are word boundaries needs no check at all; only words cut in the middle are re-tokenized. The one case the
  budget cannot hold: a single token that, cut from its word, re-tokenizes alone into more than `max_tokens` tokens
  (BERT's "##efined" alone is "e ##fine ##d"); it becomes the shortest passage possible. That takes budgets of a few
  tokens; real ones (tens to hundreds) never meet it.
"""

import copy
from bisect import bisect_left, bisect_right
from collections.abc import Iterator
from dataclasses import dataclass
from itertools import accumulate
from typing import Any

from haystack import Document

from .sentences import split_sentences

# Passages this package makes carry `meta[PASSAGE_MARKER_KEY] == PASSAGE_MARKER`, so the ranker tells them apart from
# other chunks that have a `source_id` too (Haystack's DocumentSplitter sets one on every chunk).
PASSAGE_MARKER_KEY = "passage_splitter"
PASSAGE_MARKER = "crossencoder-haystack"
PASSAGE_META_KEYS = (
    "source_id",
    "passage_index",
    "passage_count",
    "split_idx_start",
    "split_idx_end",
    "page_number",
    PASSAGE_MARKER_KEY,
)
# The meta a document needs to count as a passage of this package, with the type of each value.
_PASSAGE_REQUIRED_META = {"source_id": str, "passage_index": int, "split_idx_start": int, "split_idx_end": int}

# How good a place between two tokens is for ending a passage.
_TEXT_END, _SENTENCE_END, _WORD_END, _TOKEN_END, _NO_CUT = 3, 2, 1, 0, -1
_RANKS_BEST_FIRST = (_TEXT_END, _SENTENCE_END, _WORD_END, _TOKEN_END)


# The smallest passage the ranker splits into when a long query leaves less room (`query_passage_sizes`).
MIN_QUERY_PASSAGE_TOKENS = 32


@dataclass(frozen=True)
class PassageSpan:
    """
    One passage of a text.

    :param start: Character offset into the text where the passage starts (inclusive).
    :param end: Character offset where it ends (exclusive); `text[start:end]` is the passage, overlap included.
    :param token_count: Tokens of `text[start:end]` tokenized on its own, without special tokens.
    """

    start: int
    end: int
    token_count: int


def passage_token_budget(max_length: int, max_query_tokens: int, special_tokens: int = 3) -> int:
    """
    Largest passage (in tokens) such that a query of up to `max_query_tokens` tokens, the passage and the special
    tokens of a pair (`[CLS] query [SEP] passage [SEP]` has 3) fit in `max_length` tokens.

    :param max_length: The cross-encoder's maximum input length in tokens.
    :param max_query_tokens: The longest query, in tokens, to leave room for.
    :param special_tokens: Special tokens the tokenizer adds to a query-passage pair.
    :raises ValueError: If an argument is negative or the budget left for the passage is not positive.
    """
    check_int("max_length", max_length, minimum=1)
    check_int("max_query_tokens", max_query_tokens, minimum=0)
    check_int("special_tokens", special_tokens, minimum=0)
    budget = max_length - max_query_tokens - special_tokens
    if budget <= 0:
        raise ValueError(
            f"max_length={max_length} leaves no room for a passage after max_query_tokens={max_query_tokens} and "
            f"{special_tokens} special tokens. Raise max_length or lower max_query_tokens."
        )
    return budget


def pair_special_tokens(tokenizer: Any) -> int:
    """Special tokens `tokenizer` adds to a (query, passage) pair: 3 for BERT's `[CLS] q [SEP] p [SEP]`, 4 for XLM-R."""
    return int(tokenizer.num_special_tokens_to_add(pair=True))


def query_passage_sizes(tokenizer: Any, max_length: int, query_tokens: int, overlap_tokens: int) -> tuple[int, int]:
    """
    The passage budget and overlap for one query's pairs: what `CrossEncoderRanker(split_long_documents=True)`
    splits with. The budget is that of `passage_token_budget` with the tokenizer's own special tokens, as in
    `PassageSplitter`, for this query's length; the overlap is `overlap_tokens`.

    A query is known only at run time and may be long, so this does not raise where `PassageSplitter` (which
    reserves `max_query_tokens` up front) does: a query that leaves fewer than `MIN_QUERY_PASSAGE_TOKENS` tokens
    still gets passages of that many (the pair is then truncated, as it would be unsplit), and if the query leaves
    no room for the overlap, it is capped at half the budget so that passages advance (the ranker warns once when
    that holds for every query: `query_passage_overlap_fits`).

    :param tokenizer: The cross-encoder's tokenizer.
    :param max_length: The cross-encoder's maximum input length in tokens.
    :param query_tokens: The query's length in tokens, without special tokens.
    :param overlap_tokens: Tokens shared by consecutive passages, as configured.
    :returns: `(max_tokens, overlap_tokens)` for `split_document`.
    """
    budget = max(MIN_QUERY_PASSAGE_TOKENS, max_length - query_tokens - pair_special_tokens(tokenizer))
    return budget, overlap_tokens if overlap_tokens < budget else budget // 2


def query_passage_overlap_fits(tokenizer: Any, max_length: int, overlap_tokens: int) -> bool:
    """
    Whether `overlap_tokens` is smaller than the passage budget of an empty query (see `query_passage_sizes`);
    where it is not, every query's overlap is capped at half the passage.
    """
    return overlap_tokens < query_passage_sizes(tokenizer, max_length, 0, 0)[0]


def split_text(text: str, tokenizer: Any, max_tokens: int, overlap_tokens: int = 0) -> list[PassageSpan]:
    """
    Cut `text` into passages of at most `max_tokens` tokens, preferably ending at sentence ends.

    See the module docstring for the exact definition of a passage and of the overlap.

    :param text: The text to split. Empty or whitespace-only text gives one span `(0, len(text))` with
        `token_count=0`, so that nothing is lost; text that fits the budget gives one span `(0, len(text))`.
    :param tokenizer: A Hugging Face *fast* tokenizer (offsets are needed), ideally the cross-encoder's own.
    :param max_tokens: The most tokens a passage may have, tokenized on its own without special tokens.
    :param overlap_tokens: Tokens shared by consecutive passages; `0 <= overlap_tokens < max_tokens`.
    :returns: The passages' spans, in text order.
    :raises ValueError: If the sizes are invalid or the tokenizer gives no offsets (a slow tokenizer).
    :raises TypeError: If `text` is not a str.
    """
    check_passage_sizes(max_tokens, overlap_tokens)
    if not isinstance(text, str):
        raise TypeError(f"split_text expects `text` to be a str, got {type(text).__name__}.")
    if not getattr(tokenizer, "is_fast", False):
        raise ValueError(
            f"split_text needs a fast tokenizer for character offsets, got {type(tokenizer).__name__}. "
            "Load it with AutoTokenizer.from_pretrained(..., use_fast=True) from a model that has a tokenizer.json."
        )
    encoding = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True, verbose=False)
    offsets = [tuple(offset) for offset in encoding["offset_mapping"]]
    if len(offsets) <= max_tokens:
        return [PassageSpan(0, len(text), len(offsets))]
    return _TokenizedText(text, tokenizer, offsets, encoding.word_ids()).passages(max_tokens, overlap_tokens)


def split_document(document: Document, tokenizer: Any, max_tokens: int, overlap_tokens: int = 0) -> list[Document]:
    """
    Split one document into passage Documents with `split_text`.

    Each passage has `content = document.content[split_idx_start:split_idx_end]`, the parent's `score` (so the
    retrieval score survives), and a copy of the parent's meta plus `source_id` (the parent's id), `passage_index`,
    `passage_count`, `split_idx_start`, `split_idx_end`, the marker `passage_splitter="crossencoder-haystack"`
    (`PASSAGE_MARKER_KEY`/`PASSAGE_MARKER`: what `is_passage` and the ranker look for) and, only if the parent's
    content has form feeds (`\\f`), `page_number` (1 + the form feeds before the passage start). Embeddings and
    blobs are not copied. Passage ids are Haystack's hashes of content and meta, so they are deterministic and
    unique per parent and index.

    :param document: The document to split; it is not modified.
    :param tokenizer: A Hugging Face fast tokenizer, ideally the cross-encoder's own.
    :param max_tokens: The most tokens a passage may have, tokenized on its own without special tokens.
    :param overlap_tokens: Tokens shared by consecutive passages.
    :returns: The passages, in text order (one passage for a document that fits the budget).
    :raises ValueError: If `document.content` is None.
    """
    content = document.content
    if content is None:
        raise ValueError(
            f"Document {document.id} has content=None; only text documents can be split into passages. "
            "Drop or convert such documents first (PassageSplitter passes them through unchanged)."
        )
    spans = split_text(content, tokenizer, max_tokens, overlap_tokens)
    paged = "\f" in content
    passages = []
    for index, span in enumerate(spans):
        meta = copy.deepcopy(document.meta)
        meta.update(
            source_id=document.id,
            passage_index=index,
            passage_count=len(spans),
            split_idx_start=span.start,
            split_idx_end=span.end,
        )
        meta[PASSAGE_MARKER_KEY] = PASSAGE_MARKER
        if paged:
            meta["page_number"] = content.count("\f", 0, span.start) + 1
        passages.append(Document(content=content[span.start : span.end], meta=meta, score=document.score))
    return passages


def is_passage(document: Document) -> bool:
    """
    Whether `document` is a passage made by this package (`split_document`, `PassageSplitter` or
    `CrossEncoderRanker(split_long_documents=True)`), i.e. one the ranker aggregates back into its parent.

    That takes the marker `meta["passage_splitter"] == "crossencoder-haystack"` plus the keys the splitter writes,
    with their types: `source_id` (str), `passage_index`, `split_idx_start` and `split_idx_end` (int). A `source_id`
    alone is not enough: Haystack's `DocumentSplitter` sets one on every chunk, and such chunks are ranked as they are.

    :param document: Any document.
    :returns: True for a passage of this package.
    """
    meta = document.meta
    if meta.get(PASSAGE_MARKER_KEY) != PASSAGE_MARKER:
        return False
    return all(
        isinstance(meta.get(key), kind) and not isinstance(meta.get(key), bool)
        for key, kind in _PASSAGE_REQUIRED_META.items()
    )


def check_int(name: str, value: Any, minimum: int) -> None:
    """Raise a ValueError naming `name` unless `value` is an int (not a bool) >= `minimum`."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"`{name}` must be an integer, got {value!r}.")
    if value < minimum:
        raise ValueError(f"`{name}` must be >= {minimum}, got {value}.")


def check_passage_sizes(max_tokens: int, overlap_tokens: int) -> None:
    """Raise a ValueError unless `max_tokens >= 1` and `0 <= overlap_tokens < max_tokens` (passages must advance)."""
    check_int("max_tokens", max_tokens, minimum=1)
    check_int("overlap_tokens", overlap_tokens, minimum=0)
    if overlap_tokens >= max_tokens:
        raise ValueError(
            f"`overlap_tokens` ({overlap_tokens}) must be smaller than the passage budget `max_tokens` "
            f"({max_tokens}), or passages would never advance. Lower overlap_tokens."
        )


class _TokenizedText:
    """A text with its tokens' offsets, and where it may be cut."""

    def __init__(self, text: str, tokenizer: Any, offsets: list[tuple[int, int]], word_ids: list[int | None]):
        self.text = text
        self.tokenizer = tokenizer
        self.starts = [start for start, _ in offsets]
        self.ends = [end for _, end in offsets]
        self.count = len(offsets)
        self.covered = list(accumulate(self.ends, max))  # covered[i]: the furthest character reached by tokens 0..i
        self.cut_rank = self._cut_ranks(word_ids)
        self.cuts_by_rank: dict[int, list[int]] = {rank: [] for rank in _RANKS_BEST_FIRST}
        for i, rank in enumerate(self.cut_rank):
            if rank != _NO_CUT:
                self.cuts_by_rank[rank].append(i)
        self.words_tokenize_alone = _words_tokenize_alone(tokenizer)

    def _cut_ranks(self, word_ids: list[int | None]) -> list[int]:
        """How good a place the gap before token i is for ending a passage (index `count` is the text's end)."""
        starts = self.starts
        covered = self.covered
        ends = self.ends
        # A passage may start at token i only if i begins a new character: byte-level and jamo tokens share a
        # character with their neighbours, and byte-level whitespace tokens can have empty offsets.
        ranks = [
            _NO_CUT
            if starts[i] < covered[i - 1] or ends[i] <= starts[i]
            else _WORD_END
            if word_ids[i] is None or word_ids[i] != word_ids[i - 1]
            else _TOKEN_END
            for i in range(1, self.count)
        ]
        ranks = [_NO_CUT, *ranks, _TEXT_END]
        for sentence_start, _ in split_sentences(self.text)[1:]:
            i = bisect_left(starts, sentence_start)
            if 0 < i < self.count and ranks[i] == _WORD_END and covered[i - 1] <= sentence_start:
                ranks[i] = _SENTENCE_END
        return ranks

    def char_at(self, i: int) -> int:
        return len(self.text) if i == self.count else self.starts[i]

    def passages(self, max_tokens: int, overlap_tokens: int) -> list[PassageSpan]:
        spans = []
        first = 0
        while True:
            start_char = 0 if first == 0 else self.starts[first]
            end, token_count = self._passage_end(first, start_char, max_tokens, overlap_tokens)
            spans.append(PassageSpan(start_char, self.char_at(end), token_count))
            if end == self.count:
                return spans
            first = max(end - overlap_tokens, first + 1)
            while self.cut_rank[first] == _NO_CUT:
                first += 1

    def _passage_end(self, first: int, start_char: int, max_tokens: int, overlap_tokens: int) -> tuple[int, int]:
        """The best cut after `first` that fits the budget, and the passage's standalone token count."""
        highest = min(first + max_tokens, self.count)
        # Ending later than `first + overlap_tokens` makes the next passage start after this one.
        for lowest in (first + overlap_tokens + 1, first + 1):
            for end in self._cuts_best_first(lowest, highest):
                token_count = self._standalone_count(first, end, start_char)
                if token_count <= max_tokens:
                    return end, token_count
        # Nothing fits: a single token, cut from its word, re-tokenizes alone into more than max_tokens tokens.
        end = next(i for i in range(first + 1, self.count + 1) if self.cut_rank[i] != _NO_CUT)
        return end, self._standalone_count(first, end, start_char)

    def _cuts_best_first(self, lowest: int, highest: int) -> Iterator[int]:
        """Cuts in [lowest, highest]: the text's end, then sentence ends, word ends, other token ends; latest first."""
        for rank in _RANKS_BEST_FIRST:
            cuts = self.cuts_by_rank[rank]
            for position in range(bisect_right(cuts, highest) - 1, bisect_left(cuts, lowest) - 1, -1):
                yield cuts[position]

    def _standalone_count(self, first: int, end: int, start_char: int) -> int:
        """Tokens of the passage of tokens [first, end) tokenized on its own, re-tokenizing only its edge words."""
        if (
            self.words_tokenize_alone
            and (first == 0 or self.cut_rank[first] >= _WORD_END)
            and self.cut_rank[end] >= _WORD_END
        ):
            return end - first
        end_char = self.char_at(end)
        first_word_end = first + 1
        while first_word_end < end and self.cut_rank[first_word_end] < _WORD_END:
            first_word_end += 1
        if first_word_end == end:
            return len(self._token_ids([self.text[start_char:end_char]])[0])
        last_word_start = end - 1
        while last_word_start > first_word_end and self.cut_rank[last_word_start] < _WORD_END:
            last_word_start -= 1
        head_end = self._word_gap_split(first_word_end)
        tail_start = self._word_gap_split(last_word_start)
        head, tail = self._token_ids([self.text[start_char:head_end], self.text[tail_start:end_char]])
        return (end - first) + (len(head) - (first_word_end - first)) + (len(tail) - (end - last_word_start))

    def _word_gap_split(self, i: int) -> int:
        """Where the gap before token i divides: characters the tokenizer dropped (a combining mark) go with the
        word before, whitespace with the word after (byte-level tokenizers put it into that word's first token)."""
        position, word_start = self.covered[i - 1], self.starts[i]
        while position < word_start and not self.text[position].isspace():
            position += 1
        return position

    def _token_ids(self, texts: list[str]) -> list[list[int]]:
        return self.tokenizer(texts, add_special_tokens=False, verbose=False)["input_ids"]


def _words_tokenize_alone(tokenizer: Any) -> bool:
    """Whether the tokenizer splits text into words at whitespace and punctuation and tokenizes each word alone.

    Then a substring that starts and ends at word boundaries re-tokenizes to exactly the parent's tokens.
    """
    backend = getattr(tokenizer, "backend_tokenizer", None)
    pre_tokenizer = getattr(backend, "pre_tokenizer", None)
    return type(pre_tokenizer).__name__ in {"BertPreTokenizer", "Whitespace", "WhitespaceSplit"}

"""What the demo prints: one rich table per query (what the reranker changed) and the before/after metrics.

Query terms are highlighted in the best passage, case-insensitively and Turkish-aware:

- `str.casefold()` turns "İ" into "i̇" (two characters) and "I" into "i", which breaks offsets and misses
  Turkish dotless ı. Each character is folded on its own here, and the four Turkish/Latin i's (I, ı, İ, i)
  all fold to "i", so "İSG" finds "isg", "ILIK" finds "ılık" and offsets map back to the original text;
- Turkish and English attach suffixes, so a query word matches a text word that starts with its stem
  ("iletişim" finds "iletişimi", "workshops" finds "workshop", "facilitating" finds "facilitated").
  Words of three letters or fewer ("SQL", "İK", "iOS") must match whole words.
"""

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from rich.table import Table
from rich.text import Text

EXCERPT_CHARS = 200
HIGHLIGHT_STYLE = "bold yellow"

_FOLDED_I = {"I": "i", "ı": "i", "İ": "i"}
_COMBINING_DOT_ABOVE = "\u0307"
_WORD = re.compile(r"\w+")
_MIN_STEM = 4
# Longest first: a word loses at most one suffix, and keeps a stem of at least _MIN_STEM characters.
# fmt: off
_SUFFIXES = tuple(
    sorted(
        {
            # Turkish case, possessive and plural endings (in their folded form: ı -> i).
            "lerini", "larini", "lerinde", "larinda", "lerine", "larina", "leri", "lari", "ler", "lar",
            "sine", "sina", "sini", "sinde", "sinda", "inde", "inda", "ini", "ine", "ina", "nin", "nun",
            "den", "dan", "ten", "tan", "de", "da", "te", "ta", "yi", "yu", "si", "su", "li", "lu", "i", "u", "e", "a",
            # English inflections.
            "ings", "ing", "ers", "ed", "es", "er", "s",
        },
        key=len,
        reverse=True,
    )
)
_STOPWORDS = frozenset(
    {
        # English
        "a", "an", "and", "or", "the", "of", "in", "on", "at", "to", "for", "with", "who", "has", "have", "had",
        "is", "are", "was", "be", "by", "from", "as", "that", "this", "their", "someone", "candidates",
        "experience", "experienced",
        # Turkish (folded)
        "ve", "ile", "veya", "bir", "bu", "icin", "olan", "yapan", "yapmis", "bilen", "sahip", "adaylar", "aday",
        "deneyimi", "deneyimli", "deneyim",
    }
)
# fmt: on


def fold(text: str) -> tuple[str, list[int]]:
    """
    Fold `text` for matching, Turkish-aware, and map every folded character back to its original position.

    :returns: The folded text and, for each of its characters, the index of the original character it came from.
    """
    folded: list[str] = []
    origin: list[int] = []
    for index, character in enumerate(text):
        if character == _COMBINING_DOT_ABOVE:
            continue  # "i̇" (i + dot above) is how "İ".lower() spells a plain Turkish i
        replacement = _FOLDED_I.get(character) or character.casefold()
        folded.append(replacement)
        origin.extend([index] * len(replacement))
    return "".join(folded), origin


def stem(word: str) -> str:
    """A folded word without one common Turkish or English suffix (the word itself if it is short)."""
    for suffix in _SUFFIXES:
        if word.endswith(suffix) and len(word) - len(suffix) >= _MIN_STEM:
            return word[: -len(suffix)]
    return word


def query_terms(query: str) -> list[str]:
    """The folded words of `query` worth highlighting: no stopwords, no single characters, stems of long words."""
    terms = []
    for word in _WORD.findall(fold(query)[0]):
        if len(word) < 2 or word in _STOPWORDS:
            continue
        term = word if len(word) <= 3 else stem(word)
        if term not in terms:
            terms.append(term)
    return terms


def match_spans(text: str, query: str) -> list[tuple[int, int]]:
    """
    Character spans of `text` (into the original string) whose words match a query term, in text order.

    A term of three letters or fewer matches a whole word; a longer term (a stem) matches any word starting
    with it.
    """
    terms = query_terms(query)
    if not terms:
        return []
    folded, origin = fold(text)
    spans: list[tuple[int, int]] = []
    for word in _WORD.finditer(folded):
        value = word.group()
        if any(value == term if len(term) <= 3 else value.startswith(term) for term in terms):
            start, end = origin[word.start()], origin[word.end() - 1] + 1
            if spans and start < spans[-1][1]:
                continue
            spans.append((start, end))
    return spans


def highlight(text: str, query: str, style: str = HIGHLIGHT_STYLE) -> Text:
    """`text` as rich `Text` with the words matching `query` styled."""
    rich_text = Text(text)
    for start, end in match_spans(text, query):
        rich_text.stylize(style, start, end)
    return rich_text


def excerpt(text: str, query: str, width: int = EXCERPT_CHARS) -> str:
    """
    About `width` characters of `text` around where the query matches best (most matches in one window),
    whitespace collapsed, cut at word boundaries, with "…" where text was left out.
    """
    flat = " ".join(text.split())
    if len(flat) <= width:
        return flat
    spans = match_spans(flat, query)
    start = 0
    if spans:
        context = width // 5
        anchors = [max(0, span_start - context) for span_start, _ in spans]
        start = max(anchors, key=lambda anchor: sum(anchor <= s and e <= anchor + width for s, e in spans))
        start = min(start, len(flat) - width)
    end = start + width
    if start > 0:
        space = flat.find(" ", start)
        start = space + 1 if 0 <= space < start + width // 4 else start
    if end < len(flat):
        space = flat.rfind(" ", start, end)
        end = space if space > start + width // 2 else end
    return f"{'…' if start > 0 else ''}{flat[start:end].strip()}{'…' if end < len(flat) else ''}"


def movement(first_stage_rank: int | None, rank: int) -> Text:
    """The first-stage rank and how far the reranker moved the candidate: "12 ↑9", "3 ↓1", "4 =" ."""
    if first_stage_rank is None:
        return Text("–", style="dim")
    if first_stage_rank > rank:
        return Text(f"{first_stage_rank} ↑{first_stage_rank - rank}", style="green")
    if first_stage_rank < rank:
        return Text(f"{first_stage_rank} ↓{rank - first_stage_rank}", style="red")
    return Text(f"{first_stage_rank} =", style="dim")


def candidate_label(meta: Mapping[str, Any]) -> str:
    """The label "Name — role" from a CV's meta (its title when name or role is missing)."""
    name, role = meta.get("name"), meta.get("role")
    if name and role:
        return f"{name} — {role}"
    return str(meta.get("title") or name or role or "?")


def results_table(
    query: str,
    documents: Sequence[Any],
    first_stage_ranks: Mapping[str, int] | None = None,
    title: str | None = None,
    probabilities: bool = False,
) -> Table:
    """
    One query's reranked candidates: rank, candidate, score, best passage (query terms highlighted) and the
    rank the first stage gave it, with the movement.

    :param query: The query (its terms are highlighted).
    :param documents: Ranked Haystack Documents as `CrossEncoderRanker` returns them (`score`,
        `meta["best_passage"]`; the whole content is used without a best passage).
    :param first_stage_ranks: Document id -> 1-based first-stage rank. None uses `meta["retrieval_rank"]`, which
        is the rank among the ranker's inputs: with a PassageSplitter in front, a rank among passages.
    :param title: The table title; default the query in quotes.
    :param probabilities: Add a "relevant" column: the calibrated P(relevant) as a percentage (the model's own
        score, `meta["rerank_score"]`, when it is fused with the first stage).
    """
    table = Table(title=title or f"“{query}”", title_justify="left", show_lines=True, expand=False)
    table.add_column("#", justify="right", no_wrap=True)
    table.add_column("candidate", max_width=34)
    table.add_column("score", justify="right", no_wrap=True)
    if probabilities:
        table.add_column("relevant", justify="right", no_wrap=True)
    table.add_column("best-matching passage", ratio=1, min_width=40)
    table.add_column("first stage", justify="right", no_wrap=True)
    for rank, document in enumerate(documents, start=1):
        passage = document.meta.get("best_passage") or document.content or ""
        score = "–" if document.score is None else f"{document.score:.3f}"
        probability = document.meta.get("rerank_score", document.score)
        percentage = ["–" if probability is None else f"{probability:.0%}"] if probabilities else []
        table.add_row(
            str(rank),
            Text(candidate_label(document.meta)),
            score,
            *percentage,
            highlight(excerpt(passage, query), query),
            movement(_first_stage_rank(document, first_stage_ranks), rank),
        )
    return table


def _first_stage_rank(document: Any, first_stage_ranks: Mapping[str, int] | None) -> int | None:
    if first_stage_ranks is not None:
        return first_stage_ranks.get(document.id)
    return document.meta.get("retrieval_rank")


@dataclass(frozen=True)
class MetricRow:
    """One system's scores in the final comparison."""

    name: str
    ndcg_at_10: float
    mrr_at_10: float


def metrics_table(rows: Sequence[MetricRow], title: str) -> Table:
    """nDCG@10 and MRR@10 per system, the better value of each column in bold."""
    table = Table(title=title, title_justify="left")
    table.add_column("")
    table.add_column("nDCG@10", justify="right")
    table.add_column("MRR@10", justify="right")
    best_ndcg = max((row.ndcg_at_10 for row in rows), default=0.0)
    best_mrr = max((row.mrr_at_10 for row in rows), default=0.0)
    for row in rows:
        table.add_row(
            row.name,
            Text(f"{row.ndcg_at_10:.3f}", style="bold" if row.ndcg_at_10 == best_ndcg else ""),
            Text(f"{row.mrr_at_10:.3f}", style="bold" if row.mrr_at_10 == best_mrr else ""),
        )
    return table

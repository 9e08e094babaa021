"""Rule-based sentence segmentation for English and Turkish, with no model or data downloads.

`split_sentences` finds the units a passage should preferably end on: sentences, list items, markdown headings and
paragraphs. Its spans tile the text (no gaps, no overlaps): each unit starts at a non-whitespace character and keeps
the whitespace that follows it; leading whitespace of the text goes with the first unit.

The rules follow pysbd's spirit, kept small: a sentence ends at `.`, `?`, `!`, `…` (or `...`), optionally followed by
closing quotes or brackets, then whitespace. A period does not end a sentence after a known abbreviation ("Dr.",
"Prof.", "e.g.", "örn.", "Doç." ...), an initial ("A. Yılmaz", "J.R.R."), a one- or two-digit ordinal ("2. Dünya
Savaşı", "page 12. Then" is a known miss) or when the next word starts lowercase. Decimals ("3.5", "%12,5") and dotted
dates ("03.05.2019") have no whitespace after their inner periods, so they never split. Line structure wins over
punctuation: blank lines separate paragraphs, and each bullet or numbered list item ("- ", "• ", "* ", "1. ", "1) ")
and each markdown heading ("## Deneyim") is a unit of its own that ends with its line.
"""

import re
from itertools import pairwise

# Abbreviations after which a period never ends a sentence (compared lowercased, without the final period).
_NEVER_FINAL = frozenset(
    {
        # English
        "mr", "mrs", "ms", "dr", "prof", "st", "jr", "sr", "vs", "e.g", "i.e", "cf", "approx", "dept", "gen",
        "col", "lt", "sgt", "capt", "rev", "hon", "mt", "ft", "est",
        # Turkish
        "örn", "doç", "av", "yrd", "öğr", "gör", "op", "sn", "bkz", "krş", "mah", "cad", "sok", "apt", "bul", "yy",
    }
)  # fmt: skip
# Abbreviations that often close a sentence ("..., pears etc. The shop"): final only before a capitalized word.
_FINAL_BEFORE_CAPITAL = frozenset({"etc", "vb", "vd", "al", "ltd", "inc", "co", "corp"})
# Abbreviations that introduce a number ("No. 5", "pp. 12", "Jan. 3"): not final when a number follows.
_BEFORE_NUMBER = frozenset(
    {
        "no", "nos", "nr", "vol", "p", "pp", "s", "ch", "sec", "fig", "figs", "eq", "eqs", "ref", "refs", "art",
        "jan", "feb", "mar", "apr", "jun", "jul", "aug", "sep", "sept", "oct", "nov", "dec",
    }
)  # fmt: skip

_CLOSERS = "\"'”’»)]}"
_OPENERS = "\"'“‘«([{"

# A run of terminators, optional closing quotes/brackets, then the whitespace that ends the sentence.
_SENTENCE_END = re.compile(r"(\.{3}|[.?!…]+)([" + re.escape(_CLOSERS) + r"]*)(\s+)")
# Lines that are units of their own: bullets, numbered or lettered list items, markdown headings.
_LIST_ITEM = re.compile(r"^[ \t]*(?:[-•*+▪◦‣–]|\d{1,3}[.)]|[A-Za-z]\))[ \t]+(?=\S)", re.MULTILINE)
_HEADING = re.compile(r"^[ \t]*#{1,6}[ \t]+(?=\S)", re.MULTILINE)
_PARAGRAPH_BREAK = re.compile(r"\n[ \t\r\f\v]*\n")
# Letters separated by periods ("e.g", "U.S", "J.R.R"), the tail of a multi-period abbreviation.
_DOTTED_LETTERS = re.compile(r"^(?:[^\W\d_]\.)+[^\W\d_]$")


def split_sentences(text: str) -> list[tuple[int, int]]:
    """
    Split `text` into sentence-like units.

    :param text: Any text; no normalization is applied, so offsets index the original string.
    :returns: `(start, end)` character spans, in order, that tile the text exactly:
        the first starts at 0, each next one starts where the previous ended, the last ends at `len(text)`.
        Empty text gives `[]`; text with no sentence punctuation gives one span.
    """
    if not text:
        return []
    boundaries = _line_boundaries(text) | _punctuation_boundaries(text, _list_marker_spans(text))
    starts = sorted({_skip_whitespace(text, position) for position in boundaries} - {0, len(text)})
    edges = [0, *starts, len(text)]
    return list(pairwise(edges))


def _skip_whitespace(text: str, position: int) -> int:
    while position < len(text) and text[position].isspace():
        position += 1
    return position


def _list_marker_spans(text: str) -> list[tuple[int, int]]:
    return [match.span() for match in _LIST_ITEM.finditer(text)]


def _line_boundaries(text: str) -> set[int]:
    boundaries = {match.end() for match in _PARAGRAPH_BREAK.finditer(text)}
    for pattern in (_LIST_ITEM, _HEADING):
        for match in pattern.finditer(text):
            boundaries.add(match.start())
            line_end = text.find("\n", match.end())
            if line_end != -1:
                boundaries.add(line_end + 1)
    return boundaries


def _punctuation_boundaries(text: str, list_markers: list[tuple[int, int]]) -> set[int]:
    boundaries = set()
    markers = iter(list_markers)
    marker = next(markers, None)
    for match in _SENTENCE_END.finditer(text):
        while marker is not None and marker[1] <= match.start():
            marker = next(markers, None)
        if marker is not None and marker[0] <= match.start() < marker[1]:
            continue  # the period of a "1. " list marker
        if match.end() < len(text) and _ends_sentence(text, match):
            boundaries.add(match.end())
    return boundaries


def _ends_sentence(text: str, match: re.Match) -> bool:
    terminator = match.group(1)
    next_word = text[match.end() : match.end() + 40].split(maxsplit=1)[0].lstrip(_OPENERS)
    next_starts_lower = bool(next_word) and next_word[0].islower()
    if terminator != ".":
        # "?" and "!" always end a sentence; an ellipsis does unless the sentence just goes on in lowercase.
        return not ("…" in terminator or terminator == "...") or not next_starts_lower
    if next_starts_lower:
        return False
    word = _word_before(text, match.start())
    lowered = word.lower()
    next_is_capitalized = bool(next_word) and next_word[0].isupper()
    if lowered in _FINAL_BEFORE_CAPITAL:
        return next_is_capitalized
    if lowered in _BEFORE_NUMBER and next_word[:1].isdigit():
        return False
    if lowered in _NEVER_FINAL or _DOTTED_LETTERS.match(word):
        return False
    if len(word) == 1 and word.isalpha() and word.isupper():
        return False  # an initial: "A. Yılmaz"
    return not (word.isdigit() and len(word) <= 2 and next_is_capitalized)  # an ordinal: "2. Dünya Savaşı"


def _word_before(text: str, end: int) -> str:
    start = end
    while start > 0 and not text[start - 1].isspace():
        start -= 1
    return text[start:end].lstrip(_OPENERS)

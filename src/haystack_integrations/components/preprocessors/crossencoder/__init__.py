"""Passage splitting for cross-encoder reranking: the PassageSplitter component and the splitting core it shares
with `CrossEncoderRanker(split_long_documents=True)`."""

from .passage_splitter import PassageSplitter
from .sentences import split_sentences
from .splitting import (
    PASSAGE_MARKER,
    PASSAGE_MARKER_KEY,
    PASSAGE_META_KEYS,
    PassageSpan,
    is_passage,
    passage_token_budget,
    split_document,
    split_text,
)

__all__ = [
    "PASSAGE_MARKER",
    "PASSAGE_MARKER_KEY",
    "PASSAGE_META_KEYS",
    "PassageSpan",
    "PassageSplitter",
    "is_passage",
    "passage_token_budget",
    "split_document",
    "split_sentences",
    "split_text",
]

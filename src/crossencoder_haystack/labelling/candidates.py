"""The candidates an expert judges: a query's first-stage top N, shown whole, with what matched highlighted.

Retrieval is `rerank evaluate`'s first stage (`crossencoder_haystack.evaluation.first_stage`): BM25 or the bundled
all-MiniLM-L6-v2 (or another local sentence-transformers model) over the corpus, title and text. The words of
the query are marked in every candidate (the demo's Turkish-aware matching). With a reranker model,
`PassageSplitter` cuts each candidate into passages, `CrossEncoderRanker` scores them, and the best passage is
marked; its score and rank are what the page's "model says" column shows.
"""

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from haystack import Document

from crossencoder_haystack.data import CorpusDocument, document_text

if TYPE_CHECKING:
    from haystack_integrations.components.rankers.crossencoder._engine.precision import Precision

RETRIEVERS: tuple[str, ...] = ("embedding", "bm25")


@dataclass(frozen=True)
class ModelOpinion:
    """The reranker's score of a candidate, its rank among the query's candidates and its best passage."""

    score: float | None
    rank: int
    passage_start: int | None = None
    passage_end: int | None = None


@dataclass
class Candidate:
    """
    One candidate as the page shows it.

    :param document_id: The corpus id.
    :param rank: Its first-stage rank (1 = best).
    :param score: Its first-stage score.
    :param title: The corpus title (may be empty).
    :param text: The whole corpus text.
    :param terms: Character spans of `text` that match the query's words.
    :param passage: The character span of `text` holding the reranker's best passage (None without a model).
    :param model_score: The reranker's score (None without a model).
    :param model_rank: The reranker's rank among the query's candidates (None without a model).
    """

    document_id: str
    rank: int
    score: float | None
    title: str
    text: str
    terms: list[tuple[int, int]] = field(default_factory=list)
    passage: tuple[int, int] | None = None
    model_score: float | None = None
    model_rank: int | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "document_id": self.document_id,
            "rank": self.rank,
            "score": self.score,
            "title": self.title,
            "text": self.text,
            "terms": [list(span) for span in self.terms],
            "passage": list(self.passage) if self.passage else None,
            "model_score": self.model_score,
            "model_rank": self.model_rank,
        }


def build_candidate(
    document_id: str, rank: int, score: float | None, entry: CorpusDocument, query: str, opinion: ModelOpinion | None
) -> Candidate:
    """A candidate for the page: its corpus entry, the query's words marked and, with a model, its best passage."""
    from crossencoder_haystack.demo.display import match_spans

    text = entry["text"]
    candidate = Candidate(document_id, rank, score, entry["title"], text, terms=match_spans(text, query))
    if opinion is not None:
        candidate.model_score, candidate.model_rank = opinion.score, opinion.rank
        candidate.passage = _text_span(entry, opinion.passage_start, opinion.passage_end)
    return candidate


def _text_span(entry: CorpusDocument, start: int | None, end: int | None) -> tuple[int, int] | None:
    """A span of the ranked content (`document_text`: title, a space, text) as a span of the text alone."""
    if start is None or end is None:
        return None
    text = entry["text"]
    shift = len(document_text(entry)) - len(text.rstrip())  # where the text starts in the content
    start, end = max(0, start - shift), min(len(text), end - shift)
    return (start, end) if start < end else None


class PassageScorer:
    """
    The reranker's view of a query's candidates: `PassageSplitter` -> `CrossEncoderRanker` (best passage per CV).

    :param model: A local cross-encoder (or `rerank train` reranker) directory.
    :param max_length: Tokens of query plus passage; None uses the model's limit.
    :param precision: What the model computes in (`auto`: bf16 on CPUs with AMX / AVX512-BF16, else fp32).
    """

    def __init__(self, model: str | Path, max_length: int | None = None, precision: "Precision" = "auto") -> None:
        self.model = str(model)
        self.max_length = max_length
        self.precision = precision
        self._splitter: Any = None
        self._ranker: Any = None

    def warm_up(self) -> None:
        """Load the tokenizer and the model (once)."""
        if self._ranker is not None:
            return
        from haystack_integrations.components.preprocessors.crossencoder import PassageSplitter
        from haystack_integrations.components.rankers.crossencoder import CrossEncoderRanker

        splitter = PassageSplitter(tokenizer=self.model, max_length=self.max_length)
        ranker = CrossEncoderRanker(model=self.model, max_length=self.max_length, precision=self.precision)
        splitter.warm_up()
        ranker.warm_up()
        self._splitter, self._ranker = splitter, ranker

    def opinions(self, query: str, documents: list[Document]) -> dict[str, ModelOpinion]:
        """Each document's score, rank and best passage (offsets into its content), by document id."""
        if not documents:
            return {}
        self.warm_up()
        passages = self._splitter.run(documents=documents)["documents"]
        ranked = self._ranker.run(query=query, documents=passages, top_k=len(documents))["documents"]
        return {
            document.id: ModelOpinion(
                score=document.score,
                rank=rank,
                passage_start=document.meta.get("best_passage_start"),
                passage_end=document.meta.get("best_passage_end"),
            )
            for rank, document in enumerate(ranked, start=1)
        }


def build_retriever(
    retriever: str, dataset: Any, *, embedding_model: str | Path | None = None, cache_dir: Path | None = None
) -> Any:
    """
    The first stage named `retriever` over the dataset's corpus (`evaluation.first_stage.build_first_stage`).

    :param retriever: `"embedding"` or `"bm25"`.
    :param dataset: The `BeirDataset` whose corpus is searched.
    :param embedding_model: A local sentence-transformers model for `"embedding"`; None = the bundled MiniLM.
    :param cache_dir: Where corpus embeddings are cached; None = not cached.
    :raises ValueError: If `retriever` is neither.
    """
    from crossencoder_haystack.evaluation.first_stage import build_first_stage

    if retriever not in RETRIEVERS:
        msg = f"retriever must be one of {', '.join(RETRIEVERS)}, got {retriever!r}."
        raise ValueError(msg)
    return build_first_stage(retriever, dataset, embedding_model=embedding_model, cache_dir=cache_dir)

"""A two-stage reranker: a small, fast student ranks every candidate, a teacher re-ranks the student's best ones.

The student is typically a model `rerank distill` made from the teacher (fewer layers, trained to reproduce the
teacher's scores), so the two agree on the head of the list and the teacher's work shrinks from K candidates to
`cascade_keep`.

One scale for all scores: the head keeps the teacher's scores; the documents below the cut keep the student's
order and the student's scores, shifted down by one constant when needed so that the best of them stays just below
the head's lowest score. A distilled student scores on its teacher's scale already, so the shift is usually small
(or none); `meta["student_score"]` keeps each tail document's unshifted score. `top_k`, `score_threshold` and
fusion with the first stage apply to the merged list, exactly as `CrossEncoderRanker` applies them to its own.
"""

import asyncio
import math
from dataclasses import dataclass, replace
from typing import Any, Literal, TypedDict

from haystack import Document, component

from haystack_integrations.components.preprocessors.crossencoder import is_passage
from haystack_integrations.components.rankers.crossencoder._engine.checks import (
    check_positive_int,
    check_score_threshold,
)
from haystack_integrations.components.rankers.crossencoder._nested import wrapper_from_dict, wrapper_to_dict
from haystack_integrations.components.rankers.crossencoder.fusion import (
    FusionMethod,
    fuse_scores,
    validate_first_stage_weight,
    validate_fusion,
)
from haystack_integrations.components.rankers.crossencoder.ranker import CrossEncoderRanker

STUDENT = "student"
TEACHER = "teacher"
STAGE_META_KEY = "cascade_stage"
"""`meta` key saying which model scored a returned document: `"teacher"` (the head) or `"student"` (below the cut)."""
_DEFAULT_FUSION = "minmax"
_NO_THRESHOLD = -math.inf  # passed to a stage whose own `score_threshold` must not drop candidates


@dataclass(frozen=True)
class _Settings:
    """One call's settings: run-time values, else the cascade's, else the teacher's."""

    top_k: int
    score_threshold: float | None
    cascade_keep: int
    first_stage_weight: float | None  # None: let the teacher decide (its init value or its model's default)
    fusion: FusionMethod | None


class _ThresholdArgument(TypedDict, total=False):
    """The `score_threshold` run argument of a stage, when it has to be given."""

    score_threshold: float


@component
class CascadeRanker:
    """
    Ranks documents in two stages: a fast student scores all of them, the teacher re-scores the student's best
    `cascade_keep` and ranks them first; the rest follow in the student's order.

    Returned documents are what `CrossEncoderRanker` returns (copies with `score`, `meta["retrieval_score"]`,
    `meta["retrieval_rank"]`, passages aggregated into their parents), plus `meta["cascade_stage"]`: `"teacher"`
    for the re-scored head, `"student"` below the cut (with `meta["student_score"]`, the student's own score). With
    `cascade_keep` at least the number of candidates the student is skipped and the result is exactly the
    teacher's (its documents, order and scores).

    ### Usage example

    ```python
    from haystack import Document
    from haystack_integrations.components.rankers.crossencoder import CascadeRanker, CrossEncoderRanker

    ranker = CascadeRanker(
        student=CrossEncoderRanker(model="models/my-reranker-student"),  # made by `rerank distill`
        teacher=CrossEncoderRanker(model="models/my-reranker"),
        cascade_keep=20,
        top_k=10,
    )
    docs = [Document(content="Paris is in France"), Document(content="Berlin is in Germany")]
    print(ranker.run(query="City in Germany", documents=docs)["documents"][0].content)
    ```

    Any two `CrossEncoderRanker`s work (the student need not share the teacher's tokenizer: each model tokenizes
    the texts itself). Give both the same `return_passages`; with passages, the teacher re-scores every passage of
    the parents the student kept.
    """

    def __init__(
        self,
        *,
        student: CrossEncoderRanker,
        teacher: CrossEncoderRanker,
        cascade_keep: int = 20,
        top_k: int | None = None,
        score_threshold: float | None = None,
        first_stage_weight: float | None = None,
        fusion: Literal["minmax", "zscore", "rrf"] | None = None,
    ) -> None:
        """
        Creates an instance of CascadeRanker.

        :param student:
            The fast ranker that scores every candidate (e.g. a `rerank distill` student).
        :param teacher:
            The accurate ranker that re-scores the student's best `cascade_keep` documents.
        :param cascade_keep:
            How many of the student's best documents (parents, in passage mode) the teacher re-scores. Must be a
            positive int; at least the number of candidates gives exactly the teacher's ranking.
        :param top_k:
            The maximum number of documents to return; `None` uses the teacher's `top_k`.
        :param score_threshold:
            Only documents whose (merged, and fused if fusion is on) score is >= this value are returned; `None`
            uses the teacher's `score_threshold`.
        :param first_stage_weight:
            The first stage's share of the returned score, in [0, 1], as in `CrossEncoderRanker`, applied to the
            merged list; `None` uses the teacher's (its init value, else its model directory's declared default).
        :param fusion:
            `"minmax"`, `"zscore"` or `"rrf"`; `None` uses the teacher's, else `"minmax"`.
        :raises TypeError: If `student` or `teacher` is not a `CrossEncoderRanker`.
        :raises ValueError: If a parameter is out of range or the two rankers disagree on `return_passages`.
        """
        for name, ranker in ((STUDENT, student), (TEACHER, teacher)):
            if not isinstance(ranker, CrossEncoderRanker):
                msg = f"{name} must be a CrossEncoderRanker, got {type(ranker).__name__}."
                raise TypeError(msg)
        if student.return_passages != teacher.return_passages:
            msg = (
                f"student.return_passages={student.return_passages} but teacher.return_passages="
                f"{teacher.return_passages}; give both rankers the same value, so both return passages or parents."
            )
            raise ValueError(msg)
        self.student = student
        self.teacher = teacher
        self.cascade_keep = _check_positive_int("cascade_keep", cascade_keep)
        self.top_k = None if top_k is None else _check_positive_int("top_k", top_k)
        self.score_threshold = _check_threshold(score_threshold)
        self.first_stage_weight = (
            None if first_stage_weight is None else validate_first_stage_weight(first_stage_weight)
        )
        self.fusion = None if fusion is None else validate_fusion(fusion)
        self._teacher_fusion: dict[str, Any] | None = None

    def warm_up(self) -> None:
        """Loads both models (idempotent)."""
        self.student.warm_up()
        self.teacher.warm_up()

    def to_dict(self) -> dict[str, Any]:
        """
        Serializes the component to a dictionary, with both rankers nested.

        :returns:
            Dictionary with serialized data.
        """
        return wrapper_to_dict(
            self,
            {STUDENT: self.student, TEACHER: self.teacher},
            cascade_keep=self.cascade_keep,
            top_k=self.top_k,
            score_threshold=self.score_threshold,
            first_stage_weight=self.first_stage_weight,
            fusion=self.fusion,
        )

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "CascadeRanker":
        """
        Deserializes the component from a dictionary; the nested rankers go through Haystack's deserialization
        allowlist like the components of a pipeline.

        :param data:
            Dictionary to deserialize from.
        :returns:
            Deserialized component.
        """
        return wrapper_from_dict(cls, data)

    @component.output_types(documents=list[Document])
    def run(
        self,
        *,
        query: str,
        documents: list[Document],
        top_k: int | None = None,
        score_threshold: float | None = None,
        cascade_keep: int | None = None,
        first_stage_weight: float | None = None,
        fusion: Literal["minmax", "zscore", "rrf"] | None = None,
    ) -> dict[str, list[Document]]:
        """
        Returns the documents sorted by relevance to the query, best first: the teacher's ranking of the student's
        best `cascade_keep`, then the rest in the student's order.

        :param query:
            The query. Must be a non-empty string.
        :param documents:
            The documents to rank (or passages from `PassageSplitter`); they are not modified.
        :param top_k:
            The maximum number of documents to return; overrides the init value.
        :param score_threshold:
            Only documents with a score >= this value are returned; overrides the init value.
        :param cascade_keep:
            How many documents the teacher re-scores; overrides the init value.
        :param first_stage_weight:
            The first stage's share of the score, in [0, 1]; overrides the init value.
        :param fusion:
            `"minmax"`, `"zscore"` or `"rrf"`; overrides the init value.
        :returns:
            A dictionary with `documents`: copies of the input documents with `score` set, best first.
        :raises ValueError:
            If `query` is empty or a run-time parameter is out of range.
        """
        settings = self._settings(top_k, score_threshold, cascade_keep, first_stage_weight, fusion)
        return {"documents": self._ranked(query, documents, settings)}

    @component.output_types(documents=list[Document])
    async def run_async(
        self,
        *,
        query: str,
        documents: list[Document],
        top_k: int | None = None,
        score_threshold: float | None = None,
        cascade_keep: int | None = None,
        first_stage_weight: float | None = None,
        fusion: Literal["minmax", "zscore", "rrf"] | None = None,
    ) -> dict[str, list[Document]]:
        """
        Asynchronously ranks the documents; the models run in a worker thread. Parameters and result are those of
        `run`.

        :param query:
            The query. Must be a non-empty string.
        :param documents:
            The documents to rank.
        :param top_k:
            The maximum number of documents to return; overrides the init value.
        :param score_threshold:
            Only documents with a score >= this value are returned; overrides the init value.
        :param cascade_keep:
            How many documents the teacher re-scores; overrides the init value.
        :param first_stage_weight:
            The first stage's share of the score, in [0, 1]; overrides the init value.
        :param fusion:
            `"minmax"`, `"zscore"` or `"rrf"`; overrides the init value.
        :returns:
            A dictionary with `documents`, as `run` returns it.
        """
        # Checked here, so that a bad argument fails in the caller's task; only the model work goes to a thread.
        settings = self._settings(top_k, score_threshold, cascade_keep, first_stage_weight, fusion)
        ranked = await asyncio.get_running_loop().run_in_executor(None, self._ranked, query, documents, settings)
        return {"documents": ranked}

    def _settings(
        self,
        top_k: int | None,
        score_threshold: float | None,
        cascade_keep: int | None,
        first_stage_weight: float | None,
        fusion: str | None,
    ) -> _Settings:
        """Checks the run-time values; each falls back to the cascade's init value, then to the teacher's."""
        top_k = self.top_k if top_k is None else _check_positive_int("top_k", top_k)
        threshold = self.score_threshold if score_threshold is None else _check_threshold(score_threshold)
        keep = self.cascade_keep if cascade_keep is None else _check_positive_int("cascade_keep", cascade_keep)
        weight = first_stage_weight if first_stage_weight is None else validate_first_stage_weight(first_stage_weight)
        fusion = fusion if fusion is None else validate_fusion(fusion)
        return _Settings(
            top_k=self.teacher.top_k if top_k is None else top_k,
            score_threshold=self.teacher.score_threshold if threshold is None else threshold,
            cascade_keep=keep,
            first_stage_weight=self.first_stage_weight if weight is None else weight,
            fusion=self.fusion if fusion is None else fusion,
        )

    def _ranked(self, query: str, documents: list[Document], settings: _Settings) -> list[Document]:
        """One call's result, its settings checked: the teacher's alone when it re-scores every candidate anyway."""
        if not documents:
            return self.teacher.run(query=query, documents=documents)["documents"]
        if settings.cascade_keep >= len(_result_ids(documents, self.teacher.return_passages)):
            ranked = self.teacher.run(
                query=query,
                documents=documents,
                top_k=settings.top_k,
                score_threshold=settings.score_threshold,
                first_stage_weight=settings.first_stage_weight,
                fusion=settings.fusion,
            )["documents"]
            return [_with_stage(document, TEACHER) for document in ranked]
        return self._cascade(query, documents, settings)

    def _cascade(self, query: str, documents: list[Document], settings: _Settings) -> list[Document]:
        """The student ranks everything, the teacher re-ranks the head; merge, fuse, threshold and cut."""
        student_ranked = _every_candidate_scored(self.student, query, documents)
        head, tail = student_ranked[: settings.cascade_keep], student_ranked[settings.cascade_keep :]
        teacher_ranked = _every_candidate_scored(
            self.teacher, query, _head_documents(documents, head, self.teacher.return_passages)
        )
        merged = _merge(teacher_ranked, tail)
        weight, fusion = self._fusion(settings)
        if weight:
            merged = _fused(merged, weight, fusion)
        if settings.score_threshold is not None:
            merged = [doc for doc in merged if doc.score is not None and doc.score >= settings.score_threshold]
        return merged[: settings.top_k]

    def _fusion(self, settings: _Settings) -> tuple[float, str]:
        """The first-stage weight and normalisation: the call's or the cascade's, else the teacher's."""
        if self._teacher_fusion is None:
            declared = self.teacher._read_model_fusion()  # what the teacher's model directory declares, if needed
            self._teacher_fusion = {
                "first_stage_weight": _first_not_none(
                    self.teacher.first_stage_weight, declared.get("first_stage_weight"), 0.0
                ),
                "fusion": _first_not_none(self.teacher.fusion, declared.get("fusion"), _DEFAULT_FUSION),
            }
        weight = _first_not_none(settings.first_stage_weight, self._teacher_fusion["first_stage_weight"])
        fusion = _first_not_none(settings.fusion, self._teacher_fusion["fusion"])
        return float(weight), str(fusion)


def _first_not_none(*values: Any) -> Any:
    return next(value for value in values if value is not None)


def _check_positive_int(name: str, value: Any) -> int:
    return check_positive_int(name, value, f"Pass e.g. {name}=20.")


def _check_threshold(value: Any) -> float | None:
    check_score_threshold(value)
    return None if value is None else float(value)


def _every_candidate_scored(ranker: CrossEncoderRanker, query: str, documents: list[Document]) -> list[Document]:
    """A stage's ranking of every candidate with the model's own score: no fusion, no threshold, no cut here."""
    return ranker.run(
        query=query,
        documents=documents,
        top_k=len(documents),
        first_stage_weight=0.0,
        **_no_threshold(ranker),
    )["documents"]


def _no_threshold(ranker: CrossEncoderRanker) -> _ThresholdArgument:
    """Run arguments that switch a stage's own `score_threshold` off (None at run time means: use the init value)."""
    return {} if ranker.score_threshold is None else {"score_threshold": _NO_THRESHOLD}


def _result_id(document: Document, return_passages: bool) -> str:
    """The id a document is returned under: its parent's for this package's passages (unless passages are kept)."""
    if not return_passages and is_passage(document):
        return str(document.meta["source_id"])
    return document.id


def _result_ids(documents: list[Document], return_passages: bool) -> set[str]:
    return {_result_id(document, return_passages) for document in documents}


def _head_documents(documents: list[Document], head: list[Document], return_passages: bool) -> list[Document]:
    """
    The input documents (or passages) behind the student's head, as copies that carry their rank in the whole
    candidate list: the teacher sees only the head, and ties must still break by the original retrieval order.
    A head document that is no input (a passage the student split off itself) goes to the teacher as it is.
    """
    rank_of = {document.id: document.meta.get("retrieval_rank") for document in head}
    chosen, found = [], set()
    for document in documents:
        key = _result_id(document, return_passages)
        if key in rank_of:
            found.add(key)
            chosen.append(replace(document, meta={**document.meta, "retrieval_rank": rank_of[key]}))
    return chosen + [document for document in head if document.id not in found]


def _with_stage(document: Document, stage: str, **meta: Any) -> Document:
    return replace(document, meta={**document.meta, STAGE_META_KEY: stage, **meta})


def _merge(head: list[Document], tail: list[Document]) -> list[Document]:
    """
    The teacher's head, then the student's tail with its scores shifted (if needed) to stay below the head's
    lowest score; documents without a score go last, in the order they came.
    """
    head_scores = [document.score for document in head if document.score is not None]
    tail_scores = [document.score for document in tail if document.score is not None]
    offset = 0.0
    if head_scores and tail_scores and max(tail_scores) >= min(head_scores):
        lowest = min(head_scores)
        gap = max(abs(lowest), 1.0) * 1e-6  # strictly below: a tie would let retrieval order mix the two stages
        offset = lowest - max(tail_scores) - gap
    merged = [_with_stage(document, TEACHER) for document in head] + [
        replace(
            _with_stage(document, STUDENT, student_score=document.score),
            score=None if document.score is None else document.score + offset,
        )
        for document in tail
    ]
    return [document for document in merged if document.score is not None] + [
        document for document in merged if document.score is None
    ]


def _fused(documents: list[Document], weight: float, fusion: str) -> list[Document]:
    """
    Fuse each merged score with its retrieval score (`fusion.fuse_scores`, in retrieval order, as the ranker does)
    and sort by the fused score, ties by retrieval rank; `meta["rerank_score"]` keeps the merged score.
    """
    scored = sorted((doc for doc in documents if doc.score is not None), key=lambda doc: doc.meta["retrieval_rank"])
    fused = fuse_scores(
        [doc.score for doc in scored],  # type: ignore[misc]
        [doc.meta.get("retrieval_score") for doc in scored],
        weight,
        fusion,
    )
    result = [
        replace(doc, score=value, meta={**doc.meta, "rerank_score": doc.score})
        for doc, value in zip(scored, fused, strict=True)
    ]
    result.sort(key=lambda doc: (-doc.score, doc.meta["retrieval_rank"]))  # type: ignore[operator]
    return result + [doc for doc in documents if doc.score is None]

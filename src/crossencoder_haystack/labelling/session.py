"""A labelling session: the queries, their candidates, and the judgements so far, kept in step with the log.

Every judgement goes to the log (written and fsync-ed) before the in-memory state changes and before the caller
hears back, under one lock, so the order of the lines is the order of the writes: two browser tabs judging the same
pair both land in the log, and the later line is the current grade (last write wins).
"""

import threading
from dataclasses import dataclass, replace
from datetime import datetime, timezone
from typing import Any

from haystack import Document, logging

from crossencoder_haystack.__about__ import __version__
from crossencoder_haystack.data import BeirDataset
from crossencoder_haystack.labelling.candidates import Candidate, PassageScorer, build_candidate
from crossencoder_haystack.labelling.log import JudgementLog, LabelLogError, LoggedCandidates, LogState, check_grade

# The report's guide: 1K-5K judged pairs are enough for a first model.
PAIRS_GUIDE: tuple[int, int] = (1_000, 5_000)
_MAX_CLIENT_CHARS = 64

logger = logging.getLogger(__name__)


class UnknownItemError(KeyError):
    """A query id or a document id that the session does not know; the message says which ones it does."""

    def __str__(self) -> str:
        return str(self.args[0])


@dataclass(frozen=True)
class JudgementResult:
    """What a judgement changed: the pair's grade before and after, and the progress now."""

    query_id: str
    document_id: str
    grade: int | None
    previous: int | None
    progress: dict[str, Any]


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds")


class LabellingSession:
    """
    Queries to label, their first-stage candidates (retrieved on first view and logged), and the judgements.

    ```python
    from crossencoder_haystack.evaluation.first_stage import BM25FirstStage, corpus_documents
    from crossencoder_haystack.labelling import JudgementLog, LabellingSession, load_labelling_input

    dataset = load_labelling_input("queries.txt", "corpus.jsonl")
    session = LabellingSession(dataset, BM25FirstStage(corpus_documents(dataset)), JudgementLog("labels.jsonl"))
    session.open()
    session.judge("q1", session.candidates("q1")[0].document_id, 3)
    ```

    :param dataset: The queries (in labelling order) and the corpus.
    :param first_stage: A first stage of `crossencoder_haystack.evaluation.first_stage` (`retrieve`, `name`).
    :param log: The labels log (not yet opened).
    :param top_n: Candidates per query.
    :param scorer: A `PassageScorer` for the best passage and the "model says" column; None for neither.
    """

    def __init__(
        self,
        dataset: BeirDataset,
        first_stage: Any,
        log: JudgementLog,
        *,
        top_n: int = 20,
        scorer: PassageScorer | None = None,
    ) -> None:
        if isinstance(top_n, bool) or not isinstance(top_n, int) or top_n <= 0:
            msg = f"top_n must be a positive integer (candidates per query, e.g. 20), got {top_n!r}."
            raise ValueError(msg)
        self.dataset = dataset
        self.query_ids = list(dataset.queries)
        self.first_stage = first_stage
        self.log = log
        self.top_n = top_n
        self.scorer = scorer
        self.state = LogState()
        self.revision = 0
        self._lock = threading.Lock()  # the log and the state
        self._compute_lock = threading.Lock()  # retrieval and the model
        self._candidates: dict[str, list[Candidate]] = {}

    @property
    def retriever(self) -> str:
        return str(self.first_stage.name)

    def open(self) -> LogState:
        """
        Open the log, check it against the queries and record this session; returns the state read from it.

        :raises LabelLogError: If the log is corrupt, held by another process, or judged a query id whose text the
            queries now give differently.
        """
        state = self.log.open()
        try:
            self._check_logged_queries(state)
            self.log.append(self._session_record())
        except BaseException:
            self.log.close()
            raise
        self.state = state
        return state

    def _check_logged_queries(self, state: LogState) -> None:
        unknown = []
        for query_id, logged in state.candidates.items():
            current = self.dataset.queries.get(query_id)
            if current is None:
                unknown.append(query_id)
            elif current != logged.query:
                msg = (
                    f"{self.log.path} judged query {query_id!r} as {logged.query!r}, but the queries now give "
                    f"{query_id!r} as {current!r}. Use the queries the log was made with, or a new --output log; "
                    "the log was not changed."
                )
                raise LabelLogError(msg)
        if unknown:
            logger.warning(
                "{path} has candidates of {count} query id(s) that are not among the queries now ({ids}); their "
                "judgements stay in the log and in exports.",
                path=self.log.path,
                count=len(unknown),
                ids=", ".join(unknown[:5]),
            )

    def _session_record(self) -> dict[str, Any]:
        return {
            "event": "session",
            "time": _now(),
            "version": __version__,
            "queries": self.dataset.source,
            "query_count": len(self.query_ids),
            "corpus_size": len(self.dataset.corpus),
            "retriever": self.retriever,
            "top_n": self.top_n,
            "model": self.scorer.model if self.scorer is not None else None,
        }

    def close(self) -> None:
        self.log.close()

    def check_query(self, query_id: str) -> str:
        """The text of `query_id`; an `UnknownItemError` naming the known ids if there is none."""
        text = self.dataset.queries.get(query_id)
        if text is None:
            shown = ", ".join(self.query_ids[:5]) + (", ..." if len(self.query_ids) > 5 else "")
            msg = f"unknown query id {query_id!r}: this session labels {len(self.query_ids)} queries ({shown})."
            raise UnknownItemError(msg)
        return text

    def candidates(self, query_id: str) -> list[Candidate]:
        """
        The query's candidates, best first: from the log if it has them for this retriever and top N (a restart shows
        the same list), else retrieved now and logged; with a model, scored too. Computed once per session.

        :raises UnknownItemError: If the query id is unknown.
        """
        query = self.check_query(query_id)
        cached = self._candidates.get(query_id)
        if cached is not None:  # no waiting for another query being retrieved or scored (e.g. the page's prefetch)
            return cached
        with self._compute_lock:
            cached = self._candidates.get(query_id)
            if cached is not None:
                return cached
            documents = self._first_stage_documents(query_id, query)
            opinions = self.scorer.opinions(query, documents) if self.scorer is not None else {}
            candidates = [
                build_candidate(
                    document.id,
                    rank,
                    document.score,
                    self.dataset.corpus[document.id],
                    query,
                    opinions.get(document.id),
                )
                for rank, document in enumerate(documents, start=1)
            ]
            self._candidates[query_id] = candidates
            return candidates

    def _first_stage_documents(self, query_id: str, query: str) -> list[Document]:
        logged = self.state.candidates.get(query_id)
        if logged is not None and (logged.retriever, logged.top_n) == (self.retriever, self.top_n):
            return _logged_documents(self.dataset, logged)
        documents = self.first_stage.retrieve(query_id, query, self.top_n)
        record = {
            "event": "candidates",
            "time": _now(),
            "query_id": query_id,
            "query": query,
            "retriever": self.retriever,
            "top_n": self.top_n,
            "documents": [
                {"id": document.id, "rank": rank, "score": None if document.score is None else float(document.score)}
                for rank, document in enumerate(documents, start=1)
            ],
        }
        with self._lock:
            self.log.append(record)
            self.state.apply(record)
        return documents

    def judge(self, query_id: str, document_id: str, grade: Any, client: str = "") -> JudgementResult:
        """
        Record a judgement (a grade 0..3, or None to take it back), durable before this returns.

        :raises UnknownItemError: If the query is unknown or the document is not one of its candidates.
        :raises ValueError: If the grade is not 0, 1, 2, 3 or None.
        """
        grade = check_grade(grade)
        candidate_ids = {candidate.document_id for candidate in self.candidates(query_id)}
        if document_id not in candidate_ids:
            msg = f"document {document_id!r} is not one of the {len(candidate_ids)} candidates of query {query_id!r}."
            raise UnknownItemError(msg)
        with self._lock:
            previous = self.state.grades.get((query_id, document_id))
            record = {
                "event": "judgement",
                "time": _now(),
                "query_id": query_id,
                "document_id": document_id,
                "grade": grade,
                "previous": previous,
                "client": str(client)[:_MAX_CLIENT_CHARS],
            }
            self.log.append(record)  # durable first: the state (and the caller) only hear of a written line
            self.state.apply(record)
            self.revision += 1
            progress = self._progress()
        return JudgementResult(query_id, document_id, grade, previous, progress)

    def grades(self, query_id: str) -> dict[str, int]:
        """The current grades of the query's judged documents, by document id."""
        with self._lock:
            return {doc_id: grade for (qid, doc_id), grade in self.state.grades.items() if qid == query_id}

    def progress(self) -> dict[str, Any]:
        """Judged pairs (against the 1K-5K guide) and queries done, for the progress bar."""
        with self._lock:
            return self._progress()

    def _progress(self) -> dict[str, Any]:
        judged_by_query: dict[str, int] = {}
        for query_id, _ in self.state.grades:
            judged_by_query[query_id] = judged_by_query.get(query_id, 0) + 1
        done = 0
        pairs = 0
        for query_id in self.query_ids:
            size = self._candidate_count(query_id)
            pairs += size
            done += size > 0 and self._judged_candidates(query_id) >= size
        return {
            "judged": len(self.state.grades),
            "relevant": sum(1 for grade in self.state.grades.values() if grade > 0),
            "pairs": pairs,
            "queries": len(self.query_ids),
            "queries_started": sum(1 for query_id in self.query_ids if judged_by_query.get(query_id)),
            "queries_done": done,
            "guide": list(PAIRS_GUIDE),
            "revision": self.revision,
        }

    def _candidate_count(self, query_id: str) -> int:
        cached = self._candidates.get(query_id)
        if cached is not None:
            return len(cached)
        logged = self.state.candidates.get(query_id)
        return len(logged.documents) if logged is not None else self.top_n

    def _judged_candidates(self, query_id: str) -> int:
        cached = self._candidates.get(query_id)
        if cached is not None:
            ids = [candidate.document_id for candidate in cached]
        else:
            ids = _logged_ids(self.state.candidates.get(query_id))
        return sum(1 for doc_id in ids if (query_id, doc_id) in self.state.grades)

    def resume_index(self) -> int:
        """Where to start: the query judged last if it has unjudged candidates, else the next query not done."""
        with self._lock:
            last = self.state.last_query_id
            start = self.query_ids.index(last) if last in self.dataset.queries else 0
            order = self.query_ids[start:] + self.query_ids[:start]
            for query_id in order:
                if self._judged_candidates(query_id) < self._candidate_count(query_id):
                    return self.query_ids.index(query_id)
            return start

    def query_summaries(self) -> list[dict[str, Any]]:
        """Each query's id, text and how many of its candidates are judged, in labelling order."""
        with self._lock:
            return [
                {
                    "query_id": query_id,
                    "query": self.dataset.queries[query_id],
                    "judged": self._judged_candidates(query_id),
                    "candidates": self._candidate_count(query_id),
                }
                for query_id in self.query_ids
            ]


def _logged_ids(logged: LoggedCandidates | None) -> list[str]:
    return [doc_id for doc_id, _, _ in logged.documents] if logged is not None else []


def _logged_documents(dataset: BeirDataset, logged: LoggedCandidates) -> list[Document]:
    """The logged candidates as the first stage returned them (corpus documents with their logged scores)."""
    from crossencoder_haystack.evaluation.first_stage import corpus_documents

    kept = [(doc_id, score) for doc_id, _, score in logged.documents if doc_id in dataset.corpus]
    if len(kept) < len(logged.documents):
        logger.warning(
            "Query {query_id}: {count} logged candidate(s) are not in the corpus any more and are not shown.",
            query_id=logged.query_id,
            count=len(logged.documents) - len(kept),
        )
    subset = BeirDataset(corpus={doc_id: dataset.corpus[doc_id] for doc_id, _ in kept}, queries={}, qrels={})
    by_id = {document.id: document for document in corpus_documents(subset)}
    return [replace(by_id[doc_id], score=score) for doc_id, score in kept]

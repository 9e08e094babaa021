"""How closely a student reproduces its teacher, measured on the same queries and candidates.

- nDCG@10 against the teacher: the teacher's top 10 are the relevant documents, graded 10 (its first) down to 1
  (its tenth), and the student's ranking of all the candidates is scored with ranx's nDCG@10 (1.0: the teacher's
  top 10 in the teacher's order). It says how much of the teacher's head the student keeps, and in which order;
- Spearman's rank correlation of the two models' scores over each query's candidates (scipy), averaged over
  queries: how well the student orders the whole list, tail included (what a cascade's cut depends on).

Both are means over the queries that have candidates; ranx is in the `eval` extra (without it nDCG is None).
"""

import importlib.util
import math
import statistics
from collections.abc import Mapping
from dataclasses import dataclass

Scores = Mapping[str, Mapping[str, float]]
"""Query id -> {document id: score}, the candidates in retrieval order (ties keep that order)."""


@dataclass(frozen=True)
class Agreement:
    """The student's agreement with its teacher over `queries` queries."""

    ndcg_at_10: float | None
    spearman: float | None
    queries: int

    def as_dict(self) -> dict[str, float | int | None]:
        return {"ndcg@10_vs_teacher": self.ndcg_at_10, "spearman": self.spearman, "queries": self.queries}


def teacher_agreement(teacher: Scores, student: Scores) -> Agreement:
    """
    nDCG@10 of the student's ranking against the teacher's top 10, and the mean per-query Spearman correlation.

    ```python
    teacher = {"q1": {"a": 3.0, "b": 1.0, "c": 2.0}}
    student = {"q1": {"a": 0.9, "b": 0.1, "c": 0.5}}
    teacher_agreement(teacher, student)  # Agreement(ndcg_at_10=1.0, spearman=1.0, queries=1)
    ```

    :param teacher: The teacher's scores per query.
    :param student: The student's scores of the same candidates.
    """
    query_ids = [query_id for query_id, scores in teacher.items() if scores and student.get(query_id)]
    if not query_ids:
        return Agreement(None, None, 0)
    return Agreement(
        _ndcg_vs_teacher(teacher, student, query_ids), _mean_spearman(teacher, student, query_ids), len(query_ids)
    )


def _ranking(scores: Mapping[str, float]) -> list[str]:
    order = {doc_id: position for position, doc_id in enumerate(scores)}
    return sorted(scores, key=lambda doc_id: (-scores[doc_id], order[doc_id]))


def _ndcg_vs_teacher(teacher: Scores, student: Scores, query_ids: list[str]) -> float | None:
    if importlib.util.find_spec("ranx") is None:
        return None
    from crossencoder_haystack.evaluation.metrics import evaluate_rankings

    qrels = {
        query_id: {doc_id: 10 - rank for rank, doc_id in enumerate(_ranking(teacher[query_id])[:10])}
        for query_id in query_ids
    }
    rankings = {query_id: _ranking(student[query_id]) for query_id in query_ids}
    return float(evaluate_rankings(qrels, query_ids, rankings, ["ndcg@10"])["ndcg@10"])


def _mean_spearman(teacher: Scores, student: Scores, query_ids: list[str]) -> float | None:
    import warnings

    from scipy.stats import spearmanr

    values = []
    for query_id in query_ids:
        shared = [doc_id for doc_id in teacher[query_id] if doc_id in student[query_id]]
        if len(shared) < 3:
            continue
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # a constant list has no correlation: skipped below
            value = spearmanr([teacher[query_id][d] for d in shared], [student[query_id][d] for d in shared])[0]
        if not math.isnan(value):
            values.append(float(value))
    return statistics.mean(values) if values else None

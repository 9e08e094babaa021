"""What `evaluate(...)` returns: one `EvaluationRow` per ranker and K, gathered in an `EvaluationResult`.

These types import nothing from the evaluation's steps, so that both the sweep (which builds them) and the report
(which presents them) can import them.
"""

from dataclasses import dataclass, field
from typing import Any

from crossencoder_haystack.evaluation.latency import LatencyStats
from crossencoder_haystack.evaluation.metrics import Comparison


@dataclass
class EvaluationRow:
    """
    One row of the results: a ranker at one K (optionally fused with the first stage at weight α), or the first
    stage alone (at the largest K).

    :param name: The ranker's (or first stage's) name.
    :param k: How many first-stage candidates the ranker reordered.
    :param letter: The row's letter in significance superscripts ("" for fused rows, which no row is tested
        against).
    :param metrics: `ndcg@10`, `mrr@10`, `map` (over the K ranked documents) and `recall@K` of the first stage.
    :param significance: Metric -> letters of the rows this row beats significantly. A fused row is tested against
        the first stage and the same ranker at K without fusion only.
    :param latency: Per-query latency of this stage at K (the first stage's row: retrieval latency; a fused row:
        its ranker's, as fusing costs next to nothing).
    :param is_first_stage: Whether this is the first stage's reference row.
    :param rankings: Query id -> [(document id, score), ...] best first (the run written to a TREC file).
    :param fusion_weight: The first stage's share α of a fused row's scores; None for a row without fusion.
    """

    name: str
    k: int
    letter: str
    metrics: dict[str, float]
    significance: dict[str, str]
    latency: LatencyStats | None
    is_first_stage: bool
    rankings: dict[str, list[tuple[str, float]]] = field(repr=False)
    fusion_weight: float | None = None

    @property
    def run_name(self) -> str:
        if self.fusion_weight is None:
            return f"{self.name}@{self.k}"
        return f"{self.name}@{self.k}-alpha{self.fusion_weight:g}"

    @property
    def recall(self) -> float:
        """Recall@K of the first stage: the ceiling any ranker at this K can reach."""
        return self.metrics[f"recall@{self.k}"]

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "k": self.k,
            "letter": self.letter,
            "first_stage": self.is_first_stage,
            "fusion_weight": self.fusion_weight,
            "metrics": self.metrics,
            "significantly_better_than": self.significance,
            "latency": None if self.latency is None else self.latency.to_dict(),
        }


@dataclass
class EvaluationResult:
    """Everything `evaluate` measured; `to_dict()` is what results.json holds."""

    dataset: dict[str, Any]
    first_stage: dict[str, Any]
    rankers: list[dict[str, Any]]
    ks: list[int]
    rows: list[EvaluationRow]
    queries: dict[str, Any]
    comparison: Comparison
    environment: dict[str, Any]
    settings: dict[str, Any]
    complete: bool
    wall_seconds: float

    def row(self, name: str, k: int | None = None, fusion_weight: float | None = None) -> EvaluationRow:
        """
        The row of ranker (or first stage) `name` at `k` (any K if there is one row for it).

        :param fusion_weight: The α of a fused row; None = the row without fusion.
        """
        for row in self.rows:
            if row.name == name and (k is None or row.k == k) and row.fusion_weight == fusion_weight:
                return row
        alpha = "" if fusion_weight is None else f", fusion_weight={fusion_weight}"
        msg = f"no row for {name!r} at k={k}{alpha}; rows: {', '.join(row.run_name for row in self.rows)}."
        raise KeyError(msg)

    def to_dict(self) -> dict[str, Any]:
        return {
            "complete": self.complete,
            "wall_seconds": self.wall_seconds,
            "dataset": self.dataset,
            "queries": self.queries,
            "first_stage": self.first_stage,
            "rankers": self.rankers,
            "ks": self.ks,
            "settings": self.settings,
            "rows": [row.to_dict() for row in self.rows],
            "significance": {
                "stat_test": self.comparison.stat_test,
                "max_p": self.comparison.max_p,
                "letters": self.comparison.letters,
                "p_values": self.comparison.p_values,
            },
            "environment": self.environment,
        }


class EvaluationInterrupted(KeyboardInterrupt):
    """Ctrl-C while scoring; `partial` is the result over the queries completed until then."""

    def __init__(self, partial: EvaluationResult) -> None:
        super().__init__("evaluation interrupted")
        self.partial = partial

"""`rerank evaluate`: quality and latency of retrieve -> rerank, K sweeps and side-by-side rankers.

`evaluate(...)` runs a first stage (BM25, embeddings or a TREC run file) over a test collection, reranks the
candidates with each ranker at each K, and reports nDCG@10, MRR@10, MAP, first-stage Recall@K, paired significance
(ranx) and per-query latency, optionally with each ranker fused with the first stage at several weights α;
`print_table` and `write_outputs` present the result. `tune_fusion_weight` picks α on held-out queries.

Names are imported on first use, so that `rerank --help` (which imports `evaluation.command`) stays fast.
"""

from typing import TYPE_CHECKING

from crossencoder_haystack._lazy_imports import lazy_exports

if TYPE_CHECKING:
    from crossencoder_haystack.evaluation.fusion_tuning import fused_ranking, tune_fusion_weight
    from crossencoder_haystack.evaluation.latency import LatencyStats
    from crossencoder_haystack.evaluation.rankers import RankerUnderTest, load_ranker, ranker_from_component
    from crossencoder_haystack.evaluation.report import print_table, render_table, write_outputs
    from crossencoder_haystack.evaluation.results import EvaluationInterrupted, EvaluationResult, EvaluationRow
    from crossencoder_haystack.evaluation.sweep import evaluate, ranking_at_k

_EXPORTS = {
    "EvaluationInterrupted": "results",
    "EvaluationResult": "results",
    "EvaluationRow": "results",
    "evaluate": "sweep",
    "ranking_at_k": "sweep",
    "LatencyStats": "latency",
    "RankerUnderTest": "rankers",
    "load_ranker": "rankers",
    "ranker_from_component": "rankers",
    "print_table": "report",
    "render_table": "report",
    "write_outputs": "report",
    "fused_ranking": "fusion_tuning",
    "tune_fusion_weight": "fusion_tuning",
}

__all__ = [
    "EvaluationInterrupted",
    "EvaluationResult",
    "EvaluationRow",
    "LatencyStats",
    "RankerUnderTest",
    "evaluate",
    "fused_ranking",
    "load_ranker",
    "print_table",
    "ranker_from_component",
    "ranking_at_k",
    "render_table",
    "tune_fusion_weight",
    "write_outputs",
]

__getattr__ = lazy_exports(__name__, _EXPORTS)

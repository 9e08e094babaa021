"""`rerank evaluate`: quality and latency of retrieve -> rerank, K sweeps and side-by-side rankers.

`evaluate(...)` runs a first stage (BM25, embeddings or a TREC run file) over a test collection, reranks the
candidates with each ranker at each K, and reports nDCG@10, MRR@10, MAP, first-stage Recall@K, paired significance
(ranx) and per-query latency, optionally with each ranker fused with the first stage at several weights α;
`print_table` and `write_outputs` present the result. `tune_fusion_weight` picks α on held-out queries.

Names are imported on first use, so that `rerank --help` (which imports `evaluation.command`) stays fast.
"""

import importlib
from typing import Any

_MODULES = {
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


def __getattr__(name: str) -> Any:
    module = _MODULES.get(name)
    if module is None:
        msg = f"module {__name__!r} has no attribute {name!r}"
        raise AttributeError(msg)
    return getattr(importlib.import_module(f"{__name__}.{module}"), name)

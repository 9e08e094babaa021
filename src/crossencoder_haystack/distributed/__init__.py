"""Past one machine: batch reranking, evaluation and mining on Ray Data, and the rerank service on Ray Serve.

Needs the `ray` extra (`pip install "crossencoder-haystack[ray]"`); the rest of the package never imports Ray.

- `rerank_dataset(...)`: rerank a query log (a Ray `Dataset` or JSONL / Parquet files) on a pool of actors, each
  holding one ranker; resumable, each query written once (`read_rows` reads the output back).
- `evaluate(...)` and `mine_hard_negatives(...)`: `rerank evaluate --engine ray` and `rerank mine --engine ray`,
  the same numbers and files as the local engine with the model work on Ray (`RayMiningEngine` for mining).
- `rerank_application(...)`, `serve_on_ray(...)`, `build_app`: `rerank serve --engine ray --replicas N`, the same
  service in N Ray Serve replicas with Ray Serve's request batching.
- `connect(address)`: join a cluster, or start a local one bound to 127.0.0.1.

Names are imported on first use, so that `rerank --help` does not import Ray.
"""

import importlib
from typing import Any

_MODULES = {
    "RayNotInstalledError": "cluster",
    "connect": "cluster",
    "RankerSpec": "reranking",
    "RerankSummary": "reranking",
    "rank_row": "reranking",
    "rerank_dataset": "reranking",
    "read_rows": "output",
    "evaluate": "evaluation",
    "RayMiningEngine": "mining",
    "mine_hard_negatives": "mining",
    "RerankReplica": "serving",
    "build_app": "serving",
    "rerank_application": "serving",
    "serve_on_ray": "serving",
}

__all__ = sorted(_MODULES)


def __getattr__(name: str) -> Any:
    module = _MODULES.get(name)
    if module is None:
        msg = f"module {__name__!r} has no attribute {name!r}"
        raise AttributeError(msg)
    return getattr(importlib.import_module(f"{__name__}.{module}"), name)

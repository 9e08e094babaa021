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

from typing import TYPE_CHECKING

from crossencoder_haystack._lazy_imports import lazy_exports

if TYPE_CHECKING:
    from crossencoder_haystack.distributed.cluster import RayNotInstalledError, connect
    from crossencoder_haystack.distributed.evaluation import evaluate
    from crossencoder_haystack.distributed.mining import RayMiningEngine, mine_hard_negatives
    from crossencoder_haystack.distributed.output import read_rows
    from crossencoder_haystack.distributed.reranking import RankerSpec, RerankSummary, rank_row, rerank_dataset
    from crossencoder_haystack.distributed.serving import RerankReplica, build_app, rerank_application, serve_on_ray

_EXPORTS = {
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

__all__ = [
    "RankerSpec",
    "RayMiningEngine",
    "RayNotInstalledError",
    "RerankReplica",
    "RerankSummary",
    "build_app",
    "connect",
    "evaluate",
    "mine_hard_negatives",
    "rank_row",
    "read_rows",
    "rerank_application",
    "rerank_dataset",
    "serve_on_ray",
]

__getattr__ = lazy_exports(__name__, _EXPORTS)

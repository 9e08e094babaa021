"""`rerank mine --engine ray`: hard-negative mining with its two heavy steps on a Ray actor pool.

Embedding the corpus and the queries, and BM25 retrieval for every query, are what make mining slow for 100K
queries or millions of documents. `RayMiningEngine` runs both on actors (each loads the embedding model, or builds
the BM25 index, once); everything else, and so every choice of negatives, stays in
`crossencoder_haystack.training.mining`, which gets the same embeddings and the same BM25 rankings back and writes
the same files.

The embedding model's dtype is chosen here, by the driver (bf16 where this CPU multiplies it natively), and used
by every actor, so that a cluster of mixed CPUs embeds alike.
"""

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from crossencoder_haystack.distributed.actor_pool import (
    Row,
    check_pool,
    map_with_actors,
    result_blocks,
    set_progress_bars,
)
from crossencoder_haystack.distributed.cluster import connect


@dataclass
class EmbeddingWorker:
    """An actor's work: embed batches of `{index, text}` rows with one sentence-transformers model."""

    model: str
    model_kwargs: dict[str, Any]
    batch_size: int
    device: str = "cpu"
    _encoder: Any = field(default=None, init=False, repr=False)

    @property
    def schema(self) -> Any:
        return None  # __call__ returns an Arrow table

    def load(self) -> None:
        from crossencoder_haystack.training.mining import embedding_model

        self._encoder = embedding_model(self.model, self.model_kwargs, self.device)

    def __call__(self, rows: list[Row]) -> Any:
        import pyarrow as pa

        from crossencoder_haystack.training.mining import embed_texts

        embeddings = embed_texts(self._encoder, [row["text"] for row in rows], self.batch_size).cpu().numpy()
        values = pa.array(embeddings.reshape(-1))
        return pa.table(
            {
                "index": pa.array([row["index"] for row in rows], pa.int64()),
                "embedding": pa.FixedSizeListArray.from_arrays(values, embeddings.shape[1]),
            }
        )


@dataclass
class BM25Worker:
    """An actor's work: BM25 over the corpus (indexed once), the `top_k` best documents per `{query_id, query}`."""

    corpus: dict[str, str]
    top_k: int
    _index: Any = field(default=None, init=False, repr=False)

    @property
    def schema(self) -> Any:
        import pyarrow as pa

        return pa.schema(
            [("query_id", pa.string()), ("ids", pa.list_(pa.string())), ("scores", pa.list_(pa.float64()))]
        )

    def load(self) -> None:
        from crossencoder_haystack.training.mining import BM25Index

        self._index = BM25Index(self.corpus)

    def __call__(self, rows: list[Row]) -> list[Row]:
        results = []
        for row in rows:
            ranked = self._index.search(row["query"], self.top_k)
            results.append(
                {"query_id": row["query_id"], "ids": [i for i, _ in ranked], "scores": [s for _, s in ranked]}
            )
        return results


class RayMiningEngine:
    """
    Runs mining's embedding and BM25 steps on a Ray actor pool (`training.mining.MiningEngine`).

    ```python
    from crossencoder_haystack.distributed import RayMiningEngine, connect
    from crossencoder_haystack.training import mine_hard_negatives

    connect()  # or connect("auto") on a cluster
    mine_hard_negatives("/data/msmarco", output="train.jsonl", engine=RayMiningEngine(num_actors=8))
    ```
    """

    def __init__(
        self,
        *,
        num_actors: int = 1,
        num_cpus_per_actor: float = 1,
        num_gpus_per_actor: float = 0,
        texts_per_batch: int = 1024,
        queries_per_batch: int = 64,
    ) -> None:
        """
        :param num_actors: Actors per step.
        :param num_cpus_per_actor: CPUs per actor.
        :param num_gpus_per_actor: GPUs per embedding actor (BM25 runs on CPU); 0 for CPU.
        :param texts_per_batch: Texts per call of an embedding actor.
        :param queries_per_batch: Queries per call of a BM25 actor.
        :raises ValueError: If a setting is out of range.
        """
        check_pool(num_actors, num_cpus_per_actor, num_gpus_per_actor, texts_per_batch)
        check_pool(num_actors, num_cpus_per_actor, 0, queries_per_batch)
        self.num_actors = num_actors
        self.num_cpus_per_actor = num_cpus_per_actor
        self.num_gpus_per_actor = num_gpus_per_actor
        self.texts_per_batch = texts_per_batch
        self.queries_per_batch = queries_per_batch

    def embed(self, model: str, texts: list[str], *, batch_size: int, model_kwargs: dict[str, Any]) -> Any:
        """The normalised embeddings of `texts` (a float32 tensor in their order)."""
        import numpy as np
        import ray.data
        import torch

        if not texts:
            return torch.empty((0, 0))
        device = "cuda" if self.num_gpus_per_actor else "cpu"
        worker = EmbeddingWorker(str(model), dict(model_kwargs), batch_size, device)
        rows = ray.data.from_items([{"index": index, "text": text} for index, text in enumerate(texts)])
        results = map_with_actors(
            rows,
            worker,
            num_actors=self.num_actors,
            num_cpus_per_actor=self.num_cpus_per_actor,
            num_gpus_per_actor=self.num_gpus_per_actor,
            rows_per_batch=self.texts_per_batch,
        )
        embeddings: np.ndarray | None = None
        for block in result_blocks(results):
            column = block.column("embedding").combine_chunks()
            values = column.flatten().to_numpy().reshape(len(column), column.type.list_size)
            if embeddings is None:
                embeddings = np.empty((len(texts), values.shape[1]), dtype=np.float32)
            embeddings[block.column("index").to_numpy()] = values
        assert embeddings is not None  # texts is not empty
        return torch.from_numpy(embeddings)

    def bm25(self, corpus: dict[str, str], queries: dict[str, str], top_k: int) -> dict[str, list[tuple[str, float]]]:
        """BM25's `top_k` documents for every query: query id -> [(document id, score), ...], best first."""
        import ray.data

        if not queries:
            return {}
        rows = ray.data.from_items([{"query_id": query_id, "query": query} for query_id, query in queries.items()])
        results = map_with_actors(
            rows,
            BM25Worker(dict(corpus), top_k),
            num_actors=self.num_actors,
            num_cpus_per_actor=self.num_cpus_per_actor,
            rows_per_batch=self.queries_per_batch,
        )
        rankings = {}
        for block in result_blocks(results):
            for row in block.to_pylist():
                rankings[row["query_id"]] = list(zip(row["ids"], row["scores"], strict=True))
        return rankings


def mine_hard_negatives(
    queries: str | Path | Any,
    corpus: str | Path | None = None,
    *,
    ray_address: str | None = None,
    num_actors: int = 1,
    num_cpus_per_actor: float = 1,
    num_gpus_per_actor: float = 0,
    show_progress: bool = True,
    **options: Any,
) -> list[dict[str, Any]]:
    """
    `crossencoder_haystack.training.mine_hard_negatives` with embedding and BM25 on Ray: the same rows and files.

    Usage example:

    ```python
    from crossencoder_haystack.distributed import mine_hard_negatives

    mine_hard_negatives("/data/msmarco", output="train.jsonl", split="train", num_actors=16, ray_address="auto")
    ```

    :param queries: As in `training.mine_hard_negatives`.
    :param corpus: As in `training.mine_hard_negatives`.
    :param ray_address: The cluster to run on; None starts a local one on 127.0.0.1.
    :param num_actors: Actors per step.
    :param num_cpus_per_actor: CPUs per actor.
    :param num_gpus_per_actor: GPUs per embedding actor; 0 for CPU.
    :param show_progress: Show progress bars.
    :param options: Every other argument of `training.mine_hard_negatives` (`output`, `retriever`, `top_n`, ...).
    :returns: The rows, as `training.mine_hard_negatives` returns them.
    """
    from crossencoder_haystack.training.mining import mine_hard_negatives as mine_locally

    engine = RayMiningEngine(
        num_actors=num_actors, num_cpus_per_actor=num_cpus_per_actor, num_gpus_per_actor=num_gpus_per_actor
    )
    connect(ray_address)
    set_progress_bars(show_progress)
    return mine_locally(queries, corpus, engine=engine, show_progress=show_progress, **options)

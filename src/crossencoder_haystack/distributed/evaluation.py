"""`rerank evaluate --engine ray`: the rankers' scoring on a Ray actor pool, the evaluation itself unchanged.

`evaluate(...)` here takes the arguments of `crossencoder_haystack.evaluation.evaluate` and runs in two steps:

1. The expensive part on Ray. The same first stage retrieves the same candidates for the same (seeded) queries on
   this machine; every query whose candidates are not all in the score cache goes, as one row, to a pool of actors
   that each load the ranker once and score the row exactly as the local engine does (`RankerUnderTest.score`: one
   `run` over the query's uncached candidates). Scores are written into the score cache block by block, so an
   interrupted job resumes where it stopped.
2. The local evaluation, which now finds every score in the cache: the same metrics, significance tests, tables
   and files as `--engine local`. Latency is still measured on this machine (`latency_queries`), as it times the
   ranker itself.

Rankers given as objects (`ranker_from_component`) and rankers whose settings cannot be read are scored locally.
"""

import json
from collections.abc import Mapping, Sequence
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
from crossencoder_haystack.distributed.progress import progress_bar


def scores_schema() -> Any:
    import pyarrow as pa

    return pa.schema([("query_id", pa.string()), ("ids", pa.list_(pa.string())), ("scores", pa.list_(pa.float64()))])


def documents_json(documents: Sequence[Any]) -> str:
    """What a ranker sees of `documents` (id, content, meta, first-stage score), as JSON for a Ray row."""
    return json.dumps(
        [{"id": doc.id, "content": doc.content, "meta": doc.meta, "score": doc.score} for doc in documents],
        ensure_ascii=False,
    )


def documents_from_json(text: str) -> list[Any]:
    from haystack import Document

    return [Document(**fields) for fields in json.loads(text)]


@dataclass
class ScoringWorker:
    """An actor's work: the ranker a `--ranker` value names, scoring each row's documents like the local engine."""

    spec: str
    options: Mapping[str, Any]
    _ranker: Any = field(default=None, init=False, repr=False)

    @property
    def schema(self) -> Any:
        return scores_schema()

    def load(self) -> None:
        from crossencoder_haystack.evaluation.rankers import load_ranker

        self._ranker = load_ranker(self.spec, dict(self.options))
        self._ranker.warm_up()

    def __call__(self, rows: list[Row]) -> list[Row]:
        scored = []
        for row in rows:
            scores = self._ranker.score(row["query"], documents_from_json(row["documents"]))
            scored.append({"query_id": row["query_id"], "ids": list(scores), "scores": list(scores.values())})
        return scored


@dataclass
class _Candidates:
    """The queries to evaluate and their first-stage candidates (retrieved once, at the largest K)."""

    queries: dict[str, str]
    documents: dict[str, list[Any]]


def evaluate(
    dataset: Any,
    *,
    ray_address: str | None = None,
    num_actors: int = 1,
    num_cpus_per_actor: float = 1,
    num_gpus_per_actor: float = 0,
    rows_per_batch: int = 4,
    **options: Any,
) -> Any:
    """
    `crossencoder_haystack.evaluation.evaluate` with the rankers' scoring on Ray (see the module docstring).

    Usage example:

    ```python
    from crossencoder_haystack.distributed import evaluate
    from crossencoder_haystack.evaluation import print_table

    result = evaluate("/data/msmarco", rankers=["/models/my-cross-encoder"], ks=[100], num_actors=16)
    print_table(result)  # the same numbers as crossencoder_haystack.evaluation.evaluate(...)
    ```

    :param dataset: As in `evaluation.evaluate`.
    :param ray_address: The cluster to run on; None starts a local one on 127.0.0.1.
    :param num_actors: Actors per ranker, each with one copy of the model.
    :param num_cpus_per_actor: CPUs per actor.
    :param num_gpus_per_actor: GPUs per actor; 0 for CPU.
    :param rows_per_batch: Queries per call of an actor.
    :param options: Every other argument of `evaluation.evaluate` (`rankers`, `ks`, `first_stage`, `cache_dir`,
        `max_queries`, `seed`, `precision`, ...).
    :returns: The `EvaluationResult`, as `evaluation.evaluate` returns it.
    """
    from crossencoder_haystack.data import BeirDataset, load_dataset
    from crossencoder_haystack.evaluation import evaluate as evaluate_locally
    from crossencoder_haystack.evaluation.settings import RANKER_OPTION_NAMES

    check_pool(num_actors, num_cpus_per_actor, num_gpus_per_actor, rows_per_batch)
    data = (
        dataset
        if isinstance(dataset, BeirDataset)
        else load_dataset(dataset, options.get("split", "test"), options.get("corpus"))
    )
    show_progress = options.get("show_progress", True)
    specs = _ranker_specs(options.get("rankers", ("none",)))
    if specs:
        candidates = _retrieve(data, options)
        connect(ray_address)
        set_progress_bars(show_progress)
        ranker_options = {name: options.get(name) for name in RANKER_OPTION_NAMES}
        for spec in specs:
            _score_into_cache(
                spec,
                ranker_options,
                candidates,
                _cache_root(options),
                pool={
                    "num_actors": num_actors,
                    "num_cpus_per_actor": num_cpus_per_actor,
                    "num_gpus_per_actor": num_gpus_per_actor,
                    "rows_per_batch": rows_per_batch,
                },
                show_progress=show_progress,
            )
    local_options = {name: value for name, value in options.items() if name not in ("split", "corpus")}
    return evaluate_locally(data, split=options.get("split", "test"), corpus=options.get("corpus"), **local_options)


def _ranker_specs(rankers: Any) -> list[str]:
    """The `--ranker` values to score on Ray: paths and YAML files (not `none`, not Python objects)."""
    from crossencoder_haystack.evaluation.rankers import NO_RANKER

    if isinstance(rankers, (str, Path)):
        rankers = [rankers]
    return [str(each) for each in rankers if isinstance(each, (str, Path)) and str(each).strip().lower() != NO_RANKER]


def _cache_root(options: Mapping[str, Any]) -> Path:
    from crossencoder_haystack.evaluation.score_cache import default_cache_dir

    cache_dir = options.get("cache_dir")
    return Path(cache_dir).expanduser() if cache_dir is not None else default_cache_dir()


def _retrieve(data: Any, options: Mapping[str, Any]) -> _Candidates:
    """The seeded query sample and candidates `evaluation.evaluate` will use (same arguments, same choice)."""
    from crossencoder_haystack.evaluation.first_stage import build_first_stage

    # The same checks and the same seeded sample as evaluate(), so that the scores cover exactly its queries.
    from crossencoder_haystack.evaluation.settings import seeded_sample, validated_ks

    kmax = validated_ks(options.get("ks", (50, 100, 150)))[-1]
    query_ids = seeded_sample(data.judged_query_ids(), options.get("max_queries"), options.get("seed", 42))
    stage = build_first_stage(
        options.get("first_stage", "bm25"),
        data,
        embedding_model=options.get("embedding_model"),
        cache_dir=_cache_root(options),
    )
    stage.warm_up()
    queries = {query_id: data.queries[query_id] for query_id in query_ids}
    documents = {query_id: stage.retrieve(query_id, query, kmax) for query_id, query in queries.items()}
    return _Candidates(queries, documents)


def _score_into_cache(
    spec: str,
    ranker_options: Mapping[str, Any],
    candidates: _Candidates,
    cache_root: Path,
    *,
    pool: Mapping[str, Any],
    show_progress: bool,
) -> None:
    """Score, on Ray, every query's candidates that the cache lacks, and put the scores into the cache."""
    import ray.data

    from crossencoder_haystack.evaluation.fingerprints import document_fingerprint
    from crossencoder_haystack.evaluation.rankers import load_ranker
    from crossencoder_haystack.evaluation.score_cache import SCORE_CACHE_FILE, EvaluationScoreStore

    ranker = load_ranker(spec, dict(ranker_options))
    if ranker is None or ranker.identity is None:
        return  # not cacheable: the local evaluation scores it
    with EvaluationScoreStore(cache_root / SCORE_CACHE_FILE) as cache:
        fingerprints = {
            query_id: {doc.id: document_fingerprint(doc) for doc in documents}
            for query_id, documents in candidates.documents.items()
        }
        rows = []
        for query_id, query in candidates.queries.items():
            cached = cache.get(ranker.identity, query, list(fingerprints[query_id].values()))
            missing = [doc for doc in candidates.documents[query_id] if fingerprints[query_id][doc.id] not in cached]
            if missing:
                rows.append({"query_id": query_id, "query": query, "documents": documents_json(missing)})
        if not rows:
            return
        results = map_with_actors(ray.data.from_items(rows), ScoringWorker(spec, dict(ranker_options)), **pool)
        with progress_bar(show_progress, len(rows), f"{ranker.name} on Ray") as advance:
            for block in result_blocks(results):
                for row in block.to_pylist():
                    query_id = row["query_id"]
                    scores = {
                        fingerprints[query_id][doc_id]: score
                        for doc_id, score in zip(row["ids"], row["scores"], strict=True)
                    }
                    cache.put(ranker.identity, candidates.queries[query_id], scores)
                    advance()

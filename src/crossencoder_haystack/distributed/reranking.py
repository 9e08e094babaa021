"""`rerank_dataset(...)`: rerank a query log on Ray Data, each actor of the pool holding one ranker.

What it reads, one row per query (a Ray `Dataset`, or JSONL / Parquet files):

    {"query_id": "q1", "query": "who hunts mice at night",
     "candidates": [{"id": "d9", "text": "Owls hunt mice ...", "score": 12.3}, ...]}

`score` is the first stage's score (optional); a candidate may carry `meta` (a dict; Arrow gives rows the union of
the keys, and keys whose value is null are dropped again). What it writes, one row per query, into JSONL parts:

    {"query_id": "q1", "ranked": [{"id": "d9", "score": 0.97, "retrieval_rank": 1}, ...]}

Each row's `ranked` is what the ranker's `run(query=..., documents=...)` returns for that row, in order:
`CrossEncoderRanker` parameters (`top_k`, `score_threshold`, fusion with the first stage, ...) apply as they do
locally, and `retrieval_rank` is the candidate's 1-based position in the row. The output is resumable (see
`output.py`): a re-run skips the query ids already written, and an actor that dies is restarted by Ray and its rows
are written once.
"""

import inspect
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from crossencoder_haystack.distributed.actor_pool import (
    Row,
    check_pool,
    map_with_actors,
    result_blocks,
    set_progress_bars,
)
from crossencoder_haystack.distributed.cluster import connect, import_ray
from crossencoder_haystack.distributed.output import PartWriter
from crossencoder_haystack.distributed.progress import progress_bar

INPUT_COLUMNS = ("query_id", "query", "candidates")
_JSON_SUFFIXES = (".jsonl", ".json")
_PARQUET_SUFFIXES = (".parquet",)


def ranked_schema() -> Any:
    """The Arrow schema of the output rows."""
    import pyarrow as pa

    ranked = pa.struct([("id", pa.string()), ("score", pa.float64()), ("retrieval_rank", pa.int64())])
    return pa.schema([("query_id", pa.string()), ("ranked", pa.list_(ranked))])


@dataclass(frozen=True)
class RankerSpec:
    """
    What every actor builds its ranker from.

    :param ranker: A cross-encoder model directory (a `CrossEncoderRanker` with `parameters`), a Haystack YAML file
        holding a ranker component or a pipeline with one (`file.yaml`, or `file.yaml#component`), or a function
        that returns a ranker component (called once per actor; Ray pickles it, so define it at module level).
    :param parameters: `CrossEncoderRanker` init parameters for a model directory (e.g. `top_k`, `batch_size`,
        `precision`); a YAML file or a function brings its own settings.
    """

    ranker: str | Callable[[], Any]
    parameters: Mapping[str, Any] = field(default_factory=dict)

    def check(self) -> None:
        """
        Fail early, on the driver, for a ranker no actor could build.

        :raises ValueError: If `ranker` is not a model directory, a YAML file or a function, or `parameters` are
            given with a YAML file or a function.
        """
        if callable(self.ranker):
            if self.parameters:
                msg = "ranker_parameters apply to a model directory; a ranker function sets its own parameters."
                raise ValueError(msg)
            return
        path, component = _yaml_path(str(self.ranker))
        if path is not None:
            if self.parameters:
                msg = f"ranker_parameters apply to a model directory; {path} holds its own settings."
                raise ValueError(msg)
            return
        if component or not Path(self.ranker).expanduser().is_dir():
            msg = (
                f"ranker {self.ranker!r} is neither a model directory, a Haystack YAML file (.yaml/.yml, optionally "
                "#component) nor a function returning a ranker. Pass e.g. ranker='/models/my-cross-encoder'."
            )
            raise ValueError(msg)

    def build(self) -> Any:
        """The ranker component, warmed up."""
        if callable(self.ranker):
            component = self.ranker()
        else:
            path, name = _yaml_path(str(self.ranker))
            if path is not None:
                from crossencoder_haystack.evaluation.rankers import component_from_yaml

                component = component_from_yaml(path, name or None)
            else:
                from haystack_integrations.components.rankers.crossencoder import CrossEncoderRanker

                model = str(Path(self.ranker).expanduser().resolve())
                component = CrossEncoderRanker(model=model, **dict(self.parameters))
        if hasattr(component, "warm_up"):
            component.warm_up()
        return component


def _yaml_path(spec: str) -> tuple[Path | None, str]:
    """(the YAML file, the component name after `#`) if `spec` names an existing YAML file, else (None, name)."""
    path, name = Path(spec).expanduser(), ""
    if not path.exists() and "#" in spec:
        text, _, name = spec.rpartition("#")
        path = Path(text).expanduser()
    is_yaml = path.is_file() and path.suffix.lower() in (".yaml", ".yml")
    return (path, name) if is_yaml else (None, name)


def candidate_documents(row: Row) -> list[Any]:
    """A row's candidates as Haystack `Document`s (id, text as content, first-stage score, meta)."""
    from haystack import Document

    documents = []
    for candidate in row.get("candidates") or []:
        meta = {key: value for key, value in (candidate.get("meta") or {}).items() if value is not None}
        score = candidate.get("score")
        documents.append(
            Document(
                id=str(candidate["id"]),
                content=candidate.get("text"),
                score=None if score is None else float(score),
                meta=meta,
            )
        )
    return documents


def rank_row(ranker: Any, row: Row, top_k: int | Literal["all"] | None = None) -> Row:
    """
    One output row: the ranker run on one input row.

    :param ranker: A ranker component (`run(query=..., documents=...)`).
    :param row: `{query_id, query, candidates}`.
    :param top_k: Passed to `run` when given; `"all"` returns every candidate; None keeps the ranker's own.
    :returns: `{query_id, ranked: [{id, score, retrieval_rank}, ...]}`, best first.
    :raises ValueError: If the ranker rejects the row (e.g. an empty query); the message names the query id.
    """
    query_id = str(row["query_id"])
    documents = candidate_documents(row)
    positions: dict[str, int] = {}
    for document in documents:
        positions.setdefault(document.id, len(positions) + 1)
    if not documents:
        return {"query_id": query_id, "ranked": []}
    arguments: dict[str, Any] = {"query": row.get("query"), "documents": documents}
    if top_k is not None and "top_k" in inspect.signature(ranker.run).parameters:
        arguments["top_k"] = len(documents) if top_k == "all" else top_k
    try:
        ranked = ranker.run(**arguments)["documents"]
    except ValueError as error:
        msg = f"query_id {query_id!r}: {error}"
        raise ValueError(msg) from error
    return {
        "query_id": query_id,
        "ranked": [
            {
                "id": document.id,
                "score": None if document.score is None else float(document.score),
                "retrieval_rank": _retrieval_rank(document, positions),
            }
            for document in ranked
        ],
    }


def _retrieval_rank(document: Any, positions: dict[str, int]) -> int:
    rank = document.meta.get("retrieval_rank")
    if isinstance(rank, int) and not isinstance(rank, bool):
        return rank
    return positions.get(document.id, 0)


@dataclass
class RankingWorker:
    """An actor's work for `rerank_dataset`: build the ranker once, rank each row not finished before."""

    spec: RankerSpec
    top_k: int | Literal["all"] | None = None
    finished: frozenset[str] = frozenset()
    _ranker: Any = field(default=None, init=False, repr=False)

    @property
    def schema(self) -> Any:
        return ranked_schema()

    def load(self) -> None:
        self._ranker = self.spec.build()

    def __call__(self, rows: list[Row]) -> list[Row]:
        return [rank_row(self._ranker, row, self.top_k) for row in rows if str(row["query_id"]) not in self.finished]


@dataclass
class RerankSummary:
    """
    What `rerank_dataset` did.

    :param output: The output directory.
    :param written: Rows written by this run.
    :param finished: Query ids in the output now (earlier runs included).
    :param duplicates: Input rows dropped because their query id was already written in this run.
    :param parts: Part files written by this run.
    :param seconds: Wall time of this run.
    """

    output: Path
    written: int
    finished: int
    duplicates: int
    parts: list[Path]
    seconds: float


def rerank_dataset(
    data: Any,
    ranker: str | Path | Callable[[], Any],
    output: str | Path,
    *,
    ranker_parameters: Mapping[str, Any] | None = None,
    top_k: int | Literal["all"] | None = None,
    num_actors: int = 1,
    num_cpus_per_actor: float = 1,
    num_gpus_per_actor: float = 0,
    rows_per_batch: int = 16,
    ray_address: str | None = None,
    show_progress: bool = True,
) -> RerankSummary:
    """
    Rerank every query of `data` on a pool of Ray actors and write `{query_id, ranked}` rows into `output`.

    Usage example:

    ```python
    from crossencoder_haystack.distributed import rerank_dataset, read_rows

    summary = rerank_dataset(
        "/data/query_log.jsonl",  # {query_id, query, candidates: [{id, text, score}]} per line
        "/models/my-cross-encoder",
        "/data/reranked",
        ranker_parameters={"top_k": 20},
        num_actors=8,
    )
    rows = read_rows("/data/reranked")  # [{"query_id": ..., "ranked": [{"id", "score", "retrieval_rank"}]}]
    ```

    Each actor loads its ranker once; a row's result equals `ranker.run(query=..., documents=...)` on it. Output
    is written block by block; run the same call again after a crash and it skips the query ids already written.
    On a cluster, paths (input, model, output) must be the same on every node (a shared file system), and the
    output is written by this process.

    :param data: A Ray `Dataset`, or a path (or list of paths) to JSONL or Parquet files or a directory of them.
    :param ranker: A model directory, a Haystack YAML file (`file.yaml#component` to pick one) or a function
        returning a ranker component (see `RankerSpec`).
    :param output: A directory for the JSONL parts (created if missing; parts of an earlier run are kept).
    :param ranker_parameters: `CrossEncoderRanker` init parameters for a model directory.
    :param top_k: Documents per query in the output: an int, `"all"`, or None for the ranker's own `top_k`.
    :param num_actors: Actors in the pool, each with one copy of the model.
    :param num_cpus_per_actor: CPUs per actor (torch threads in it).
    :param num_gpus_per_actor: GPUs per actor; 0 for CPU.
    :param rows_per_batch: Queries per call of an actor.
    :param ray_address: The cluster to run on; None starts a local one on 127.0.0.1 (see `connect`).
    :param show_progress: Show progress bars (Ray Data's per stage, and the rows written).
    :returns: What was written.
    :raises ValueError: On a bad ranker, parameter or input columns.
    :raises FileNotFoundError: If an input path does not exist.
    """
    started = time.perf_counter()
    spec = RankerSpec(ranker if callable(ranker) else str(ranker), dict(ranker_parameters or {}))
    spec.check()
    _check_top_k(top_k)
    check_pool(num_actors, num_cpus_per_actor, num_gpus_per_actor, rows_per_batch)
    connect(ray_address)
    set_progress_bars(show_progress)
    dataset = input_dataset(data)
    writer = PartWriter(output)
    worker = RankingWorker(spec, top_k, frozenset(writer.finished))
    results = map_with_actors(
        dataset,
        worker,
        num_actors=num_actors,
        num_cpus_per_actor=num_cpus_per_actor,
        num_gpus_per_actor=num_gpus_per_actor,
        rows_per_batch=rows_per_batch,
    )
    parts = _write_results(results, writer, show_progress)
    return RerankSummary(
        output=writer.output,
        written=writer.written,
        finished=len(writer.finished),
        duplicates=writer.duplicates,
        parts=parts,
        seconds=time.perf_counter() - started,
    )


def _write_results(results: Any, writer: PartWriter, show_progress: bool) -> list[Path]:
    """Write the actors' result blocks as they arrive (one part file per block with new rows); the parts written."""
    parts = []
    with progress_bar(show_progress, None, "queries written") as advance:
        for block in result_blocks(results):
            rows = block.to_pylist()
            part = writer.write(rows)
            if part is not None:
                parts.append(part)
            for _ in rows:
                advance()
    return parts


def _check_top_k(top_k: Any) -> None:
    if top_k is None or top_k == "all":
        return
    if isinstance(top_k, bool) or not isinstance(top_k, int) or top_k < 1:
        msg = f"top_k must be a positive int, 'all' or None (the ranker's own), got {top_k!r}."
        raise ValueError(msg)


def input_dataset(data: Any) -> Any:
    """
    `data` as a Ray `Dataset` with the input columns.

    :raises ValueError: If a column is missing or a file is neither JSONL nor Parquet.
    :raises FileNotFoundError: If a path does not exist.
    """
    ray = import_ray()
    if isinstance(data, ray.data.Dataset):
        dataset = data
    else:
        dataset = _read_files([data] if isinstance(data, (str, Path)) else list(data))
    names = set(dataset.schema().names)
    missing = [column for column in INPUT_COLUMNS if column not in names]
    if missing:
        msg = (
            f"the input rows lack {', '.join(missing)}: each row needs query_id, query and candidates "
            '([{"id", "text", "score"}, ...]); found columns ' + ", ".join(sorted(names)) + "."
        )
        raise ValueError(msg)
    return dataset


def _read_files(paths: Sequence[str | Path]) -> Any:
    import ray.data

    files: list[Path] = []
    for each in paths:
        path = Path(each).expanduser()
        if not path.exists():
            msg = f"input {path} does not exist."
            raise FileNotFoundError(msg)
        if path.is_dir():
            found = sorted(p for p in path.iterdir() if p.suffix.lower() in _JSON_SUFFIXES + _PARQUET_SUFFIXES)
            files.extend(found)
        else:
            files.append(path)
    parquet = [path for path in files if path.suffix.lower() in _PARQUET_SUFFIXES]
    jsonl = [path for path in files if path.suffix.lower() in _JSON_SUFFIXES]
    if not files or len(parquet) + len(jsonl) < len(files) or (parquet and jsonl):
        msg = (
            f"input must be JSONL (.jsonl/.json) or Parquet (.parquet) files, one kind at a time; got "
            f"{', '.join(str(path) for path in paths)}."
        )
        raise ValueError(msg)
    if parquet:
        return ray.data.read_parquet([str(path.resolve()) for path in parquet])
    return ray.data.read_json([str(path.resolve()) for path in jsonl], lines=True)

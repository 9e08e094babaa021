"""Ray Data's actor pool, as every distributed job here uses it: each actor loads its model once, then maps batches.

A job hands `map_with_actors` a `BatchWorker`: a small picklable object that knows how to load its model (`load`,
run once in the actor's `__init__`) and how to turn a list of rows into a list of result rows (`__call__`), with
the Arrow schema of those result rows. An actor that dies (its process killed, its node lost) is restarted by Ray
and the batch it held is run again by the new actor: Ray Data hands each result block to the consumer once.
"""

from collections.abc import Iterator
from typing import Any, Protocol

Row = dict[str, Any]


class BatchWorker(Protocol):
    """What an actor runs: `load()` once, then `worker(rows)` per batch: result rows following `schema`, or an
    Arrow table (for columns too large for Python rows, such as embeddings)."""

    @property
    def schema(self) -> Any: ...  # pyarrow.Schema

    def load(self) -> None: ...

    def __call__(self, rows: list[Row]) -> list[Row]: ...


class BatchActor:
    """The Ray Data actor class: loads its worker's model in `__init__`, maps Arrow batches through it."""

    def __init__(self, worker: BatchWorker) -> None:
        worker.load()
        self._worker = worker

    def __call__(self, batch: Any) -> Any:
        import pyarrow as pa

        results = self._worker(batch.to_pylist())
        return results if isinstance(results, pa.Table) else pa.Table.from_pylist(results, schema=self._worker.schema)


def check_pool(num_actors: int, num_cpus_per_actor: float, num_gpus_per_actor: float, rows_per_batch: int) -> None:
    """
    Validate the actor pool settings.

    :raises ValueError: Naming the setting that is out of range.
    """
    for name, value in (("num_actors", num_actors), ("rows_per_batch", rows_per_batch)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            msg = f"{name} must be an int >= 1, got {value!r}."
            raise ValueError(msg)
    if not _is_number(num_cpus_per_actor) or num_cpus_per_actor <= 0:
        msg = f"num_cpus_per_actor must be > 0 (e.g. 1, or 0.5 for two actors per core), got {num_cpus_per_actor!r}."
        raise ValueError(msg)
    if not _is_number(num_gpus_per_actor) or num_gpus_per_actor < 0:
        msg = f"num_gpus_per_actor must be >= 0 (0 = CPU only), got {num_gpus_per_actor!r}."
        raise ValueError(msg)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def map_with_actors(
    dataset: Any,
    worker: BatchWorker,
    *,
    num_actors: int = 1,
    num_cpus_per_actor: float = 1,
    num_gpus_per_actor: float = 0,
    rows_per_batch: int = 16,
) -> Any:
    """
    `dataset.map_batches` over a pool of `num_actors` actors running `worker` (lazy: nothing runs until iterated).

    :param dataset: A Ray `Dataset` of rows.
    :param worker: What each actor loads and runs.
    :param num_actors: Actors in the pool (each holds one copy of the model).
    :param num_cpus_per_actor: CPUs Ray reserves per actor; torch in the actor uses that many threads.
    :param num_gpus_per_actor: GPUs per actor (fractions share a GPU); 0 runs on CPU.
    :param rows_per_batch: Rows per call of the worker.
    :returns: The dataset of result rows.
    """
    import ray
    import ray.data

    check_pool(num_actors, num_cpus_per_actor, num_gpus_per_actor, rows_per_batch)
    if num_actors * num_cpus_per_actor >= ray.cluster_resources().get("CPU", 0):
        # The pool takes every CPU, so the tasks that read the input could never run next to it: read it first.
        dataset = dataset.materialize()
    return dataset.map_batches(
        BatchActor,
        fn_constructor_args=(worker,),
        compute=ray.data.ActorPoolStrategy(size=num_actors),
        num_cpus=num_cpus_per_actor,
        num_gpus=num_gpus_per_actor or None,
        batch_size=rows_per_batch,
        batch_format="pyarrow",
    )


def result_blocks(dataset: Any) -> Iterator[Any]:
    """The result blocks of `dataset` as Arrow tables, each once, as they are produced."""
    yield from dataset.iter_batches(batch_size=None, batch_format="pyarrow")


def set_progress_bars(show: bool) -> None:
    """Show (or hide) Ray Data's own progress bars for the jobs this process runs."""
    from ray.data import DataContext

    DataContext.get_current().enable_progress_bars = show

"""Several batches scored at once on a CPU, each by its own thread with a share of the cores ("streams").

One MiniLM-sized batch is made of small matrices (384 wide): splitting each product over two cores gains little
(measured on a 2-core Xeon with AMX: 2 threads ~1.1x one thread), while two batches side by side, one core each,
keep both cores busy with whole products (~1.3x the single two-thread stream in bf16). So in bf16 on a CPU the
torch scorer runs its batches in `streams` worker threads, each with `threads // streams` intra-op threads; a
pair's score does not depend on which thread computes it, and results come back in order.

In float32 torch multiplies through MKL, whose thread count is process-wide, so streams would oversubscribe the
cores: `"auto"` keeps one stream there, and on GPUs (one device queue). A user can still ask for a number.

`torch.set_num_threads` changes the calling thread's OpenMP thread count and the default of threads created later;
`BatchStreams` sets it in its own workers only and puts the default back, so other threads are not affected.
"""

import os
import threading
import weakref
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

T = TypeVar("T")
R = TypeVar("R")

MAX_AUTO_STREAMS = 4  # past a few streams a batch per core leaves too few threads per batch for one request
_START_TIMEOUT_S = 60.0


def available_cores() -> int:
    """The CPU cores this process may run on (its affinity mask where the OS reports one)."""
    if hasattr(os, "sched_getaffinity"):
        return max(1, len(os.sched_getaffinity(0)))
    return max(1, os.cpu_count() or 1)


def auto_stream_count(num_streams: int | None, precision: str, device_kind: str, threads: int) -> int:
    """
    How many batches run at once.

    :param num_streams: The user's setting; `None` chooses: on a CPU in bf16, one stream per thread up to
        `MAX_AUTO_STREAMS`; one stream in float32 (MKL's threads are process-wide) and on other devices.
    :param precision: What the model computes in (`"fp32"`, `"bf16"`, `"fp16"`).
    :param device_kind: `"cpu"`, `"cuda"`, `"mps"`, ...
    :param threads: The intra-op threads the model may use in all.
    :returns: At least 1 and at most `threads` (a user's larger number is capped there).
    """
    threads = max(1, threads)
    if num_streams is not None:
        return max(1, min(num_streams, threads))
    if device_kind != "cpu" or precision != "bf16":
        return 1
    return min(threads, MAX_AUTO_STREAMS)


def balanced_batch_size(pairs: int, batch_size: int, streams: int) -> int:
    """
    The batch size (at most `batch_size`) that cuts `pairs` into a multiple of `streams` batches of nearly equal
    size, so no stream idles while another finishes an extra batch: 100 pairs, batch 16, 2 streams -> 13 (8 batches).
    """
    if streams <= 1 or pairs <= 0:
        return batch_size
    rounds = -(-pairs // (batch_size * streams))
    return max(1, -(-pairs // (rounds * streams)))


class BatchStreams:
    """
    Runs a function over batches in `streams` worker threads, each with `threads_per_stream` torch threads; results
    come back in the order of the batches. With one stream it runs in the calling thread.

    :param streams: Batches at once.
    :param threads_per_stream: torch intra-op threads of each worker.
    """

    def __init__(self, streams: int, threads_per_stream: int) -> None:
        self.streams = max(1, streams)
        self.threads_per_stream = max(1, threads_per_stream)
        self._executor: ThreadPoolExecutor | None = None
        self._pid = os.getpid()
        self._lock = threading.Lock()

    def map(self, function: Callable[[T], R], items: Iterable[T]) -> Iterator[R]:
        """`function` over `items`, `streams` at a time; yields the results in order."""
        if self.streams == 1:
            return map(function, items)
        return self._pool().map(function, items)

    def _pool(self) -> ThreadPoolExecutor:
        with self._lock:
            if self._executor is None or self._pid != os.getpid():
                # A forked child (e.g. a server that loads the model before forking workers) has none of the
                # parent's threads: it starts its own.
                self._executor, self._pid = self._start(), os.getpid()
                weakref.finalize(self, self._executor.shutdown, wait=False)
            return self._executor

    def _start(self) -> ThreadPoolExecutor:
        import torch

        default = torch.get_num_threads()
        executor = ThreadPoolExecutor(
            self.streams,
            thread_name_prefix="crossencoder-stream",
            initializer=_set_worker_threads,
            initargs=(self.threads_per_stream,),
        )
        # Start every worker now (each waits until all are up), then restore the default that
        # `torch.set_num_threads` also changed for threads created later: only the workers keep their count.
        barrier = threading.Barrier(self.streams)
        try:
            list(executor.map(_wait, [barrier] * self.streams))
        finally:
            torch.set_num_threads(default)
        return executor


def _set_worker_threads(threads: int) -> None:
    import torch

    torch.set_num_threads(threads)
    # torch gives a thread its OpenMP count lazily, from the process-wide default, on its first parallel call;
    # `get_num_threads` does that now, while the default is this worker's count, so the restore cannot undo it.
    torch.get_num_threads()


def _wait(barrier: Any) -> None:
    barrier.wait(timeout=_START_TIMEOUT_S)

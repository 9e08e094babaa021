"""Dynamic batching: requests wait in one bounded queue and one worker thread hands them to the model in batches.

The worker takes the oldest waiting request, then waits up to `batch_window_ms` for more to join (a batch closes
early at `max_batch_documents` documents) and passes the batch to `score_batch`. One worker means the model never
runs twice at once (on a CPU it already uses every core), a full queue is refused at once (429) instead of piling
up, and a request that was abandoned (timed out, or its client left) before the model reached it costs no model
time.

`score_batch` receives the batch's jobs as an iterator and yields one result (or exception: that job fails, the
others do not) per job it took, in order. The iterator leaves out jobs abandoned by the time they are reached, and
each result is delivered as soon as it is yielded: a scorer that goes job by job never makes a request wait for the
rest of its batch, and one that scores several jobs in one model call (as `ServedModel.rank_batch` does, so the
jobs' pairs share padded batches) takes them all first. Jobs need a `size` (documents) for the batch budget.

A caller that has work to do before its job exists (e.g. reading and parsing a request body) first takes a place
in the queue with `reserve()`: a full queue is refused before that work is done, and places being prepared count
against `max_queue` like waiting jobs, so a burst of large bodies cannot all be read at once. A caller may pass
its own `abandoned` event to `submit`, so that a scorer which watches it can stop a job it has already started.
"""

import asyncio
import math
import queue
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any, Generic, Protocol, TypeVar

from haystack import logging

logger = logging.getLogger(__name__)

_EWMA_WEIGHT = 0.2
_MAX_RETRY_AFTER_SECONDS = 60


class Sized(Protocol):
    @property
    def size(self) -> int: ...


JobT = TypeVar("JobT", bound=Sized)


class QueueFullError(Exception):
    """The queue holds `max_queue` requests already; try again after `retry_after` seconds."""

    def __init__(self, max_queue: int, retry_after: int) -> None:
        super().__init__(
            f"The server is busy: {max_queue} requests are already waiting (max_queue). "
            f"Retry after {retry_after} s, or raise --max-queue."
        )
        self.retry_after = retry_after


class BatcherStoppedError(Exception):
    """The batcher is shutting down and takes no new requests."""


@dataclass
class Pending(Generic[JobT]):
    """A submitted job: its future (resolved on the event loop) and whether its caller gave up on it."""

    job: JobT
    future: asyncio.Future
    loop: asyncio.AbstractEventLoop
    abandoned: threading.Event = field(default_factory=threading.Event)

    def abandon(self) -> None:
        """Do not score this job if the model has not reached it yet; its future is cancelled."""
        self.abandoned.set()
        self.loop.call_soon_threadsafe(self.future.cancel)


class QueuePlace(Generic[JobT]):
    """A place held in the queue for a job still being prepared: `submit` fills it, `release` gives it back."""

    def __init__(self, batcher: "DynamicBatcher[JobT]") -> None:
        self._batcher = batcher
        self._held = True

    def submit(self, job: JobT, *, abandoned: threading.Event | None = None) -> Pending[JobT]:
        """
        Queues `job` in this place (see `DynamicBatcher.submit`); the place is used up.

        :raises BatcherStoppedError: If the batcher stopped since the place was taken.
        :raises RuntimeError: If the place was already used or released.
        """
        if not self._held:
            msg = "This queue place was already used or released."
            raise RuntimeError(msg)
        self._held = False
        return self._batcher._put(job, abandoned, reserved=True)

    def release(self) -> None:
        """Gives the place back if it was not used. Idempotent."""
        if self._held:
            self._held = False
            self._batcher._unreserve()


_STOP = object()


class DynamicBatcher(Generic[JobT]):
    """
    A bounded request queue in front of one model worker thread.

    ```python
    batcher = DynamicBatcher(served_model.rank_batch, max_queue=64, batch_window_ms=5)
    batcher.start()
    pending = batcher.submit(job)  # raises QueueFullError when the queue is full
    ranked = await pending.future
    batcher.stop()  # finishes every submitted job first
    ```
    """

    def __init__(
        self,
        score_batch: Callable[[Iterator[JobT]], Iterable[Any]],
        *,
        max_queue: int = 64,
        batch_window_ms: float = 5.0,
        max_batch_documents: int = 512,
        on_batch: Callable[[int, int, float], None] | None = None,
    ) -> None:
        """
        :param score_batch: Takes jobs from an iterator and yields one result (or exception) per job, in order.
        :param max_queue: Jobs that may wait; `submit` refuses more.
        :param batch_window_ms: How long to wait for more jobs once the worker has one.
        :param max_batch_documents: A batch closes once it holds this many documents.
        :param on_batch: Called after each batch with (jobs, documents, seconds), e.g. for metrics.
        """
        self._score_batch = score_batch
        self.max_queue = max_queue
        self.batch_window = batch_window_ms / 1000
        self.max_batch_documents = max_batch_documents
        self._on_batch = on_batch
        self._queue: queue.Queue[Any] = queue.Queue(maxsize=max_queue)
        self._accepting = False
        self._reserved = 0
        self._in_batch = 0
        self._seconds_per_job = 0.0
        self._submit_lock = threading.Lock()
        self._thread: threading.Thread | None = None

    @property
    def accepting(self) -> bool:
        """Whether `submit` takes jobs (between `start` and `stop`)."""
        return self._accepting

    @property
    def depth(self) -> int:
        """Jobs waiting plus jobs being scored."""
        return self._queue.qsize() + self._in_batch

    @property
    def reserved(self) -> int:
        """Places taken with `reserve` and not yet used or released (jobs still being prepared)."""
        return self._reserved

    def start(self) -> None:
        """Starts the worker thread. Idempotent."""
        if self._thread is not None:
            return
        self._accepting = True
        self._thread = threading.Thread(target=self._work, name="rerank-batcher", daemon=True)
        self._thread.start()

    def submit(self, job: JobT, *, abandoned: threading.Event | None = None) -> Pending[JobT]:
        """
        Queues a job; call from the event loop that will await its future.

        :param job: The job.
        :param abandoned: The event that marks the job abandoned (`Pending.abandon` sets it); pass one the scorer
            also watches to let it stop a job it has started. `None` creates one.
        :raises QueueFullError: If `max_queue` jobs are waiting (places taken with `reserve` included).
        :raises BatcherStoppedError: If the batcher is not running.
        """
        return self._put(job, abandoned, reserved=False)

    def reserve(self) -> QueuePlace[JobT]:
        """
        Takes a place in the queue for a job still being prepared; use it with `place.submit(job)`, or give it
        back with `place.release()`.

        :raises QueueFullError: If `max_queue` jobs are waiting (places taken with `reserve` included).
        :raises BatcherStoppedError: If the batcher is not running.
        """
        with self._submit_lock:
            self._check_room()
            self._reserved += 1
        return QueuePlace(self)

    def retry_after(self) -> int:
        """Whole seconds until the queue has likely drained, from the recent time per job (1 to 60)."""
        estimate = math.ceil(self.depth * self._seconds_per_job)
        return max(1, min(_MAX_RETRY_AFTER_SECONDS, estimate))

    def stop(self, timeout: float | None = None) -> None:
        """Refuses new jobs, lets the worker finish every job already submitted, then joins it."""
        with self._submit_lock:
            if not self._accepting:
                return
            self._accepting = False
        if self._thread is None:
            return
        self._queue.put(_STOP)  # blocks while the queue is full: everything before it is scored first
        self._thread.join(timeout)
        self._thread = None

    def _put(self, job: JobT, abandoned: threading.Event | None, *, reserved: bool) -> Pending[JobT]:
        with self._submit_lock:
            if reserved:
                self._reserved -= 1  # first: whatever fails below, the place is given back
            self._check_room(reserved=reserved)
            loop = asyncio.get_running_loop()
            pending = Pending(job, loop.create_future(), loop, abandoned or threading.Event())
            try:
                self._queue.put_nowait(pending)
            except queue.Full:
                raise QueueFullError(self.max_queue, self.retry_after()) from None
        return pending

    def _unreserve(self) -> None:
        with self._submit_lock:
            self._reserved -= 1

    def _check_room(self, *, reserved: bool = False) -> None:
        # Called with the submit lock held; a reserved place always has room.
        if not self._accepting:
            msg = "The server is shutting down and takes no new requests."
            raise BatcherStoppedError(msg)
        if not reserved and self._queue.qsize() + self._reserved >= self.max_queue:
            raise QueueFullError(self.max_queue, self.retry_after())

    def _work(self) -> None:
        while True:
            first = self._queue.get()
            if first is _STOP:
                return
            batch, stop_seen = self._collect(first)
            self._run(batch)
            if stop_seen:
                return

    def _collect(self, first: Pending[JobT]) -> tuple[list[Pending[JobT]], bool]:
        batch = [first]
        self._in_batch = 1
        documents = first.job.size
        deadline = time.monotonic() + self.batch_window
        while documents < self.max_batch_documents:
            remaining = deadline - time.monotonic()
            try:
                item = self._queue.get(timeout=remaining) if remaining > 0 else self._queue.get_nowait()
            except queue.Empty:
                break
            if item is _STOP:
                return batch, True
            batch.append(item)
            self._in_batch = len(batch)
            documents += item.job.size
        return batch, False

    def _run(self, batch: list[Pending[JobT]]) -> None:
        taken: list[Pending[JobT]] = []

        def live_jobs() -> Iterator[JobT]:
            for pending in batch:
                if pending.abandoned.is_set():
                    self._in_batch -= 1
                    continue
                taken.append(pending)
                yield pending.job

        resolved = 0
        started = time.perf_counter()
        try:
            for result in self._score_batch(live_jobs()):
                self._deliver(taken[resolved], result)
                resolved += 1
        except Exception as error:
            logger.exception("Scoring a batch failed.")
            for pending in taken[resolved:]:
                self._deliver(pending, error)
        else:
            for pending in taken[resolved:]:
                self._deliver(pending, RuntimeError("The scorer returned no result for this request."))
        self._in_batch = 0
        if not taken:
            return
        seconds = time.perf_counter() - started
        per_job = seconds / len(taken)
        weight = _EWMA_WEIGHT if self._seconds_per_job else 1.0
        self._seconds_per_job = (1 - weight) * self._seconds_per_job + weight * per_job
        if self._on_batch is not None:
            self._on_batch(len(taken), sum(pending.job.size for pending in taken), seconds)

    def _deliver(self, pending: Pending[JobT], result: Any) -> None:
        self._in_batch -= 1
        try:
            pending.loop.call_soon_threadsafe(_resolve, pending.future, result)
        except RuntimeError:  # the caller's event loop is closed: nobody is waiting any more
            logger.warning("Dropped a result whose event loop is closed.")


def _resolve(future: asyncio.Future, result: Any) -> None:
    if future.done():  # cancelled by a caller that gave up
        return
    if isinstance(result, BaseException):
        future.set_exception(result)
    else:
        future.set_result(result)

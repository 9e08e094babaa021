"""The rerank service's parts without HTTP: dynamic batching, Prometheus text, token truncation, limits."""

import asyncio
import threading
from dataclasses import dataclass

import pytest

from crossencoder_haystack.serving.batcher import BatcherStoppedError, DynamicBatcher, QueueFullError
from crossencoder_haystack.serving.limits import ServiceLimits
from crossencoder_haystack.serving.metrics import ServiceMetrics
from crossencoder_haystack.serving.served_model import truncate_to_tokens


@dataclass(frozen=True)
class Job:
    name: str
    size: int = 1


class Recorder:
    """A score_batch that records its batches, can be held at a gate, and fails jobs named 'boom'."""

    def __init__(self) -> None:
        self.batches: list[list[str]] = []
        self.gate = threading.Event()
        self.gate.set()
        self.entered = threading.Event()

    def __call__(self, jobs):
        jobs = list(jobs)  # a scorer that takes the whole batch before it scores (as a multi-query model call would)
        self.entered.set()
        assert self.gate.wait(10)
        self.batches.append([job.name for job in jobs])
        return [ValueError("boom") if job.name == "boom" else job.name.upper() for job in jobs]


async def test_requests_arriving_within_the_window_share_a_batch():
    recorder = Recorder()
    batcher = DynamicBatcher(recorder, batch_window_ms=300)
    batcher.start()
    try:
        pending = [batcher.submit(Job(name)) for name in ("a", "b", "c")]
        results = await asyncio.gather(*(p.future for p in pending))
    finally:
        batcher.stop()
    assert results == ["A", "B", "C"]
    assert recorder.batches == [["a", "b", "c"]]


async def test_a_zero_window_does_not_wait_and_a_full_batch_closes_early():
    recorder = Recorder()
    recorder.gate.clear()
    batcher = DynamicBatcher(recorder, batch_window_ms=0, max_batch_documents=5)
    batcher.start()
    try:
        first = batcher.submit(Job("first"))
        await asyncio.to_thread(recorder.entered.wait, 10)
        later = [batcher.submit(Job(name, size=2)) for name in ("b", "c", "d", "e")]
        recorder.gate.set()
        await asyncio.gather(first.future, *(p.future for p in later))
    finally:
        batcher.stop()
    # "first" went alone; then 2 + 2 + 2 documents reach the budget of 5 and the batch closes before "e".
    assert recorder.batches == [["first"], ["b", "c", "d"], ["e"]]


async def test_results_arrive_job_by_job_and_jobs_abandoned_within_a_started_batch_are_skipped():
    hold_b = threading.Event()
    scored, batches = [], []

    def score(jobs):
        for job in jobs:
            scored.append(job.name)
            assert job.name != "b" or hold_b.wait(10)
            yield job.name.upper()

    batcher = DynamicBatcher(score, batch_window_ms=300, on_batch=lambda *batch: batches.append(batch[:2]))
    batcher.start()
    try:
        a, b, c = (batcher.submit(Job(name)) for name in ("a", "b", "c"))
        assert await a.future == "A"  # delivered while "b", in the same batch, is still being scored
        c.abandon()
        hold_b.set()
        assert await b.future == "B"
    finally:
        batcher.stop()
    assert scored == ["a", "b"] and c.future.cancelled()
    assert batches == [(2, 2)]


async def test_a_failing_job_fails_alone():
    batcher = DynamicBatcher(Recorder(), batch_window_ms=200)
    batcher.start()
    try:
        ok, boom = batcher.submit(Job("ok")), batcher.submit(Job("boom"))
        assert await ok.future == "OK"
        with pytest.raises(ValueError, match="boom"):
            await boom.future
    finally:
        batcher.stop()


async def test_a_full_queue_refuses_with_a_retry_hint_and_abandoned_jobs_are_skipped():
    recorder = Recorder()
    recorder.gate.clear()
    batcher = DynamicBatcher(recorder, max_queue=2, batch_window_ms=0)
    batcher.start()
    try:
        running = batcher.submit(Job("running"))
        await asyncio.to_thread(recorder.entered.wait, 10)
        abandoned, waiting = batcher.submit(Job("abandoned")), batcher.submit(Job("waiting"))
        with pytest.raises(QueueFullError, match="max_queue") as refused:
            batcher.submit(Job("refused"))
        assert refused.value.retry_after >= 1
        assert batcher.depth == 3
        abandoned.abandon()
        recorder.gate.set()
        assert await running.future == "RUNNING" and await waiting.future == "WAITING"
    finally:
        batcher.stop()
    assert abandoned.future.cancelled()
    assert recorder.batches == [["running"], ["waiting"]]


async def test_stop_finishes_submitted_jobs_and_refuses_new_ones():
    recorder = Recorder()
    recorder.gate.clear()
    batcher = DynamicBatcher(recorder, batch_window_ms=0)
    batcher.start()
    queued = [batcher.submit(Job(name)) for name in ("a", "b")]
    stopping = asyncio.ensure_future(asyncio.to_thread(batcher.stop))
    await asyncio.sleep(0.05)
    with pytest.raises(BatcherStoppedError):
        batcher.submit(Job("late"))
    recorder.gate.set()
    await stopping
    assert [await p.future for p in queued] == ["A", "B"]
    assert not batcher.accepting


async def test_reserved_places_count_against_the_queue_until_used_or_released():
    recorder = Recorder()
    recorder.gate.clear()
    batcher = DynamicBatcher(recorder, max_queue=2, batch_window_ms=0)
    batcher.start()
    try:
        running = batcher.submit(Job("running"))
        await asyncio.to_thread(recorder.entered.wait, 10)
        place, other = batcher.reserve(), batcher.reserve()
        assert batcher.reserved == 2
        with pytest.raises(QueueFullError):
            batcher.reserve()
        with pytest.raises(QueueFullError):
            batcher.submit(Job("refused"))
        other.release()
        other.release()  # idempotent
        assert batcher.reserved == 1
        waiting = batcher.submit(Job("waiting"))  # the released place is free again
        held = place.submit(Job("held"))  # a held place always has room, even in a full queue
        assert batcher.reserved == 0
        with pytest.raises(RuntimeError, match="already used"):
            place.submit(Job("twice"))
        recorder.gate.set()
        assert [await p.future for p in (running, waiting, held)] == ["RUNNING", "WAITING", "HELD"]
    finally:
        batcher.stop()


async def test_a_place_held_across_shutdown_is_refused_and_given_back():
    batcher = DynamicBatcher(Recorder(), batch_window_ms=0)
    batcher.start()
    place = batcher.reserve()
    await asyncio.to_thread(batcher.stop)
    with pytest.raises(BatcherStoppedError):
        place.submit(Job("late"))
    assert batcher.reserved == 0
    with pytest.raises(BatcherStoppedError):
        batcher.reserve()


async def test_abandoning_sets_the_callers_own_event():
    recorder = Recorder()
    recorder.gate.clear()
    batcher = DynamicBatcher(recorder, batch_window_ms=0)
    batcher.start()
    try:
        running = batcher.submit(Job("running"))
        await asyncio.to_thread(recorder.entered.wait, 10)
        watched = threading.Event()
        pending = batcher.submit(Job("watched"), abandoned=watched)
        pending.abandon()
        assert watched.is_set()
        recorder.gate.set()
        assert await running.future == "RUNNING"
    finally:
        batcher.stop()
    assert all("watched" not in batch for batch in recorder.batches)


def test_prometheus_text_has_cumulative_histograms_and_escaped_labels():
    metrics = ServiceMetrics(queue_depth=lambda: 3)
    metrics.observe_request("/v2/rerank", 200, 0.02)
    metrics.observe_request("/v2/rerank", 200, 7.0)
    metrics.observe_request('we"ird\\', 404, 0.001)
    metrics.observe_batch(requests=2, documents=60, seconds=0.4)

    lines = metrics.render().splitlines()

    assert 'rerank_requests_total{endpoint="/v2/rerank",status="200"} 2' in lines
    assert 'rerank_requests_total{endpoint="we\\"ird\\\\",status="404"} 1' in lines
    assert 'rerank_request_duration_seconds_bucket{endpoint="/v2/rerank",le="0.01"} 0' in lines
    assert 'rerank_request_duration_seconds_bucket{endpoint="/v2/rerank",le="0.025"} 1' in lines
    assert 'rerank_request_duration_seconds_bucket{endpoint="/v2/rerank",le="5.0"} 1' in lines
    assert 'rerank_request_duration_seconds_bucket{endpoint="/v2/rerank",le="+Inf"} 2' in lines
    assert 'rerank_request_duration_seconds_count{endpoint="/v2/rerank"} 2' in lines
    assert (
        'rerank_batch_documents_bucket{le="50.0"} 0' in lines and 'rerank_batch_documents_bucket{le="100.0"} 1' in lines
    )
    assert "rerank_documents_total 60" in lines and "rerank_queue_depth 3" in lines
    assert "# TYPE rerank_request_duration_seconds histogram" in lines


def test_truncate_to_tokens_keeps_a_prefix_of_at_most_max_tokens(minilm_tokenizer):
    texts = ["short", "Tokenization 🎉 of unbelievably long words, " * 20, "", "a b c d e f g h"]

    truncated = truncate_to_tokens(texts, minilm_tokenizer, max_tokens=8)

    assert truncated[0] == "short" and truncated[2] == "" and truncated[3] == "a b c d e f g h"
    for original, cut in zip(texts, truncated, strict=True):
        assert original.startswith(cut)
        assert len(minilm_tokenizer(cut, add_special_tokens=False).input_ids) <= 8
    assert len(minilm_tokenizer(truncated[1], add_special_tokens=False).input_ids) == 8
    assert truncate_to_tokens(["a b c d e f g h i j"], minilm_tokenizer, max_tokens=3) == ["a b c"]


@pytest.mark.parametrize(
    ("field", "value"),
    [("max_documents", 0), ("max_queue", -1), ("max_body_bytes", 1.5), ("request_timeout", 0), ("batch_window_ms", -1)],
)
def test_limits_reject_values_out_of_range(field, value):
    with pytest.raises(ValueError, match=field):
        ServiceLimits(**{field: value})

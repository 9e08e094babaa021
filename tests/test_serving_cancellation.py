"""Work the rerank service gives up on: timed-out and disconnected requests stop the model, and a full queue is
refused before a request body is read (issue #13, defect 7).

The slow model sleeps per document in every model call (on top of the tiny model's real scoring), so a request of
1000 documents takes seconds to score in one call and a fraction of a second per chunk.
"""

import asyncio
import json
import socket
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import pytest

from crossencoder_haystack.serving import RankedText, RerankJob, ServedModel, ServiceLimits, create_app
from crossencoder_haystack.serving.served_model import JobCancelledError
from tests.test_serving import DOCUMENTS, GatedModel, running, wait_until

SECONDS_PER_DOCUMENT = 0.004
HEAVY = [f"document number {i} about the river" for i in range(1000)]


class SlowModel(ServedModel):
    """Scores like `ServedModel`, but each model call takes `SECONDS_PER_DOCUMENT` per document; records calls."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.calls: list[tuple[float, tuple[str, ...], int]] = []  # (started, queries, documents)
        run_batch = self._ranker.run_batch

        def slow_run_batch(**arguments: Any) -> dict[str, Any]:
            documents = sum(len(docs) for docs in arguments["documents"])
            self.calls.append((time.monotonic(), tuple(arguments["queries"]), documents))
            time.sleep(SECONDS_PER_DOCUMENT * documents)
            return run_batch(**arguments)

        self._ranker.run_batch = slow_run_batch

    def calls_for(self, query: str) -> list[tuple[float, int]]:
        return [(started, documents) for started, queries, documents in self.calls if query in queries]


def _after_stop_check(model: SlowModel, stopped_at: float) -> tuple[int, int]:
    """(documents of the heavy request scored in all, its model calls that started after `stopped_at`)."""
    calls = model.calls_for("heavy")
    return sum(documents for _, documents in calls), sum(started > stopped_at for started, _ in calls)


def test_a_timed_out_request_stops_being_scored_and_the_next_one_is_served_in_time(tiny_model_path):
    model = SlowModel(tiny_model_path)
    timeout = 1.5
    app = create_app(model, limits=ServiceLimits(request_timeout=timeout, batch_window_ms=0))
    with running(app) as (url, _), httpx.Client(base_url=url, timeout=30) as http:
        heavy = http.post("/v2/rerank", json={"query": "heavy", "documents": HEAVY})
        answered_504 = time.monotonic()
        sent = time.monotonic()
        after = http.post("/v2/rerank", json={"query": "after", "documents": DOCUMENTS})
        after_seconds = time.monotonic() - sent

    assert heavy.status_code == 504 and "request_timeout=1.5 s" in heavy.json()["message"]
    assert after.status_code == 200, after.text  # the worker was not stuck on the abandoned request
    assert after_seconds < timeout
    scored, started_later = _after_stop_check(model, answered_504)
    assert scored < len(HEAVY) / 2  # scoring stopped at the deadline, not after all 1000 documents
    assert started_later <= 1  # at most the chunk whose check raced the deadline


def test_a_disconnected_client_stops_its_request_being_scored(tiny_model_path):
    model = SlowModel(tiny_model_path)
    app = create_app(model, limits=ServiceLimits(batch_window_ms=0))
    with running(app) as (url, _), httpx.Client(base_url=url, timeout=30) as http:
        with pytest.raises(httpx.ReadTimeout), httpx.Client(base_url=url, timeout=0.8) as impatient:
            impatient.post("/rerank", json={"query": "heavy", "texts": HEAVY})
        wait_until(lambda: app.state.metrics.requests("/rerank", 499) == 1)
        left = time.monotonic()
        sent = time.monotonic()
        after = http.post("/rerank", json={"query": "after", "texts": DOCUMENTS})
        after_seconds = time.monotonic() - sent

    assert after.status_code == 200 and after_seconds < 2.0
    scored, started_later = _after_stop_check(model, left)
    assert scored < len(HEAVY) / 2 and started_later <= 1


# --- a full queue is refused before the body is read -------------------------------------------------------------


async def _call_asgi(app: Any, path: str, body: bytes) -> tuple[int, dict[str, str], bytes, int]:
    """Calls `app` directly with a receive that counts its calls; returns status, headers, body and receive calls."""
    received = 0

    async def receive() -> dict[str, Any]:
        nonlocal received
        received += 1
        return {"type": "http.request", "body": body, "more_body": False}

    messages: list[dict[str, Any]] = []

    async def send(message: dict[str, Any]) -> None:
        messages.append(message)

    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())],
        "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", 80),
    }
    await app(scope, receive, send)
    start = next(m for m in messages if m["type"] == "http.response.start")
    headers = {name.decode().lower(): value.decode() for name, value in start["headers"]}
    content = b"".join(m.get("body", b"") for m in messages if m["type"] == "http.response.body")
    return start["status"], headers, content, received


def test_a_full_queue_answers_429_without_reading_the_body(tiny_model_path):
    model = GatedModel(tiny_model_path)
    app = create_app(model, limits=ServiceLimits(max_queue=1, batch_window_ms=0))
    huge = json.dumps({"query": "q", "documents": ["x" * 4_000] * 1_000}).encode()  # 4 MB
    with running(app) as (url, _), httpx.Client(base_url=url, timeout=30) as http, ThreadPoolExecutor(2) as pool:
        scoring = pool.submit(http.post, "/rerank", json={"query": "q", "texts": ["a"]})
        assert model.batch_started.wait(10)
        waiting = pool.submit(http.post, "/rerank", json={"query": "q", "texts": ["a"]})
        wait_until(lambda: app.state.batcher.depth == 2)

        cohere = asyncio.run(_call_asgi(app, "/v2/rerank", huge))
        tei = asyncio.run(_call_asgi(app, "/rerank", huge))
        model.gate.set()
        assert scoring.result().status_code == 200 and waiting.result().status_code == 200

    for status, headers, content, received in (cohere, tei):
        assert status == 429, content
        assert received == 0  # the body was never asked for
        assert int(headers["retry-after"]) >= 1
    assert "max_queue" in json.loads(cohere[2])["message"]
    assert json.loads(tei[2])["error_type"] == "Overloaded"
    assert app.state.batcher.reserved == 0


def test_a_request_still_sending_its_body_holds_its_place_in_the_queue(tiny_model_path):
    app = create_app(tiny_model_path, limits=ServiceLimits(max_queue=1, batch_window_ms=0))
    body = json.dumps({"query": "q", "texts": ["a", "b"]}).encode()
    head = f"POST /rerank HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
    with running(app) as (url, _), httpx.Client(base_url=url, timeout=30) as http:
        port = int(url.rsplit(":", 1)[1])
        with socket.create_connection(("127.0.0.1", port), timeout=10) as slow:
            slow.sendall(head.encode() + body[:5])
            wait_until(lambda: app.state.batcher.reserved == 1)

            refused = http.post("/rerank", json={"query": "q", "texts": ["a"]})
            slow.sendall(body[5:])
            answer = slow.recv(65536)
        wait_until(lambda: app.state.batcher.reserved == 0 and app.state.batcher.depth == 0)
        served = http.post("/rerank", json={"query": "q", "texts": ["a"]})

    assert refused.status_code == 429 and int(refused.headers["retry-after"]) >= 1
    assert answer.startswith(b"HTTP/1.1 200")
    assert served.status_code == 200


# --- chunked scoring in the served model ---------------------------------------------------------------------------


def test_jobs_scored_in_chunks_rank_as_in_one_call(tiny_model_path):
    whole, chunked = ServedModel(tiny_model_path), ServedModel(tiny_model_path, chunk_documents=2)
    jobs = [
        RerankJob("capital of Germany", DOCUMENTS),
        RerankJob("rivers", DOCUMENTS[1:], raw_scores=True),
        RerankJob("music", DOCUMENTS, long_texts="truncate", max_tokens_per_text=5),
        RerankJob("paris", ["", *DOCUMENTS[:2], " "]),
    ]
    for expected, got in zip(whole.rank_many(jobs), chunked.rank_many(jobs), strict=True):
        assert [text.index for text in got] == [text.index for text in expected]
        assert [text.score for text in got] == pytest.approx([text.score for text in expected], abs=1e-5)
        assert [_span(text) for text in got] == [_span(text) for text in expected]


def _span(text: RankedText) -> tuple[int, int] | None:
    return None if text.best_passage is None else (text.best_passage.start, text.best_passage.end)


def test_a_cancelled_job_stops_at_the_next_chunk_and_the_others_finish(tiny_model_path):
    model = ServedModel(tiny_model_path, chunk_documents=1)
    doomed = RerankJob("doomed", DOCUMENTS)
    calls: list[tuple[str, ...]] = []
    run_batch = model._ranker.run_batch

    def cancel_after_two_calls(**arguments: Any) -> dict[str, Any]:
        calls.append(tuple(arguments["queries"]))
        if len(calls) == 2:
            doomed.cancel()
        return run_batch(**arguments)

    model._ranker.run_batch = cancel_after_two_calls
    results = list(model.rank_batch([doomed, RerankJob("kept", DOCUMENTS[:2])]))

    assert isinstance(results[0], JobCancelledError)
    assert [text.index for text in results[1]] == [text.index for text in model.rank(RerankJob("kept", DOCUMENTS[:2]))]
    assert calls[:2] == [("doomed",), ("doomed",)] and ("doomed",) not in calls[2:]


def test_a_job_past_its_deadline_costs_no_model_call(tiny_model_path):
    model = ServedModel(tiny_model_path)
    model.warm_up()
    calls = []
    run_batch = model._ranker.run_batch
    model._ranker.run_batch = lambda **arguments: calls.append(arguments) or run_batch(**arguments)

    (result,) = model.rank_batch([RerankJob("late", DOCUMENTS, deadline=time.monotonic() - 1)])

    assert isinstance(result, JobCancelledError) and calls == []
    with pytest.raises(ValueError, match="chunk_documents"):
        ServedModel(tiny_model_path, chunk_documents=0)

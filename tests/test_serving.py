"""The rerank service over real HTTP on 127.0.0.1: API contracts, official clients, guards and lifecycle.

Servers run uvicorn in a thread on a random free port with the tiny random cross-encoder from conftest, so scores
are arbitrary but deterministic; what is checked is that they equal `CrossEncoderRanker`'s.
"""

import asyncio
import importlib.util
import json
import math
import re
import shutil
import socket
import sys
import threading
import time
import types
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from haystack import Document
from haystack.utils import Secret

from crossencoder_haystack.serving import RerankJob, ServedModel, ServiceLimits, create_app
from haystack_integrations.components.rankers.crossencoder import CrossEncoderRanker

API_KEY = "test-key"
AUTH = {"Authorization": f"Bearer {API_KEY}"}
# Single-token words of the MiniLM vocabulary, so "the first n tokens" is "the first n words".
WORDS = ["paris", "berlin", "london", "river", "city", "house", "water", "music", "green", "table"]
LONG_TEXT = " ".join(WORDS[i % len(WORDS)] for i in range(400)) + "."
DOCUMENTS = [
    "Berlin is the capital of Germany.",
    "Paris is the capital of France.",
    LONG_TEXT,
    "Berlin is the capital of Germany.",  # a duplicate keeps its own place
    "The river Spree flows through Berlin.",
]


@contextmanager
def running(app: Any) -> Iterator[tuple[str, uvicorn.Server]]:
    """Run `app` with uvicorn in a thread on a free port of 127.0.0.1; yields its base URL and the server."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="on", timeout_graceful_shutdown=10))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 60
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "the server did not start"
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}", server
    finally:
        server.should_exit = True
        thread.join(20)
        sock.close()


def wait_until(condition: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out waiting"
        time.sleep(0.01)


class GatedModel(ServedModel):
    """A served model whose batches wait for `gate`, and which records the queries it scored."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.gate = threading.Event()
        self.batch_started = threading.Event()
        self.scored_queries: list[str] = []

    def rank_batch(self, jobs: Iterable[RerankJob]) -> Iterator:
        for job in jobs:
            self.batch_started.set()
            assert self.gate.wait(30), "the test never opened the gate"
            self.scored_queries.append(job.query)
            yield from super().rank_batch([job])


@pytest.fixture(scope="module")
def served(tiny_model_path) -> Iterator[tuple[str, Any]]:
    """One service with an API key and default limits, shared by the tests that do not stop or block it."""
    app = create_app(tiny_model_path, api_key=Secret.from_token(API_KEY))
    with running(app) as (url, _):
        yield url, app


@pytest.fixture(scope="module")
def client(served) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=served[0], headers=AUTH, timeout=30) as http:
        yield http


def ranker(tiny_model_path, **overrides: Any) -> CrossEncoderRanker:
    parameters = {"model": tiny_model_path, "token": None, "activation": "sigmoid", "split_long_documents": True}
    ranker = CrossEncoderRanker(**{**parameters, **overrides})
    ranker.warm_up()
    return ranker


def ranked_by(ranker: CrossEncoderRanker, query: str, texts: list[str], **run: Any) -> list[tuple[int, float]]:
    documents = [Document(id=str(i), content=text) for i, text in enumerate(texts)]
    result = ranker.run(query=query, documents=documents, top_k=len(documents), **run)["documents"]
    return [(int(document.id), document.score) for document in result]


def rerank(client: httpx.Client, **body: Any) -> httpx.Response:
    return client.post("/v2/rerank", json={"model": "any", **body})


def metric(text: str, name: str, **labels: str) -> float:
    label_text = ",".join(f'{key}="{value}"' for key, value in labels.items())
    pattern = "^" + re.escape(f"{name}{{{label_text}}}" if labels else name) + r" (\S+)$"
    match = re.search(pattern, text, re.MULTILINE)
    return float(match.group(1)) if match else 0.0


# --- results equal CrossEncoderRanker's ---------------------------------------------------------------------------


def test_cohere_results_equal_the_ranker_with_passage_splitting(client, tiny_model_path):
    expected = ranked_by(ranker(tiny_model_path), "capital of Germany", DOCUMENTS)

    response = rerank(client, query="capital of Germany", documents=DOCUMENTS)

    assert response.status_code == 200, response.text
    body = response.json()
    assert [(r["index"], r["relevance_score"]) for r in body["results"]] == expected
    assert body["meta"] == {"api_version": {"version": "2"}, "billed_units": {"search_units": 1}}
    assert len(body["id"]) == 36
    assert all(0.0 <= r["relevance_score"] <= 1.0 for r in body["results"])
    assert {r["index"] for r in body["results"]} == set(range(len(DOCUMENTS)))  # duplicates are not merged


def test_jobs_batched_together_get_what_each_gets_alone(tiny_model_path):
    served = ServedModel(tiny_model_path)
    jobs = [
        RerankJob("capital of Germany", DOCUMENTS),
        RerankJob("rivers", DOCUMENTS[1:], raw_scores=True),
        RerankJob("music", DOCUMENTS, long_texts="truncate", max_tokens_per_text=5),
        RerankJob("paris", DOCUMENTS[:2]),
    ]
    alone = [served.rank(job) for job in jobs]
    together = list(served.rank_batch(iter(jobs)))
    assert len(together) == len(jobs)
    for expected, got in zip(alone, together, strict=True):
        assert [text.index for text in got] == [text.index for text in expected]
        assert [text.score for text in got] == pytest.approx([text.score for text in expected], abs=1e-5)


def test_a_failing_job_in_a_batch_fails_alone(tiny_model_path):
    served = ServedModel(tiny_model_path)
    jobs = [RerankJob("capital of Germany", DOCUMENTS[:2]), RerankJob("", DOCUMENTS[:2]), RerankJob("x", ["y"])]
    results = list(served.rank_batch(jobs))
    assert isinstance(results[1], ValueError) and "query" in str(results[1])
    assert [text.index for text in results[0]] == [text.index for text in served.rank(jobs[0])]
    assert len(results[2]) == 1


def test_tei_raw_scores_and_truncation_equal_the_ranker(client, tiny_model_path):
    splitting = ranked_by(ranker(tiny_model_path), "river city", DOCUMENTS, activation="identity")
    truncating = ranked_by(ranker(tiny_model_path, split_long_documents=False), "river city", DOCUMENTS)

    raw = client.post("/rerank", json={"query": "river city", "texts": DOCUMENTS, "raw_scores": True})
    truncated = client.post("/rerank", json={"query": "river city", "texts": DOCUMENTS, "truncate": True})

    assert raw.status_code == 200 and truncated.status_code == 200
    assert [(r["index"], r["score"]) for r in raw.json()] == splitting
    assert [(r["index"], r["score"]) for r in truncated.json()] == truncating
    assert "text" not in raw.json()[0]


def test_max_tokens_per_doc_scores_the_first_tokens_only(client):
    cut = rerank(client, query="city", documents=[LONG_TEXT], max_tokens_per_doc=8)
    first_words = rerank(client, query="city", documents=[" ".join(LONG_TEXT.split()[:8])])

    assert cut.status_code == 200 and first_words.status_code == 200
    assert cut.json()["results"][0]["relevance_score"] == first_words.json()["results"][0]["relevance_score"]


def test_top_n_limits_results_and_a_larger_top_n_returns_all(client):
    full = rerank(client, query="Berlin", documents=DOCUMENTS).json()["results"]
    top2 = rerank(client, query="Berlin", documents=DOCUMENTS, top_n=2).json()["results"]
    beyond = rerank(client, query="Berlin", documents=DOCUMENTS, top_n=50).json()["results"]

    assert top2 == full[:2]
    assert beyond == full


def test_return_documents_and_relevant_spans(client):
    response = rerank(
        client,
        query="music",
        documents=["short text", LONG_TEXT],
        return_documents=True,
        relevant_spans={"mode": "enabled", "threshold": 0.0},
    )

    results = {r["index"]: r for r in response.json()["results"]}
    assert results[0]["document"] == {"text": "short text"}
    assert results[0]["relevant_spans"][0]["start"] == 0 and results[0]["relevant_spans"][0]["end"] == 10
    (span,) = results[1]["relevant_spans"]
    assert 0 <= span["start"] < span["end"] <= len(LONG_TEXT)
    assert span["end"] - span["start"] < len(LONG_TEXT)  # a passage, not the whole document
    assert span["score"] == results[1]["relevance_score"]  # aggregation "max": the best passage decides
    plain = rerank(client, query="music", documents=["short text"]).json()["results"][0]
    assert "document" not in plain and "relevant_spans" not in plain


def test_unicode_texts_are_scored_and_echoed_intact(client):
    texts = ["🎉🚀 party 👩‍👩‍👧", "مرحبا بالعالم", "שלום עולם", "a\x00b\x00c", "e\u0301\u200d\ufeff", "\x00"]

    response = client.post("/rerank", json={"query": "héllo 🌍 مرحبا", "texts": texts, "return_text": True})

    assert response.status_code == 200, response.text
    ranks = response.json()
    assert sorted(r["index"] for r in ranks) == list(range(len(texts)))
    assert all(r["text"] == texts[r["index"]] and math.isfinite(r["score"]) for r in ranks)


def test_blank_documents_rank_last_with_score_zero(client):
    results = rerank(client, query="Berlin", documents=["", "Berlin", "   "]).json()["results"]

    assert results[0]["index"] == 1 and results[0]["relevance_score"] > 0
    assert [(r["index"], r["relevance_score"]) for r in results[1:]] == [(0, 0.0), (2, 0.0)]


def test_v1_accepts_document_objects_and_rank_fields(client):
    plain = client.post("/v1/rerank", json={"query": "Berlin", "documents": [{"text": "Berlin"}, "Paris"]})
    fields = client.post(
        "/v1/rerank",
        json={"query": "Berlin", "documents": [{"title": "Berlin", "year": 1237}], "rank_fields": ["title", "year"]},
    )
    same_text = client.post("/v1/rerank", json={"query": "Berlin", "documents": ["title: Berlin\nyear: 1237"]})

    assert plain.status_code == 200 and plain.json()["meta"]["api_version"] == {"version": "1"}
    assert fields.json()["results"][0]["relevance_score"] == same_text.json()["results"][0]["relevance_score"]


# --- official clients ------------------------------------------------------------------------------------------


def test_cohere_client_v2_and_v1_work_unchanged(served):
    import cohere

    url, _ = served
    expected = cohere.ClientV2(api_key=API_KEY, base_url=url).rerank(
        model="rerank-v3.5", query="capital of Germany", documents=DOCUMENTS, top_n=3
    )
    v1 = cohere.Client(api_key=API_KEY, base_url=url).rerank(
        query="capital of Germany", documents=DOCUMENTS, top_n=3, return_documents=True
    )

    assert len(expected.results) == 3 and expected.meta.api_version.version == "2"
    assert [(r.index, r.relevance_score) for r in v1.results] == [
        (r.index, r.relevance_score) for r in expected.results
    ]
    assert v1.results[0].document.text == DOCUMENTS[v1.results[0].index]
    with pytest.raises(cohere.UnauthorizedError):
        cohere.ClientV2(api_key="wrong", base_url=url).rerank(model="m", query="q", documents=["a"])
    with pytest.raises(cohere.UnprocessableEntityError) as error:
        cohere.ClientV2(api_key=API_KEY, base_url=url).rerank(model="m", query="q", documents=[])
    assert "documents" in error.value.body["message"]


def test_cohere_ranker_sync_and_async_against_the_service(served, tiny_model_path):
    from haystack_integrations.components.rankers.cohere import CohereRanker

    url, _ = served
    documents = [Document(content=text) for text in DOCUMENTS]
    cohere_ranker = CohereRanker(model="rerank-v3.5", api_key=Secret.from_token(API_KEY), api_base_url=url, top_k=3)
    expected = ranked_by(ranker(tiny_model_path), "capital of Germany", DOCUMENTS)[:3]

    synchronous = cohere_ranker.run(query="capital of Germany", documents=documents)["documents"]
    asynchronous = asyncio.run(cohere_ranker.run_async(query="capital of Germany", documents=documents))["documents"]

    for result in (synchronous, asynchronous):
        assert [(d.content, d.score) for d in result] == [(DOCUMENTS[index], score) for index, score in expected]


# --- guards ----------------------------------------------------------------------------------------------------


def test_api_key_is_required_when_configured(served):
    url, _ = served
    body = {"model": "m", "query": "q", "documents": ["a"]}
    with httpx.Client(base_url=url, timeout=30) as http:
        missing = http.post("/v2/rerank", json=body)
        wrong = http.post("/v2/rerank", json=body, headers={"Authorization": "Bearer wrong-key"})
        not_bearer = http.post("/rerank", json={"query": "q", "texts": ["a"]}, headers={"Authorization": API_KEY})
        right = http.post("/v2/rerank", json=body, headers=AUTH)
        health = http.get("/health")

    assert missing.status_code == 401 and "Authorization: Bearer" in missing.json()["message"]
    assert missing.headers["www-authenticate"] == "Bearer"
    assert wrong.status_code == 401 and wrong.json()["message"] == "Invalid API key."
    assert not_bearer.status_code == 401 and not_bearer.json()["error_type"] == "Unauthorized"
    assert right.status_code == 200
    assert health.status_code == 200


def test_no_api_key_configured_accepts_requests_without_one(tiny_model_path):
    app = create_app(tiny_model_path, api_key=Secret.from_env_var("RERANK_TEST_UNSET_KEY_VARIABLE", strict=False))
    with running(app) as (url, _):
        response = httpx.post(f"{url}/rerank", json={"query": "q", "texts": ["a"]}, timeout=30)
    assert response.status_code == 200


MALFORMED: list[tuple[str, str, bytes | dict, int, str]] = [
    ("not json", "/v2/rerank", b"{query: 1", 422, "Invalid JSON"),
    ("empty body", "/v2/rerank", b"", 422, "body is empty"),
    ("array body", "/v2/rerank", b"[1, 2]", 422, "Input should be an object"),
    ("no query", "/v2/rerank", {"documents": ["a"]}, 422, "query: Field required"),
    ("query not a string", "/v2/rerank", {"query": 5, "documents": ["a"]}, 422, "query: Input should be a valid str"),
    ("blank query", "/v2/rerank", {"query": " \n", "documents": ["a"]}, 422, "query: must be a non-empty string"),
    ("no documents", "/v2/rerank", {"query": "q", "documents": []}, 422, "documents: must hold at least one"),
    ("documents not a list", "/v2/rerank", {"query": "q", "documents": "a"}, 422, "documents: Input should be a valid"),
    ("document a number", "/v2/rerank", {"query": "q", "documents": ["a", 7]}, 422, "documents[1] must be a string"),
    ("document without text", "/v2/rerank", {"query": "q", "documents": [{"title": "a"}]}, 422, "documents[0]"),
    ("top_n zero", "/v2/rerank", {"query": "q", "documents": ["a"], "top_n": 0}, 422, "top_n: must be >= 1, got 0"),
    ("top_n negative", "/v2/rerank", {"query": "q", "documents": ["a"], "top_n": -3}, 422, "top_n: must be >= 1"),
    ("top_n a string", "/v2/rerank", {"query": "q", "documents": ["a"], "top_n": "2"}, 422, "top_n: Input should be"),
    ("top_n a float", "/v2/rerank", {"query": "q", "documents": ["a"], "top_n": 2.5}, 422, "top_n"),
    ("top_n a boolean", "/v2/rerank", {"query": "q", "documents": ["a"], "top_n": True}, 422, "top_n"),
    ("max_tokens zero", "/v2/rerank", {"query": "q", "documents": ["a"], "max_tokens_per_doc": 0}, 422, "max_tokens"),
    ("flag a string", "/v2/rerank", {"query": "q", "documents": ["a"], "return_documents": "yes"}, 422, "return_doc"),
    ("invalid utf-8", "/v2/rerank", b'{"query": "caf\xe9", "documents": ["a"]}', 422, "Invalid JSON"),
    ("lone surrogate", "/v2/rerank", b'{"query": "\\ud800", "documents": ["a"]}', 422, "Invalid JSON"),
    ("too many documents", "/v2/rerank", {"query": "q", "documents": ["a"] * 1001}, 413, "max_documents is 1000"),
    ("document too long", "/v1/rerank", {"query": "q", "documents": ["a", "b" * 100_001]}, 413, "documents[1] has"),
    ("query too long", "/v2/rerank", {"query": "q" * 100_001, "documents": ["a"]}, 413, "query has 100001"),
    ("10 MB body", "/v2/rerank", {"query": "q", "documents": ["x" * 9_000] * 1_100}, 413, "max_body_bytes=5000000"),
    ("tei texts not strings", "/rerank", {"query": "q", "texts": ["a", None]}, 422, "texts[1]: Input should be"),
    ("tei no texts", "/rerank", {"query": "q", "texts": []}, 422, "texts: must hold at least one"),
    (
        "tei raw blank text",
        "/rerank",
        {"query": "q", "texts": ["a", " "], "raw_scores": True},
        422,
        "texts[1] is blank",
    ),
    ("tei left truncation", "/rerank", {"query": "q", "texts": ["a"], "truncation_direction": "Left"}, 422, "trunc"),
]


@pytest.mark.parametrize(
    ("path", "body", "status", "message"), [case[1:] for case in MALFORMED], ids=[case[0] for case in MALFORMED]
)
def test_malformed_bodies_get_a_clear_4xx_and_the_server_keeps_serving(client, path, body, status, message):
    content = body if isinstance(body, bytes) else json.dumps(body).encode()

    response = client.post(path, content=content, headers={"content-type": "application/json"})

    assert response.status_code == status, response.text
    error = response.json()
    assert message in (error["error"] if path == "/rerank" else error["message"])
    if path == "/rerank":
        assert error["error_type"] == "Validation"
    assert rerank(client, query="still serving?", documents=["yes"]).status_code == 200


def test_queue_full_answers_429_with_retry_after_and_recovers(tiny_model_path):
    model = GatedModel(tiny_model_path)
    app = create_app(model, limits=ServiceLimits(max_queue=1, batch_window_ms=0))
    body = {"query": "q", "texts": ["a", "b"]}
    with running(app) as (url, _), httpx.Client(base_url=url, timeout=30) as http, ThreadPoolExecutor(2) as pool:
        scoring = pool.submit(http.post, "/rerank", json=body)
        assert model.batch_started.wait(10)
        waiting = pool.submit(http.post, "/rerank", json=body)
        wait_until(lambda: app.state.batcher.depth == 2)

        refused = http.post("/rerank", json=body)
        model.gate.set()

        assert refused.status_code == 429
        assert int(refused.headers["retry-after"]) >= 1
        assert refused.json()["error_type"] == "Overloaded" and "max_queue" in refused.json()["error"]
        assert scoring.result().status_code == 200 and waiting.result().status_code == 200
        assert http.post("/rerank", json=body).status_code == 200


def test_request_timeout_answers_504_and_skips_the_abandoned_request(tiny_model_path):
    model = GatedModel(tiny_model_path)
    app = create_app(model, limits=ServiceLimits(request_timeout=0.5, batch_window_ms=0))
    with running(app) as (url, _), httpx.Client(base_url=url, timeout=30) as http, ThreadPoolExecutor(2) as pool:
        first = pool.submit(http.post, "/v2/rerank", json={"query": "first", "documents": ["a"]})
        assert model.batch_started.wait(10)
        second = http.post("/v2/rerank", json={"query": "second", "documents": ["a"]})
        assert first.result().status_code == 504
        model.gate.set()
        after = http.post("/v2/rerank", json={"query": "after", "documents": ["a"]})

    assert second.status_code == 504 and "request_timeout=0.5 s" in second.json()["message"]
    assert after.status_code == 200
    assert model.scored_queries == ["first", "after"]  # "second" timed out in the queue and cost no model time


def test_a_client_disconnecting_mid_request_does_not_break_later_requests(tiny_model_path):
    model = GatedModel(tiny_model_path)
    app = create_app(model, limits=ServiceLimits(batch_window_ms=0))
    with running(app) as (url, _), httpx.Client(base_url=url, timeout=30) as http, ThreadPoolExecutor(1) as pool:
        first = pool.submit(http.post, "/rerank", json={"query": "first", "texts": ["a"]})
        assert model.batch_started.wait(10)
        with pytest.raises(httpx.ReadTimeout), httpx.Client(base_url=url, timeout=0.3) as impatient:
            impatient.post("/rerank", json={"query": "impatient", "texts": ["a"]})
        wait_until(lambda: app.state.metrics.requests("/rerank", 499) == 1)
        model.gate.set()

        assert first.result().status_code == 200
        assert http.post("/rerank", json={"query": "after", "texts": ["a"]}).status_code == 200
    assert model.scored_queries == ["first", "after"]


def test_graceful_shutdown_completes_the_in_flight_request(tiny_model_path):
    model = GatedModel(tiny_model_path)
    app = create_app(model)
    with running(app) as (url, server), ThreadPoolExecutor(1) as pool:
        in_flight = pool.submit(
            httpx.post, f"{url}/v2/rerank", json={"query": "q", "documents": ["a", "b"]}, timeout=30
        )
        assert model.batch_started.wait(10)
        server.should_exit = True
        time.sleep(0.3)  # uvicorn has stopped listening and waits for the request
        model.gate.set()
        response = in_flight.result(timeout=20)

    assert response.status_code == 200 and len(response.json()["results"]) == 2
    assert not app.state.batcher.accepting
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"{url}/health", timeout=2)


# --- health, info, metrics -------------------------------------------------------------------------------------


def test_health_and_info(served, tiny_model_path):
    url, _ = served
    assert httpx.get(f"{url}/health").json() == {"status": "ok"}
    response = httpx.get(f"{url}/info")
    info = response.json()
    assert info["model"] == tiny_model_path.name and info["backend"] == "torch"
    assert str(tiny_model_path.parent) not in response.text  # the server's directories are nobody's business
    assert info["max_length"] == 128 and info["max_documents"] == 1000 and info["version"]


def test_info_reports_the_max_length_that_truncation_uses(spread_model_path, tmp_path):
    # A model whose sentence-transformers config (64) and tokenizer config (128) disagree on the limit.
    model = tmp_path / "model64"
    shutil.copytree(spread_model_path, model)
    config = json.loads((model / "sentence_bert_config.json").read_text(encoding="utf-8"))
    (model / "sentence_bert_config.json").write_text(json.dumps({**config, "max_seq_length": 64}), encoding="utf-8")
    served = ServedModel(model)
    with running(create_app(served)) as (url, _):
        max_length = httpx.get(f"{url}/info").json()["max_length"]

    # "city" is one token: a truncated pair is [CLS] city [SEP], max_length - 4 words of the text, and [SEP].
    def truncated_score(text: str) -> float:
        return served.rank(RerankJob("city", [text], long_texts="truncate"))[0].score

    words = LONG_TEXT.split()
    assert max_length == 64
    assert truncated_score(LONG_TEXT) == truncated_score(" ".join(words[: max_length - 4]))
    assert truncated_score(LONG_TEXT) != truncated_score(" ".join(words[: max_length - 5]))


def test_split_and_truncating_jobs_share_one_model(tiny_model_path, monkeypatch):
    module = sys.modules[CrossEncoderRanker.__module__]
    load = module.load_pair_scorer
    loads = []
    monkeypatch.setattr(module, "load_pair_scorer", lambda *a, **k: loads.append(a) or load(*a, **k))
    served = ServedModel(tiny_model_path)

    served.rank_many([RerankJob("city", DOCUMENTS), RerankJob("city", DOCUMENTS, long_texts="truncate")])
    served.rank(RerankJob("city", DOCUMENTS, long_texts="truncate", max_tokens_per_text=5))

    assert len(loads) == 1


def test_info_names_a_hub_model_by_its_id_and_a_local_one_by_its_directory(tmp_path, monkeypatch):
    from crossencoder_haystack.serving.served_model import public_model_id

    monkeypatch.chdir(tmp_path)
    (tmp_path / "models" / "my-reranker").mkdir(parents=True)

    assert public_model_id("cross-encoder/ms-marco-MiniLM-L6-v2") == "cross-encoder/ms-marco-MiniLM-L6-v2"
    assert public_model_id("models/my-reranker") == "my-reranker"
    assert public_model_id(str(tmp_path / "models" / "my-reranker")) == "my-reranker"
    assert public_model_id("./models/my-reranker/") == "my-reranker"
    assert public_model_id("/srv/missing/model") == "model"


def test_metrics_counters_move(client):
    before = client.get("/metrics").text
    rerank(client, query="q", documents=["a", "b", "c"])
    rerank(client, query="q", documents=[])
    after = client.get("/metrics")

    assert after.headers["content-type"].startswith("text/plain; version=0.0.4")
    text = after.text
    ok = {"endpoint": "/v2/rerank", "status": "200"}
    bad = {"endpoint": "/v2/rerank", "status": "422"}
    assert metric(text, "rerank_requests_total", **ok) == metric(before, "rerank_requests_total", **ok) + 1
    assert metric(text, "rerank_requests_total", **bad) == metric(before, "rerank_requests_total", **bad) + 1
    durations = "rerank_request_duration_seconds_count"
    assert metric(text, durations, endpoint="/v2/rerank") == metric(before, durations, endpoint="/v2/rerank") + 2
    assert metric(text, "rerank_documents_total") == metric(before, "rerank_documents_total") + 3
    assert metric(text, "rerank_batch_requests_count") == metric(before, "rerank_batch_requests_count") + 1
    assert metric(text, "rerank_queue_depth") == 0
    sample = re.compile(r'^[a-z_]+(\{[a-z_]+="[^"]*"(,[a-z_]+="[^"]*")*\})? -?[0-9.e+-]+$')
    assert all(line.startswith("# ") or sample.match(line) for line in text.splitlines())


def test_cli_registers_serve_with_the_documented_flags():
    from crossencoder_haystack.cli import build_parser

    args = build_parser().parse_args(["serve", "--model", "/models/x", "--port", "9000", "--batch-window-ms", "0"])

    assert (args.model, args.port, args.batch_window_ms, args.host) == ("/models/x", 9000, 0.0, "127.0.0.1")
    assert (args.max_queue, args.max_documents, args.request_timeout) == (64, 1000, 30.0)
    assert args.max_batch_documents == 512
    assert args.api_key_env is None and args.no_auth is False and callable(args.func)
    one_at_a_time = build_parser().parse_args(["serve", "--model", "/models/x", "--max-batch-documents", "1"])
    assert one_at_a_time.max_batch_documents == 1
    assert build_parser().parse_args(["serve", "--model", "/models/x", "--no-auth"]).no_auth is True


def test_hayhooks_example_reranks_through_the_service(served, monkeypatch):
    # Hayhooks is not installed: a stand-in base class is enough to run the wrapper's own code against the service.
    url, _ = served
    hayhooks = types.ModuleType("hayhooks")
    hayhooks.BasePipelineWrapper = type("BasePipelineWrapper", (), {})
    monkeypatch.setitem(sys.modules, "hayhooks", hayhooks)
    monkeypatch.setenv("RERANK_URL", url)
    monkeypatch.setenv("RERANK_API_KEY", API_KEY)
    path = Path(__file__).parents[1] / "examples" / "serve" / "hayhooks" / "rerank_pipeline" / "pipeline_wrapper.py"
    spec = importlib.util.spec_from_file_location("rerank_pipeline_wrapper", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)

    wrapper = module.PipelineWrapper()
    wrapper.setup()
    results = wrapper.run_api(query="Which city is on the Spree?", top_k=2)

    assert len(results) == 2
    assert all(result["content"] in module.DOCUMENTS and 0 <= result["score"] <= 1 for result in results)
    assert results[0]["score"] >= results[1]["score"]

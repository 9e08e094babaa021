"""FallbackRanker: a real CohereRanker against the loopback Cohere server as primary, a tiny CrossEncoderRanker as
fallback; healthy, failing (500, 401), slow and broken cases through run and run_async, and serialization."""

import asyncio
import copy
import time

import pytest
from haystack import DeserializationError, Document, Pipeline
from haystack.utils import Secret
from haystack_integrations.components.rankers.cohere import CohereRanker

from haystack_integrations.components.rankers.crossencoder import CrossEncoderRanker, FallbackRanker
from tests.cloud_servers import DEFAULT_API_KEY, token_overlap

QUERY = "capital of France"
LONG_TEXT = " ".join(f"Sentence number {i} talks about rivers, bridges and old town squares." for i in range(40))


def documents() -> list[Document]:
    return [
        Document(id="berlin", content="Berlin is the capital of Germany", score=0.9, meta={"title": "Berlin"}),
        Document(id="paris", content="Paris is the capital of France", score=0.8, meta={"title": "Paris"}),
        Document(id="lyon", content="Lyon is a city in France", score=0.7, meta={"title": "Lyon"}),
        Document(id="long", content=LONG_TEXT, score=0.6, meta={"title": "Long"}),
    ]


def cohere(server, *, key: str = DEFAULT_API_KEY, top_k: int = 3) -> CohereRanker:
    return CohereRanker(api_key=Secret.from_token(key), api_base_url=server.base_url, top_k=top_k)


@pytest.fixture(scope="module")
def local_ranker(tiny_model_path) -> CrossEncoderRanker:
    """The fallback, loaded once for the module (rankers keep no state between runs)."""
    ranker = CrossEncoderRanker(model=str(tiny_model_path), top_k=3, split_long_documents=True)
    ranker.warm_up()
    return ranker


async def rank(ranker: FallbackRanker, how: str, **inputs) -> dict:
    if how == "run_async":
        return await ranker.run_async(**inputs)
    return ranker.run(**inputs)


both_ways = pytest.mark.parametrize("how", ["run", "run_async"])


@both_ways
async def test_a_healthy_primary_ranks_and_says_so(cohere_server, local_ranker, how):
    inputs = documents()
    before = copy.deepcopy(inputs)
    ranker = FallbackRanker(primary=cohere(cohere_server), fallback=local_ranker, timeout=5.0)

    result = await rank(ranker, how, query=QUERY, documents=inputs)

    (request,) = cohere_server.requests
    assert request.headers["authorization"] == f"Bearer {DEFAULT_API_KEY}"
    assert request.body["model"] == "rerank-v3.5"
    assert request.body["query"] == QUERY
    assert request.body["documents"] == [d.content for d in before]
    assert request.body["top_n"] == 3
    assert [d.id for d in result["documents"]] == ["paris", "berlin", "lyon"]
    assert [d.score for d in result["documents"]] == [
        pytest.approx(token_overlap(QUERY, d.content)) for d in (before[1], before[0], before[2])
    ]
    assert result["meta"] == {"ranked_by": "primary"}
    assert all(d.meta["ranked_by"] == "primary" and "fallback_reason" not in d.meta for d in result["documents"])
    assert result["documents"][0].meta["title"] == "Paris"
    assert inputs == before  # the caller's documents and their meta are untouched


@both_ways
async def test_a_failing_primary_falls_back_to_the_cross_encoder(cohere_server, local_ranker, how):
    cohere_server.set_faults(always=500, retry_after=1)  # the Cohere client retries 5xx twice, 1 s apart
    inputs = documents()
    before = copy.deepcopy(inputs)
    ranker = FallbackRanker(primary=cohere(cohere_server), fallback=local_ranker, timeout=10.0)

    result = await rank(ranker, how, query=QUERY, documents=inputs)

    assert len(cohere_server.requests) == 3
    assert result["meta"]["ranked_by"] == "fallback"
    reason = result["meta"]["fallback_reason"]
    assert reason.startswith("the primary ranker failed:") and "500" in reason
    ranked = result["documents"]
    assert len(ranked) == 3
    assert {d.id for d in ranked} <= {d.id for d in before}
    assert all(d.meta["ranked_by"] == "fallback" and d.meta["fallback_reason"] == reason for d in ranked)
    # ranked by the cross-encoder: its own sigmoid scores, whole documents with their best passage
    assert ranked == sorted(ranked, key=lambda d: -d.score)
    assert all(0.0 <= d.score <= 1.0 and "best_passage" in d.meta for d in ranked)
    assert inputs == before


@both_ways
async def test_a_slow_primary_hits_the_timeout_and_the_fallback_ranks(cohere_server, local_ranker, how):
    cohere_server.set_faults(delay=10)
    ranker = FallbackRanker(primary=cohere(cohere_server), fallback=local_ranker, timeout=0.5)

    start = time.monotonic()
    result = await rank(ranker, how, query=QUERY, documents=documents())
    elapsed = time.monotonic() - start

    assert elapsed < 5
    assert result["meta"] == {
        "ranked_by": "fallback",
        "fallback_reason": "the primary ranker took longer than timeout=0.5 s",
    }
    assert len(result["documents"]) == 3
    assert all(d.meta["ranked_by"] == "fallback" for d in result["documents"])


@both_ways
async def test_a_rejected_key_falls_back_and_the_reason_says_401(cohere_server, local_ranker, how):
    ranker = FallbackRanker(primary=cohere(cohere_server, key="wrong-key"), fallback=local_ranker, timeout=5.0)

    result = await rank(ranker, how, query=QUERY, documents=documents())

    assert len(cohere_server.requests) == 1  # 401 is not retried
    assert result["meta"]["ranked_by"] == "fallback"
    assert "401" in result["meta"]["fallback_reason"]


async def test_run_async_keeps_the_event_loop_running_while_the_primary_is_slow(cohere_server, local_ranker):
    cohere_server.set_faults(delay=10)
    ranker = FallbackRanker(primary=cohere(cohere_server), fallback=local_ranker, timeout=0.6)
    ticks: list[float] = []

    async def heartbeat() -> None:
        while True:
            await asyncio.sleep(0.01)
            ticks.append(time.monotonic())

    start = time.monotonic()
    beating = asyncio.create_task(heartbeat())
    try:
        result = await ranker.run_async(query=QUERY, documents=documents())
    finally:
        beating.cancel()

    assert result["meta"]["ranked_by"] == "fallback"
    # ~50 ticks fit while the primary is pending; a loop blocked by the wait would get none in that window
    assert len([tick for tick in ticks if tick - start < 0.5]) >= 10


@both_ways
async def test_top_k_reaches_the_ranker_that_ranks(cohere_server, local_ranker, how):
    healthy_ranker = FallbackRanker(primary=cohere(cohere_server), fallback=local_ranker, timeout=5.0)
    healthy = await rank(healthy_ranker, how, query=QUERY, documents=documents(), top_k=1)
    refused_ranker = FallbackRanker(primary=cohere(cohere_server, key="wrong"), fallback=local_ranker, timeout=5.0)
    fell_back = await rank(refused_ranker, how, query=QUERY, documents=documents(), top_k=2)

    assert cohere_server.requests[0].body["top_n"] == 1
    assert [d.id for d in healthy["documents"]] == ["paris"]
    assert fell_back["meta"]["ranked_by"] == "fallback"
    assert len(fell_back["documents"]) == 2


@both_ways
async def test_when_the_fallback_fails_too_the_error_names_both_failures(cohere_server, tmp_path, how):
    broken = CrossEncoderRanker(model=str(tmp_path / "no-such-model"))
    ranker = FallbackRanker(primary=cohere(cohere_server, key="wrong"), fallback=broken, timeout=5.0)

    with pytest.raises(RuntimeError, match=r"primary ranker failed.*401.*fallback ranker failed too") as raised:
        await rank(ranker, how, query=QUERY, documents=documents())
    assert raised.value.__cause__ is not None


@both_ways
async def test_no_documents_call_no_ranker(cohere_server, local_ranker, how):
    ranker = FallbackRanker(primary=cohere(cohere_server), fallback=local_ranker)
    result = await rank(ranker, how, query=QUERY, documents=[])
    assert result == {"documents": [], "meta": {"ranked_by": None}}
    assert cohere_server.requests == []


def test_warm_up_prepares_both_rankers_without_calling_the_service(cohere_server, tiny_model_path):
    primary = cohere(cohere_server)
    fallback = CrossEncoderRanker(model=str(tiny_model_path))
    ranker = FallbackRanker(primary=primary, fallback=fallback)
    ranker.warm_up()
    ranker.warm_up()
    assert primary._cohere_client is not None
    assert fallback._scorer is not None
    assert cohere_server.requests == []


async def test_warm_up_async_prepares_the_async_client(cohere_server, local_ranker):
    primary = cohere(cohere_server)
    await FallbackRanker(primary=primary, fallback=local_ranker).warm_up_async()
    assert primary._cohere_async_client is not None
    assert cohere_server.requests == []


@pytest.mark.parametrize(
    ("arguments", "error", "named"),
    [
        ({"timeout": 0}, ValueError, "timeout"),
        ({"timeout": -1.5}, ValueError, "timeout"),
        ({"timeout": "3"}, ValueError, "timeout"),
        ({"primary": "cohere"}, TypeError, "primary"),
        ({"fallback": None}, TypeError, "fallback"),
    ],
)
def test_bad_settings_are_refused_naming_the_parameter(cohere_server, local_ranker, arguments, error, named):
    settings = {"primary": cohere(cohere_server), "fallback": local_ranker, **arguments}
    with pytest.raises(error, match=named):
        FallbackRanker(**settings)


@pytest.mark.parametrize("top_k", [0, -1])
def test_a_bad_top_k_is_refused_before_any_call(cohere_server, local_ranker, top_k):
    ranker = FallbackRanker(primary=cohere(cohere_server), fallback=local_ranker)
    with pytest.raises(ValueError, match="top_k"):
        ranker.run(query=QUERY, documents=documents(), top_k=top_k)
    assert cohere_server.requests == []


def test_serialization_nests_both_rankers_and_round_trips():
    ranker = FallbackRanker(
        primary=CohereRanker(model="rerank-v3.5", top_k=5),
        fallback=CrossEncoderRanker(model="/models/ce", top_k=5, split_long_documents=True, device=None),
        timeout=2.5,
    )

    data = ranker.to_dict()

    assert data["type"] == "haystack_integrations.components.rankers.crossencoder.fallback.FallbackRanker"
    parameters = data["init_parameters"]
    assert parameters["timeout"] == 2.5
    assert parameters["primary"]["type"] == "haystack_integrations.components.rankers.cohere.ranker.CohereRanker"
    assert parameters["primary"]["init_parameters"]["api_key"]["env_vars"] == ["COHERE_API_KEY", "CO_API_KEY"]
    assert parameters["fallback"]["init_parameters"]["split_long_documents"] is True
    snapshot = copy.deepcopy(data)
    restored = FallbackRanker.from_dict(data)
    assert data == snapshot  # from_dict leaves its input alone
    assert isinstance(restored.primary, CohereRanker) and isinstance(restored.fallback, CrossEncoderRanker)
    assert restored.timeout == 2.5
    assert restored.to_dict() == data


def test_a_pipeline_with_a_fallback_ranker_survives_yaml(cohere_server, tiny_model_path):
    pipeline = Pipeline()
    pipeline.add_component(
        "ranker",
        FallbackRanker(
            primary=cohere(cohere_server), fallback=CrossEncoderRanker(model=str(tiny_model_path)), timeout=None
        ),
    )
    with pytest.raises(ValueError, match="Cannot serialize token-based secret"):
        pipeline.dumps()  # a key given as a token never lands in YAML

    env_pipeline = Pipeline()
    env_pipeline.add_component(
        "ranker",
        FallbackRanker(
            primary=CohereRanker(api_base_url=cohere_server.base_url),
            fallback=CrossEncoderRanker(model=str(tiny_model_path)),
            timeout=None,
        ),
    )
    text = env_pipeline.dumps()
    loaded = Pipeline.loads(text)
    assert loaded.dumps() == text
    assert loaded.get_component("ranker").timeout is None


def test_nested_rankers_go_through_the_deserialization_allowlist():
    data = FallbackRanker(primary=CohereRanker(), fallback=CrossEncoderRanker(model="/models/ce")).to_dict()
    data["init_parameters"]["fallback"]["type"] = "subprocess.Popen"
    with pytest.raises(DeserializationError, match="subprocess"):
        FallbackRanker.from_dict(data)

"""The ready pipelines of `crossencoder_haystack.pipelines`, end to end with `Pipeline.run` and `Pipeline.run_async`:
the real all-MiniLM-L6-v2 embedder, tiny cross-encoders, and the real Azure OpenAI, Azure AI Inference and Cohere
clients against loopback servers. Also: the checked-in YAML files stay in sync with the generator and load, the
Azure AI Search pipelines build without connecting, and the example scripts run."""

import copy
import re
import runpy
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import openai
import pytest
from haystack import Document, Pipeline
from haystack.core.errors import PipelineRuntimeError
from haystack.document_stores.in_memory import InMemoryDocumentStore

from crossencoder_haystack.pipelines import (
    DEFAULT_INDEX_NAME,
    DEFAULT_RANKER_MODEL,
    EXAMPLE_PIPELINES,
    LOCAL_EMBEDDING_MODEL_ID,
    build_indexing_pipeline,
    build_rerank_pipeline,
    example_pipeline_yaml,
    pipeline_inputs,
    write_example_pipelines,
)
from haystack_integrations.components.embedders.azure_ai_inference import AzureAIInferenceEmbeddingError
from tests.cloud_servers import DEFAULT_API_KEY, token_overlap

EXAMPLES = Path(__file__).resolve().parent.parent / "examples" / "pipelines"
CLOUD_VARIABLES = (
    "AZURE_OPENAI_ENDPOINT",
    "AZURE_OPENAI_API_KEY",
    "AZURE_OPENAI_AD_TOKEN",
    "AZURE_AI_INFERENCE_ENDPOINT",
    "AZURE_AI_INFERENCE_API_KEY",
    "AZURE_AI_SEARCH_ENDPOINT",
    "AZURE_AI_SEARCH_API_KEY",
    "COHERE_API_KEY",
    "CO_API_KEY",
)
LONG_REPORT = " ".join(
    f"Section {i} of the report explains how passages are cut at sentence ends and scored one by one."
    for i in range(16)
)
CORPUS = [
    ("Cross-encoders", "A cross-encoder reads the query and the passage together and scores their relevance."),
    ("Bi-encoders", "A bi-encoder embeds queries and documents separately, fast enough for first-stage retrieval."),
    ("BM25", "BM25 ranks documents by term frequency; rare terms such as zygomorphic weigh the most."),
    ("Ankara weather", "The weather in Ankara is cold and snowy in winter, hot and dry in summer."),
    ("Long report", LONG_REPORT),
]
QUERY = "weather in Ankara in winter"
both_ways = pytest.mark.parametrize("how", ["run", "run_async"])


def corpus() -> list[Document]:
    return [Document(id=title, content=content, meta={"title": title}) for title, content in CORPUS]


@pytest.fixture(autouse=True)
def no_cloud_settings(monkeypatch):
    for name in CLOUD_VARIABLES:
        monkeypatch.delenv(name, raising=False)


@pytest.fixture(scope="module")
def minilm_store() -> InMemoryDocumentStore:
    """The corpus embedded by the bundled all-MiniLM-L6-v2 through `build_indexing_pipeline`, once per module."""
    store = InMemoryDocumentStore(index="test-pipelines-minilm", embedding_similarity_function="cosine")
    build_indexing_pipeline(store).run({"embedder": {"documents": corpus()}})
    return store


async def run_pipeline(pipeline: Pipeline, how: str, query: str = QUERY, include: set[str] | None = None) -> dict:
    """Run with `Pipeline.run` or `Pipeline.run_async`, then release the cloud clients the run opened."""
    if how == "run_async":
        try:
            return await pipeline.run_async(pipeline_inputs(query), include_outputs_from=include)
        finally:
            await pipeline.close_async()
    try:
        return pipeline.run(pipeline_inputs(query), include_outputs_from=include)
    finally:
        pipeline.close()


def titles(documents: list[Document]) -> list[str]:
    return [d.meta["title"] for d in documents]


# --- the YAML files ---------------------------------------------------------------------------------------------


def test_the_checked_in_yaml_files_are_what_the_generator_writes(tmp_path, monkeypatch):
    # Settings of the generating machine must not leak into the files.
    monkeypatch.setenv("AZURE_OPENAI_ENDPOINT", "https://generating-machine.openai.azure.com")
    monkeypatch.setenv("AZURE_AI_INFERENCE_ENDPOINT", "https://generating-machine.services.ai.azure.com/models")

    written = write_example_pipelines(tmp_path)

    assert sorted(path.name for path in EXAMPLES.glob("*.yaml")) == sorted(f"{name}.yaml" for name in EXAMPLE_PIPELINES)
    for path in written:
        checked_in = (EXAMPLES / path.name).read_text(encoding="utf-8")
        assert checked_in == path.read_text(encoding="utf-8"), (
            f"{path.name} is out of date: run `python examples/pipelines/generate.py`."
        )
        assert "generating-machine" not in checked_in
        assert "device: cpu" not in checked_in and "cuda" not in checked_in
    assert example_pipeline_yaml("offline_cross_encoder") == (EXAMPLES / "offline_cross_encoder.yaml").read_text()


def test_an_unknown_example_name_is_refused_with_the_choices():
    with pytest.raises(ValueError, match="offline_cross_encoder"):
        example_pipeline_yaml("offline")


EXPECTED_SHAPES = {
    "azure_openai_ai_search_cross_encoder": ("AzureOpenAITextEmbedder", "AzureAISearchEmbeddingRetriever", True),
    "azure_ai_inference_ai_search_cross_encoder": (
        "AzureAIInferenceTextEmbedder",
        "AzureAISearchEmbeddingRetriever",
        True,
    ),
    "offline_cross_encoder": ("SentenceTransformersTextEmbedder", "InMemoryEmbeddingRetriever", True),
    "offline_hybrid_cross_encoder": ("SentenceTransformersTextEmbedder", "InMemoryEmbeddingRetriever", True),
    "offline_cohere": ("SentenceTransformersTextEmbedder", "InMemoryEmbeddingRetriever", False),
    "offline_cohere_with_fallback": ("SentenceTransformersTextEmbedder", "InMemoryEmbeddingRetriever", False),
}


@pytest.mark.parametrize("name", sorted(EXAMPLE_PIPELINES))
def test_every_yaml_file_loads_into_the_pipeline_it_describes(name, monkeypatch):
    monkeypatch.setenv("AZURE_OPENAI_ENDPOINT", "https://my-resource.openai.azure.com")
    text = (EXAMPLES / f"{name}.yaml").read_text(encoding="utf-8")

    pipeline = Pipeline.loads(text)

    embedder_type, retriever_type, has_splitter = EXPECTED_SHAPES[name]
    assert type(pipeline.get_component("embedder")).__name__ == embedder_type
    assert type(pipeline.get_component("retriever")).__name__ == retriever_type
    assert ("splitter" in pipeline.graph.nodes) is has_splitter
    assert ("bm25_retriever" in pipeline.graph.nodes) is (name == "offline_hybrid_cross_encoder")
    data = pipeline.to_dict()["components"]
    assert data["retriever"]["init_parameters"]["top_k"] == 100
    ranker = data["ranker"]["init_parameters"]
    if name == "offline_cohere_with_fallback":
        assert ranker["primary"]["init_parameters"]["model"] == "rerank-v3.5"
        assert ranker["fallback"]["init_parameters"]["model"] == DEFAULT_RANKER_MODEL
        assert ranker["fallback"]["init_parameters"]["split_long_documents"] is True
    elif name == "offline_cohere":
        assert ranker["model"] == "rerank-v3.5"
    else:
        assert ranker["model"] == DEFAULT_RANKER_MODEL
        assert data["splitter"]["init_parameters"]["tokenizer"] == DEFAULT_RANKER_MODEL
    top_k = ranker["primary"]["init_parameters"]["top_k"] if "primary" in ranker else ranker["top_k"]
    assert top_k == 10
    if name.startswith("azure_openai"):
        embedder = data["embedder"]["init_parameters"]
        assert embedder["azure_deployment"] == "text-embedding-3-large"
        assert embedder["azure_endpoint"] == "https://my-resource.openai.azure.com"  # read when the YAML loads


@pytest.fixture
def default_index() -> Iterator[InMemoryDocumentStore]:
    """The in-memory index "rerank" that the pipelines use by default (shared by the process), emptied around a test."""
    store = InMemoryDocumentStore(index=DEFAULT_INDEX_NAME, embedding_similarity_function="cosine")
    store.delete_all_documents()
    yield store
    store.delete_all_documents()


@pytest.mark.integration
def test_the_offline_yaml_runs_once_its_models_are_local(minilm_path, tiny_model_path, minilm_store, default_index):
    text = (EXAMPLES / "offline_cross_encoder.yaml").read_text(encoding="utf-8")
    text = text.replace(LOCAL_EMBEDDING_MODEL_ID, str(minilm_path)).replace(DEFAULT_RANKER_MODEL, str(tiny_model_path))
    pipeline = Pipeline.loads(text)
    # The YAML's store is the in-memory index "rerank": documents written there through another store are found.
    default_index.write_documents(minilm_store.filter_documents())
    result = pipeline.run(pipeline_inputs(QUERY), include_outputs_from={"retriever"})

    assert titles(result["retriever"]["documents"])[0] == "Ankara weather"
    assert sorted(titles(result["ranker"]["documents"])) == sorted(title for title, _ in CORPUS)


# --- Azure AI Search: built and serialized, never connected --------------------------------------------------------


@pytest.fixture
def connection_counter() -> Iterator[tuple[str, list]]:
    """A TCP listener on loopback that counts the connections it accepts: the stand-in Azure AI Search endpoint."""
    server = socket.create_server(("127.0.0.1", 0))
    server.settimeout(0.05)
    accepted: list = []
    stopping = threading.Event()

    def accept() -> None:
        while not stopping.is_set():
            try:
                connection, _ = server.accept()
            except TimeoutError:
                continue
            accepted.append(connection)

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.getsockname()[1]}", accepted
    stopping.set()
    thread.join(timeout=2)
    for connection in accepted:
        connection.close()
    server.close()


@pytest.mark.parametrize("embedder", ["azure_openai", "azure_ai_inference"])
def test_the_azure_ai_search_pipeline_builds_warms_up_and_round_trips_without_connecting(
    embedder, connection_counter, monkeypatch, tiny_model_path
):
    endpoint, accepted = connection_counter
    monkeypatch.setenv("AZURE_AI_SEARCH_ENDPOINT", endpoint)
    monkeypatch.setenv("AZURE_AI_SEARCH_API_KEY", "search-key")
    monkeypatch.setenv("AZURE_OPENAI_ENDPOINT", endpoint)
    monkeypatch.setenv("AZURE_OPENAI_API_KEY", "openai-key")
    monkeypatch.setenv("AZURE_AI_INFERENCE_ENDPOINT", endpoint)
    monkeypatch.setenv("AZURE_AI_INFERENCE_API_KEY", "inference-key")

    pipeline = build_rerank_pipeline(
        embedder=embedder, retriever="azure_ai_search", ranker_model=tiny_model_path, index_name="candidates"
    )
    pipeline.warm_up()
    text = pipeline.dumps()
    loaded = Pipeline.loads(text)
    time.sleep(0.2)  # a connection attempt would have been accepted by now

    assert accepted == []
    assert loaded.dumps() == text
    assert "search-key" not in text and "openai-key" not in text and "inference-key" not in text
    store = loaded.to_dict()["components"]["retriever"]["init_parameters"]["document_store"]["init_parameters"]
    assert store["index_name"] == "candidates"
    assert store["embedding_dimension"] == 3072  # text-embedding-3-large
    assert store["azure_endpoint"] == {"type": "env_var", "env_vars": ["AZURE_AI_SEARCH_ENDPOINT"], "strict": True}
    assert type(loaded.get_component("splitter")).__name__ == "PassageSplitter"
    assert type(loaded.get_component("ranker")).__name__ == "CrossEncoderRanker"


def test_asking_for_dimensions_sizes_a_new_azure_ai_search_index(monkeypatch):
    monkeypatch.setenv("AZURE_AI_SEARCH_ENDPOINT", "https://search.example")
    pipeline = build_rerank_pipeline(
        embedder="azure_ai_inference", retriever="azure_ai_search", embedder_kwargs={"dimensions": 1024}
    )
    assert pipeline.get_component("embedder").dimensions == 1024
    store = pipeline.to_dict()["components"]["retriever"]["init_parameters"]["document_store"]
    assert store["init_parameters"]["embedding_dimension"] == 1024


# --- the offline pipelines ------------------------------------------------------------------------------------------


@pytest.mark.integration
async def test_offline_cross_encoder_pipeline_retrieves_splits_and_reranks(minilm_store, spread_model_path):
    stored = {d.id: copy.deepcopy(d) for d in minilm_store.filter_documents()}
    outputs = {"retriever", "splitter"}
    results = {}
    for how in ("run", "run_async"):
        pipeline = build_rerank_pipeline(
            document_store=minilm_store, ranker_model=spread_model_path, max_length=128, top_k=3
        )
        results[how] = await run_pipeline(pipeline, how, include=outputs)

    result = results["run"]
    retrieved = result["retriever"]["documents"]
    assert len(retrieved) == len(CORPUS)
    assert titles(retrieved)[0] == "Ankara weather"
    passages = result["splitter"]["documents"]
    assert {p.meta["source_id"] for p in passages} == {d.id for d in retrieved}
    assert sum(p.meta["source_id"] == "Long report" for p in passages) > 1  # 128 tokens with the query
    ranked = result["ranker"]["documents"]
    assert len(ranked) == 3
    assert {d.id for d in ranked} <= {d.id for d in retrieved}
    assert [d.score for d in ranked] == sorted((d.score for d in ranked), reverse=True)
    for document in ranked:  # whole parents come out, with where they were retrieved and their best passage
        assert document.content == stored[document.id].content
        assert document.meta["retrieval_rank"] == titles(retrieved).index(document.meta["title"]) + 1
        assert document.meta["best_passage"] in document.content
    async_ranked = results["run_async"]["ranker"]["documents"]
    assert [(d.id, d.score) for d in async_ranked] == [(d.id, pytest.approx(d.score)) for d in ranked]
    assert {d.id: d for d in minilm_store.filter_documents()} == stored  # the store's documents are untouched


@pytest.mark.integration
@both_ways
async def test_offline_hybrid_pipeline_joins_bm25_and_embedding_retrieval(minilm_store, tiny_model_path, how):
    pipeline = build_rerank_pipeline(
        hybrid=True, document_store=minilm_store, ranker_model=tiny_model_path, first_stage_top_k=2, top_k=2
    )

    result = await run_pipeline(pipeline, how, query="zygomorphic", include={"bm25_retriever", "retriever", "joiner"})

    assert titles(result["bm25_retriever"]["documents"])[0] == "BM25"  # only BM25 knows the rare word
    joined = {d.id for d in result["joiner"]["documents"]}
    assert "BM25" in joined and len(joined) == 2
    assert {d.id for d in result["ranker"]["documents"]} == joined


@pytest.mark.integration
@both_ways
async def test_offline_cohere_pipeline_sends_the_retrieved_documents_to_cohere(
    minilm_store, cohere_server, monkeypatch, how
):
    monkeypatch.setenv("COHERE_API_KEY", DEFAULT_API_KEY)
    pipeline = build_rerank_pipeline(
        ranker="cohere",
        document_store=minilm_store,
        first_stage_top_k=4,
        top_k=2,
        cohere_api_base_url=cohere_server.base_url,
    )

    result = await run_pipeline(pipeline, how, include={"retriever"})

    retrieved = result["retriever"]["documents"]
    assert len(retrieved) == 4  # first_stage_top_k
    (request,) = cohere_server.requests
    assert request.path == "/v2/rerank"
    assert request.headers["authorization"] == f"Bearer {DEFAULT_API_KEY}"
    assert request.body["model"] == "rerank-v3.5"
    assert request.body["query"] == QUERY
    assert request.body["documents"] == [d.content for d in retrieved]
    assert request.body["top_n"] == 2
    ranked = result["ranker"]["documents"]
    expected = sorted(retrieved, key=lambda d: -token_overlap(QUERY, d.content))[:2]
    assert titles(ranked) == titles(expected)
    assert [d.score for d in ranked] == [pytest.approx(token_overlap(QUERY, d.content)) for d in expected]


@pytest.mark.integration
@both_ways
@pytest.mark.parametrize("fault", ["healthy", "500", "slow"])
async def test_cohere_with_fallback_pipeline_says_who_ranked(
    minilm_store, cohere_server, tiny_model_path, monkeypatch, how, fault
):
    monkeypatch.setenv("COHERE_API_KEY", DEFAULT_API_KEY)
    if fault == "500":
        cohere_server.set_faults(always=500, retry_after=1)
    elif fault == "slow":
        cohere_server.set_faults(delay=10)
    pipeline = build_rerank_pipeline(
        ranker="cohere_with_fallback",
        document_store=minilm_store,
        ranker_model=tiny_model_path,
        first_stage_top_k=4,
        top_k=2,
        cohere_timeout=1.0 if fault == "slow" else 8.0,  # 500s are retried twice, 1 s apart, before failing
        cohere_api_base_url=cohere_server.base_url,
    )

    start = time.monotonic()
    result = await run_pipeline(pipeline, how, include={"retriever"})
    elapsed = time.monotonic() - start

    assert cohere_server.requests[0].body["model"] == "rerank-v3.5"
    retrieved_ids = {d.id for d in result["retriever"]["documents"]}
    ranked = result["ranker"]["documents"]
    assert len(ranked) == 2 and {d.id for d in ranked} <= retrieved_ids
    meta = result["ranker"]["meta"]
    if fault == "healthy":
        assert meta == {"ranked_by": "primary"}
    else:
        assert meta["ranked_by"] == "fallback"
        expected = "took longer than timeout=1.0 s" if fault == "slow" else "500"
        assert expected in meta["fallback_reason"]
        assert all("best_passage" in d.meta for d in ranked)  # the cross-encoder ranked whole documents
    assert all(d.meta["ranked_by"] == meta["ranked_by"] for d in ranked)
    assert elapsed < 15


# --- the Azure embedders, with the in-memory retriever ---------------------------------------------------------------


def azure_environment(monkeypatch, embedder: str, server, key: str = DEFAULT_API_KEY) -> None:
    if embedder == "azure_openai":
        monkeypatch.setenv("AZURE_OPENAI_ENDPOINT", server.base_url)
        monkeypatch.setenv("AZURE_OPENAI_API_KEY", key)
    else:
        monkeypatch.setenv("AZURE_AI_INFERENCE_ENDPOINT", f"{server.base_url}/models")
        monkeypatch.setenv("AZURE_AI_INFERENCE_API_KEY", key)


@pytest.fixture(params=["azure_openai", "azure_ai_inference"])
def azure(request, monkeypatch) -> tuple[str, object]:
    """(embedder choice, its running loopback server), with the environment pointing at the server."""
    server = request.getfixturevalue(f"{request.param}_server")
    azure_environment(monkeypatch, request.param, server)
    return request.param, server


def indexed_store(embedder: str) -> InMemoryDocumentStore:
    store = InMemoryDocumentStore(embedding_similarity_function="cosine")
    indexing = build_indexing_pipeline(store, embedder=embedder, embedder_kwargs={"dimensions": 64})
    indexing.run({"embedder": {"documents": corpus()}})
    indexing.close()
    return store


@both_ways
async def test_azure_embedder_pipelines_rerank_what_the_service_embedded(azure, tiny_model_path, how):
    embedder, server = azure
    store = indexed_store(embedder)
    server.clear_requests()
    pipeline = build_rerank_pipeline(
        embedder=embedder,
        document_store=store,
        embedder_kwargs={"dimensions": 64, "max_retries": 0, "timeout": 10},
        ranker_model=tiny_model_path,
        first_stage_top_k=3,
        top_k=2,
    )

    result = await run_pipeline(pipeline, how, include={"retriever"})

    (request,) = server.requests
    assert request.headers["api-key"] == DEFAULT_API_KEY
    assert request.body["dimensions"] == 64
    if embedder == "azure_openai":
        assert request.path == "/openai/deployments/text-embedding-3-large/embeddings"
        assert request.body["input"] in (QUERY, [QUERY])
    else:
        assert request.path == "/models/embeddings"
        assert request.body["input"] == [QUERY]
        assert request.body["input_type"] == "query"
        assert request.body["model"] == "text-embedding-3-large"
    assert titles(result["retriever"]["documents"])[0] == "Ankara weather"
    ranked = result["ranker"]["documents"]
    assert len(ranked) == 2 and {d.id for d in ranked} <= {d.id for d in result["retriever"]["documents"]}


def test_azure_indexing_sends_documents_with_their_titles(azure):
    embedder, server = azure
    indexed_store(embedder)
    texts = [text for r in server.requests for text in r.body["input"]]
    assert texts == [f"{title}\n{content}" for title, content in CORPUS]
    if embedder == "azure_ai_inference":
        assert {r.body["input_type"] for r in server.requests} == {"document"}
    else:
        assert {r.path for r in server.requests} == {"/openai/deployments/text-embedding-3-large/embeddings"}


# --- faults through the pipeline -------------------------------------------------------------------------------------


@both_ways
async def test_a_rejected_azure_ai_inference_key_fails_naming_the_variable(
    azure_ai_inference_server, tiny_model_path, monkeypatch, how
):
    azure_environment(monkeypatch, "azure_ai_inference", azure_ai_inference_server, key="wrong-key")
    pipeline = build_rerank_pipeline(
        embedder="azure_ai_inference", document_store=InMemoryDocumentStore(), ranker_model=tiny_model_path
    )

    with pytest.raises(PipelineRuntimeError, match="AZURE_AI_INFERENCE_API_KEY") as raised:
        await run_pipeline(pipeline, how)

    assert "HTTP 401" in str(raised.value)
    assert isinstance(raised.value.__cause__, AzureAIInferenceEmbeddingError)
    assert len(azure_ai_inference_server.requests) == 1  # not retried


@both_ways
async def test_a_rejected_azure_openai_key_fails_with_an_authentication_error(
    azure_openai_server, tiny_model_path, monkeypatch, how
):
    azure_environment(monkeypatch, "azure_openai", azure_openai_server, key="wrong-key")
    pipeline = build_rerank_pipeline(
        embedder="azure_openai",
        document_store=InMemoryDocumentStore(),
        embedder_kwargs={"max_retries": 3},
        ranker_model=tiny_model_path,
    )

    with pytest.raises(PipelineRuntimeError, match="401") as raised:
        await run_pipeline(pipeline, how)

    assert isinstance(raised.value.__cause__, openai.AuthenticationError)
    assert len(azure_openai_server.requests) == 1


@both_ways
async def test_a_429_then_200_is_retried_and_the_pipeline_succeeds(azure, tiny_model_path, how):
    embedder, server = azure
    store = indexed_store(embedder)
    server.clear_requests()
    server.set_faults([429, 200], retry_after=0)
    pipeline = build_rerank_pipeline(
        embedder=embedder,
        document_store=store,
        embedder_kwargs={"dimensions": 64, "max_retries": 2, "timeout": 10},
        ranker_model=tiny_model_path,
        top_k=2,
    )

    result = await run_pipeline(pipeline, how)

    assert len(server.requests) == 2
    assert server.requests[0].body == server.requests[1].body
    assert len(result["ranker"]["documents"]) == 2


async def test_a_server_failing_every_try_stops_after_max_retries_in_bounded_time(
    azure_ai_inference_server, tiny_model_path, monkeypatch
):
    azure_environment(monkeypatch, "azure_ai_inference", azure_ai_inference_server)
    azure_ai_inference_server.set_faults(always=500)
    pipeline = build_rerank_pipeline(
        embedder="azure_ai_inference",
        document_store=InMemoryDocumentStore(),
        embedder_kwargs={"max_retries": 1},
        ranker_model=tiny_model_path,
    )

    start = time.monotonic()
    with pytest.raises(PipelineRuntimeError, match="max_retries=1"):
        await run_pipeline(pipeline, "run_async")

    assert time.monotonic() - start < 10
    assert len(azure_ai_inference_server.requests) == 2


def test_a_slow_embedding_service_hits_the_timeout(azure_ai_inference_server, tiny_model_path, monkeypatch):
    azure_environment(monkeypatch, "azure_ai_inference", azure_ai_inference_server)
    azure_ai_inference_server.set_faults(delay=10)
    pipeline = build_rerank_pipeline(
        embedder="azure_ai_inference",
        document_store=InMemoryDocumentStore(),
        embedder_kwargs={"timeout": 0.3, "max_retries": 0},
        ranker_model=tiny_model_path,
    )

    start = time.monotonic()
    with pytest.raises(PipelineRuntimeError, match=re.escape("timed out after timeout=0.3s")):
        pipeline.run(pipeline_inputs(QUERY))
    pipeline.close()

    assert time.monotonic() - start < 5


# --- the builder's checks ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("arguments", "error", "named"),
    [
        ({"embedder": "openai"}, ValueError, "embedder"),
        ({"retriever": "elasticsearch"}, ValueError, "retriever"),
        ({"ranker": "colbert"}, ValueError, "ranker"),
        ({"hybrid": True, "retriever": "azure_ai_search"}, ValueError, "hybrid"),
        ({"top_k": 0}, ValueError, "top_k"),
        ({"first_stage_top_k": -1}, ValueError, "first_stage_top_k"),
        ({"embedder_kwargs": ["timeout", 3]}, TypeError, "embedder_kwargs"),
    ],
)
def test_the_builder_refuses_what_does_not_exist_naming_the_parameter(arguments, error, named):
    with pytest.raises(error, match=named):
        build_rerank_pipeline(**arguments)


def test_the_indexing_builder_refuses_an_unknown_embedder():
    with pytest.raises(ValueError, match="embedder must be one of"):
        build_indexing_pipeline(InMemoryDocumentStore(), embedder="openai")


def test_indexing_the_same_documents_again_updates_them(azure_ai_inference_server, monkeypatch):
    azure_environment(monkeypatch, "azure_ai_inference", azure_ai_inference_server)
    store = InMemoryDocumentStore()
    indexing = build_indexing_pipeline(store, embedder="azure_ai_inference")
    indexing.run({"embedder": {"documents": corpus()[:2]}})
    indexing.run({"embedder": {"documents": corpus()[:2]}})
    assert store.count_documents() == 2


# --- the example scripts ----------------------------------------------------------------------------------------------


def run_example(name: str, *argv: str):
    return runpy.run_path(str(EXAMPLES / name))["main"](list(argv))


def test_the_offline_example_runs(tiny_model_path, default_index, capsys):
    ranked = run_example("offline.py", "--ranker-model", str(tiny_model_path), "--top-k", "2", "rank fusion")
    assert len(ranked) == 2
    assert "1. " in capsys.readouterr().out


def test_the_cohere_with_fallback_example_runs_and_falls_back(cohere_server, tiny_model_path, monkeypatch, capsys):
    monkeypatch.setenv("COHERE_API_KEY", "revoked-key")
    result = run_example(
        "cohere_with_fallback.py",
        "--ranker-model",
        str(tiny_model_path),
        "--cohere-url",
        cohere_server.base_url,
        "BM25",
    )
    assert len(cohere_server.requests) == 1
    assert result["meta"]["ranked_by"] == "fallback"
    assert len(result["documents"]) == 3
    assert "ranked by: fallback" in capsys.readouterr().out


def test_the_azure_example_runs_in_memory(azure_ai_inference_server, tiny_model_path, monkeypatch):
    azure_environment(monkeypatch, "azure_ai_inference", azure_ai_inference_server)
    ranked = run_example(
        "azure_rerank.py",
        "--embedder",
        "azure_ai_inference",
        "--in-memory",
        "--ranker-model",
        str(tiny_model_path),
        "--top-k",
        "2",
        QUERY,
    )
    assert len(ranked) == 2
    assert [r.body["input_type"] for r in azure_ai_inference_server.requests] == ["document", "query"]

"""The Azure AI Inference embedders through the real azure-ai-inference SDK, against the loopback fake server.

Also a smoke test of the Azure OpenAI and Cohere fakes with Haystack's own components, so pipeline tests can rely
on them.
"""

import math
import re
import time

import openai
import pytest
from haystack import Document, Pipeline
from haystack.components.embedders import AzureOpenAITextEmbedder
from haystack.components.retrievers.in_memory import InMemoryEmbeddingRetriever
from haystack.components.writers import DocumentWriter
from haystack.document_stores.in_memory import InMemoryDocumentStore
from haystack.utils import Secret
from haystack_integrations.components.rankers.cohere import CohereRanker

from haystack_integrations.components.embedders.azure_ai_inference import (
    AzureAIInferenceDocumentEmbedder,
    AzureAIInferenceEmbeddingError,
    AzureAIInferenceTextEmbedder,
)
from haystack_integrations.components.embedders.azure_ai_inference import client as azure_client
from tests.cloud_servers import DEFAULT_API_KEY, AzureAIInferenceServer, hashed_bag_of_words

pytest_plugins = ["tests.cloud_fixtures"]

ENDPOINT_VAR = "AZURE_AI_INFERENCE_ENDPOINT"
KEY_VAR = "AZURE_AI_INFERENCE_API_KEY"


@pytest.fixture(autouse=True)
def no_real_azure_settings(monkeypatch):
    monkeypatch.delenv(ENDPOINT_VAR, raising=False)
    monkeypatch.delenv(KEY_VAR, raising=False)


def connection(server: AzureAIInferenceServer, key: str = DEFAULT_API_KEY) -> dict:
    return {"endpoint": Secret.from_token(f"{server.base_url}/models"), "api_key": Secret.from_token(key)}


def text_embedder(server: AzureAIInferenceServer, **settings) -> AzureAIInferenceTextEmbedder:
    return AzureAIInferenceTextEmbedder(**{**connection(server), **settings})


def document_embedder(server: AzureAIInferenceServer, **settings) -> AzureAIInferenceDocumentEmbedder:
    return AzureAIInferenceDocumentEmbedder(**{**connection(server), "progress_bar": False, **settings})


def corpus(n: int) -> list[Document]:
    return [Document(content=f"passage number {i} about topic {i % 2}", meta={"title": f"T{i}"}) for i in range(n)]


# --- text embedder ---------------------------------------------------------------------------------------------


def test_text_embedder_sends_the_request_the_service_expects_and_returns_its_embedding(azure_ai_inference_server):
    embedder = text_embedder(
        azure_ai_inference_server,
        model="embed-v-4-0",
        dimensions=16,
        prefix="query: ",
        suffix=" ?",
        api_version="2024-08-01-preview",
    )

    result = embedder.run("what is BM25")

    (request,) = azure_ai_inference_server.requests
    assert request.method == "POST"
    assert request.path == "/models/embeddings"
    assert request.query["api-version"] == "2024-08-01-preview"
    assert request.headers["api-key"] == DEFAULT_API_KEY
    assert request.body == {
        "input": ["query: what is BM25 ?"],
        "input_type": "query",
        "model": "embed-v-4-0",
        "dimensions": 16,
    }
    assert result["embedding"] == pytest.approx(hashed_bag_of_words("query: what is BM25 ?", 16))
    assert result["meta"] == {"model": "embed-v-4-0", "usage": {"prompt_tokens": 4, "total_tokens": 4}}


def test_text_embedder_omits_unset_options_and_reads_the_environment(azure_ai_inference_server, monkeypatch):
    monkeypatch.setenv(ENDPOINT_VAR, azure_ai_inference_server.base_url)
    monkeypatch.setenv(KEY_VAR, DEFAULT_API_KEY)

    result = AzureAIInferenceTextEmbedder(input_type=None).run("hello")

    (request,) = azure_ai_inference_server.requests
    assert request.body == {"input": ["hello"]}
    assert request.query == {"api-version": "2024-05-01-preview"}
    assert len(result["embedding"]) == azure_ai_inference_server.dimensions


async def test_text_embedder_run_async_uses_the_aio_client(azure_ai_inference_server):
    embedder = text_embedder(azure_ai_inference_server, dimensions=4, prefix="q: ")
    try:
        result = await embedder.run_async("async query")
        await embedder.run_async("again")
        first_client = embedder.async_client
        await embedder.warm_up_async()
        assert embedder.async_client is first_client
    finally:
        await embedder.close_async()

    assert embedder.async_client is None
    assert [r.body["input"] for r in azure_ai_inference_server.requests] == [["q: async query"], ["q: again"]]
    assert result["embedding"] == pytest.approx(hashed_bag_of_words("q: async query", 4))
    assert result["meta"]["usage"] == {"prompt_tokens": 3, "total_tokens": 3}


@pytest.mark.parametrize("not_a_string", [["a list"], Document(content="doc"), None])
def test_text_embedder_rejects_non_strings_and_points_to_the_document_embedder(azure_ai_inference_server, not_a_string):
    with pytest.raises(TypeError, match="AzureAIInferenceDocumentEmbedder"):
        text_embedder(azure_ai_inference_server).run(not_a_string)
    assert azure_ai_inference_server.requests == []


def test_warm_up_is_idempotent_and_close_releases_the_client(azure_ai_inference_server):
    embedder = text_embedder(azure_ai_inference_server)
    embedder.warm_up()
    client = embedder.client
    embedder.warm_up()
    assert embedder.client is client
    embedder.close()
    assert embedder.client is None
    assert azure_ai_inference_server.requests == []  # warming up does not call the service


# --- document embedder -----------------------------------------------------------------------------------------


def test_document_embedder_batches_builds_texts_and_returns_copies(azure_ai_inference_server):
    documents = corpus(5)
    originals = [(d.id, d.embedding, d.meta, dict(d.meta)) for d in documents]
    embedder = document_embedder(
        azure_ai_inference_server,
        batch_size=2,
        dimensions=8,
        meta_fields_to_embed=["title", "absent"],
        embedding_separator=" | ",
        prefix="passage: ",
        suffix=".",
    )

    result = embedder.run(documents)

    requests = azure_ai_inference_server.requests
    assert len(requests) == math.ceil(5 / 2)
    assert [len(r.body["input"]) for r in requests] == [2, 2, 1]
    assert all(r.body["input_type"] == "document" for r in requests)
    expected_texts = [f"passage: T{i} | passage number {i} about topic {i % 2}." for i in range(5)]
    assert [text for r in requests for text in r.body["input"]] == expected_texts

    embedded = result["documents"]
    assert [d.id for d in embedded] == [d.id for d in documents]
    for document, text in zip(embedded, expected_texts, strict=True):
        assert document.embedding == pytest.approx(hashed_bag_of_words(text, 8))
    tokens = sum(len(text.replace("|", " ").replace(".", " ").split()) for text in expected_texts)
    assert result["meta"] == {
        "model": "loopback-embedding",
        "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
    }

    for document, copy, (doc_id, embedding, meta, meta_values) in zip(documents, embedded, originals, strict=True):
        assert copy is not document
        assert copy.meta is not document.meta
        assert (document.id, document.embedding, document.meta) == (doc_id, embedding, meta)
        assert document.meta == meta_values


async def test_document_embedder_run_async_batches_in_order(azure_ai_inference_server):
    documents = corpus(3)
    embedder = document_embedder(azure_ai_inference_server, batch_size=2, input_type="text")
    try:
        result = await embedder.run_async(documents)
    finally:
        await embedder.close_async()

    requests = azure_ai_inference_server.requests
    assert [r.body["input"] for r in requests] == [[d.content for d in documents[:2]], [documents[2].content]]
    assert all(r.body["input_type"] == "text" for r in requests)
    assert [d.embedding for d in result["documents"]] == [hashed_bag_of_words(d.content) for d in documents]
    assert all(d.embedding is None for d in documents)


def test_document_embedder_embeds_documents_sharing_an_id_each(azure_ai_inference_server):
    documents = [Document(id="same", content="first text"), Document(id="same", content="second words")]
    result = document_embedder(azure_ai_inference_server).run(documents)
    assert [d.embedding for d in result["documents"]] == [hashed_bag_of_words(d.content) for d in documents]


@pytest.mark.parametrize("not_documents", ["a string", [Document(content="ok"), "not a document"], None])
def test_document_embedder_rejects_non_document_lists(azure_ai_inference_server, not_documents):
    with pytest.raises(TypeError, match="AzureAIInferenceTextEmbedder"):
        document_embedder(azure_ai_inference_server).run(not_documents)


def test_failed_batch_documents_come_back_without_embeddings_when_not_raising(azure_ai_inference_server):
    azure_ai_inference_server.set_faults([200, 500])
    documents = corpus(5)
    embedder = document_embedder(azure_ai_inference_server, batch_size=2, max_retries=0, raise_on_failure=False)

    result = embedder.run(documents)

    assert len(azure_ai_inference_server.requests) == 3
    assert [d.embedding is not None for d in result["documents"]] == [True, True, False, False, True]
    assert [d.id for d in result["documents"]] == [d.id for d in documents]


async def test_failed_batch_raises_by_default(azure_ai_inference_server):
    azure_ai_inference_server.set_faults(always=500)
    embedder = document_embedder(azure_ai_inference_server, max_retries=0)
    with pytest.raises(AzureAIInferenceEmbeddingError, match="HTTP 500"):
        embedder.run(corpus(2))
    try:
        with pytest.raises(AzureAIInferenceEmbeddingError, match="HTTP 500"):
            await embedder.run_async(corpus(2))
    finally:
        await embedder.close_async()


# --- failures: auth, retries, timeouts -------------------------------------------------------------------------


def test_wrong_key_gives_an_error_naming_the_key_variable_and_endpoint(azure_ai_inference_server):
    embedder = AzureAIInferenceTextEmbedder(**connection(azure_ai_inference_server, key="wrong-key"), max_retries=3)
    with pytest.raises(AzureAIInferenceEmbeddingError) as raised:
        embedder.run("hello")
    assert raised.value.status_code == 401
    assert KEY_VAR in str(raised.value)
    assert azure_ai_inference_server.base_url in str(raised.value)
    assert len(azure_ai_inference_server.requests) == 1  # 401 is not retried


def test_429_with_retry_after_is_retried_after_the_wait(azure_ai_inference_server):
    azure_ai_inference_server.set_faults([429, 200], retry_after=1)
    start = time.monotonic()
    result = text_embedder(azure_ai_inference_server, max_retries=2).run("hello")
    elapsed = time.monotonic() - start

    assert len(azure_ai_inference_server.requests) == 2
    assert result["embedding"] == pytest.approx(hashed_bag_of_words("hello"))
    assert 0.9 <= elapsed < 10


async def test_run_async_retries_503(azure_ai_inference_server):
    azure_ai_inference_server.set_faults([503, 503, 200], retry_after=0)
    embedder = text_embedder(azure_ai_inference_server, max_retries=2)
    try:
        result = await embedder.run_async("hello")
    finally:
        await embedder.close_async()
    assert len(azure_ai_inference_server.requests) == 3
    assert result["embedding"] == pytest.approx(hashed_bag_of_words("hello"))


def test_429_and_502_without_retry_after_are_retried_too(azure_ai_inference_server):
    # azure-core alone retries a POST only on 500/503/504 or when Retry-After is present
    azure_ai_inference_server.set_faults([429, 502, 200])
    result = text_embedder(azure_ai_inference_server, max_retries=2).run("hello")
    assert len(azure_ai_inference_server.requests) == 3
    assert result["embedding"] == pytest.approx(hashed_bag_of_words("hello"))


def test_persistent_500_fails_after_max_retries_in_bounded_time(azure_ai_inference_server):
    azure_ai_inference_server.set_faults(always=500)
    start = time.monotonic()
    with pytest.raises(AzureAIInferenceEmbeddingError, match="max_retries=2") as raised:
        text_embedder(azure_ai_inference_server, max_retries=2).run("hello")
    assert time.monotonic() - start < 10
    assert raised.value.status_code == 500
    assert len(azure_ai_inference_server.requests) == 2 + 1


def test_client_errors_are_not_retried(azure_ai_inference_server):
    azure_ai_inference_server.set_faults([400])
    with pytest.raises(AzureAIInferenceEmbeddingError, match="HTTP 400") as raised:
        text_embedder(azure_ai_inference_server, max_retries=3).run("hello")
    assert raised.value.status_code == 400
    assert len(azure_ai_inference_server.requests) == 1


def test_a_long_retry_after_is_capped(azure_ai_inference_server, monkeypatch):
    monkeypatch.setattr(azure_client, "MAX_RETRY_AFTER_SECONDS", 0.2)
    azure_ai_inference_server.set_faults([429, 200], retry_after=600)
    start = time.monotonic()
    text_embedder(azure_ai_inference_server, max_retries=1).run("hello")
    assert time.monotonic() - start < 5
    assert len(azure_ai_inference_server.requests) == 2


def test_slow_server_hits_the_timeout_in_bounded_time(azure_ai_inference_server):
    azure_ai_inference_server.set_faults(delay=30)
    start = time.monotonic()
    with pytest.raises(AzureAIInferenceEmbeddingError, match=re.escape("timed out after timeout=0.3s")):
        text_embedder(azure_ai_inference_server, timeout=0.3, max_retries=1).run("hello")
    assert time.monotonic() - start < 6
    assert len(azure_ai_inference_server.requests) == 2  # the timeout is retried once


async def test_slow_server_hits_the_timeout_async(azure_ai_inference_server):
    azure_ai_inference_server.set_faults(delay=30)
    embedder = text_embedder(azure_ai_inference_server, timeout=0.3, max_retries=0)
    start = time.monotonic()
    try:
        with pytest.raises(AzureAIInferenceEmbeddingError, match="timed out"):
            await embedder.run_async("hello")
    finally:
        await embedder.close_async()
    assert time.monotonic() - start < 5


# --- configuration and serialization ---------------------------------------------------------------------------


def test_missing_endpoint_names_the_environment_variable():
    embedder = AzureAIInferenceTextEmbedder(api_key=Secret.from_token(DEFAULT_API_KEY))
    with pytest.raises(ValueError, match=ENDPOINT_VAR):
        embedder.run("hello")


def test_missing_key_names_the_environment_variable(azure_ai_inference_server):
    embedder = AzureAIInferenceDocumentEmbedder(endpoint=Secret.from_token(azure_ai_inference_server.base_url))
    with pytest.raises(ValueError, match=KEY_VAR):
        embedder.run(corpus(1))
    assert azure_ai_inference_server.requests == []


class FakeTokenCredential:
    def get_token(self, *scopes, **kwargs):
        raise AssertionError("not called in these tests")


class FakeAsyncTokenCredential:
    async def get_token(self, *scopes, **kwargs):
        raise AssertionError("not called in these tests")


def test_a_credential_replaces_the_api_key(azure_ai_inference_server):
    embedder = AzureAIInferenceTextEmbedder(
        endpoint=Secret.from_token(azure_ai_inference_server.base_url), credential=FakeTokenCredential()
    )
    embedder.warm_up()  # no API key needed
    assert embedder.client is not None


def test_an_async_credential_is_refused_by_run_with_the_fix(azure_ai_inference_server):
    embedder = AzureAIInferenceTextEmbedder(
        endpoint=Secret.from_token(azure_ai_inference_server.base_url), credential=FakeAsyncTokenCredential()
    )
    with pytest.raises(TypeError, match="run_async"):
        embedder.run("hello")


@pytest.mark.parametrize(
    ("settings", "named"),
    [
        ({"input_type": "passage"}, "input_type"),
        ({"dimensions": 0}, "dimensions"),
        ({"timeout": 0}, "timeout"),
        ({"max_retries": -1}, "max_retries"),
        ({"batch_size": 0}, "batch_size"),
        ({"endpoint": "https://example.invalid"}, "endpoint"),
        ({"credential": "not a credential"}, "credential"),
    ],
)
def test_bad_settings_are_refused_naming_the_parameter(settings, named):
    with pytest.raises((ValueError, TypeError), match=named):
        AzureAIInferenceDocumentEmbedder(**settings)


def test_serialization_round_trip_keeps_settings_and_drops_the_credential():
    embedder = AzureAIInferenceDocumentEmbedder(
        credential=FakeTokenCredential(),
        model="embed-v-4-0",
        dimensions=256,
        batch_size=8,
        meta_fields_to_embed=["title"],
        max_retries=5,
        raise_on_failure=False,
        api_version="2024-08-01-preview",
    )

    data = embedder.to_dict()

    params = data["init_parameters"]
    assert data["type"] == (
        "haystack_integrations.components.embedders.azure_ai_inference.document_embedder."
        "AzureAIInferenceDocumentEmbedder"
    )
    assert "credential" not in params
    assert params["endpoint"] == {"type": "env_var", "env_vars": [ENDPOINT_VAR], "strict": True}
    assert params["api_key"] == {"type": "env_var", "env_vars": [KEY_VAR], "strict": False}
    restored = AzureAIInferenceDocumentEmbedder.from_dict(data)
    assert restored.to_dict() == data
    assert restored.credential is None
    assert (restored.model, restored.dimensions, restored.batch_size) == ("embed-v-4-0", 256, 8)

    text_data = AzureAIInferenceTextEmbedder(prefix="q: ", input_type="text").to_dict()
    assert AzureAIInferenceTextEmbedder.from_dict(text_data).to_dict() == text_data


def test_embedders_retrieve_in_a_pipeline(azure_ai_inference_server):
    store = InMemoryDocumentStore()
    documents = [
        Document(content="cross encoders rerank passages"),
        Document(content="the weather in Ankara is sunny"),
        Document(content="bi encoders embed queries and passages"),
    ]
    indexing = Pipeline()
    indexing.add_component("embedder", document_embedder(azure_ai_inference_server, dimensions=64))
    indexing.add_component("writer", DocumentWriter(document_store=store))
    indexing.connect("embedder.documents", "writer.documents")
    indexing.run({"embedder": {"documents": documents}})

    querying = Pipeline()
    querying.add_component("embedder", text_embedder(azure_ai_inference_server, dimensions=64))
    querying.add_component("retriever", InMemoryEmbeddingRetriever(document_store=store, top_k=1))
    querying.connect("embedder.embedding", "retriever.query_embedding")
    result = querying.run({"embedder": {"text": "weather in Ankara"}})

    assert [d.content for d in result["retriever"]["documents"]] == ["the weather in Ankara is sunny"]
    assert [r.body["input_type"] for r in azure_ai_inference_server.requests] == ["document", "query"]


# --- the other loopback servers, with the components pipeline tests will use -----------------------------------


def test_azure_openai_server_serves_haystacks_azure_openai_embedder(azure_openai_server):
    embedder = AzureOpenAITextEmbedder(
        azure_endpoint=azure_openai_server.base_url,
        azure_deployment="text-embedding-3-small",
        api_key=Secret.from_token(DEFAULT_API_KEY),
        dimensions=16,
        max_retries=0,
        timeout=10,
    )

    result = embedder.run("hello azure")

    (request,) = azure_openai_server.requests
    assert request.path == "/openai/deployments/text-embedding-3-small/embeddings"
    assert request.query == {"api-version": "2023-05-15"}
    assert request.headers["api-key"] == DEFAULT_API_KEY
    assert result["embedding"] == pytest.approx(hashed_bag_of_words("hello azure", 16))
    assert result["meta"]["usage"] == {"prompt_tokens": 2, "total_tokens": 2}


def test_azure_openai_server_answers_base64_when_the_client_asks(azure_openai_server):
    client = openai.AzureOpenAI(
        azure_endpoint=azure_openai_server.base_url, api_key=DEFAULT_API_KEY, api_version="2024-10-21", max_retries=0
    )
    response = client.embeddings.create(model="deployment", input=["one two", "three"])
    client.close()

    assert azure_openai_server.requests[0].body["encoding_format"] == "base64"
    assert [item.embedding for item in response.data] == [
        pytest.approx(hashed_bag_of_words("one two"), abs=1e-6),
        pytest.approx(hashed_bag_of_words("three"), abs=1e-6),
    ]


def test_cohere_server_serves_the_cohere_ranker(cohere_server):
    documents = [
        Document(content="Berlin is in Germany"),
        Document(content="Paris is in France"),
        Document(content="The capital of France is Paris"),
    ]
    ranker = CohereRanker(api_key=Secret.from_token(DEFAULT_API_KEY), api_base_url=cohere_server.base_url, top_k=2)

    result = ranker.run(query="capital of France", documents=documents)

    (request,) = cohere_server.requests
    assert request.path == "/v2/rerank"
    assert request.headers["authorization"] == f"Bearer {DEFAULT_API_KEY}"
    assert request.body["documents"] == [d.content for d in documents]
    assert request.body["top_n"] == 2
    assert [(d.content, d.score) for d in result["documents"]] == [
        ("The capital of France is Paris", 1.0),
        ("Paris is in France", pytest.approx(1 / 3)),
    ]


def test_servers_listen_on_loopback_only_and_stop():
    server = AzureAIInferenceServer().start()
    assert server.base_url.startswith("http://127.0.0.1:")
    server.stop()
    with pytest.raises(RuntimeError, match="not running"):
        server.base_url  # noqa: B018

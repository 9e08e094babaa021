"""Ready retrieve → rerank pipelines, so that nobody wires them by hand.

`build_rerank_pipeline(...)` assembles query pipelines from three choices:

- `embedder`: `"local"` (sentence-transformers, default the bundled all-MiniLM-L6-v2), `"azure_openai"`
  (`AzureOpenAITextEmbedder`, text-embedding-3-large) or `"azure_ai_inference"` (`AzureAIInferenceTextEmbedder`);
- `retriever`: `"in_memory"` (optionally `hybrid` with BM25, joined by reciprocal rank fusion) or
  `"azure_ai_search"` (`AzureAISearchEmbeddingRetriever`);
- `ranker`: `"cross_encoder"` (`PassageSplitter` → `CrossEncoderRanker`), `"cohere"` (`CohereRanker`,
  which chunks long documents itself) or `"cohere_with_fallback"` (`FallbackRanker`: Cohere first, the local
  cross-encoder in passage mode when Cohere fails or is slow).

Every pipeline takes the query as `{"text": query, "query": query}` (see `pipeline_inputs`) and returns the
ranked documents under the ranker's name, `"ranker"`. `build_indexing_pipeline(...)` embeds documents with the
matching document embedder and writes them to a store. The YAML files in `examples/pipelines/` are written by
`write_example_pipelines` and tested to stay in sync.
"""

from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from haystack import Pipeline
from haystack.document_stores.in_memory import InMemoryDocumentStore
from haystack.marshal import YamlMarshaller

from crossencoder_haystack.bundled_model import bundled_minilm_path

if TYPE_CHECKING:
    from haystack_integrations.components.rankers.crossencoder._engine.precision import Precision

Embedder = Literal["local", "azure_openai", "azure_ai_inference"]
Retriever = Literal["in_memory", "azure_ai_search"]
Ranker = Literal["cross_encoder", "cohere", "cohere_with_fallback"]

EMBEDDERS: tuple[str, ...] = ("local", "azure_openai", "azure_ai_inference")
RETRIEVERS: tuple[str, ...] = ("in_memory", "azure_ai_search")
RANKERS: tuple[str, ...] = ("cross_encoder", "cohere", "cohere_with_fallback")

DEFAULT_RANKER_MODEL = "cross-encoder/ms-marco-MiniLM-L6-v2"
LOCAL_EMBEDDING_MODEL_ID = "sentence-transformers/all-MiniLM-L6-v2"
LOCAL_EMBEDDING_DIMENSIONS = 384
AZURE_OPENAI_EMBEDDING_DEPLOYMENT = "text-embedding-3-large"
AZURE_OPENAI_EMBEDDING_DIMENSIONS = 3072
COHERE_RERANK_MODEL = "rerank-v3.5"
DEFAULT_INDEX_NAME = "rerank"
# Document meta fields embedded with the content at indexing time.
META_FIELDS_TO_EMBED = ["title"]

# The example pipelines shipped as YAML: file stem -> build_rerank_pipeline arguments.
EXAMPLE_PIPELINES: dict[str, dict[str, Any]] = {
    "azure_openai_ai_search_cross_encoder": {"embedder": "azure_openai", "retriever": "azure_ai_search"},
    "azure_ai_inference_ai_search_cross_encoder": {"embedder": "azure_ai_inference", "retriever": "azure_ai_search"},
    "offline_cross_encoder": {},
    "offline_hybrid_cross_encoder": {"hybrid": True},
    "offline_cohere": {"ranker": "cohere"},
    "offline_cohere_with_fallback": {"ranker": "cohere_with_fallback"},
}


def pipeline_inputs(query: str) -> dict[str, Any]:
    """The inputs of every pipeline `build_rerank_pipeline` makes, for one query."""
    return {"text": query, "query": query}


def build_rerank_pipeline(
    *,
    embedder: Embedder = "local",
    retriever: Retriever = "in_memory",
    ranker: Ranker = "cross_encoder",
    hybrid: bool = False,
    document_store: Any = None,
    embedding_model: str | Path | None = None,
    embedder_kwargs: dict[str, Any] | None = None,
    ranker_model: str | Path = DEFAULT_RANKER_MODEL,
    first_stage_top_k: int = 100,
    top_k: int = 10,
    max_length: int | None = None,
    overlap_tokens: int = 32,
    aggregation: str = "max",
    ranker_precision: "Precision" = "auto",
    index_name: str = DEFAULT_INDEX_NAME,
    cohere_timeout: float = 10.0,
    cohere_api_base_url: str = "https://api.cohere.com",
) -> Pipeline:
    """
    Build a query pipeline: embedder → retriever (top `first_stage_top_k`) → [PassageSplitter] → ranker (`top_k`).

    Nothing is loaded or connected here: models load in `warm_up` (or the first run), cloud clients connect on the
    first request, and the cloud settings are read from the usual environment variables (`AZURE_OPENAI_ENDPOINT`,
    `AZURE_OPENAI_API_KEY`, `AZURE_AI_INFERENCE_ENDPOINT`, `AZURE_AI_INFERENCE_API_KEY`, `AZURE_AI_SEARCH_ENDPOINT`,
    `AZURE_AI_SEARCH_API_KEY`, `COHERE_API_KEY`) unless `embedder_kwargs` passes them.

    :param embedder: `"local"`, `"azure_openai"` or `"azure_ai_inference"`.
    :param retriever: `"in_memory"` or `"azure_ai_search"`.
    :param ranker: `"cross_encoder"`, `"cohere"` or `"cohere_with_fallback"`.
    :param hybrid: With the in-memory retriever: also retrieve with BM25 and join both by reciprocal rank fusion.
    :param document_store: The store to retrieve from; default an `InMemoryDocumentStore` on `index_name` (shared
        by all in-memory stores of the process on that index, e.g. the one `build_indexing_pipeline` filled), or an
        `AzureAISearchDocumentStore` on `index_name`.
    :param embedding_model: The local embedding model (default the bundled all-MiniLM-L6-v2), or the deployment
        (Azure OpenAI) or model (Azure AI Inference) name, default text-embedding-3-large.
    :param embedder_kwargs: More arguments for the text embedder, e.g. `{"azure_endpoint": ..., "timeout": 5.0,
        "max_retries": 2}` for Azure OpenAI or `{"endpoint": Secret.from_token(...), "dimensions": 1024}` for Azure
        AI Inference. A `dimensions` entry also sizes a new Azure AI Search index.
    :param ranker_model: The cross-encoder: a local directory or a hub id (also the PassageSplitter's tokenizer).
    :param first_stage_top_k: How many documents the retriever passes on to reranking.
    :param top_k: How many documents the pipeline returns.
    :param max_length: The cross-encoder's token limit for query + passage (`None`: the model's).
    :param overlap_tokens: The overlap between neighbouring passages.
    :param aggregation: How passage scores become a document score (see `CrossEncoderRanker`).
    :param ranker_precision: What the local cross-encoder computes in (`auto`: bf16 on CPUs with AMX / AVX512-BF16).
    :param index_name: The index of the default document store (in memory or Azure AI Search).
    :param cohere_timeout: With `"cohere_with_fallback"`, seconds Cohere may take before the fallback ranks.
    :param cohere_api_base_url: The Cohere API's base URL (e.g. a self-hosted `rerank serve`).
    :raises ValueError: On an unknown choice or a combination that does not exist.
    """
    _check_arguments(embedder, retriever, ranker, hybrid, first_stage_top_k, top_k)
    embedder_kwargs = _checked_kwargs(embedder_kwargs)

    pipeline = Pipeline()
    pipeline.add_component("embedder", _text_embedder(embedder, embedding_model, embedder_kwargs))
    store = document_store
    if store is None:
        store = _document_store(retriever, _embedding_dimensions(embedder, embedder_kwargs), index_name)
    pipeline.add_component("retriever", _embedding_retriever(retriever, store, first_stage_top_k))
    pipeline.connect("embedder.embedding", "retriever.query_embedding")
    candidates = _add_bm25_and_joiner(pipeline, store, first_stage_top_k) if hybrid else "retriever.documents"
    if ranker == "cross_encoder":
        candidates = _add_splitter(pipeline, candidates, ranker_model, max_length, overlap_tokens)
    ranker_settings = (max_length, overlap_tokens, aggregation, cohere_timeout, cohere_api_base_url, ranker_precision)
    pipeline.add_component("ranker", _ranker(ranker, ranker_model, top_k, *ranker_settings))
    pipeline.connect(candidates, "ranker.documents")
    return pipeline


def _check_arguments(
    embedder: str, retriever: str, ranker: str, hybrid: bool, first_stage_top_k: int, top_k: int
) -> None:
    _check_choice("embedder", embedder, EMBEDDERS)
    _check_choice("retriever", retriever, RETRIEVERS)
    _check_choice("ranker", ranker, RANKERS)
    if hybrid and retriever != "in_memory":
        msg = "hybrid=True needs retriever='in_memory' (Azure AI Search has its own hybrid retriever)."
        raise ValueError(msg)
    if first_stage_top_k <= 0 or top_k <= 0:
        msg = f"first_stage_top_k and top_k must be > 0, got {first_stage_top_k} and {top_k}."
        raise ValueError(msg)


def _add_bm25_and_joiner(pipeline: Pipeline, store: Any, first_stage_top_k: int) -> str:
    """Add BM25 next to the embedding retriever, both joined by reciprocal rank fusion; the joiner's output."""
    from haystack.components.joiners import DocumentJoiner
    from haystack.components.retrievers.in_memory import InMemoryBM25Retriever

    pipeline.add_component("bm25_retriever", InMemoryBM25Retriever(document_store=store, top_k=first_stage_top_k))
    pipeline.add_component("joiner", DocumentJoiner(join_mode="reciprocal_rank_fusion", top_k=first_stage_top_k))
    pipeline.connect("retriever.documents", "joiner.documents")
    pipeline.connect("bm25_retriever.documents", "joiner.documents")
    return "joiner.documents"


def _add_splitter(
    pipeline: Pipeline, candidates: str, ranker_model: str | Path, max_length: int | None, overlap_tokens: int
) -> str:
    """Add the `PassageSplitter` between `candidates` and the cross-encoder; the splitter's output."""
    from haystack_integrations.components.preprocessors.crossencoder import PassageSplitter

    pipeline.add_component(
        "splitter", PassageSplitter(tokenizer=str(ranker_model), max_length=max_length, overlap_tokens=overlap_tokens)
    )
    pipeline.connect(candidates, "splitter.documents")
    return "splitter.documents"


def build_indexing_pipeline(
    document_store: Any,
    embedding_model: str | Path | None = None,
    *,
    embedder: Embedder = "local",
    embedder_kwargs: dict[str, Any] | None = None,
) -> Pipeline:
    """
    An indexing pipeline that matches `build_rerank_pipeline` with the same `embedder`: embed documents (content
    and `title`) with the document embedder of the same model, then write them to `document_store` (documents
    already there with the same id are overwritten).

    Run it with `{"embedder": {"documents": documents}}`.

    :param document_store: The store to write to, e.g. `InMemoryDocumentStore(index="rerank")`.
    :param embedding_model: As in `build_rerank_pipeline`.
    :param embedder: `"local"`, `"azure_openai"` or `"azure_ai_inference"`.
    :param embedder_kwargs: More arguments for the document embedder (e.g. `batch_size`, `timeout`, credentials).
    :raises ValueError: On an unknown `embedder`.
    """
    from haystack.components.writers import DocumentWriter
    from haystack.document_stores.types import DuplicatePolicy

    _check_choice("embedder", embedder, EMBEDDERS)
    pipeline = Pipeline()
    pipeline.add_component("embedder", _document_embedder(embedder, embedding_model, _checked_kwargs(embedder_kwargs)))
    # Overwrite: indexing the same documents again updates them instead of failing.
    pipeline.add_component("writer", DocumentWriter(document_store=document_store, policy=DuplicatePolicy.OVERWRITE))
    pipeline.connect("embedder.documents", "writer.documents")
    return pipeline


def write_example_pipelines(directory: str | Path, ranker_model: str | Path = DEFAULT_RANKER_MODEL) -> list[Path]:
    """Write the YAML of every pipeline in `EXAMPLE_PIPELINES` into `directory`; returns the files written."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for name in EXAMPLE_PIPELINES:
        path = directory / f"{name}.yaml"
        path.write_text(example_pipeline_yaml(name, ranker_model), encoding="utf-8")
        written.append(path)
    return written


def example_pipeline_yaml(name: str, ranker_model: str | Path = DEFAULT_RANKER_MODEL) -> str:
    """
    The YAML text of the example pipeline `name` (a key of `EXAMPLE_PIPELINES`), the same on every machine.

    Machine-specific values are left for the loading machine to fill in: the local embedding model is named by its
    hub id, devices are `null` (chosen when the pipeline loads) and so is the Azure OpenAI endpoint (read from
    `AZURE_OPENAI_ENDPOINT` when the pipeline loads); secrets are always written as environment variable names.
    """
    if name not in EXAMPLE_PIPELINES:
        msg = f"name must be one of {', '.join(map(repr, EXAMPLE_PIPELINES))}, got {name!r}."
        raise ValueError(msg)
    arguments = dict(EXAMPLE_PIPELINES[name])
    embedder = arguments.get("embedder", "local")
    if embedder == "local":
        arguments["embedding_model"] = LOCAL_EMBEDDING_MODEL_ID
    elif embedder == "azure_openai":
        # AzureOpenAITextEmbedder insists on an endpoint when it is built; the YAML says null instead.
        arguments["embedder_kwargs"] = {"azure_endpoint": "https://unused.openai.azure.com"}
    data = build_rerank_pipeline(ranker_model=ranker_model, **arguments).to_dict()
    _leave_to_the_loading_machine(data)
    header = (
        f"# Generated from crossencoder_haystack.pipelines.EXAMPLE_PIPELINES[{name!r}]\n"
        "# by examples/pipelines/generate.py: do not edit by hand.\n"
    )
    return header + YamlMarshaller().marshal(data)


def _leave_to_the_loading_machine(serialized: Any) -> None:
    """Set serialized devices and the Azure OpenAI endpoint to null, in nested components too."""
    if isinstance(serialized, list):
        for item in serialized:
            _leave_to_the_loading_machine(item)
        return
    if not isinstance(serialized, dict):
        return
    parameters = serialized.get("init_parameters")
    if isinstance(parameters, dict):
        if isinstance(parameters.get("device"), dict):
            parameters["device"] = None
        if str(serialized.get("type", "")).endswith(".AzureOpenAITextEmbedder"):
            parameters["azure_endpoint"] = None
    for value in serialized.values():
        _leave_to_the_loading_machine(value)


def _check_choice(parameter: str, value: str, choices: tuple[str, ...]) -> None:
    if value not in choices:
        msg = f"{parameter} must be one of {', '.join(map(repr, choices))}, got {value!r}."
        raise ValueError(msg)


def _checked_kwargs(embedder_kwargs: Any) -> dict[str, Any]:
    if embedder_kwargs is None:
        return {}
    if not isinstance(embedder_kwargs, dict):
        msg = f"embedder_kwargs must be a dict of embedder arguments or None, got {type(embedder_kwargs).__name__}."
        raise TypeError(msg)
    return dict(embedder_kwargs)


def _embedding_dimensions(embedder: str, embedder_kwargs: dict[str, Any]) -> int:
    if embedder == "local":
        return LOCAL_EMBEDDING_DIMENSIONS
    return embedder_kwargs.get("dimensions") or AZURE_OPENAI_EMBEDDING_DIMENSIONS


def _text_embedder(embedder: str, model: str | Path | None, embedder_kwargs: dict[str, Any]) -> Any:
    if embedder == "local":
        from haystack_integrations.components.embedders.sentence_transformers import SentenceTransformersTextEmbedder

        return SentenceTransformersTextEmbedder(
            **{"model": str(model or bundled_minilm_path()), "progress_bar": False, **embedder_kwargs}
        )
    if embedder == "azure_openai":
        from haystack.components.embedders import AzureOpenAITextEmbedder

        return AzureOpenAITextEmbedder(
            **{"azure_deployment": str(model or AZURE_OPENAI_EMBEDDING_DEPLOYMENT), **embedder_kwargs}
        )
    from haystack_integrations.components.embedders.azure_ai_inference import AzureAIInferenceTextEmbedder

    return AzureAIInferenceTextEmbedder(**{"model": str(model or AZURE_OPENAI_EMBEDDING_DEPLOYMENT), **embedder_kwargs})


def _document_embedder(embedder: str, model: str | Path | None, embedder_kwargs: dict[str, Any]) -> Any:
    common = {"meta_fields_to_embed": META_FIELDS_TO_EMBED, "progress_bar": False}
    if embedder == "local":
        from haystack_integrations.components.embedders.sentence_transformers import (
            SentenceTransformersDocumentEmbedder,
        )

        return SentenceTransformersDocumentEmbedder(
            **{"model": str(model or bundled_minilm_path()), **common, **embedder_kwargs}
        )
    if embedder == "azure_openai":
        from haystack.components.embedders import AzureOpenAIDocumentEmbedder

        return AzureOpenAIDocumentEmbedder(
            **{"azure_deployment": str(model or AZURE_OPENAI_EMBEDDING_DEPLOYMENT), **common, **embedder_kwargs}
        )
    from haystack_integrations.components.embedders.azure_ai_inference import AzureAIInferenceDocumentEmbedder

    return AzureAIInferenceDocumentEmbedder(
        **{"model": str(model or AZURE_OPENAI_EMBEDDING_DEPLOYMENT), **common, **embedder_kwargs}
    )


def _document_store(retriever: str, dimensions: int, index_name: str) -> Any:
    if retriever == "in_memory":
        # A fixed index name keeps the YAML deterministic, and lets a pipeline loaded from it see the documents an
        # indexing pipeline wrote to the same index in this process.
        return InMemoryDocumentStore(index=index_name, embedding_similarity_function="cosine")
    from haystack_integrations.document_stores.azure_ai_search import AzureAISearchDocumentStore

    # Connects lazily, on the first request; reads AZURE_AI_SEARCH_ENDPOINT and AZURE_AI_SEARCH_API_KEY.
    return AzureAISearchDocumentStore(index_name=index_name, embedding_dimension=dimensions)


def _embedding_retriever(retriever: str, store: Any, top_k: int) -> Any:
    if retriever == "in_memory":
        from haystack.components.retrievers.in_memory import InMemoryEmbeddingRetriever

        return InMemoryEmbeddingRetriever(document_store=store, top_k=top_k)
    from haystack_integrations.components.retrievers.azure_ai_search import AzureAISearchEmbeddingRetriever

    return AzureAISearchEmbeddingRetriever(document_store=store, top_k=top_k)


def _ranker(
    ranker: str,
    model: str | Path,
    top_k: int,
    max_length: int | None,
    overlap_tokens: int,
    aggregation: str,
    cohere_timeout: float,
    cohere_api_base_url: str,
    precision: "Precision" = "auto",
) -> Any:
    from haystack_integrations.components.rankers.crossencoder import CrossEncoderRanker, FallbackRanker

    if ranker == "cross_encoder":
        return CrossEncoderRanker(
            model=str(model), top_k=top_k, max_length=max_length, aggregation=aggregation, precision=precision
        )
    from haystack_integrations.components.rankers.cohere import CohereRanker

    cohere = CohereRanker(model=COHERE_RERANK_MODEL, top_k=top_k, api_base_url=cohere_api_base_url)
    if ranker == "cohere":
        return cohere
    # Cohere reads whole documents, so the fallback splits them itself and returns whole documents too.
    local = CrossEncoderRanker(
        model=str(model),
        top_k=top_k,
        max_length=max_length,
        aggregation=aggregation,
        split_long_documents=True,
        overlap_tokens=overlap_tokens,
        precision=precision,
    )
    return FallbackRanker(primary=cohere, fallback=local, timeout=cohere_timeout)

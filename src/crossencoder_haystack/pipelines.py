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
ranked documents under the ranker's name, `"ranker"`. `build_indexing_pipeline(...)` fills an in-memory store.
The YAML files in `examples/pipelines/` are written by `write_example_pipelines` and tested to stay in sync.
"""

from pathlib import Path
from typing import Any, Literal

from haystack import Pipeline
from haystack.document_stores.in_memory import InMemoryDocumentStore

from crossencoder_haystack.bundled_model import bundled_minilm_path

Embedder = Literal["local", "azure_openai", "azure_ai_inference"]
Retriever = Literal["in_memory", "azure_ai_search"]
Ranker = Literal["cross_encoder", "cohere", "cohere_with_fallback"]

DEFAULT_RANKER_MODEL = "cross-encoder/ms-marco-MiniLM-L6-v2"
AZURE_OPENAI_EMBEDDING_DEPLOYMENT = "text-embedding-3-large"
AZURE_OPENAI_EMBEDDING_DIMENSIONS = 3072
COHERE_RERANK_MODEL = "rerank-v3.5"

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
    ranker_model: str | Path = DEFAULT_RANKER_MODEL,
    first_stage_top_k: int = 100,
    top_k: int = 10,
    max_length: int | None = None,
    overlap_tokens: int = 32,
    aggregation: str = "max",
    azure_ai_search_index: str = "default",
    cohere_timeout: float = 10.0,
) -> Pipeline:
    """
    Build a query pipeline: embedder → retriever (top `first_stage_top_k`) → [PassageSplitter] → ranker (`top_k`).

    :param embedder: `"local"`, `"azure_openai"` or `"azure_ai_inference"`.
    :param retriever: `"in_memory"` or `"azure_ai_search"`.
    :param ranker: `"cross_encoder"`, `"cohere"` or `"cohere_with_fallback"`.
    :param hybrid: With the in-memory retriever: also retrieve with BM25 and join both by reciprocal rank fusion.
    :param document_store: The store to retrieve from; default a new `InMemoryDocumentStore` (or an
        `AzureAISearchDocumentStore` on `azure_ai_search_index`, configured by `AZURE_AI_SEARCH_*` env vars).
    :param embedding_model: The local embedding model (default the bundled all-MiniLM-L6-v2), or the model or
        deployment name for the Azure embedders.
    :param ranker_model: The cross-encoder: a local directory or a hub id.
    :param first_stage_top_k: How many documents the retriever passes on to reranking.
    :param top_k: How many documents the pipeline returns.
    :param max_length: The cross-encoder's token limit for query + passage (`None`: the model's).
    :param overlap_tokens: The overlap between neighbouring passages.
    :param aggregation: How passage scores become a document score (see `CrossEncoderRanker`).
    :param azure_ai_search_index: The Azure AI Search index name.
    :param cohere_timeout: With `"cohere_with_fallback"`, seconds Cohere may take before the fallback ranks.
    :raises ValueError: On an unknown choice or a combination that does not exist.
    """
    _check_choice("embedder", embedder, ("local", "azure_openai", "azure_ai_inference"))
    _check_choice("retriever", retriever, ("in_memory", "azure_ai_search"))
    _check_choice("ranker", ranker, ("cross_encoder", "cohere", "cohere_with_fallback"))
    if hybrid and retriever != "in_memory":
        msg = "hybrid=True needs retriever='in_memory' (Azure AI Search has its own hybrid retriever)."
        raise ValueError(msg)
    if first_stage_top_k <= 0 or top_k <= 0:
        msg = f"first_stage_top_k and top_k must be > 0, got {first_stage_top_k} and {top_k}."
        raise ValueError(msg)

    pipeline = Pipeline()
    pipeline.add_component("embedder", _text_embedder(embedder, embedding_model))
    store = document_store if document_store is not None else _document_store(retriever, embedder, azure_ai_search_index)
    pipeline.add_component("retriever", _embedding_retriever(retriever, store, first_stage_top_k))
    pipeline.connect("embedder.embedding", "retriever.query_embedding")
    candidates = "retriever.documents"
    if hybrid:
        from haystack.components.joiners import DocumentJoiner
        from haystack.components.retrievers.in_memory import InMemoryBM25Retriever

        pipeline.add_component("bm25_retriever", InMemoryBM25Retriever(document_store=store, top_k=first_stage_top_k))
        pipeline.add_component(
            "joiner", DocumentJoiner(join_mode="reciprocal_rank_fusion", top_k=first_stage_top_k)
        )
        pipeline.connect("retriever.documents", "joiner.documents")
        pipeline.connect("bm25_retriever.documents", "joiner.documents")
        candidates = "joiner.documents"

    if ranker == "cross_encoder":
        from haystack_integrations.components.preprocessors.crossencoder import PassageSplitter

        pipeline.add_component(
            "splitter", PassageSplitter(tokenizer=str(ranker_model), max_length=max_length, overlap_tokens=overlap_tokens)
        )
        pipeline.connect(candidates, "splitter.documents")
        candidates = "splitter.documents"
    pipeline.add_component(
        "ranker", _ranker(ranker, ranker_model, top_k, max_length, overlap_tokens, aggregation, cohere_timeout)
    )
    pipeline.connect(candidates, "ranker.documents")
    return pipeline


def build_indexing_pipeline(document_store: Any, embedding_model: str | Path | None = None) -> Pipeline:
    """An indexing pipeline for the local default: embed documents with the local model and write them."""
    from haystack.components.writers import DocumentWriter
    from haystack_integrations.components.embedders.sentence_transformers import (
        SentenceTransformersDocumentEmbedder,
    )

    pipeline = Pipeline()
    pipeline.add_component(
        "embedder",
        SentenceTransformersDocumentEmbedder(
            model=str(embedding_model or bundled_minilm_path()), meta_fields_to_embed=["title"], progress_bar=False
        ),
    )
    pipeline.add_component("writer", DocumentWriter(document_store=document_store))
    pipeline.connect("embedder.documents", "writer.documents")
    return pipeline


def write_example_pipelines(directory: str | Path, ranker_model: str | Path = DEFAULT_RANKER_MODEL) -> list[Path]:
    """Write the YAML of every pipeline in `EXAMPLE_PIPELINES` into `directory`; returns the files written."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for name, arguments in EXAMPLE_PIPELINES.items():
        path = directory / f"{name}.yaml"
        path.write_text(example_pipeline_yaml(name, ranker_model), encoding="utf-8")
        written.append(path)
    return written


def example_pipeline_yaml(name: str, ranker_model: str | Path = DEFAULT_RANKER_MODEL) -> str:
    """The YAML text of the example pipeline `name` (a key of `EXAMPLE_PIPELINES`)."""
    arguments = EXAMPLE_PIPELINES[name]
    # The embedding model path is machine-specific; the YAML names the model the way a user would install it.
    embedding_model = None if arguments.get("embedder", "local") != "local" else "sentence-transformers/all-MiniLM-L6-v2"
    return build_rerank_pipeline(ranker_model=ranker_model, embedding_model=embedding_model, **arguments).dumps()


def _check_choice(parameter: str, value: str, choices: tuple[str, ...]) -> None:
    if value not in choices:
        msg = f"{parameter} must be one of {', '.join(map(repr, choices))}, got {value!r}."
        raise ValueError(msg)


def _text_embedder(embedder: str, model: str | Path | None) -> Any:
    if embedder == "local":
        from haystack_integrations.components.embedders.sentence_transformers import SentenceTransformersTextEmbedder

        return SentenceTransformersTextEmbedder(model=str(model or bundled_minilm_path()), progress_bar=False)
    if embedder == "azure_openai":
        from haystack.components.embedders import AzureOpenAITextEmbedder

        return AzureOpenAITextEmbedder(azure_deployment=str(model or AZURE_OPENAI_EMBEDDING_DEPLOYMENT))
    from haystack_integrations.components.embedders.azure_ai_inference import AzureAIInferenceTextEmbedder

    return AzureAIInferenceTextEmbedder(model=str(model or AZURE_OPENAI_EMBEDDING_DEPLOYMENT))


def _document_store(retriever: str, embedder: str, index_name: str) -> Any:
    if retriever == "in_memory":
        return InMemoryDocumentStore()
    from haystack_integrations.document_stores.azure_ai_search import AzureAISearchDocumentStore

    dimensions = 384 if embedder == "local" else AZURE_OPENAI_EMBEDDING_DIMENSIONS
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
) -> Any:
    from haystack_integrations.components.rankers.crossencoder import CrossEncoderRanker, FallbackRanker

    if ranker == "cross_encoder":
        return CrossEncoderRanker(model=str(model), top_k=top_k, max_length=max_length, aggregation=aggregation)
    from haystack_integrations.components.rankers.cohere import CohereRanker

    cohere = CohereRanker(model=COHERE_RERANK_MODEL, top_k=top_k)
    if ranker == "cohere":
        return cohere
    local = CrossEncoderRanker(
        model=str(model),
        top_k=top_k,
        max_length=max_length,
        aggregation=aggregation,
        split_long_documents=True,
        passage_overlap_tokens=overlap_tokens,
    )
    return FallbackRanker(primary=cohere, fallback=local, timeout=cohere_timeout)

"""Azure retrieve → local rerank: the query is embedded by Azure OpenAI (text-embedding-3-large) or an Azure AI
Inference deployment, Azure AI Search retrieves the top 100, PassageSplitter splits, a cross-encoder keeps the top 10.

Environment:
  embedder azure_openai:        AZURE_OPENAI_ENDPOINT, AZURE_OPENAI_API_KEY
  embedder azure_ai_inference:  AZURE_AI_INFERENCE_ENDPOINT, AZURE_AI_INFERENCE_API_KEY
  Azure AI Search:              AZURE_AI_SEARCH_ENDPOINT, AZURE_AI_SEARCH_API_KEY

    python examples/pipelines/azure_rerank.py --index-samples "why split long documents"   # fill the index first
    python examples/pipelines/azure_rerank.py --embedder azure_ai_inference --embedding-model embed-v-4-0 "..."
    python examples/pipelines/azure_rerank.py --in-memory "..."   # Azure embeddings, no search service needed

The same pipelines as YAML: azure_openai_ai_search_cross_encoder.yaml, azure_ai_inference_ai_search_cross_encoder.yaml.
(This file is not called azure.py: a script of that name would hide the `azure` SDK package from itself.)
"""

import argparse
import json
from pathlib import Path

from haystack import Document
from haystack.document_stores.in_memory import InMemoryDocumentStore

from crossencoder_haystack.pipelines import (
    DEFAULT_RANKER_MODEL,
    build_indexing_pipeline,
    build_rerank_pipeline,
    pipeline_inputs,
)

HERE = Path(__file__).resolve().parent


def sample_documents() -> list[Document]:
    lines = (HERE / "documents.jsonl").read_text(encoding="utf-8").splitlines()
    return [Document(content=row["content"], meta={"title": row["title"]}) for row in map(json.loads, lines)]


def main(argv: list[str] | None = None) -> list[Document]:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("query")
    parser.add_argument("--embedder", choices=["azure_openai", "azure_ai_inference"], default="azure_openai")
    parser.add_argument("--embedding-model", help="deployment (Azure OpenAI) or model name (default: -3-large)")
    parser.add_argument("--dimensions", type=int, help="embedding size to ask for (default: the model's, 3072)")
    parser.add_argument("--ranker-model", default=DEFAULT_RANKER_MODEL, help="cross-encoder directory or hub id")
    parser.add_argument("--in-memory", action="store_true", help="retrieve from memory instead of Azure AI Search")
    parser.add_argument("--index-samples", action="store_true", help="embed and write documents.jsonl first")
    parser.add_argument("--index-name", default="rerank", help="the Azure AI Search index")
    parser.add_argument("--top-k", type=int, default=10)
    args = parser.parse_args(argv)

    if args.in_memory:
        store = InMemoryDocumentStore(embedding_similarity_function="cosine")
    else:
        from haystack_integrations.document_stores.azure_ai_search import AzureAISearchDocumentStore

        store = AzureAISearchDocumentStore(index_name=args.index_name, embedding_dimension=args.dimensions or 3072)
    embedder_kwargs = {"dimensions": args.dimensions} if args.dimensions else {}
    if args.in_memory or args.index_samples:
        indexing = build_indexing_pipeline(
            store, args.embedding_model, embedder=args.embedder, embedder_kwargs=embedder_kwargs
        )
        indexing.run({"embedder": {"documents": sample_documents()}})

    pipeline = build_rerank_pipeline(
        embedder=args.embedder,
        retriever="in_memory" if args.in_memory else "azure_ai_search",
        document_store=store,
        embedding_model=args.embedding_model,
        embedder_kwargs=embedder_kwargs,
        ranker_model=args.ranker_model,
        top_k=args.top_k,
    )
    ranked = pipeline.run(pipeline_inputs(args.query))["ranker"]["documents"]

    for rank, document in enumerate(ranked, start=1):
        print(f"{rank}. {document.score:.3f}  {document.meta.get('title', document.id)}")
    return ranked


if __name__ == "__main__":
    main()

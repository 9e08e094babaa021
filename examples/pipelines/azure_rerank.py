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

import sys
from pathlib import Path

from haystack import Document
from haystack.document_stores.in_memory import InMemoryDocumentStore

from crossencoder_haystack.pipelines import build_rerank_pipeline, pipeline_inputs

sys.path.append(str(Path(__file__).resolve().parent))
from _common import argument_parser, index_samples


def main(argv: list[str] | None = None) -> list[Document]:
    parser = argument_parser(__doc__, top_k=10)
    parser.add_argument("--embedder", choices=["azure_openai", "azure_ai_inference"], default="azure_openai")
    parser.add_argument("--embedding-model", help="deployment (Azure OpenAI) or model name (default: -3-large)")
    parser.add_argument("--dimensions", type=int, help="embedding size to ask for (default: the model's, 3072)")
    parser.add_argument("--in-memory", action="store_true", help="retrieve from memory instead of Azure AI Search")
    parser.add_argument("--index-samples", action="store_true", help="embed and write documents.jsonl first")
    parser.add_argument("--index-name", default="rerank", help="the Azure AI Search index")
    args = parser.parse_args(argv)

    if args.in_memory:
        store = InMemoryDocumentStore(embedding_similarity_function="cosine")
    else:
        from haystack_integrations.document_stores.azure_ai_search import AzureAISearchDocumentStore

        store = AzureAISearchDocumentStore(index_name=args.index_name, embedding_dimension=args.dimensions or 3072)
    embedder_kwargs = {"dimensions": args.dimensions} if args.dimensions else {}
    if args.in_memory or args.index_samples:
        index_samples(store, args.embedding_model, embedder=args.embedder, embedder_kwargs=embedder_kwargs)

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

"""Cloud rerank with a local safety net: the bundled all-MiniLM-L6-v2 embeds, an in-memory store retrieves, Cohere
rerank-v3.5 reranks, and a local cross-encoder takes over when Cohere fails or is slower than --cohere-timeout.

Environment: COHERE_API_KEY.

    python examples/pipelines/cohere_with_fallback.py "why split long documents"
    python examples/pipelines/cohere_with_fallback.py --cohere-timeout 0.5 --ranker-model /models/my-ce "..."
    python examples/pipelines/cohere_with_fallback.py --cohere-only "..."   # CohereRanker alone, no fallback

`--cohere-url` points the client elsewhere, e.g. at a self-hosted `rerank serve`, which speaks the Cohere API.
The same pipelines as YAML: offline_cohere_with_fallback.yaml, offline_cohere.yaml.
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


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("query")
    parser.add_argument("--ranker-model", default=DEFAULT_RANKER_MODEL, help="the fallback cross-encoder")
    parser.add_argument("--cohere-timeout", type=float, default=10.0, help="seconds before the fallback ranks")
    parser.add_argument("--cohere-url", default="https://api.cohere.com", help="the Cohere API's base URL")
    parser.add_argument("--cohere-only", action="store_true", help="rerank with Cohere alone, no fallback")
    parser.add_argument("--top-k", type=int, default=3)
    args = parser.parse_args(argv)

    store = InMemoryDocumentStore(embedding_similarity_function="cosine")
    build_indexing_pipeline(store).run({"embedder": {"documents": sample_documents()}})
    pipeline = build_rerank_pipeline(
        ranker="cohere" if args.cohere_only else "cohere_with_fallback",
        document_store=store,
        ranker_model=args.ranker_model,
        top_k=args.top_k,
        cohere_timeout=args.cohere_timeout,
        cohere_api_base_url=args.cohere_url,
    )
    result = pipeline.run(pipeline_inputs(args.query))["ranker"]

    if "meta" in result:  # FallbackRanker says who ranked
        print(f"ranked by: {result['meta']['ranked_by']}", result["meta"].get("fallback_reason", ""))
    for rank, document in enumerate(result["documents"], start=1):
        print(f"{rank}. {document.score:.3f}  {document.meta['title']}")
    return result


if __name__ == "__main__":
    main()

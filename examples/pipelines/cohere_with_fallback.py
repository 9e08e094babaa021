"""Cloud rerank with a local safety net: the bundled all-MiniLM-L6-v2 embeds, an in-memory store retrieves, Cohere
rerank-v3.5 reranks, and a local cross-encoder takes over when Cohere fails or is slower than --cohere-timeout.

Environment: COHERE_API_KEY.

    python examples/pipelines/cohere_with_fallback.py "why split long documents"
    python examples/pipelines/cohere_with_fallback.py --cohere-timeout 0.5 --ranker-model /models/my-ce "..."
    python examples/pipelines/cohere_with_fallback.py --cohere-only "..."   # CohereRanker alone, no fallback

`--cohere-url` points the client elsewhere, e.g. at a self-hosted `rerank serve`, which speaks the Cohere API.
The same pipelines as YAML: offline_cohere_with_fallback.yaml, offline_cohere.yaml.
"""

import sys
from pathlib import Path

from haystack.document_stores.in_memory import InMemoryDocumentStore

from crossencoder_haystack.pipelines import build_rerank_pipeline, pipeline_inputs

sys.path.append(str(Path(__file__).resolve().parent))
from _common import argument_parser, index_samples


def main(argv: list[str] | None = None) -> dict:
    parser = argument_parser(__doc__, top_k=3, ranker_model_help="the fallback cross-encoder")
    parser.add_argument("--cohere-timeout", type=float, default=10.0, help="seconds before the fallback ranks")
    parser.add_argument("--cohere-url", default="https://api.cohere.com", help="the Cohere API's base URL")
    parser.add_argument("--cohere-only", action="store_true", help="rerank with Cohere alone, no fallback")
    args = parser.parse_args(argv)

    store = InMemoryDocumentStore(embedding_similarity_function="cosine")
    index_samples(store)
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

"""Retrieve → rerank without any cloud service: the bundled all-MiniLM-L6-v2 embeds, an in-memory store retrieves
(optionally hybrid with BM25), PassageSplitter splits, a cross-encoder reranks.

    python examples/pipelines/offline.py "why split long documents"
    python examples/pipelines/offline.py --hybrid --ranker-model /models/ms-marco-MiniLM-L6-v2 "rank fusion"
    python examples/pipelines/offline.py --from-yaml "why split long documents"

`--from-yaml` loads offline_cross_encoder.yaml (or offline_hybrid_cross_encoder.yaml) instead of building the
pipeline in Python; the YAML names its models by hub id, so they must be downloadable or in the local HF cache.
"""

import sys
from pathlib import Path

from haystack import Document, Pipeline
from haystack.document_stores.in_memory import InMemoryDocumentStore

from crossencoder_haystack.pipelines import DEFAULT_INDEX_NAME, build_rerank_pipeline, pipeline_inputs

sys.path.append(str(Path(__file__).resolve().parent))
from _common import HERE, argument_parser, index_samples


def main(argv: list[str] | None = None) -> list[Document]:
    parser = argument_parser(__doc__, top_k=3)
    parser.add_argument("--hybrid", action="store_true", help="also retrieve with BM25, joined by rank fusion")
    parser.add_argument("--from-yaml", action="store_true", help="load the pipeline from its YAML file")
    args = parser.parse_args(argv)

    # The pipelines' default store is the in-memory index "rerank": index there and the YAML pipeline sees it too.
    store = InMemoryDocumentStore(index=DEFAULT_INDEX_NAME, embedding_similarity_function="cosine")
    index_samples(store)

    if args.from_yaml:
        name = "offline_hybrid_cross_encoder" if args.hybrid else "offline_cross_encoder"
        pipeline = Pipeline.loads((HERE / f"{name}.yaml").read_text(encoding="utf-8"))
    else:
        pipeline = build_rerank_pipeline(hybrid=args.hybrid, ranker_model=args.ranker_model, top_k=args.top_k)
    ranked = pipeline.run(pipeline_inputs(args.query))["ranker"]["documents"][: args.top_k]

    for rank, document in enumerate(ranked, start=1):
        print(f"{rank}. {document.score:.3f}  {document.meta['title']}")
        print(f"   best passage: {document.meta.get('best_passage', document.content)[:100]}")
    return ranked


if __name__ == "__main__":
    main()

"""Search the HR candidate set from Python: the pipeline `rerank demo` runs, built from the public pieces.

    python examples/hr_candidate_search/search.py "Python ve SQL bilen veri analisti"
    python examples/hr_candidate_search/search.py "backend engineer with Kubernetes" --model /path/to/cross-encoder

Without --model it uses what `rerank demo` would: the cached starter model, the cached or reachable
cross-encoder/ms-marco-MiniLM-L6-v2, or else it builds the starter model once (a few minutes on a CPU).
"""

import argparse

from haystack.document_stores.in_memory import InMemoryDocumentStore

from crossencoder_haystack.demo import build_starter_model, choose_model, cv_documents, load_hr_dataset
from crossencoder_haystack.demo.starter_model import ranking_settings
from crossencoder_haystack.pipelines import build_indexing_pipeline, build_rerank_pipeline, pipeline_inputs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("query")
    parser.add_argument("--model", help="A cross-encoder directory or hub id (default: as `rerank demo` picks).")
    parser.add_argument("--top-k", type=int, default=5)
    args = parser.parse_args()

    # Index: the CVs (title + text) embedded with the bundled all-MiniLM-L6-v2 into an in-memory store.
    store = InMemoryDocumentStore()
    build_indexing_pipeline(store).run({"embedder": {"documents": cv_documents(load_hr_dataset())}})

    # The reranker: a starter model is trained for 93-token passages, which its ranking settings ask for.
    choice = choose_model(args.model)
    print(f"Model: {choice.reason}")
    if choice.needs_building:
        build_starter_model(choice.model)
    settings = ranking_settings(choice.model) if choice.is_starter else {}

    # Query: embed -> retrieve all 90 CVs -> split them into passages -> cross-encoder -> best CVs.
    pipeline = build_rerank_pipeline(document_store=store, ranker_model=choice.model, top_k=args.top_k, **settings)
    result = pipeline.run(pipeline_inputs(args.query), include_outputs_from={"retriever"})
    first_stage = [document.id for document in result["retriever"]["documents"]]
    for rank, cv in enumerate(result["ranker"]["documents"], start=1):
        print(f"{rank:>2}. {cv.score:.3f}  {cv.meta['title']}  (first stage: #{first_stage.index(cv.id) + 1})")
        print(f"    {' '.join(cv.meta['best_passage'].split())[:200]}")


if __name__ == "__main__":
    main()

"""Does passage-level reranking beat truncation on long documents? (issue: passage mode)

Builds long documents from SciFact (read from ../shared/data/scifact, never copied): for each sampled test query,
its candidates are its judged abstracts plus BM25's top non-relevant ones; each candidate becomes a long document
that concatenates the candidate abstract with `--fillers` unrelated abstracts, the candidate at a random (seeded)
position, so most long documents exceed 512 tokens and the evidence is often past the cut. A long document is as
relevant as its candidate abstract.

Then the same cross-encoder reranks each query's long documents by (a) truncation (the plain ranker sees the first
`--max-length` tokens) and (b) passage mode (`split_long_documents=True`), aggregated with every aggregation.
Prints nDCG@10, MRR@10 (ranx) and time per query.

    python benchmarks/long_documents.py --model /path/to/cross-encoder --queries 30
"""

import argparse
import random
import statistics
import time
from collections import defaultdict
from pathlib import Path

from haystack import Document
from haystack.components.retrievers.in_memory import InMemoryBM25Retriever
from haystack.document_stores.in_memory import InMemoryDocumentStore
from ranx import Qrels, Run, evaluate
from rich.console import Console
from rich.table import Table
from transformers import AutoTokenizer

from crossencoder_haystack.data import document_text, load_beir
from haystack_integrations.components.rankers.crossencoder import CrossEncoderRanker
from haystack_integrations.components.rankers.crossencoder._engine.aggregation import AGGREGATIONS, aggregate_scores

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "scifact"


def build_long_documents(args: argparse.Namespace) -> tuple[dict[str, str], dict[str, list[Document]], dict]:
    dataset = load_beir(DATA, "test")
    corpus = {doc_id: document_text(entry) for doc_id, entry in dataset.corpus.items()}
    queries, qrels = dataset.queries, dataset.qrels
    rng = random.Random(args.seed)
    query_ids = sorted(q for q in qrels if q in queries)
    query_ids = rng.sample(query_ids, min(args.queries, len(query_ids)))

    store = InMemoryDocumentStore()
    store.write_documents([Document(id=doc_id, content=text) for doc_id, text in corpus.items()])
    bm25 = InMemoryBM25Retriever(document_store=store, top_k=args.candidates)
    all_ids = sorted(corpus)

    candidates: dict[str, list[Document]] = {}
    long_qrels: dict[str, dict[str, int]] = {}
    for query_id in query_ids:
        relevant = [d for d, grade in qrels[query_id].items() if grade > 0 and d in corpus]
        retrieved = [d.id for d in bm25.run(query=queries[query_id])["documents"] if d.id not in relevant]
        core_ids = (relevant + retrieved)[: args.candidates]
        documents = []
        for core_id in core_ids:
            fillers = [d for d in rng.sample(all_ids, args.fillers + 5) if d not in qrels[query_id] and d != core_id]
            parts = [corpus[d] for d in fillers[: args.fillers]]
            parts.insert(rng.randrange(len(parts) + 1), corpus[core_id])
            long_id = f"{query_id}:{core_id}"
            documents.append(Document(id=long_id, content="\n\n".join(parts)))
            long_qrels.setdefault(query_id, {})[long_id] = qrels[query_id].get(core_id, 0)
        rng.shuffle(documents)  # no retrieval order to lean on
        candidates[query_id] = documents
    return {q: queries[q] for q in query_ids}, candidates, long_qrels


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="/work/models/scifact-minilm-ce", help="cross-encoder directory")
    parser.add_argument("--queries", type=int, default=30)
    parser.add_argument("--candidates", type=int, default=10, help="long documents per query")
    parser.add_argument("--fillers", type=int, default=3, help="unrelated abstracts per long document")
    parser.add_argument("--max-length", type=int, default=256)
    parser.add_argument("--seed", type=int, default=13)
    args = parser.parse_args()

    queries, candidates, qrels = build_long_documents(args)
    tokenizer = AutoTokenizer.from_pretrained(args.model)
    lengths = [len(tokenizer(d.content).input_ids) for docs in candidates.values() for d in docs]
    over = sum(length > 512 for length in lengths) / len(lengths)

    truncating = CrossEncoderRanker(model=args.model, max_length=args.max_length, top_k=1000)
    passages = CrossEncoderRanker(
        model=args.model, max_length=args.max_length, top_k=10_000, split_long_documents=True, return_passages=True
    )
    runs: dict[str, dict[str, dict[str, float]]] = defaultdict(dict)
    seconds: dict[str, list[float]] = defaultdict(list)
    for query_id, query in queries.items():
        start = time.perf_counter()
        ranked = truncating.run(query=query, documents=candidates[query_id])["documents"]
        seconds["truncation"].append(time.perf_counter() - start)
        runs["truncation"][query_id] = {d.id: d.score for d in ranked}

        start = time.perf_counter()
        scored = passages.run(query=query, documents=candidates[query_id])["documents"]
        seconds["passages"].append(time.perf_counter() - start)
        by_parent: dict[str, list[tuple[int, float]]] = defaultdict(list)
        for passage in scored:
            by_parent[passage.meta["source_id"]].append((passage.meta["passage_index"], passage.score))
        for aggregation in AGGREGATIONS:
            runs[f"passages, {aggregation}"][query_id] = {
                parent: aggregate_scores([score for _, score in sorted(items)], aggregation)
                for parent, items in by_parent.items()
            }

    ranx_qrels = Qrels(qrels)
    table = Table(title=f"Long documents: {len(queries)} SciFact test queries, {args.candidates} long docs each")
    for column in ("method", "nDCG@10", "MRR@10", "s/query (median)"):
        table.add_column(column)
    for name, run in runs.items():
        scores = evaluate(ranx_qrels, Run(run), ["ndcg@10", "mrr@10"])
        timing = seconds["truncation" if name == "truncation" else "passages"]
        table.add_row(name, f"{scores['ndcg@10']:.3f}", f"{scores['mrr@10']:.3f}", f"{statistics.median(timing):.2f}")
    console = Console()
    console.print(table)
    console.print(
        f"model {args.model}, max_length {args.max_length}; long documents: median "
        f"{statistics.median(lengths):.0f} tokens, {over:.0%} longer than 512"
    )


if __name__ == "__main__":
    main()

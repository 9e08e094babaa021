"""BM25 first stage on BEIR SciFact (test split): nDCG@10, MRR@10, Recall@100 and wall time.

Not a test: reads the BEIR SciFact copy (default /work/shared/data/scifact) and runs `evaluate(...)` with no
ranker, so the numbers are those of Haystack's `InMemoryBM25Retriever` (BM25L, title and text) as the evaluation
tooling computes them (ranx). The published BEIR BM25 nDCG@10 on SciFact is 0.665; expect 0.66 +- 0.02.

    python benchmarks/bm25_scifact.py [--data-dir DIR] [--max-queries N] [--output DIR]
"""

import argparse
import time

from crossencoder_haystack.evaluation import evaluate, print_table

EXPECTED_NDCG_AT_10 = 0.66
TOLERANCE = 0.02


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir", default="/work/shared/data/scifact")
    parser.add_argument("--max-queries", type=int, default=None, help="a seeded sample of test queries (default all)")
    parser.add_argument("--output", default=None, help="write results.json and the BM25 run file here")
    args = parser.parse_args()

    started = time.perf_counter()
    result = evaluate(
        args.data_dir,
        split="test",
        first_stage="bm25",
        rankers=["none"],
        ks=[100],
        max_queries=args.max_queries,
        latency_queries=0,
        output=args.output,
        show_progress=True,
    )
    seconds = time.perf_counter() - started
    print_table(result)
    bm25 = result.row("bm25")
    ndcg = bm25.metrics["ndcg@10"]
    print(
        f"BM25 on SciFact test ({result.queries['evaluated']} queries): nDCG@10 {ndcg:.4f}, "
        f"MRR@10 {bm25.metrics['mrr@10']:.4f}, Recall@100 {bm25.metrics['recall@100']:.4f}"
    )
    latency = bm25.latency
    print(
        f"time: {seconds:.1f} s in all; indexing {result.first_stage['index_seconds']:.1f} s; retrieval p50 "
        f"{latency.p50_ms:.0f} ms, p95 {latency.p95_ms:.0f} ms per query"
        if latency is not None
        else f"time: {seconds:.1f} s"
    )
    verdict = "within" if abs(ndcg - EXPECTED_NDCG_AT_10) <= TOLERANCE else "OUTSIDE"
    print(f"nDCG@10 is {verdict} the expected {EXPECTED_NDCG_AT_10} +- {TOLERANCE}.")


if __name__ == "__main__":
    main()

"""Fine-tune rerankers from the bundled all-MiniLM-L6-v2 on SciFact and rerank BM25 candidates of test queries.

Not a test: reads the BEIR SciFact copy (default /work/shared/data/scifact), caches runs and scores under
benchmarks/.cache/, and prints nDCG@10 and MRR@10 (ranx) for BM25 alone, the dense MiniLM bi-encoder alone and
each fine-tuned reranker. Example (the budget of benchmarks/results/train_scifact.md):

    python benchmarks/train_scifact.py --losses bce,cmnrl,lambda --train-minutes 8 --max-queries 100 --depth 30
"""

import argparse
import hashlib
import json
import random
import time
from pathlib import Path

from crossencoder_haystack.training import mine_hard_negatives, train
from crossencoder_haystack.training.mining import read_beir

HERE = Path(__file__).parent
# Rows per step, chosen so one step costs about the same (~32-48 scored pairs) for every loss.
BATCH_SIZE = {"bce": 32, "cmnrl": 4, "lambda": 6}
SHAPE = {"bce": "pairs", "cmnrl": "triplets", "lambda": "lists"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir", default="/work/shared/data/scifact")
    parser.add_argument("--losses", default="bce,cmnrl,lambda", help="comma-separated: bce, cmnrl, lambda")
    parser.add_argument("--train-minutes", type=float, default=8.0, help="wall-clock training budget per loss")
    parser.add_argument("--max-steps", type=int, default=None, help="schedule length; default: from the budget")
    parser.add_argument("--seconds-per-step", type=float, default=3.0, help="estimate used to size the schedule")
    parser.add_argument("--max-queries", type=int, default=100, help="test queries evaluated (seeded sample)")
    parser.add_argument("--depth", type=int, default=30, help="BM25 candidates reranked per query")
    parser.add_argument("--negatives", type=int, default=5, help="mined hard negatives per query")
    parser.add_argument("--miner", choices=["bm25", "embedding"], default="bm25")
    parser.add_argument("--head", choices=["auto", "cosine", "dense"], default="auto", help="new head of the base")
    parser.add_argument("--lr", type=float, default=None, help="encoder learning rate (default: the head's recipe)")
    parser.add_argument("--head-lr", type=float, default=None, help="head learning rate (default: the recipe)")
    parser.add_argument("--max-length", type=int, default=128)
    parser.add_argument("--batch-size", type=int, default=None, help="override the per-loss batch size")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--eval-fraction", type=float, default=0.02, help="train queries held out for checkpoints")
    parser.add_argument("--dense", action="store_true", help="also evaluate the dense MiniLM bi-encoder alone")
    parser.add_argument("--tag", default="", help="suffix for the model directories of this variant")
    parser.add_argument("--models-dir", default=str(HERE / ".cache" / "models"))
    parser.add_argument("--save-best", default=None, help="copy the best reranker here (e.g. /work/models/...)")
    parser.add_argument(
        "--score-model", action="append", default=[], help="skip training: score this model directory (repeatable)"
    )
    args = parser.parse_args()

    cache = HERE / ".cache"
    cache.mkdir(parents=True, exist_ok=True)
    test = read_beir(args.data_dir, "test")
    query_ids = sorted(test.queries)
    random.Random(0).shuffle(query_ids)
    query_ids = sorted(query_ids[: args.max_queries])
    qrels = {qid: {doc_id: 1 for doc_id in test.positives[qid]} for qid in query_ids}

    bm25 = _cached(cache / f"bm25_{len(query_ids)}_{args.depth}.json", lambda: _bm25_run(test, query_ids, args.depth))
    rows = [("BM25", "-", "-", "-", _evaluate(qrels, bm25))]
    if args.dense:
        dense = _cached(cache / f"dense_{len(query_ids)}.json", lambda: _dense_run(test, query_ids, 100))
        rows.append(("MiniLM bi-encoder (dense, full corpus)", "-", "-", "-", _evaluate(qrels, dense)))

    for model_dir in args.score_model:
        rows.append(
            (
                f"reranker {Path(model_dir).name}",
                "-",
                "-",
                "-",
                _evaluate(qrels, _rerank_run(model_dir, test, bm25, query_ids, args.max_length)),
            )
        )
    losses = [] if args.score_model else [name.strip() for name in args.losses.split(",") if name.strip()]
    best = None
    for loss in losses:
        data_path = cache / f"scifact_train_{args.miner}_{args.negatives}_{SHAPE[loss]}.jsonl"
        if not data_path.exists():
            mine_hard_negatives(
                args.data_dir,
                split="train",
                output=data_path,
                retriever=args.miner,
                top_n=30,
                num_negatives=args.negatives,
                output_format=SHAPE[loss],
                show_progress=False,
            )
        batch_size = args.batch_size or BATCH_SIZE[loss]
        max_steps = args.max_steps or max(10, int(args.train_minutes * 60 / args.seconds_per_step))
        output = Path(args.models_dir) / f"scifact-{loss}{args.tag}"
        started = time.monotonic()
        result = train(
            data_path,
            output,
            eval_fraction=args.eval_fraction,
            loss=loss,
            max_steps=max_steps,
            batch_size=batch_size,
            learning_rate=args.lr,
            head_learning_rate=args.head_lr,
            head=args.head,
            max_length=args.max_length,
            seed=args.seed,
            max_minutes=args.train_minutes,
            eval_steps=max(10, max_steps // 4),
        )
        minutes = (time.monotonic() - started) / 60
        run = _rerank_run(output, test, bm25, query_ids, args.max_length)
        metrics = _evaluate(qrels, run)
        history = result.loss_history
        loss_change = f"{history[0][1]:.3f}→{history[-1][1]:.3f}" if history else "-"
        rows.append((f"reranker {loss}{args.tag}", str(result.steps), f"{minutes:.1f}", loss_change, metrics))
        _record(args, loss, result, minutes, metrics)
        if best is None or metrics["ndcg@10"] > best[1]["ndcg@10"]:
            best = (output, metrics)

    _print_table(rows, len(query_ids), args.depth)
    if args.save_best and best is not None:
        import shutil

        shutil.copytree(best[0], args.save_best, dirs_exist_ok=True)
        print(f"Best reranker ({best[0].name}, nDCG@10 {best[1]['ndcg@10']:.4f}) copied to {args.save_best}")


def _cached(path: Path, compute):
    if path.exists():
        return json.loads(path.read_text())
    value = compute()
    path.write_text(json.dumps(value))
    return value


def _bm25_run(test, query_ids, depth):
    from haystack import Document
    from haystack.components.retrievers.in_memory import InMemoryBM25Retriever
    from haystack.document_stores.in_memory import InMemoryDocumentStore

    store = InMemoryDocumentStore()
    store.write_documents([Document(id=doc_id, content=text) for doc_id, text in test.corpus.items()])
    retriever = InMemoryBM25Retriever(store, top_k=depth)
    return {
        qid: {doc.id: float(doc.score) for doc in retriever.run(query=test.queries[qid])["documents"]}
        for qid in query_ids
    }


def _dense_run(test, query_ids, depth):
    from sentence_transformers import SentenceTransformer, util

    from crossencoder_haystack.bundled_model import bundled_minilm_path

    encoder = SentenceTransformer(str(bundled_minilm_path()), device="cpu", local_files_only=True)
    doc_ids = list(test.corpus)
    documents = encoder.encode([test.corpus[d] for d in doc_ids], batch_size=64, convert_to_tensor=True)
    queries = encoder.encode([test.queries[q] for q in query_ids], convert_to_tensor=True)
    hits = util.semantic_search(queries, documents, top_k=depth)
    return {qid: {doc_ids[h["corpus_id"]]: float(h["score"]) for h in hits[i]} for i, qid in enumerate(query_ids)}


def _rerank_run(model_dir, test, bm25, query_ids, max_length):
    weights = b"".join(path.read_bytes() for path in sorted(Path(model_dir).rglob("model.safetensors")))
    key = hashlib.sha1(weights).hexdigest()[:12]
    path = HERE / ".cache" / f"scores_{key}_{len(query_ids)}_{len(next(iter(bm25.values())))}.json"

    def compute():
        from haystack import Document

        from haystack_integrations.components.rankers.crossencoder import CrossEncoderRanker

        ranker = CrossEncoderRanker(
            model=str(model_dir), max_length=max_length, batch_size=32, activation="identity", show_progress_bar=True
        )
        documents = [[Document(id=d, content=test.corpus[d]) for d in bm25[q]] for q in query_ids]
        ranked = ranker.run_batch(queries=[test.queries[q] for q in query_ids], documents=documents, top_k=10_000)
        return {q: {d.id: float(d.score) for d in docs} for q, docs in zip(query_ids, ranked["documents"], strict=True)}

    return _cached(path, compute)


def _evaluate(qrels, run) -> dict[str, float]:
    from ranx import Qrels, Run, evaluate

    scores = evaluate(Qrels(qrels), Run(run), ["ndcg@10", "mrr@10"], make_comparable=True)
    return {name: round(float(value), 4) for name, value in scores.items()}


def _record(args, loss, result, minutes, metrics) -> None:
    line = {
        "variant": f"{loss}{args.tag}",
        "head": args.head,
        "lr": args.lr,
        "head_lr": args.head_lr,
        "max_length": args.max_length,
        "batch_size": args.batch_size or BATCH_SIZE[loss],
        "miner": args.miner,
        "negatives": args.negatives,
        "steps": result.steps,
        "minutes": round(minutes, 1),
        "loss_history": result.loss_history,
        "eval_before": result.before,
        "eval_after": result.after,
        "test": metrics,
        "queries": args.max_queries,
        "depth": args.depth,
    }
    with (HERE / ".cache" / "variants.jsonl").open("a") as handle:
        handle.write(json.dumps(line) + "\n")


def _print_table(rows, queries, depth) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"SciFact test: {queries} queries, rerank BM25 top-{depth}")
    for column in ("system", "steps", "minutes", "train loss", "nDCG@10", "MRR@10"):
        table.add_column(column)
    for name, steps, minutes, loss, metrics in rows:
        table.add_row(name, steps, minutes, loss, f"{metrics['ndcg@10']:.4f}", f"{metrics['mrr@10']:.4f}")
    Console().print(table)


if __name__ == "__main__":
    main()

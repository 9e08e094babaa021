"""Never worse than the model it started from, and a gain that holds at K = 100 (issues #15 and #22).

One command from a fresh clone (reads ../shared/data, caches everything under benchmarks/.cache/generalization):

    python benchmarks/generalization.py

For each training domain (SciFact train, TQuAD train) it runs the package's own commands with no flags but the
data paths, `rerank mine --queries DIR --output mined.jsonl` and `rerank train --data mined.jsonl --output DIR`
(timed), plus `rerank train ... --max-steps 0` (the untrained reranker). Then it reranks BM25's top 100 (top 150
on SciFact, for the K sweep) of SciFact test (300 queries), Cranfield (225) and TQuAD dev (892) with the bundled
bi-encoder (cosine of `SentenceTransformer` embeddings, the reference), the untrained and the fine-tuned reranker
(through `CrossEncoderRanker`), each alone and fused with BM25 (min-max) at the weight the fine-tuned model
declares (tuned by `rerank train` on its held-out training queries; `--tune-queries N` also tunes one here on N
training queries). Never on test queries. Scores are cached on disk by model weights.
"""

import argparse
import hashlib
import json
import random
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
DEPTHS = (20, 50, 100, 150)
METRICS = ("ndcg@10", "mrr@10", "recall@100")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-root", default=str(REPO.parent / "shared" / "data"))
    parser.add_argument("--cache", default=str(HERE / ".cache" / "generalization"))
    parser.add_argument("--domains", default="scifact,turkish", help="training domains: scifact, turkish")
    parser.add_argument(
        "--collections", default="scifact,cranfield,tquad-dev", help="evaluation collections (all queries of each)"
    )
    parser.add_argument(
        "--tune-queries",
        type=int,
        default=0,
        help="also tune the fusion weight here on this many training queries (0: only the model's own, tuned by "
        "rerank train on its held-out training queries)",
    )
    parser.add_argument(
        "--reference-on",
        default="cranfield,tquad-dev",
        help="collections where the bundled bi-encoder is also scored with plain sentence-transformers (the "
        "untrained reranker is scored through CrossEncoderRanker everywhere)",
    )
    parser.add_argument("--output", default=str(HERE / "results" / "generalization.json"))
    args = parser.parse_args()
    root, cache = Path(args.data_root), Path(args.cache)
    cache.mkdir(parents=True, exist_ok=True)
    environment = _environment()
    print(json.dumps(environment, indent=2), flush=True)

    collections = {
        "scifact": (root / "scifact", "test", 150),
        "cranfield": (root / "cranfield", "test", 100),
        "tquad-dev": (root / "turkish" / "tquad-dev", "test", 100),
    }
    training = {"scifact": (root / "scifact", "train"), "turkish": (root / "turkish" / "tquad-train", "test")}
    report: dict = {"environment": environment, "collections": {}, "models": {}}
    bundled = _bundled_path()
    models = {"bundled bi-encoder": bundled}
    for domain in args.domains.split(","):
        directory, split = training[domain]
        untrained, tuned, minutes = _train(domain, directory, cache)
        models[f"untrained reranker ({domain} run)"] = untrained
        models[f"fine-tuned on {domain}"] = tuned
        report["models"][f"fine-tuned on {domain}"] = {"train_minutes": minutes, "path": str(tuned)}
        if args.tune_queries:
            report["models"][f"fine-tuned on {domain}"]["tuned_fusion"] = _tune_fusion(
                tuned, directory, split, args.tune_queries, cache
            )
    for name, (directory, split, depth) in collections.items():
        if name not in args.collections.split(","):
            continue
        chosen = {
            label: model
            for label, model in models.items()
            if label != "bundled bi-encoder" or name in args.reference_on.split(",")
        }
        report["collections"][name] = _evaluate_collection(name, directory, split, depth, chosen, cache, report)
    Path(args.output).parent.mkdir(parents=True, exist_ok=True)
    Path(args.output).write_text(json.dumps(report, indent=2) + "\n")
    print(f"\nWrote {args.output}")


def _environment() -> dict:
    from crossencoder_haystack.evaluation.environment import describe_environment
    from haystack_integrations.components.rankers.crossencoder._engine.precision import REPORTED_CPU_FLAGS, cpu_flags

    environment = describe_environment()
    environment["cpu_flags"] = sorted(set(REPORTED_CPU_FLAGS) & cpu_flags())
    return environment


def _bundled_path() -> Path:
    from crossencoder_haystack.bundled_model import bundled_minilm_path

    return Path(bundled_minilm_path())


def _rerank(*arguments: str) -> float:
    started = time.monotonic()
    command = [sys.executable, "-m", "crossencoder_haystack.cli", *arguments]
    print("$ rerank " + " ".join(arguments), flush=True)
    subprocess.run(command, check=True)
    return (time.monotonic() - started) / 60


def _train(domain: str, directory: Path, cache: Path) -> tuple[Path, Path, float | None]:
    mined = cache / f"{domain}-mined.jsonl"
    untrained, tuned = cache / f"{domain}-untrained", cache / f"{domain}-tuned"
    if not mined.exists():
        _rerank("mine", "--queries", str(directory), "--output", str(mined))
    if not (untrained / "modules.json").exists():
        _rerank("train", "--data", str(mined), "--output", str(untrained), "--max-steps", "0")
    minutes_file = tuned / "train_minutes.txt"
    if not (tuned / "modules.json").exists():
        minutes = _rerank("train", "--data", str(mined), "--output", str(tuned))
        minutes_file.write_text(f"{minutes:.2f}\n")
    minutes = float(minutes_file.read_text()) if minutes_file.exists() else None
    return untrained, tuned, minutes


def _load(directory: Path, split: str):
    from crossencoder_haystack.data import load_beir

    return load_beir(directory, split)


def _bm25(dataset, query_ids: list[str], depth: int, cache_file: Path) -> dict[str, dict[str, float]]:
    if cache_file.exists():
        return json.loads(cache_file.read_text())
    from crossencoder_haystack.evaluation.first_stage import BM25FirstStage, corpus_documents

    first_stage = BM25FirstStage(corpus_documents(dataset))
    run = {}
    for query_id in query_ids:
        hits = first_stage.retrieve(query_id, dataset.queries[query_id], depth)
        run[query_id] = {hit.id: float(hit.score) for hit in hits}
    cache_file.write_text(json.dumps(run))
    return run


def _model_key(model: Path) -> str:
    digest = hashlib.sha1()
    for path in sorted(model.rglob("*.safetensors")):
        digest.update(path.read_bytes())
    return digest.hexdigest()[:12]


def _scores(model: Path, name: str, dataset, run, cache: Path, reference: bool) -> dict[str, dict[str, float]]:
    """Each query's candidates scored by `model` (through the ranker, or plain SentenceTransformer cosine)."""
    from crossencoder_haystack.data import document_text

    path = cache / f"scores-{name}-{_model_key(model)}-{'st' if reference else 'ranker'}-{len(run)}.json"
    if path.exists():
        return json.loads(path.read_text())
    started = time.monotonic()
    query_ids = list(run)
    texts = {doc_id: document_text(dataset.corpus[doc_id]) for docs in run.values() for doc_id in docs}
    if reference:
        from sentence_transformers import SentenceTransformer

        encoder = SentenceTransformer(str(model), device="cpu", local_files_only=True)
        ids = list(texts)
        embeddings = dict(
            zip(ids, encoder.encode([texts[i] for i in ids], batch_size=32, normalize_embeddings=True), strict=True)
        )
        queries = encoder.encode([dataset.queries[q] for q in query_ids], batch_size=32, normalize_embeddings=True)
        scores = {q: {d: float(embeddings[d] @ queries[i]) for d in run[q]} for i, q in enumerate(query_ids)}
    else:
        from haystack import Document

        from haystack_integrations.components.rankers.crossencoder import CrossEncoderRanker

        # fp32: the reference precision (precision="auto" would pick bf16 on a CPU with AMX / AVX512-BF16)
        ranker = CrossEncoderRanker(model=str(model), batch_size=32, first_stage_weight=0.0, precision="fp32")
        documents = [[Document(id=d, content=texts[d]) for d in run[q]] for q in query_ids]
        ranked = ranker.run_batch(queries=[dataset.queries[q] for q in query_ids], documents=documents, top_k=10_000)
        scores = {
            q: {d.id: float(d.score) for d in docs} for q, docs in zip(query_ids, ranked["documents"], strict=True)
        }
    print(f"  scored {name} with {model.name} in {(time.monotonic() - started) / 60:.1f} min", flush=True)
    path.write_text(json.dumps(scores))
    return scores


def _tune_fusion(model: Path, directory: Path, split: str, count: int, cache: Path) -> dict:
    from crossencoder_haystack.evaluation.fusion_tuning import tune_fusion_weight

    dataset = _load(directory, split)
    query_ids = sorted(dataset.judged_query_ids())
    random.Random(13).shuffle(query_ids)
    query_ids = query_ids[:count]
    run = _bm25(dataset, query_ids, 100, cache / f"bm25-{directory.name}-{split}-tune{count}.json")
    scores = _scores(model, f"{directory.name}-{split}-tune", dataset, run, cache, reference=False)
    weight, per_weight = tune_fusion_weight(scores, run, dataset.qrels)
    print(f"  fusion weight tuned on {len(query_ids)} {directory.name} {split} queries: {weight} {per_weight}")
    return {"weight": weight, "per_weight": {str(k): round(v, 4) for k, v in per_weight.items()}}


def _evaluate_collection(name, directory, split, depth, models, cache, report) -> dict:
    from crossencoder_haystack.evaluation.fusion_tuning import fused_ranking
    from crossencoder_haystack.evaluation.metrics import compare_rankings, evaluate_rankings
    from haystack_integrations.components.rankers.crossencoder.fusion import read_fusion_defaults

    dataset = _load(directory, split)
    query_ids = dataset.judged_query_ids()
    run = _bm25(dataset, query_ids, depth, cache / f"bm25-{name}-{split}-{depth}.json")
    print(f"\n== {name}: {len(query_ids)} queries, BM25 top {depth}", flush=True)
    rows: dict[str, dict] = {}
    rankings: dict[str, dict[str, list[str]]] = {}

    def add(label: str, ranking: dict[str, list[str]], k: int) -> None:
        metrics = evaluate_rankings(dataset.qrels, query_ids, ranking, ["ndcg@10", "mrr@10", f"recall@{k}"])
        rows[label] = {metric: round(value, 4) for metric, value in metrics.items()} | {"k": k}
        rankings[label] = ranking

    def cut(query_id: str, k: int) -> list[str]:
        return list(run[query_id])[:k]

    for k in DEPTHS:
        if k <= depth:
            add(f"BM25 (K={k})", {q: cut(q, k) for q in query_ids}, k)
    for label, model in models.items():
        reference = label == "bundled bi-encoder"
        scores = _scores(model, name, dataset, run, cache, reference)
        k = 100
        ranking = {q: sorted(cut(q, k), key=lambda d, q=q: -scores[q][d]) for q in query_ids}
        add(f"{label} (K={k})", ranking, k)
        if label.startswith("fine-tuned"):
            tuned = report["models"][label].get("tuned_fusion", {}).get("weight")
            declared = read_fusion_defaults(model).get("first_stage_weight")
            for weight_label, weight in (("tuned here", tuned), ("declared by the model", declared)):
                if weight is None:
                    continue
                for k in DEPTHS:
                    if k > depth:
                        continue
                    fused = {q: [d for d, _ in fused_ranking(cut(q, k), scores[q], run[q], weight)] for q in query_ids}
                    add(f"{label} + BM25, α={weight} {weight_label} (K={k})", fused, k)
    comparison = compare_rankings(
        dataset.qrels, query_ids, {label: rankings[label] for label in rows}, metrics=["ndcg@10"]
    )
    baseline = "BM25 (K=100)"
    for label, row in rows.items():
        pair = f"{baseline}|{label}" if f"{baseline}|{label}" in comparison.p_values else f"{label}|{baseline}"
        row["p_vs_bm25"] = round(comparison.p_values.get(pair, {}).get("ndcg@10", 1.0), 4)
        print(f"  {label:70s} " + "  ".join(f"{m} {v:.4f}" for m, v in row.items() if m.startswith(("n", "m", "r"))))
        print(f"  {'':70s} p vs BM25@100 {row['p_vs_bm25']}", flush=True)
    return rows


if __name__ == "__main__":
    main()

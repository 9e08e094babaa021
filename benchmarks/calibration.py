"""Scores that mean something (issue #18): ECE and Brier score of the raw sigmoid against the calibrated mapping.

Not a test. For the package's fine-tuned models, fit the logit -> P(relevant) mapping on training queries and
measure it on held-out queries the fit never saw:

- SciFact (BEIR, `--data-root`/scifact): fit on the pairs of BM25's top 100 for every train query, measure on BM25's
  top 100 for every test query. The model is the bi-encoder reranker `benchmarks/generalization.py` fine-tunes on
  SciFact train (`benchmarks/.cache/generalization/scifact-tuned`); its BM25 runs and scores are cached there and
  reused (same files). SciFact judges only relevant documents: unjudged candidates count as not relevant.
- HR candidate search (the demo's set): fit on the 18 train queries x 90 CVs, measure on the 14 held-out queries x 90
  CVs (every pair is judged), with the demo's starter model (`--hr-model`, else the cached starter, built on first
  use: ~5-8 minutes). CVs are scored as the demo scores them: PassageSplitter passages, the parent's logit is its best
  passage's (`aggregation="max"`), and that aggregated logit is calibrated.

A pair is relevant when its grade is >= 1. For each method (`auto`, the one `rerank calibrate` picks by
cross-validated Brier score over train queries, and both `platt` and `isotonic`) it reports ECE (10 equal-width bins)
and Brier score on the held-out pairs next to the raw sigmoid of the logit, the share of relevant pairs among those
scored >= 0.5 (precision) and the share of relevant pairs scored >= 0.5 (recall), and nDCG@10 of the raw and the
calibrated ranking (the mapping is strictly increasing: they must be equal). Target: calibrated ECE <= 0.05. A check
through `CrossEncoderRanker` (calibration.json in a copy of the model directory, `activation` left at its default)
confirms on a few held-out queries that the ranker returns exactly these probabilities in the same order.

    nice -n 19 python benchmarks/calibration.py [--data-root ../shared/data] [--collections scifact,hr]
        [--hr-model DIR] [--max-queries N: a quick check on the first N SciFact queries]

Writes benchmarks/results/calibration.md and calibration.json beside it; the CPU, its flags and the library versions
head the output.
"""

import argparse
import json
import shutil
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(HERE))
import generalization  # noqa: E402  (its cached BM25 runs and scores are reused, same files)

CACHE = HERE / ".cache" / "generalization"
SCIFACT_MODEL = CACHE / "scifact-tuned"
DEPTH = 100
METHODS = ("auto", "platt", "isotonic")
TARGET_ECE = 0.05
RANKER_CHECK_QUERIES = 4


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-root", default=str(REPO.parent / "shared" / "data"))
    parser.add_argument("--scifact-model", default=str(SCIFACT_MODEL))
    parser.add_argument("--hr-model", help="the HR reranker directory (default: the demo's cached starter models)")
    parser.add_argument(
        "--hr-bases",
        default="multilingual,minilm",
        help="without --hr-model, the demo's starter model of each of these bases (multilingual: the demo's default)",
    )
    parser.add_argument("--collections", default="scifact,hr", help="which of scifact and hr to measure")
    parser.add_argument(
        "--max-queries", type=int, help="a quick check of the script: the first N SciFact train and test queries only"
    )
    parser.add_argument("--output", default=str(HERE / "results" / "calibration.md"))
    args = parser.parse_args()
    started = time.monotonic()
    environment = _environment()
    print(_environment_line(environment), flush=True)

    report: dict[str, Any] = {"environment": environment, "collections": {}}
    collections = args.collections.split(",")
    if "scifact" in collections:
        report["collections"]["SciFact"] = _scifact(
            Path(args.data_root) / "scifact", Path(args.scifact_model), args.max_queries
        )
    if "hr" in collections:
        if args.hr_model:
            report["collections"]["HR candidate search"] = _hr(Path(args.hr_model))
        for base in [] if args.hr_model else args.hr_bases.split(","):
            report["collections"][f"HR candidate search ({base} starter)"] = _hr(_starter_model(base))
    report["minutes"] = round((time.monotonic() - started) / 60, 1)
    output = Path(args.output)
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(_markdown(report), encoding="utf-8")
    output.with_suffix(".json").write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    print(f"\nWrote {output} and {output.with_suffix('.json')} ({report['minutes']} min)")


def _environment() -> dict[str, Any]:
    from crossencoder_haystack.evaluation.environment import describe_environment
    from haystack_integrations.components.rankers.crossencoder._engine.precision import REPORTED_CPU_FLAGS, cpu_flags

    environment = describe_environment()
    environment["cpu_flags"] = sorted(set(REPORTED_CPU_FLAGS) & cpu_flags())
    return environment


def _environment_line(environment: dict[str, Any]) -> str:
    flags = ", ".join(environment["cpu_flags"]) or "none of the reported ones"
    return (
        f"CPU: {environment['cpu']} ({environment['cpu_count']} cores, torch {environment['torch_threads']} threads); "
        f"flags: {flags}; Python {environment['python']}; "
        + ", ".join(f"{name} {version}" for name, version in environment["versions"].items())
    )


# --- SciFact ----------------------------------------------------------------------------------------------------


def _scifact(directory: Path, model: Path, max_queries: int | None) -> dict[str, Any]:
    from crossencoder_haystack.data import document_text, load_beir

    if not (model / "modules.json").is_file():
        msg = f"{model} is not there: run `python benchmarks/generalization.py --domains scifact` first."
        raise SystemExit(msg)
    print(f"\n== SciFact: fit on train, measure on test, BM25 top {DEPTH}, model {model}", flush=True)
    splits = {}
    for split in ("train", "test"):
        dataset = load_beir(directory, split)
        query_ids = dataset.judged_query_ids()
        if split == "train":
            query_ids = query_ids[:max_queries]
        run, name = _bm25_run(dataset, split, query_ids, max_queries)
        scores = generalization._scores(model, name, dataset, run, CACHE, reference=False)
        query_ids = query_ids[:max_queries]  # test: scored all (cached by generalization.py), measured on these
        run = {query_id: dict(list(run[query_id].items())[:DEPTH]) for query_id in query_ids}
        splits[split] = _Split.of(dataset, query_ids, run, scores, document_text)
        print(f"  {split}: {len(query_ids)} queries, {len(splits[split].labels)} pairs", flush=True)
    return _measure("SciFact", model, splits["train"], splits["test"])


def _bm25_run(
    dataset: Any, split: str, query_ids: list[str], max_queries: int | None
) -> tuple[dict[str, dict[str, float]], str]:
    """
    BM25's candidates per query and the name their scores are cached under: for test, generalization.py's run of
    depth 150 and its scores (the caller keeps the top 100); for train, a run of depth 100.
    """
    if split == "test":
        return generalization._bm25(dataset, query_ids, 150, CACHE / "bm25-scifact-test-150.json"), "scifact"
    first = f"-first{max_queries}" if max_queries else ""
    cache_file = CACHE / f"bm25-scifact-train-{DEPTH}{first}.json"
    return generalization._bm25(dataset, query_ids, DEPTH, cache_file), f"scifact-train{first}"


# --- HR ---------------------------------------------------------------------------------------------------------


def _hr(directory: Path) -> dict[str, Any]:
    from crossencoder_haystack.demo.dataset import cv_documents, load_hr_dataset

    print(f"\n== HR candidate search: fit on train, measure on test, every CV, model {directory}", flush=True)
    splits = {}
    for split in ("train", "test"):
        dataset = load_hr_dataset(split)
        query_ids = dataset.judged_query_ids()
        documents = cv_documents(dataset)
        scores = _hr_scores(directory, dataset, query_ids, documents)
        run = {query_id: {doc.id: 0.0 for doc in documents} for query_id in query_ids}  # every CV, corpus order
        splits[split] = _Split.of(dataset, query_ids, run, scores, lambda entry: entry["text"])
        print(f"  {split}: {len(query_ids)} queries, {len(splits[split].labels)} pairs", flush=True)
    return _measure("HR", directory, splits["train"], splits["test"], passages=True)


def _starter_model(base: str) -> Path:
    from crossencoder_haystack.demo.starter_model import (
        build_starter_model,
        is_starter_model,
        starter_model_dir,
        starter_recipe,
    )

    directory = starter_model_dir(base=base)
    if not is_starter_model(directory):
        print(f"  building the demo's {base} starter model into {directory} (once)", flush=True)
        base_model = None
        if base == "multilingual":  # the demo's default: fine-tuned from the converted multilingual-e5-small
            from crossencoder_haystack.multilingual import convert_multilingual_model

            base_model = convert_multilingual_model().path
        build_starter_model(directory, base_model=base_model, recipe=starter_recipe(base))
    return directory


def _hr_ranker(model: Path, **settings: Any) -> tuple[Any, Any]:
    """The demo's PassageSplitter and a ranker over its passages (max aggregation), fp32, no fusion."""
    from crossencoder_haystack.demo.starter_model import is_starter_model, ranking_settings
    from haystack_integrations.components.preprocessors.crossencoder import PassageSplitter
    from haystack_integrations.components.rankers.crossencoder import CrossEncoderRanker

    ranking = ranking_settings(model) if is_starter_model(model) else {}
    splitter = PassageSplitter(
        tokenizer=str(model), max_length=ranking.get("max_length"), overlap_tokens=ranking.get("overlap_tokens", 32)
    )
    splitter.warm_up()
    ranker = CrossEncoderRanker(
        model=str(model), max_length=ranking.get("max_length"), precision="fp32", first_stage_weight=0.0, **settings
    )
    return splitter, ranker


def _hr_scores(model: Path, dataset: Any, query_ids: list[str], documents: list[Any]) -> dict[str, dict[str, float]]:
    splitter, ranker = _hr_ranker(model, activation="identity")
    passages = splitter.run(documents=documents)["documents"]
    queries = [dataset.queries[query_id] for query_id in query_ids]
    ranked = ranker.run_batch(queries=queries, documents=[passages] * len(queries), top_k=len(documents))
    return {
        query_id: {document.id: float(document.score) for document in result}
        for query_id, result in zip(query_ids, ranked["documents"], strict=True)
    }


# --- measuring --------------------------------------------------------------------------------------------------


class _Split:
    """One split's candidate pairs: query ids, document ids, logits, 0/1 labels, the run and the qrels."""

    def __init__(self, query_ids, doc_ids, logits, labels, run, dataset, text) -> None:
        self.query_ids, self.doc_ids = query_ids, doc_ids
        self.logits, self.labels = np.asarray(logits, dtype=np.float64), np.asarray(labels, dtype=np.int64)
        self.run, self.qrels, self.queries = run, dataset.qrels, dataset.queries
        self.text = lambda doc_id: text(dataset.corpus[doc_id])  # what the ranker reads of a document

    @classmethod
    def of(cls, dataset: Any, query_ids: list[str], run: dict, scores: dict, text: Any) -> "_Split":
        rows = [
            (query_id, doc_id, scores[query_id][doc_id], int(dataset.qrels.get(query_id, {}).get(doc_id, 0) >= 1))
            for query_id in query_ids
            for doc_id in run[query_id]
        ]
        columns = list(zip(*rows, strict=True))
        return cls(list(columns[0]), list(columns[1]), columns[2], columns[3], run, dataset, text)

    def ranking(self, scores: np.ndarray) -> dict[str, list[str]]:
        """Each query's candidates by score, ties by first-stage rank (as `CrossEncoderRanker` breaks them)."""
        by_query: dict[str, list[tuple[float, int, str]]] = {}
        for position, (query_id, doc_id, score) in enumerate(zip(self.query_ids, self.doc_ids, scores, strict=True)):
            by_query.setdefault(query_id, []).append((-float(score), position, doc_id))
        return {query_id: [doc_id for *_, doc_id in sorted(items)] for query_id, items in by_query.items()}


def _measure(name: str, model: Path, fit: _Split, test: _Split, passages: bool = False) -> dict[str, Any]:
    from crossencoder_haystack.calibration import build_calibration, calibration_metrics, fit_mapping
    from crossencoder_haystack.evaluation.metrics import evaluate_rankings

    def ndcg(scores: np.ndarray) -> float:
        query_ids = list(dict.fromkeys(test.query_ids))
        return round(evaluate_rankings(test.qrels, query_ids, test.ranking(scores), ["ndcg@10"])["ndcg@10"], 4)

    sigmoid = 1.0 / (1.0 + np.exp(-test.logits))
    rows = {"raw sigmoid": {**calibration_metrics(sigmoid, test.labels).to_dict(), "ndcg@10": ndcg(test.logits)}}
    calibrations = {}
    for method in METHODS:
        started = time.monotonic()
        fitted = fit_mapping(fit.logits, fit.labels, method, groups=fit.query_ids)
        calibration = build_calibration(fitted, fit.logits, (0.0,) * 4)
        probabilities = calibration.probabilities(test.logits)
        label = f"calibrated, {method}" + (f" (chose {fitted.method})" if method == "auto" else "")
        rows[label] = {
            **calibration_metrics(probabilities, test.labels).to_dict(),
            "ndcg@10": ndcg(probabilities),
            "fit_seconds": round(time.monotonic() - started, 1),
        }
        calibrations[method] = (fitted, calibration)
        print(f"  {label:40s} " + _row_text(rows[label]), flush=True)
    print(f"  {'raw sigmoid':40s} " + _row_text(rows["raw sigmoid"]), flush=True)
    check = _ranker_check(model, calibrations["auto"][0], fit, test, passages)
    print(f"  ranker check: {check}", flush=True)
    auto = next(row for label, row in rows.items() if label.startswith("calibrated, auto"))
    return {
        "model": str(model),
        "fit": {"queries": len(set(fit.query_ids)), "pairs": len(fit.labels), "relevant": int(fit.labels.sum())},
        "test": {"queries": len(set(test.query_ids)), "pairs": len(test.labels), "relevant": int(test.labels.sum())},
        "rows": rows,
        "target_met": auto["ece"] <= TARGET_ECE,
        "ranker_check": check,
        "passages": passages,
        "name": name,
    }


def _ranker_check(model: Path, fitted: Any, fit: _Split, test: _Split, passages: bool) -> dict[str, Any]:
    """The `auto` mapping written into a copy of the model directory, run through `CrossEncoderRanker` defaults."""
    from haystack import Document

    from crossencoder_haystack.calibration import build_calibration
    from crossencoder_haystack.calibration.model_calibration import score_pairs, scoring_ranker
    from haystack_integrations.components.rankers.crossencoder import CrossEncoderRanker
    from haystack_integrations.components.rankers.crossencoder.calibration import read_calibration, write_calibration

    copy = CACHE / "calibration" / f"{model.name}-calibrated"
    _link_copy(model, copy)
    (probe,) = score_pairs(scoring_ranker(copy), [])
    write_calibration(copy, build_calibration(fitted, fit.logits, probe))
    calibration = read_calibration(copy)
    query_ids = list(dict.fromkeys(test.query_ids))[:RANKER_CHECK_QUERIES]
    if passages:
        splitter, ranker = _hr_ranker(copy)
    else:
        splitter, ranker = None, CrossEncoderRanker(model=str(copy), precision="fp32", first_stage_weight=0.0)
    differences, same_order = [], True
    for query_id in query_ids:
        index = [i for i, q in enumerate(test.query_ids) if q == query_id]
        expected = calibration.probabilities(test.logits[index])
        documents = [Document(id=test.doc_ids[i], content=test.text(test.doc_ids[i])) for i in index]
        if splitter is not None:
            documents = splitter.run(documents=documents)["documents"]
        ranked = ranker.run(query=test.queries[query_id], documents=documents, top_k=len(index))["documents"]
        score_of = {document.id: document.score for document in ranked}
        differences.append(float(np.max(np.abs(np.array([score_of[test.doc_ids[i]] for i in index]) - expected))))
        expected_order = [test.doc_ids[index[j]] for j in sorted(range(len(index)), key=lambda j: (-expected[j], j))]
        same_order &= [document.id for document in ranked] == expected_order
    return {"queries": len(query_ids), "max_abs_difference": max(differences), "same_order": same_order}


def _link_copy(model: Path, copy: Path) -> None:
    """A copy of a model directory whose large files (weights) are symbolic links."""
    shutil.rmtree(copy, ignore_errors=True)
    for path in model.rglob("*"):
        target = copy / path.relative_to(model)
        if path.is_dir() or path.name == "calibration.json":
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        if path.stat().st_size > 1_000_000:
            target.symlink_to(path.resolve())
        else:
            shutil.copyfile(path, target)


def _row_text(row: dict[str, Any]) -> str:
    precision = "-" if row["precision"] is None else f"{row['precision']:.3f}"
    return (
        f"ECE {row['ece']:.4f}  Brier {row['brier']:.4f}  precision>=0.5 {precision}  "
        f"recall>=0.5 {row['recall']:.3f}  nDCG@10 {row['ndcg@10']:.4f}"
    )


def _markdown(report: dict[str, Any]) -> str:
    environment = report["environment"]
    lines = [
        "# Calibrated probabilities of relevance (issue #18)",
        "",
        "Measured with `nice -n 19 python benchmarks/calibration.py` "
        f"({report['minutes']} min). {_environment_line(environment)}.",
        "",
        "ECE: 10 equal-width bins over [0, 1], weighted by the share of pairs in each bin. Precision / recall: the "
        "share of relevant pairs among those scored >= 0.5, and the share of relevant pairs scored >= 0.5. "
        "`auto` is what `rerank calibrate` picks (lower cross-validated Brier score over train queries). A pair is "
        f"relevant when its grade is >= 1; unjudged candidates count as not relevant. Target: calibrated ECE <= "
        f"{TARGET_ECE}.",
    ]
    for name, result in report["collections"].items():
        fit, test = result["fit"], result["test"]
        check = result["ranker_check"]
        lines += [
            "",
            f"## {name}",
            "",
            f"Model `{Path(result['model']).name}`. Fit on {fit['queries']} train queries ({fit['pairs']} pairs, "
            f"{fit['relevant']} relevant); measured on {test['queries']} held-out queries ({test['pairs']} pairs, "
            f"{test['relevant']} relevant)"
            + (
                ", CVs scored by their best passage (the aggregated logit is calibrated)."
                if result["passages"]
                else "."
            ),
            "",
            "| scores | ECE | Brier | precision ≥ 0.5 | recall ≥ 0.5 | nDCG@10 |",
            "|---|---|---|---|---|---|",
        ]
        for label, row in result["rows"].items():
            precision = "–" if row["precision"] is None else f"{row['precision']:.3f}"
            lines.append(
                f"| {label} | {row['ece']:.4f} | {row['brier']:.4f} | {precision} | {row['recall']:.3f} "
                f"| {row['ndcg@10']:.4f} |"
            )
        lines += [
            "",
            f"Target (calibrated ECE ≤ {TARGET_ECE}, `auto`): **{'met' if result['target_met'] else 'not met'}**. "
            f"Through `CrossEncoderRanker` (calibration.json in a copy of the model, default activation) on "
            f"{check['queries']} held-out queries: largest difference to the mapping "
            f"{check['max_abs_difference']:.1e}, "
            f"same order: {'yes' if check['same_order'] else 'NO'}.",
        ]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()

"""`calibrate(...)`: fit a model's logit -> P(relevant) mapping on judged pairs and store it in the model directory.

Steps: read judged pairs (`pairs.py`), keep a seeded share of the queries apart, score every pair with
`CrossEncoderRanker(activation="identity")` (the raw logit; in passage mode the parent's aggregated logit), fit the
mapping on the other queries (`fitting.py`), measure ECE and Brier score of the raw sigmoid and of the mapping on
the held-out queries (`metrics.py`), then write `calibration.json` into the model directory, a "Calibration"
section into its model card (README.md) and a reliability diagram (PNG).
"""

from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from crossencoder_haystack.__about__ import __version__
from crossencoder_haystack.calibration.fitting import FittedMapping, build_calibration, fit_mapping
from crossencoder_haystack.calibration.metrics import CalibrationMetrics, calibration_metrics, plot_reliability
from crossencoder_haystack.calibration.model_card import write_calibration_card
from crossencoder_haystack.calibration.pairs import JudgedPairs, describe, load_judged_pairs
from haystack_integrations.components.rankers.crossencoder.calibration import write_calibration

RELIABILITY_PLOT = "calibration_reliability.png"
_QUERIES_PER_CALL = 16


@dataclass
class CalibrationResult:
    """What `calibrate` fitted and measured: the method, the held-out metrics before and after, the files."""

    model: str
    method: str
    fitted_on: dict[str, Any]
    held_out: dict[str, Any]
    before: CalibrationMetrics
    after: CalibrationMetrics
    cross_validated_brier: dict[str, float]
    calibration_file: Path
    plot: Path | None


def calibrate(
    model: str | Path,
    data: str | Path | JudgedPairs,
    *,
    method: str = "auto",
    output: str | Path | None = None,
    corpus: str | Path | None = None,
    split: str = "test",
    relevant_from: float | None = None,
    held_out_fraction: float = 0.3,
    held_out_data: str | Path | JudgedPairs | None = None,
    seed: int = 42,
    ranker_options: dict[str, Any] | None = None,
    show_progress: bool = True,
) -> CalibrationResult:
    """
    Fit and store a calibration for a local model directory.

    Usage example:
    ```python
    from crossencoder_haystack.calibration import calibrate

    result = calibrate("models/my-reranker", "judged.jsonl")
    print(result.before.ece, "->", result.after.ece)
    # then: CrossEncoderRanker(model="models/my-reranker") returns P(relevant) (activation="calibrated")
    ```

    :param model: The model directory; `calibration.json` is written into it.
    :param data: Judged pairs: a training data file (pairs, lists, triplets), a BEIR directory, a judged-rows file
        with `corpus`, or loaded `JudgedPairs`.
    :param method: `"platt"`, `"isotonic"` or `"auto"` (the lower cross-validated Brier score).
    :param output: Where the reliability diagram goes; None: the model directory.
    :param corpus: The corpus of a judged-rows file.
    :param split: The qrels split of a BEIR directory.
    :param relevant_from: The lowest grade that counts as relevant (default 1, or 0.5 for fractional labels).
    :param held_out_fraction: Share of the queries kept apart to measure on, never fitted on.
    :param held_out_data: Separate judged pairs to measure on instead (then all of `data` is fitted on).
    :param seed: Seeds the held-out split.
    :param ranker_options: `CrossEncoderRanker` init parameters for scoring (e.g. `max_length`, `backend`,
        `split_long_documents`, `aggregation`); `precision` defaults to `"fp32"`, the reference.
    :param show_progress: Show a progress bar while scoring and print the summary.
    :raises ValueError: If the model is not a local directory, the data cannot be used or the fit fails.
    """
    directory = _model_directory(model)
    fitting, held_out = _fitting_and_held_out(
        data, held_out_data, corpus, split, relevant_from, held_out_fraction=held_out_fraction, seed=seed
    )
    ranker = scoring_ranker(directory, ranker_options)
    probe, fit_logits, held_out_logits = score_pairs(ranker, [fitting, held_out], show_progress)
    fitted = fit_mapping(fit_logits, fitting.labels, method, groups=fitting.queries)
    calibration = build_calibration(fitted, fit_logits, probe)
    calibrated = calibration.probabilities(held_out_logits)
    before = calibration_metrics(_sigmoid(held_out_logits), held_out.labels)
    after = calibration_metrics(calibrated, held_out.labels)
    records = _records(fitted, fitting, held_out, ranker)
    records["held_out"].update(sigmoid=before.to_dict(), calibrated=after.to_dict())
    calibration = replace(calibration, records=records)

    path = write_calibration(directory, calibration)
    plot = _plot(held_out_logits, calibrated, held_out, output or directory, fitted)
    result = CalibrationResult(
        model=str(directory),
        method=fitted.method,
        fitted_on=records["fitted_on"],
        held_out=records["held_out"],
        before=before,
        after=after,
        cross_validated_brier=fitted.cross_validated_brier,
        calibration_file=path,
        plot=plot,
    )
    write_calibration_card(directory, result)
    if show_progress:
        print_summary(result)
    return result


def _model_directory(model: str | Path) -> Path:
    directory = Path(model).expanduser()
    if not directory.is_dir():
        msg = f"model must be a local model directory (calibration.json is written into it), got {str(model)!r}."
        raise NotADirectoryError(msg)
    return directory


def _fitting_and_held_out(
    data: str | Path | JudgedPairs,
    held_out_data: str | Path | JudgedPairs | None,
    corpus: str | Path | None,
    split: str,
    relevant_from: float | None,
    *,
    held_out_fraction: float,
    seed: int,
) -> tuple[JudgedPairs, JudgedPairs]:
    """The pairs to fit on and the pairs to measure on (a seeded share of `data`'s queries, or `held_out_data`)."""
    pairs = (
        data
        if isinstance(data, JudgedPairs)
        else load_judged_pairs(data, corpus=corpus, split=split, relevant_from=relevant_from)
    )
    if held_out_data is None:
        fitting, held_out = pairs.split_by_query(held_out_fraction, seed)
    else:
        fitting = pairs
        held_out = (
            held_out_data
            if isinstance(held_out_data, JudgedPairs)
            else load_judged_pairs(held_out_data, corpus=corpus, split=split, relevant_from=pairs.relevant_from)
        )
    _check_both_classes(fitting, "fitting")
    _check_both_classes(held_out, "held-out")
    return fitting, held_out


def scoring_ranker(directory: Path, options: dict[str, Any] | None = None) -> Any:
    """A `CrossEncoderRanker` that returns raw logits for `directory` (fp32 unless `options` say otherwise)."""
    from haystack_integrations.components.rankers.crossencoder import CrossEncoderRanker

    init = {"precision": "fp32", **{key: value for key, value in (options or {}).items() if value is not None}}
    ranker = CrossEncoderRanker(model=str(directory), activation="identity", first_stage_weight=0.0, **init)
    ranker.warm_up()
    return ranker


def score_pairs(ranker: Any, pair_sets: Sequence[JudgedPairs], show_progress: bool = False) -> tuple[list[float], ...]:
    """
    The probe logits, then one logit list per set of pairs (in pair order), scored query by query with `ranker`
    (which must return raw logits, e.g. `scoring_ranker`).
    """
    from haystack_integrations.components.rankers.crossencoder.calibration import PROBE_QUERY, PROBE_TEXTS

    requests: list[tuple[str, list[tuple[int, int, str]]]] = [
        (PROBE_QUERY, [(-1, i, t) for i, t in enumerate(PROBE_TEXTS)])
    ]
    grouped: dict[str, list[tuple[int, int, str]]] = {}
    for set_index, pairs in enumerate(pair_sets):
        for pair_index, (query, text) in enumerate(zip(pairs.queries, pairs.texts, strict=True)):
            grouped.setdefault(query, []).append((set_index, pair_index, text))
    requests += list(grouped.items())
    probe = [0.0] * len(PROBE_TEXTS)
    logits = [[0.0] * len(pairs) for pairs in pair_sets]
    for start in _progress(range(0, len(requests), _QUERIES_PER_CALL), show_progress, len(requests)):
        chunk = requests[start : start + _QUERIES_PER_CALL]
        ranked = _rank_chunk(ranker, chunk)
        for (_, items), documents in zip(chunk, ranked, strict=True):
            for document in documents:
                set_index, pair_index, _ = items[int(document.id)]
                (probe if set_index < 0 else logits[set_index])[pair_index] = float(document.score)
    return (probe, *logits)


def _rank_chunk(ranker: Any, chunk: list[tuple[str, list[tuple[int, int, str]]]]) -> list[list[Any]]:
    from haystack import Document

    documents = [[Document(id=str(i), content=text) for i, (_, _, text) in enumerate(items)] for _, items in chunk]
    result = ranker.run_batch(
        queries=[query for query, _ in chunk], documents=documents, top_k=max(len(items) for _, items in chunk)
    )["documents"]
    for (query, items), ranked in zip(chunk, result, strict=True):
        if len(ranked) != len(items) or any(document.score is None for document in ranked):
            msg = f"Some documents of the query {query!r} have no text to score; remove empty documents."
            raise ValueError(msg)
    return result


def _progress(steps: range, show: bool, total: int) -> Any:
    if not show:
        return steps
    from rich.progress import track

    return track(steps, description=f"Scoring {total - 1} queries' pairs", transient=True)


def _sigmoid(logits: Sequence[float]) -> np.ndarray:
    return np.exp(-np.logaddexp(0.0, -np.asarray(logits, dtype=np.float64)))


def _check_both_classes(pairs: JudgedPairs, name: str) -> None:
    if len(np.unique(pairs.labels)) < 2:
        msg = (
            f"The {name} pairs ({pairs.source}) are all of one class; calibration needs relevant and non-relevant "
            "pairs in both parts. Add judged queries, or change held_out_fraction (--held-out-fraction) or the seed."
        )
        raise ValueError(msg)


def _records(fitted: FittedMapping, fitting: JudgedPairs, held_out: JudgedPairs, ranker: Any) -> dict[str, Any]:
    settings = ranker.to_dict()["init_parameters"]
    scoring = {
        key: settings[key] for key in ("max_length", "split_long_documents", "aggregation", "backend", "precision")
    }
    return {
        "created_by": f"crossencoder-haystack {__version__}",
        "fitted_on": {**describe(fitting), "scoring": scoring, "cross_validated_brier": fitted.cross_validated_brier},
        "held_out": describe(held_out),
    }


def _plot(
    logits: Sequence[float], calibrated: np.ndarray, held_out: JudgedPairs, output: str | Path, fitted: FittedMapping
) -> Path | None:
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        return None
    curves = {
        "raw sigmoid": (_sigmoid(logits), held_out.labels),
        f"calibrated ({fitted.method})": (calibrated, held_out.labels),
    }
    title = f"Reliability on {held_out.query_count} held-out queries ({len(held_out)} pairs)"
    return plot_reliability(curves, Path(output).expanduser() / RELIABILITY_PLOT, title)


def print_summary(result: CalibrationResult, console: Any = None) -> None:
    """A table of ECE, Brier score, precision and recall above 0.5 before and after, and where the files went."""
    from rich.console import Console
    from rich.table import Table

    console = console or Console()
    held_out = result.held_out
    table = Table(
        title=f"Calibration ({result.method}) on {held_out['queries']} held-out queries, {held_out['pairs']} pairs"
    )
    table.add_column("")
    for header in ("ECE", "Brier", "precision > 0.5", "recall > 0.5"):
        table.add_column(header, justify="right")
    for name, metrics in (("raw sigmoid", result.before), ("calibrated", result.after)):
        precision = "–" if metrics.precision is None else f"{metrics.precision:.3f}"
        table.add_row(name, f"{metrics.ece:.4f}", f"{metrics.brier:.4f}", precision, f"{metrics.recall:.3f}")
    console.print(table)
    if result.cross_validated_brier:
        scores = ", ".join(f"{name} {value:.4f}" for name, value in sorted(result.cross_validated_brier.items()))
        console.print(f"Cross-validated Brier score on the fitting queries: {scores}.")
    console.print(f"Wrote {result.calibration_file}" + (f" and {result.plot}" if result.plot else ""))

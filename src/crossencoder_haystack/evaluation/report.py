"""Reporting an evaluation: a rich table, results.json, one TREC run file per row and a quality-vs-latency plot."""

import json
import re
from pathlib import Path
from typing import Any

from crossencoder_haystack.data import write_trec_run
from crossencoder_haystack.evaluation.results import EvaluationResult

RESULTS_FILE = "results.json"
PLOT_FILE = "quality_vs_latency.png"
RUNS_DIR = "runs"
# Rich wraps to 80 columns when stdout is not a terminal, which breaks the table into unreadable cells.
_REDIRECTED_WIDTH = 132

_SUPERSCRIPTS = dict(zip("abcdefghijklmnopqrstuvwxyz", "ᵃᵇᶜᵈᵉᶠᵍʰⁱʲᵏˡᵐⁿᵒᵖqʳˢᵗᵘᵛʷˣʸᶻ", strict=True))
_STAT_TEST_NAMES = {"fisher": "Fisher's randomization test", "student": "two-sided paired t-test"}


def _superscript(letters: str) -> str:
    return "".join(_SUPERSCRIPTS.get(letter, letter) for letter in letters)


def _number(value: float | None, digits: int = 3) -> str:
    return "–" if value is None else f"{value:.{digits}f}"


def render_table(result: EvaluationResult) -> Any:
    """
    The results as a `rich.table.Table`: one row per ranker and K plus the first stage's reference row, and with
    fusion weights an α column and one row per ranker, K and α.

    Superscript letters after a metric name the rows this row is significantly better than.
    """
    from rich.table import Table

    queries = result.queries
    title = (
        f"{result.dataset['name']} ({result.dataset['split']}): first stage {result.first_stage['name']}, "
        f"{queries['evaluated']} queries"
    )
    if not result.complete:
        title = f"PARTIAL, interrupted after {queries['evaluated']} of {queries['planned']} queries. {title}"
    table = Table(title=title, caption=_caption(result), caption_justify="left")
    fused = _has_fused_rows(result)
    table.add_column("#")
    table.add_column("ranker", no_wrap=True)
    table.add_column("K", justify="right")
    if fused:
        table.add_column("α²", justify="right")
    calibrated = _has_calibration_metrics(result)
    for header in ("nDCG@10", "MRR@10", "MAP@K", "Recall@K¹", "p50 ms", "p95 ms", "docs/s"):
        table.add_column(header, justify="right")
    for header in ("ECE³", "Brier³") if calibrated else ():
        table.add_column(header, justify="right")
    for row in result.rows:
        latency = row.latency
        alpha = [] if not fused else ["–" if row.fusion_weight is None else f"{row.fusion_weight:g}"]
        table.add_row(
            row.letter,
            f"{row.name} (first stage)" if row.is_first_stage else row.name,
            str(row.k),
            *alpha,
            *(f"{row.metrics[metric]:.3f}{_superscript(row.significance.get(metric, ''))}" for metric in _METRICS),
            f"{row.recall:.3f}",
            _number(None if latency is None else latency.p50_ms, 1),
            _number(None if latency is None else latency.p95_ms, 1),
            _number(None if latency is None else latency.docs_per_second, 0),
            *([_number(row.metrics.get("ece")), _number(row.metrics.get("brier"))] if calibrated else []),
            end_section=row.is_first_stage,
        )
    return table


_METRICS = ("ndcg@10", "mrr@10", "map")


def _has_calibration_metrics(result: EvaluationResult) -> bool:
    return any("ece" in row.metrics for row in result.rows)


def _has_fused_rows(result: EvaluationResult) -> bool:
    return any(row.fusion_weight is not None for row in result.rows)


def _caption(result: EvaluationResult) -> str:
    comparison, queries = result.comparison, result.queries
    test = _STAT_TEST_NAMES.get(comparison.stat_test, comparison.stat_test)
    seed = f", seed {result.settings['seed']}" if comparison.stat_test == "fisher" else ""
    lines = [
        f"ᵃᵇ…: significantly better than row a, b, … ({test}, p < {comparison.max_p}{seed}, "
        f"paired over {queries['evaluated']} queries).",
        "¹ Recall@K of the first stage: the ceiling for any ranker at that K. MAP over the K ranked documents.",
        f"Latency: ranker time per query over {queries['latency_sample']} sampled queries at each K; "
        "first-stage row: retrieval time at the largest K."
        if queries["latency_sample"]
        else "Latency: rankers not timed (latency_queries=0); first-stage row: retrieval time at the largest K.",
    ]
    if _has_fused_rows(result):
        first_stage = result.rows[0].letter
        lines.append(
            f"² α: the first stage's share of the fused score, (1-α)·rerank + α·first stage after "
            f"{result.settings.get('fusion')} normalisation per query (α=0: the ranker alone, α=1: the first "
            f"stage's order). Fused rows are tested against row {first_stage} and their ranker's row at that K "
            "only; their latency is the ranker's."
        )
    if _has_calibration_metrics(result):
        lines.append(
            "³ Rankers whose scores are calibrated probabilities: expected calibration error (10 equal-width bins) and "
            "Brier score over the K ranked candidates, a document being relevant when its grade is >= 1 (unjudged "
            "candidates count as not relevant)."
        )
    skipped = queries["skipped_without_relevant_judgements"] + queries["skipped_without_text"]
    missing = result.dataset["judged_documents_missing_from_corpus"]
    if skipped or missing or queries["without_candidates"]:
        lines.append(
            f"Skipped {skipped} queries without relevant judgements or text; {missing} judged documents are not in "
            f"the corpus; {queries['without_candidates']} queries got no candidates."
        )
    return "\n".join(lines)


def print_table(result: EvaluationResult, console: Any = None) -> None:
    """Print `render_table(result)` to `console` (default: stdout, at least 132 columns wide when redirected)."""
    from rich.console import Console

    if console is None:
        console = Console()
        if not console.is_terminal:
            console = Console(width=max(console.width, _REDIRECTED_WIDTH))
    console.print(render_table(result))


def _file_name(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._@-]+", "_", text).strip("_") or "run"


def write_results_json(result: EvaluationResult, path: str | Path) -> Path:
    """Write every number of `result` plus the environment to `path` as JSON."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(result.to_dict(), indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    return path


def write_run_files(result: EvaluationResult, directory: str | Path) -> list[Path]:
    """One TREC run file per row (`<ranker>@<K>.trec`), tagged with the row's name."""
    directory = Path(directory)
    return [
        write_trec_run(row.rankings, directory / f"{_file_name(row.run_name)}.trec", tag=_file_name(row.name))
        for row in result.rows
    ]


def plot_quality_vs_latency(result: EvaluationResult, path: str | Path) -> Path | None:
    """
    Plot nDCG@10 against p50 ranker latency, one line per ranker across K, each point labelled with its K, and
    the first stage's nDCG@10 as a dashed reference line. Returns None (and writes nothing) if nothing was timed.
    """
    # Fused rows are left out: at the same latency they would stack up as vertical lines over each K point.
    rankers = [
        row for row in result.rows if not row.is_first_stage and row.fusion_weight is None and row.latency is not None
    ]
    if not rankers:
        return None
    from matplotlib.figure import Figure

    figure = Figure(figsize=(8, 5), dpi=120, layout="constrained")
    axes = figure.add_subplot()
    for name in dict.fromkeys(row.name for row in rankers):
        points = sorted((row for row in rankers if row.name == name), key=lambda row: row.k)
        xs = [row.latency.p50_ms for row in points if row.latency is not None]
        ys = [row.metrics["ndcg@10"] for row in points]
        axes.plot(xs, ys, marker="o", label=name)
        for row, x, y in zip(points, xs, ys, strict=True):
            axes.annotate(f"K={row.k}", (x, y), textcoords="offset points", xytext=(5, 5), fontsize=8)
    first_stage = next(row for row in result.rows if row.is_first_stage)
    axes.axhline(
        first_stage.metrics["ndcg@10"], linestyle="--", color="grey", label=f"{first_stage.name} (first stage)"
    )
    axes.set_xlabel("p50 rerank latency per query (ms)")
    axes.set_ylabel("nDCG@10")
    axes.set_title(f"{result.dataset['name']}: quality vs latency ({result.queries['evaluated']} queries)")
    axes.grid(True, alpha=0.3)
    axes.legend()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path)
    return path


def write_outputs(result: EvaluationResult, directory: str | Path) -> dict[str, Any]:
    """
    Write results.json, the run files (under `runs/`) and quality_vs_latency.png to `directory`.

    :returns: `{"results": path, "runs": [paths], "plot": path or None}`.
    """
    directory = Path(directory).expanduser()
    return {
        "results": write_results_json(result, directory / RESULTS_FILE),
        "runs": write_run_files(result, directory / RUNS_DIR),
        "plot": plot_quality_vs_latency(result, directory / PLOT_FILE),
    }

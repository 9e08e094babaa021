"""Quality metrics and paired significance tests, computed by ranx (never by hand-written formulas here).

Rankings reach ranx as rank-derived scores (n, n-1, ..., 1): ranx sorts by score, and ties in real scores would
let it pick an arbitrary order, whereas our rankings already break ties by first-stage rank. nDCG uses ranx's
(and trec_eval's) linear gain: `grade / log2(rank + 1)`.
"""

import math
import warnings
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from crossencoder_haystack.data import Qrels

QUALITY_METRICS: tuple[str, ...] = ("ndcg@10", "mrr@10", "map")
"""The metrics shown for every row and tested for significance (MAP over the ranked list, i.e. MAP@K)."""

STAT_TESTS: tuple[str, ...] = ("student", "fisher")
"""`student`: two-sided paired t-test (deterministic). `fisher`: Fisher's randomization test, which in ranx 0.3
draws its permutations in numba's parallel threads, so its p-values vary slightly from run to run despite the seed."""

Rankings = Mapping[str, Sequence[str]]
"""Query id -> document ids, best first."""


@contextmanager
def _ranx_warnings_silenced() -> Iterator[None]:
    # ranx's numba kernels warn about an unsigned-to-signed cast on every call (harmless at these sizes), and
    # scipy's t-test about precision loss when two runs score every query the same (handled by `_p_value`).
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*unsafe cast.*")
        warnings.filterwarnings("ignore", message=".*Precision loss occurred.*", category=RuntimeWarning)
        yield


def ranx_qrels(qrels: Qrels, query_ids: Sequence[str]) -> Any:
    """A ranx `Qrels` of the given queries' judgements."""
    from ranx import Qrels as RanxQrels

    return RanxQrels({query_id: dict(qrels[query_id]) for query_id in query_ids})


def ranx_run(rankings: Rankings, name: str) -> Any:
    """A ranx `Run` whose scores reproduce the given order exactly (queries without candidates are left out)."""
    from ranx import Run

    run = {
        query_id: {doc_id: float(len(doc_ids) - position) for position, doc_id in enumerate(doc_ids)}
        for query_id, doc_ids in rankings.items()
        if doc_ids
    }
    return Run(run, name=name)


def _has_empty_rankings(query_ids: Sequence[str], runs: Sequence[Rankings]) -> bool:
    # ranx needs `make_comparable` to score queries without candidates as 0; it is left off otherwise because
    # its first use costs seconds of numba compilation.
    return any(not run.get(query_id) for run in runs for query_id in query_ids)


def evaluate_rankings(qrels: Qrels, query_ids: Sequence[str], rankings: Rankings, metrics: Sequence[str]) -> dict:
    """
    Mean of each metric over `query_ids` (a query without candidates scores 0).

    :param qrels: The judgements.
    :param query_ids: The evaluated queries (each needs qrels).
    :param rankings: Query id -> document ids, best first.
    :param metrics: ranx metric names, e.g. `["ndcg@10", "recall@100"]`.
    :returns: Metric -> mean score.
    """
    from ranx import evaluate

    if not query_ids:
        return dict.fromkeys(metrics, 0.0)
    with _ranx_warnings_silenced():
        scores = evaluate(
            ranx_qrels(qrels, query_ids),
            ranx_run({query_id: rankings.get(query_id, []) for query_id in query_ids}, "run"),
            list(metrics),
            make_comparable=_has_empty_rankings(query_ids, [rankings]),
        )
    if len(metrics) == 1:
        return {metrics[0]: float(scores)}
    return {metric: float(value) for metric, value in scores.items()}


def _p_value(value: float) -> float:
    # The t-test is undefined (NaN) when two runs score every query the same; there is no difference at all.
    return 1.0 if math.isnan(value) else float(value)


@dataclass
class Comparison:
    """
    Paired significance tests between every two runs on every metric.

    :param letters: Run name -> its letter (a, b, c, ...), in the order the runs were given.
    :param superscripts: Run name -> metric -> the letters of the runs it beats significantly (e.g. "ab").
    :param p_values: "name_a|name_b" -> metric -> p-value (each unordered pair once, in run order; 1.0 when the
        two runs score every query the same).
    :param stat_test: `student` (paired t-test) or `fisher` (randomization test).
    :param max_p: The significance level.
    """

    letters: dict[str, str]
    superscripts: dict[str, dict[str, str]] = field(default_factory=dict)
    p_values: dict[str, dict[str, float]] = field(default_factory=dict)
    stat_test: str = "student"
    max_p: float = 0.05


def compare_rankings(
    qrels: Qrels,
    query_ids: Sequence[str],
    runs: Mapping[str, Rankings],
    metrics: Sequence[str] = QUALITY_METRICS,
    stat_test: str = "student",
    max_p: float = 0.05,
    seed: int = 42,
    permutations: int = 1000,
) -> Comparison:
    """
    Test every pair of runs for a significant difference on each metric (ranx `compare`), paired by query.

    :param qrels: The judgements.
    :param query_ids: The evaluated queries.
    :param runs: Run name -> rankings, in table order.
    :param metrics: The metrics to test.
    :param stat_test: `student` (two-sided paired t-test) or `fisher` (Fisher's randomization test; see
        `STAT_TESTS` on its reproducibility).
    :param max_p: The p-value below which a difference counts as significant.
    :param seed: The randomization test's seed (same seed, same p-values).
    :param permutations: The randomization test's number of permutations.
    """
    if stat_test not in STAT_TESTS:
        msg = f"stat_test must be one of {', '.join(STAT_TESTS)}, got {stat_test!r}."
        raise ValueError(msg)
    names = list(runs)
    letters = {name: chr(ord("a") + index) if index < 26 else str(index + 1) for index, name in enumerate(names)}
    comparison = Comparison(letters=letters, stat_test=stat_test, max_p=max_p)
    if len(names) < 2 or not query_ids:
        comparison.superscripts = {name: dict.fromkeys(metrics, "") for name in names}
        return comparison
    from ranx import compare

    with _ranx_warnings_silenced():
        report = compare(
            ranx_qrels(qrels, query_ids),
            [ranx_run({query_id: runs[name].get(query_id, []) for query_id in query_ids}, name) for name in names],
            list(metrics),
            stat_test=stat_test,
            n_permutations=permutations,
            max_p=max_p,
            random_seed=seed,
            make_comparable=_has_empty_rankings(query_ids, list(runs.values())),
        )
    for name in names:
        comparison.superscripts[name] = {
            metric: "".join(
                letters[other]
                for other in names
                if other != name
                and report.comparisons[name, other][metric]["significant"]
                and report.results[name][metric] > report.results[other][metric]
            )
            for metric in metrics
        }
    for position, name in enumerate(names):
        for other in names[position + 1 :]:
            comparison.p_values[f"{name}|{other}"] = {
                metric: _p_value(report.comparisons[name, other][metric]["p_value"]) for metric in metrics
            }
    return comparison


def significant_wins(
    qrels: Qrels,
    query_ids: Sequence[str],
    name: str,
    rankings: Rankings,
    references: Mapping[str, Rankings],
    metrics: Sequence[str] = QUALITY_METRICS,
    stat_test: str = "student",
    max_p: float = 0.05,
    seed: int = 42,
) -> tuple[dict[str, list[str]], dict[str, dict[str, float]]]:
    """
    Test one run against a few reference runs only (not every pair), paired by query.

    :param qrels: The judgements.
    :param query_ids: The evaluated queries.
    :param name: The run's name (distinct from the references' names).
    :param rankings: The run.
    :param references: Reference name -> rankings.
    :param metrics: The metrics to test.
    :param stat_test: `student` or `fisher` (see `compare_rankings`).
    :param max_p: The significance level.
    :param seed: The randomization test's seed.
    :returns: (metric -> the references this run beats significantly, in the given order;
        "name|reference" -> metric -> p-value).
    """
    comparison = compare_rankings(qrels, query_ids, {name: rankings, **references}, metrics, stat_test, max_p, seed)
    names_by_letter = {letter: run for run, letter in comparison.letters.items()}
    wins = {metric: [names_by_letter[letter] for letter in comparison.superscripts[name][metric]] for metric in metrics}
    p_values = {
        f"{name}|{reference}": comparison.p_values[f"{name}|{reference}"]
        for reference in references
        if f"{name}|{reference}" in comparison.p_values
    }
    return wins, p_values

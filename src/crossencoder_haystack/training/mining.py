"""Hard-negative mining: retrieve each query's top candidates, drop its known positives, keep the hardest rest.

Candidates come from an embedding model (default: the bundled all-MiniLM-L6-v2, cosine similarity via
`sentence_transformers.util.semantic_search`) or from BM25 (Haystack's `InMemoryBM25Retriever`).
`sentence_transformers.util.mine_hard_negatives` is not used because it only knows embedding retrieval and
recognizes positives by their text, while BEIR data names them by document id.

Positives are excluded by id and by text; `margin` further skips candidates scoring within `margin` of the query's
best positive (with embeddings the positive is always scored; with BM25 only when it was retrieved), which keeps
unlabelled relevant documents (false negatives) out of the negatives.
"""

import json
import random
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from crossencoder_haystack.training.data import TrainingData, load_training_data, write_jsonl

Retriever = Literal["embedding", "bm25"]
OutputFormat = Literal["pairs", "triplets", "lists"]


@dataclass
class MiningInput:
    """Queries, the corpus they search and each query's known positive document ids."""

    queries: dict[str, str]
    corpus: dict[str, str]
    positives: dict[str, set[str]] = field(default_factory=dict)


def document_text(record: dict[str, Any]) -> str:
    """A corpus record's text: BEIR `title` and `text` joined by a space (either may be missing)."""
    title = (record.get("title") or "").strip()
    text = (record.get("text") or record.get("content") or "").strip()
    return f"{title} {text}".strip()


def read_corpus(path: str | Path) -> dict[str, str]:
    """Read a corpus JSONL (BEIR: `_id`, `title`, `text`; or `id`, `text`) into {document id: text}."""
    corpus = {}
    with Path(path).expanduser().open(encoding="utf-8") as lines:
        for number, line in enumerate(lines, start=1):
            if not line.strip():
                continue
            record = json.loads(line)
            doc_id = record.get("_id", record.get("id"))
            if doc_id is None:
                msg = f"{path}:{number}: corpus record has no '_id' or 'id'."
                raise ValueError(msg)
            corpus[str(doc_id)] = document_text(record)
    return corpus


def read_beir(directory: str | Path, split: str = "train") -> MiningInput:
    """Read a BEIR directory (corpus.jsonl, queries.jsonl, qrels/<split>.tsv); keep the split's queries."""
    root = Path(directory).expanduser()
    qrels_path = root / "qrels" / f"{split}.tsv"
    if not qrels_path.is_file():
        msg = f"No qrels for split {split!r}: {qrels_path} does not exist (choose the split with --split)."
        raise FileNotFoundError(msg)
    positives: dict[str, set[str]] = {}
    with qrels_path.open(encoding="utf-8") as lines:
        for number, line in enumerate(lines, start=1):
            parts = line.rstrip("\n").split("\t")
            if number == 1 and parts[0] == "query-id":
                continue
            if len(parts) >= 3 and float(parts[2]) > 0:
                positives.setdefault(parts[0], set()).add(parts[1])
    queries = {}
    with (root / "queries.jsonl").open(encoding="utf-8") as lines:
        for line in lines:
            record = json.loads(line)
            if str(record["_id"]) in positives:
                queries[str(record["_id"])] = record["text"]
    return MiningInput(queries, read_corpus(root / "corpus.jsonl"), {qid: positives[qid] for qid in queries})


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
    retriever: Retriever = "embedding",
    model: str | Path | None = None,
    top_n: int = 20,
    num_negatives: int = 5,
    skip_top: int = 0,
    margin: float | None = None,
    output_format: OutputFormat = "triplets",
    sample: Literal["top", "random"] = "top",
    seed: int = 42,
    batch_size: int = 64,
    show_progress: bool = True,
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
    :param split: The BEIR qrels split (`train`, `dev`, `test`).
    :param retriever: `"embedding"` (a sentence-transformers bi-encoder) or `"bm25"`.
    :param model: Embedding model directory or reachable hub id; None uses the bundled all-MiniLM-L6-v2.
    :param top_n: Candidates retrieved per query.
    :param num_negatives: Negatives kept per query.
    :param skip_top: Skip this many top candidates (they are the likeliest unlabelled positives).
    :param margin: Skip candidates scoring above (best positive's score - margin); None keeps them.
    :param output_format: `"triplets"` (`query, positive, negatives` per positive), `"pairs"` (label 1/0 rows)
        or `"lists"` (`query, documents, labels` per query).
    :param sample: Keep the `"top"` remaining candidates, or a seeded `"random"` choice among them.
    :param seed: Seed for `sample="random"`.
    :param batch_size: Embedding batch size.
    :param show_progress: Show progress bars while embedding.
    :returns: The rows, in the shape `output_format` names (readable by `load_training_data` and `train`).
    """
    if output_format not in ("pairs", "triplets", "lists"):
        msg = f"output_format must be 'pairs', 'triplets' or 'lists', got {output_format!r}."
        raise ValueError(msg)
    if retriever not in ("embedding", "bm25"):
        msg = f"retriever must be 'embedding' or 'bm25', got {retriever!r}."
        raise ValueError(msg)
    if top_n < 1 or num_negatives < 1:
        msg = f"top_n and num_negatives must be >= 1, got top_n={top_n}, num_negatives={num_negatives}."
        raise ValueError(msg)
    data = _mining_input(queries, corpus, split)
    candidates = (
        _embedding_candidates(data, model, top_n + skip_top, batch_size, show_progress)
        if retriever == "embedding"
        else _bm25_candidates(data, top_n + skip_top)
    )
    rng = random.Random(seed)
    rows: list[dict[str, Any]] = []
    for query_id, query in data.queries.items():
        known = data.positives.get(query_id, set())
        known_texts = {data.corpus[doc_id] for doc_id in known}
        ranked, positive_scores = candidates[query_id]
        pool = [
            (doc_id, score)
            for doc_id, score in ranked[skip_top:]
            if doc_id not in known and data.corpus[doc_id] not in known_texts
        ]
        if margin is not None and positive_scores:
            ceiling = max(positive_scores) - margin
            pool = [(doc_id, score) for doc_id, score in pool if score <= ceiling]
        chosen = pool[:num_negatives] if sample == "top" else rng.sample(pool, min(num_negatives, len(pool)))
        negatives = [data.corpus[doc_id] for doc_id, _ in chosen]
        rows.extend(_rows(query, [data.corpus[doc_id] for doc_id in sorted(known)], negatives, output_format))
    if output is not None:
        write_jsonl(rows, output)
    return rows


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


def _embedding_candidates(
    data: MiningInput, model: str | Path | None, top_k: int, batch_size: int, show_progress: bool
) -> Candidates:
    from sentence_transformers import SentenceTransformer, util

    from crossencoder_haystack.bundled_model import bundled_minilm_path

    source = str(model or bundled_minilm_path())
    encoder = SentenceTransformer(source, device="cpu", local_files_only=Path(source).expanduser().is_dir())
    doc_ids = list(data.corpus)
    query_ids = list(data.queries)
    kwargs = {"batch_size": batch_size, "convert_to_tensor": True, "normalize_embeddings": True}
    documents = encoder.encode([data.corpus[doc_id] for doc_id in doc_ids], show_progress_bar=show_progress, **kwargs)
    queries = encoder.encode([data.queries[qid] for qid in query_ids], show_progress_bar=False, **kwargs)
    hits = util.semantic_search(queries, documents, top_k=min(top_k, len(doc_ids)))
    index = {doc_id: position for position, doc_id in enumerate(doc_ids)}
    candidates: Candidates = {}
    for row, query_id in enumerate(query_ids):
        ranked = [(doc_ids[hit["corpus_id"]], float(hit["score"])) for hit in hits[row]]
        known = [index[doc_id] for doc_id in data.positives.get(query_id, ())]
        positive_scores = [float(queries[row] @ documents[position]) for position in known]
        candidates[query_id] = (ranked, positive_scores)
    return candidates


def _bm25_candidates(data: MiningInput, top_k: int) -> Candidates:
    from haystack import Document
    from haystack.components.retrievers.in_memory import InMemoryBM25Retriever
    from haystack.document_stores.in_memory import InMemoryDocumentStore

    store = InMemoryDocumentStore()
    store.write_documents([Document(id=doc_id, content=text) for doc_id, text in data.corpus.items()])
    retriever = InMemoryBM25Retriever(store, top_k=top_k)
    candidates: Candidates = {}
    for query_id, query in data.queries.items():
        documents = retriever.run(query=query)["documents"]
        ranked = [(document.id, float(document.score or 0.0)) for document in documents]
        known = data.positives.get(query_id, set())
        candidates[query_id] = (ranked, [score for doc_id, score in ranked if doc_id in known])
    return candidates

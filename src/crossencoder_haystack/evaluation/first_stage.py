"""First stages: where the candidates a ranker reorders come from.

- `bm25`: Haystack's `InMemoryDocumentStore` + `InMemoryBM25Retriever` over the corpus;
- `embedding`: an in-memory embedding retriever over corpus embeddings from a local sentence-transformers model
  (default the bundled all-MiniLM-L6-v2). Embedding a corpus of a few thousand abstracts takes minutes on a CPU,
  so the embeddings are cached on disk, keyed by the model's and the corpus's fingerprints;
- a TREC run file: the candidates some other system retrieved, looked up in the corpus by id.

Every first stage returns, per query, documents best first with their retrieval `score`; their ids are corpus ids.
"""

import time
from dataclasses import replace
from pathlib import Path
from typing import Any, Literal, Protocol

from haystack import Document

from crossencoder_haystack.data import BeirDataset, document_text, read_trec_run
from crossencoder_haystack.evaluation.fingerprints import corpus_fingerprint, json_fingerprint, model_fingerprint

FIRST_STAGES: tuple[str, ...] = ("bm25", "embedding")


class FirstStage(Protocol):
    """Retrieves a query's candidates, best first."""

    name: str

    def warm_up(self) -> None:
        """Index the corpus (once)."""

    def retrieve(self, query_id: str, query: str, top_k: int) -> list[Document]:
        """The best `top_k` candidates for the query, best first, with retrieval scores."""

    def describe(self) -> dict[str, Any]:
        """What this first stage is, for results.json."""


def corpus_documents(dataset: BeirDataset) -> list[Document]:
    """The corpus as Haystack Documents: id = corpus id, content = title and text, meta = title and metadata."""
    documents = []
    for doc_id, entry in dataset.corpus.items():
        meta = dict(entry["metadata"])
        if entry["title"]:
            meta["title"] = entry["title"]
        documents.append(Document(id=doc_id, content=document_text(entry), meta=meta))
    return documents


class BM25FirstStage:
    """BM25 over the corpus with Haystack's in-memory document store (its default BM25L variant)."""

    name = "bm25"

    def __init__(
        self, documents: list[Document], bm25_algorithm: Literal["BM25Okapi", "BM25L", "BM25Plus"] = "BM25L"
    ) -> None:
        self.documents = documents
        self.bm25_algorithm = bm25_algorithm
        self.index_seconds: float | None = None
        self._retriever: Any = None

    def warm_up(self) -> None:
        if self._retriever is not None:
            return
        from haystack.components.retrievers.in_memory import InMemoryBM25Retriever
        from haystack.document_stores.in_memory import InMemoryDocumentStore

        start = time.perf_counter()
        store = InMemoryDocumentStore(bm25_algorithm=self.bm25_algorithm, shared=False)
        store.write_documents(self.documents)
        self._retriever = InMemoryBM25Retriever(document_store=store)
        self.index_seconds = time.perf_counter() - start

    def retrieve(self, query_id: str, query: str, top_k: int) -> list[Document]:
        self.warm_up()
        return self._retriever.run(query=query, top_k=top_k)["documents"]

    def describe(self) -> dict[str, Any]:
        return {"kind": "bm25", "bm25_algorithm": self.bm25_algorithm, "index_seconds": self.index_seconds}


class EmbeddingFirstStage:
    """Dense retrieval: cosine similarity between sentence-transformers embeddings of the query and the corpus."""

    name = "embedding"

    def __init__(
        self, documents: list[Document], model: str | Path, cache_dir: Path | None, batch_size: int = 32
    ) -> None:
        """
        :param documents: The corpus.
        :param model: A local sentence-transformers model directory.
        :param cache_dir: Where corpus embeddings are cached (`<cache_dir>/embeddings/<key>.npy`); None = no cache.
        :param batch_size: The embedding batch size.
        """
        self.documents = documents
        self.model = str(model)
        self.cache_dir = cache_dir
        self.batch_size = batch_size
        self.embedding_cache_hit: bool | None = None
        self._text_embedder: Any = None
        self._retriever: Any = None

    def _cache_path(self) -> Path | None:
        if self.cache_dir is None:
            return None
        key = json_fingerprint(
            {"model": model_fingerprint(self.model), "corpus": corpus_fingerprint(self.documents), "kind": "corpus"}
        )
        return self.cache_dir / "embeddings" / f"{key}.npy"

    def _corpus_embeddings(self) -> Any:
        import numpy as np
        from haystack_integrations.components.embedders.sentence_transformers import (
            SentenceTransformersDocumentEmbedder,
        )

        cache_path = self._cache_path()
        if cache_path is not None and cache_path.is_file():
            embeddings = np.load(cache_path)
            if embeddings.shape[0] == len(self.documents):
                self.embedding_cache_hit = True
                return embeddings
        self.embedding_cache_hit = False
        embedder = SentenceTransformersDocumentEmbedder(
            model=self.model, local_files_only=True, batch_size=self.batch_size, progress_bar=True
        )
        embedder.warm_up()
        embedded = embedder.run(documents=self.documents)["documents"]
        embeddings = np.asarray([document.embedding for document in embedded], dtype=np.float32)
        if cache_path is not None:
            cache_path.parent.mkdir(parents=True, exist_ok=True)
            partial = cache_path.with_suffix(".partial.npy")
            np.save(partial, embeddings)
            partial.replace(cache_path)
        return embeddings

    def warm_up(self) -> None:
        if self._retriever is not None:
            return
        from haystack.components.retrievers.in_memory import InMemoryEmbeddingRetriever
        from haystack.document_stores.in_memory import InMemoryDocumentStore
        from haystack_integrations.components.embedders.sentence_transformers import (
            SentenceTransformersTextEmbedder,
        )

        embeddings = self._corpus_embeddings()
        store = InMemoryDocumentStore(embedding_similarity_function="cosine", return_embedding=False, shared=False)
        pairs = zip(self.documents, embeddings, strict=True)
        store.write_documents([replace(document, embedding=row.tolist()) for document, row in pairs])
        self._text_embedder = SentenceTransformersTextEmbedder(
            model=self.model, local_files_only=True, progress_bar=False
        )
        self._text_embedder.warm_up()
        self._retriever = InMemoryEmbeddingRetriever(document_store=store)

    def retrieve(self, query_id: str, query: str, top_k: int) -> list[Document]:
        self.warm_up()
        embedding = self._text_embedder.run(text=query)["embedding"]
        return self._retriever.run(query_embedding=embedding, top_k=top_k)["documents"]

    def describe(self) -> dict[str, Any]:
        return {"kind": "embedding", "model": self.model, "embedding_cache_hit": self.embedding_cache_hit}


class RunFileFirstStage:
    """Candidates from a TREC run file; run documents missing from the corpus are skipped and counted."""

    def __init__(self, path: str | Path, documents: list[Document]) -> None:
        self.path = Path(path).expanduser()
        self.name = self.path.stem
        self.documents_by_id = {document.id: document for document in documents}
        self.missing_documents: set[str] = set()
        self.queries_not_in_run: set[str] = set()
        self._run: dict[str, list[tuple[str, float]]] | None = None

    def warm_up(self) -> None:
        if self._run is None:
            self._run = read_trec_run(self.path)

    def retrieve(self, query_id: str, query: str, top_k: int) -> list[Document]:
        self.warm_up()
        assert self._run is not None
        if query_id not in self._run:
            self.queries_not_in_run.add(query_id)
        candidates = []
        for doc_id, score in self._run.get(query_id, []):
            document = self.documents_by_id.get(doc_id)
            if document is None:
                self.missing_documents.add(doc_id)
                continue
            candidates.append(replace(document, score=score))
            if len(candidates) == top_k:
                break
        return candidates

    def describe(self) -> dict[str, Any]:
        return {
            "kind": "run_file",
            "path": str(self.path),
            "run_documents_missing_from_corpus": sorted(self.missing_documents),
            "queries_not_in_run": sorted(self.queries_not_in_run),
        }


def build_first_stage(
    spec: str,
    dataset: BeirDataset,
    *,
    embedding_model: str | Path | None = None,
    cache_dir: Path | None = None,
) -> FirstStage:
    """
    The first stage a `--first-stage` value names.

    :param spec: `bm25`, `embedding` or the path of a TREC run file.
    :param dataset: The collection whose corpus is searched.
    :param embedding_model: A local sentence-transformers model for `embedding`; None = bundled all-MiniLM-L6-v2.
    :param cache_dir: The evaluation cache directory (corpus embeddings go under `embeddings/`).
    :raises ValueError: If `spec` is neither a known first stage nor an existing file.
    """
    documents = corpus_documents(dataset)
    if spec == "bm25":
        return BM25FirstStage(documents)
    if spec == "embedding":
        if embedding_model is None:
            from crossencoder_haystack.bundled_model import bundled_minilm_path

            embedding_model = bundled_minilm_path()
        return EmbeddingFirstStage(documents, embedding_model, cache_dir)
    if Path(spec).expanduser().is_file():
        return RunFileFirstStage(spec, documents)
    msg = f"first_stage must be one of {', '.join(FIRST_STAGES)} or an existing TREC run file, got {spec!r}."
    raise ValueError(msg)

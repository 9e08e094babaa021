"""The demo's document store: the CVs with their first-stage embeddings, computed once and cached on disk.

Embedding 90 long CVs with all-MiniLM-L6-v2 takes a while on a CPU; the embeddings are saved as a .npy file keyed
by the fingerprints of the embedding model and of the CVs, so they are recomputed only when either changes.
"""

from dataclasses import replace
from pathlib import Path
from typing import Any

from haystack import Document

from crossencoder_haystack.demo.starter_model import cache_root

EMBEDDINGS_CACHE_VERSION = 1


def embeddings_cache_path(documents: list[Document], cache_dir: str | Path | None = None) -> Path:
    """Where the embeddings of `documents` (by the bundled all-MiniLM-L6-v2) are cached."""
    from crossencoder_haystack.bundled_model import bundled_minilm_path
    from crossencoder_haystack.evaluation.fingerprints import corpus_fingerprint, json_fingerprint, model_fingerprint

    key = json_fingerprint(
        {
            "model": model_fingerprint(bundled_minilm_path()),
            "corpus": corpus_fingerprint(documents),
            "version": EMBEDDINGS_CACHE_VERSION,
        }
    )
    return cache_root(cache_dir) / "demo" / f"cv-embeddings-{key[:16]}.npy"


def indexed_store(documents: list[Document], cache_dir: str | Path | None = None) -> tuple[Any, bool]:
    """
    An `InMemoryDocumentStore` holding `documents` with embeddings (title + text, as `build_indexing_pipeline`
    embeds them), and whether the embeddings came from the cache.
    """
    import numpy as np
    from haystack.document_stores.in_memory import InMemoryDocumentStore

    from crossencoder_haystack.pipelines import build_indexing_pipeline

    store = InMemoryDocumentStore()
    path = embeddings_cache_path(documents, cache_dir)
    if path.is_file():
        embeddings = np.load(path)
        if embeddings.shape[0] == len(documents):
            pairs = zip(documents, embeddings, strict=True)
            store.write_documents([replace(document, embedding=row.tolist()) for document, row in pairs])
            return store, True
    build_indexing_pipeline(store).run({"embedder": {"documents": documents}})
    by_id = {document.id: document for document in store.filter_documents()}
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(".partial.npy")
    np.save(partial, np.asarray([by_id[document.id].embedding for document in documents], dtype=np.float32))
    partial.replace(path)
    return store, False

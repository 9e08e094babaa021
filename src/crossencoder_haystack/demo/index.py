"""The demo's document store: the CVs with their first-stage embeddings, computed once and cached on disk.

Embedding 90 long CVs takes a while on a CPU; the embeddings are saved as a .npy file keyed by the fingerprints of
the embedding model and of the CVs, so they are recomputed only when either changes. Each CV is embedded whole,
title and text, as `build_indexing_pipeline` embeds documents: by the bundled all-MiniLM-L6-v2 (cut at 256 tokens)
or by multilingual-e5-small (`passage: ` before the text, cut at 512 tokens).
"""

from dataclasses import replace
from pathlib import Path
from typing import Any

from haystack import Document

from crossencoder_haystack.demo.starter_model import cache_root

EMBEDDINGS_CACHE_VERSION = 1


def embeddings_cache_path(
    documents: list[Document], cache_dir: str | Path | None = None, model: str | Path | None = None
) -> Path:
    """
    Where the embeddings of `documents` are cached.

    :param documents: The CVs.
    :param cache_dir: The cache root; None for the user cache directory.
    :param model: The embedding model's directory; None for the bundled all-MiniLM-L6-v2.
    """
    from crossencoder_haystack.bundled_model import bundled_minilm_path
    from crossencoder_haystack.evaluation.fingerprints import corpus_fingerprint, json_fingerprint, model_fingerprint

    key = json_fingerprint(
        {
            "model": model_fingerprint(model if model is not None else bundled_minilm_path()),
            "corpus": corpus_fingerprint(documents),
            "version": EMBEDDINGS_CACHE_VERSION,
        }
    )
    return cache_root(cache_dir) / "demo" / f"cv-embeddings-{key[:16]}.npy"


def indexed_store(
    documents: list[Document], cache_dir: str | Path | None = None, multilingual_model: str | Path | None = None
) -> tuple[Any, bool]:
    """
    An `InMemoryDocumentStore` holding `documents` with embeddings (title + text), and whether the embeddings came
    from the cache. The store serves BM25 over the CV texts as well.

    :param documents: The CVs.
    :param cache_dir: The cache root; None for the user cache directory.
    :param multilingual_model: The converted multilingual-e5-small directory; None embeds with all-MiniLM-L6-v2.
    """
    import numpy as np
    from haystack.document_stores.in_memory import InMemoryDocumentStore

    store = InMemoryDocumentStore()
    path = embeddings_cache_path(documents, cache_dir, multilingual_model)
    if path.is_file():
        embeddings = np.load(path)
        if embeddings.shape[0] == len(documents):
            pairs = zip(documents, embeddings, strict=True)
            store.write_documents([replace(document, embedding=row.tolist()) for document, row in pairs])
            return store, True
    embedded = _embedded(documents, multilingual_model)
    store.write_documents(embedded)
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(".partial.npy")
    np.save(partial, np.asarray([document.embedding for document in embedded], dtype=np.float32))
    partial.replace(path)
    return store, False


def _embedded(documents: list[Document], multilingual_model: str | Path | None) -> list[Document]:
    """Copies of `documents` with their embeddings, in the same order."""
    from crossencoder_haystack.pipelines import META_FIELDS_TO_EMBED

    if multilingual_model is not None:
        from haystack_integrations.components.embedders.multilingual_e5 import MultilingualE5DocumentEmbedder

        embedder = MultilingualE5DocumentEmbedder(
            model=str(multilingual_model), meta_fields_to_embed=META_FIELDS_TO_EMBED, progress_bar=False
        )
        embedder.warm_up()
        return embedder.run(documents)["documents"]
    from haystack.document_stores.in_memory import InMemoryDocumentStore

    from crossencoder_haystack.pipelines import build_indexing_pipeline

    store = InMemoryDocumentStore()
    build_indexing_pipeline(store).run({"embedder": {"documents": documents}})
    by_id = {document.id: document for document in store.filter_documents()}
    return [by_id[document.id] for document in documents]

"""Content fingerprints that key the on-disk caches: a model directory, a document, a corpus, a text.

A fingerprint changes when what it stands for changes, so a cache keyed by it never serves stale scores or
embeddings: retrain a model into the same directory and its fingerprint (and so its cache entries) change.
"""

import hashlib
import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from haystack import Document

# Files up to this size (configs, tokenizer files) are hashed by content; larger ones (weights) by size and
# modification time, which is enough to notice a re-save and avoids reading hundreds of MB on every run.
_CONTENT_HASH_LIMIT_BYTES = 4 * 1024 * 1024


def text_fingerprint(text: str) -> str:
    """SHA-256 of a text, hex."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def json_fingerprint(value: Any) -> str:
    """SHA-256 of a JSON-able value in canonical form (sorted keys)."""
    return text_fingerprint(json.dumps(value, sort_keys=True, default=str, ensure_ascii=False))


def document_fingerprint(document: Document) -> str:
    """What a ranker sees of a document: its content and meta (the id and retrieval score do not count)."""
    return json_fingerprint({"content": document.content, "meta": document.meta})


def corpus_fingerprint(documents: Iterable[Document]) -> str:
    """The ids and fingerprints of `documents`, in order."""
    digest = hashlib.sha256()
    for document in documents:
        digest.update(f"{document.id}\t{document_fingerprint(document)}\n".encode())
    return digest.hexdigest()


def model_fingerprint(model: str | Path) -> str:
    """
    A local model directory's fingerprint: its resolved path, the content of its small files (config, tokenizer)
    and the size and modification time of its large files (weights). A name that is not a local path (a hub id)
    is its own fingerprint.
    """
    path = Path(model).expanduser()
    if not path.exists():
        return text_fingerprint(str(model))
    path = path.resolve()
    files = [path] if path.is_file() else sorted(file for file in path.rglob("*") if file.is_file())
    digest = hashlib.sha256(str(path).encode())
    for file in files:
        relative = file.relative_to(path).as_posix() if file != path else file.name
        if any(part.startswith(".") for part in Path(relative).parts):
            continue
        stat = file.stat()
        if stat.st_size <= _CONTENT_HASH_LIMIT_BYTES:
            digest.update(f"{relative}\t{hashlib.sha256(file.read_bytes()).hexdigest()}\n".encode())
        else:
            digest.update(f"{relative}\t{stat.st_size}\t{stat.st_mtime_ns}\n".encode())
    return digest.hexdigest()

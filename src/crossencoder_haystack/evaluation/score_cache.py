"""An on-disk cache of ranker scores, so an interrupted or repeated evaluation resumes instead of starting over.

One sqlite3 file holds `(ranker, query, document) -> score` rows, where `ranker` is the ranker's identity (its
settings and model fingerprint, see `rankers.py`), `query` the fingerprint of the query text and `document` the
fingerprint of what the ranker sees of the document. A score of `None` records that the ranker dropped the
document (e.g. below its `score_threshold`), so it is not asked again either.

Scores are committed after every query, so a Ctrl-C loses at most the query in flight.
"""

import sqlite3
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from crossencoder_haystack.evaluation.fingerprints import text_fingerprint

SCORE_CACHE_FILE = "scores.sqlite3"
# sqlite's limit on bound parameters is 32766 in current versions but 999 in old ones.
_LOOKUP_CHUNK = 900


def default_cache_dir() -> Path:
    """The user's cache directory for evaluation data (scores and corpus embeddings)."""
    from platformdirs import user_cache_dir

    return Path(user_cache_dir("crossencoder-haystack")) / "evaluation"


class EvaluationScoreStore:
    """
    `(ranker identity, query text, document fingerprint) -> score` in a sqlite3 file.

    Usage example:

    ```python
    with EvaluationScoreStore("/tmp/cache/scores.sqlite3") as cache:
        cache.put("ranker-id", "what is bm25?", {"doc-fingerprint": 0.93})
        cache.get("ranker-id", "what is bm25?", ["doc-fingerprint", "other"])  # {"doc-fingerprint": 0.93}
    ```
    """

    def __init__(self, path: str | Path) -> None:
        """
        Opens (and creates if needed) the cache file.

        :param path: The sqlite3 file; its directory is created.
        """
        self.path = Path(path).expanduser()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._connection = sqlite3.connect(str(self.path))
        self._connection.execute(
            "CREATE TABLE IF NOT EXISTS scores ("
            " ranker TEXT NOT NULL, query TEXT NOT NULL, document TEXT NOT NULL, score REAL,"
            " PRIMARY KEY (ranker, query, document)) WITHOUT ROWID"
        )
        self._connection.commit()

    def get(self, ranker: str, query: str, documents: Sequence[str]) -> dict[str, float | None]:
        """
        The cached scores of `documents` for `query` under `ranker`.

        :param ranker: The ranker's identity.
        :param query: The query text.
        :param documents: Document fingerprints.
        :returns: Fingerprint -> score (None = dropped by the ranker) for the documents found; others are absent.
        """
        query_key = text_fingerprint(query)
        found: dict[str, float | None] = {}
        unique = list(dict.fromkeys(documents))
        for start in range(0, len(unique), _LOOKUP_CHUNK):
            chunk = unique[start : start + _LOOKUP_CHUNK]
            placeholders = ",".join("?" * len(chunk))
            rows = self._connection.execute(
                f"SELECT document, score FROM scores WHERE ranker = ? AND query = ? AND document IN ({placeholders})",
                (ranker, query_key, *chunk),
            )
            found.update(rows)
        return found

    def put(self, ranker: str, query: str, scores: Mapping[str, float | None]) -> None:
        """
        Store scores (existing entries are kept: the first score computed for a pair stays the cached one).

        :param ranker: The ranker's identity.
        :param query: The query text.
        :param scores: Document fingerprint -> score, or None for a document the ranker dropped.
        """
        query_key = text_fingerprint(query)
        rows = [
            (ranker, query_key, document, None if score is None else float(score)) for document, score in scores.items()
        ]
        with self._connection:
            self._connection.executemany(
                "INSERT OR IGNORE INTO scores (ranker, query, document, score) VALUES (?, ?, ?, ?)", rows
            )

    def __len__(self) -> int:
        return int(self._connection.execute("SELECT COUNT(*) FROM scores").fetchone()[0])

    def close(self) -> None:
        self._connection.close()

    def __enter__(self) -> "EvaluationScoreStore":
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


if TYPE_CHECKING:
    ScoreCache = EvaluationScoreStore  # deprecated alias, see __getattr__


def __getattr__(name: str) -> Any:
    # `ScoreCache`, this class's former name, shared its name with the ranker component's in-memory pair cache;
    # kept as a deprecated alias.
    if name == "ScoreCache":
        warnings.warn(
            "crossencoder_haystack.evaluation.score_cache.ScoreCache is deprecated: use EvaluationScoreStore.",
            DeprecationWarning,
            stacklevel=2,
        )
        return EvaluationScoreStore
    msg = f"module {__name__!r} has no attribute {name!r}"
    raise AttributeError(msg)

"""A bounded LRU cache of raw logits, so a repeated query over the same candidates costs no model work.

A logit depends on the model (its files, backend and `max_length`), the query text and the document text, so the
key is exactly that: (model identity, query, sha1 of the document text). Hashing the text keeps long documents out
of memory; sha1 is fine here because the cache is not a security boundary.
"""

import hashlib
import threading
from collections import OrderedDict
from collections.abc import Sequence
from typing import Any

import numpy as np

from haystack_integrations.components.rankers.crossencoder._engine.pair_scorer import ManyRequestScorer

CacheKey = tuple[str, str, str]


class PairScoreCache:
    """A thread-safe LRU map from (model identity, query, text) to a logit, holding at most `max_size` entries."""

    def __init__(self, max_size: int) -> None:
        if max_size <= 0:
            msg = f"cache_size must be > 0 to build a cache, got {max_size}."
            raise ValueError(msg)
        self.max_size = max_size
        self._entries: OrderedDict[CacheKey, float] = OrderedDict()
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0

    @staticmethod
    def key(model_identity: str, query: str, text: str) -> CacheKey:
        return model_identity, query, hashlib.sha1(text.encode("utf-8")).hexdigest()

    def get(self, key: CacheKey) -> float | None:
        with self._lock:
            value = self._entries.get(key)
            if value is None:
                self.misses += 1
                return None
            self._entries.move_to_end(key)
            self.hits += 1
            return value

    def put(self, key: CacheKey, value: float) -> None:
        with self._lock:
            self._entries[key] = value
            self._entries.move_to_end(key)
            while len(self._entries) > self.max_size:
                self._entries.popitem(last=False)

    def __len__(self) -> int:
        return len(self._entries)


class CachingPairScorer(ManyRequestScorer):
    """
    Wraps a pair scorer: texts whose logit for this query and model is cached are not sent to the model.

    :param scorer: The scorer that runs the model.
    :param cache: The cache; may be shared by several scorers since the key holds the model identity.
    :param model_identity: What makes this model's logits differ from another's (path, backend, file, max_length).
    """

    def __init__(self, scorer: Any, cache: PairScoreCache, model_identity: str) -> None:
        self.scorer = scorer
        self.cache = cache
        self.model_identity = model_identity
        self.tokenizer = scorer.tokenizer
        self.max_length = scorer.max_length
        self.declared_activation = scorer.declared_activation

    def logits_many(
        self, requests: Sequence[tuple[str, Sequence[str]]], show_progress_bar: bool = False
    ) -> list[np.ndarray]:
        """Raw logits for several (query, texts) requests; the misses of all requests reach the model together."""
        results = [np.zeros(len(texts), dtype=np.float32) for _, texts in requests]
        missing: dict[CacheKey, list[tuple[int, int]]] = {}
        for r, (query, texts) in enumerate(requests):
            for i, text in enumerate(texts):
                key = PairScoreCache.key(self.model_identity, query, text)
                value = self.cache.get(key) if key not in missing else None
                if value is None:
                    missing.setdefault(key, []).append((r, i))
                else:
                    results[r][i] = value
        if not missing:
            return results
        by_request: dict[int, list[CacheKey]] = {}
        for key, places in missing.items():
            by_request.setdefault(places[0][0], []).append(key)
        misses = [
            (requests[r][0], [requests[r][1][missing[key][0][1]] for key in keys]) for r, keys in by_request.items()
        ]
        fresh = self.scorer.logits_many(misses, show_progress_bar=show_progress_bar)
        for keys, values in zip(by_request.values(), fresh, strict=True):
            for key, value in zip(keys, values, strict=True):
                self.cache.put(key, float(value))
                for r, i in missing[key]:
                    results[r][i] = value
        return results


def __getattr__(name: str) -> Any:
    if name == "ScoreCache":  # its name until it was told apart from the evaluation package's score cache
        import warnings

        warnings.warn("'ScoreCache' is deprecated; use 'PairScoreCache'.", DeprecationWarning, stacklevel=2)
        return PairScoreCache
    msg = f"module {__name__!r} has no attribute {name!r}"
    raise AttributeError(msg)

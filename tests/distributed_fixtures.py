"""Rankers for the Ray tests, built inside Ray actors from these module-level functions (so Ray can pickle them).

The fault tests (a failing job resumed, an actor killed mid-job) test Ray Data's bookkeeping, not the model: their
rankers score by word overlap, without torch, so an actor starts in a second or two instead of the ten or more that
importing torch and sentence-transformers takes. The equality with `CrossEncoderRanker` has its own test, on a real
(tiny) model. The hooked rankers add one behaviour: fail on one query, or kill their own process the first time they
see one query.
"""

import dataclasses
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any


class WordOverlapRanker:
    """Scores a document by the query words it contains (ties: the earlier candidate first); no model to load."""

    def __init__(self, top_k: int = 3) -> None:
        self.top_k = top_k

    def warm_up(self) -> None:
        pass

    def run(self, query: str, documents: list, top_k: int | None = None) -> dict[str, Any]:
        words = set(query.lower().split())
        scored = [
            dataclasses.replace(document, score=len(words & set((document.content or "").lower().split())) - i / 100)
            for i, document in enumerate(documents)
        ]
        scored.sort(key=lambda document: -document.score)
        return {"documents": scored[: self.top_k if top_k is None else top_k]}


class _HookedRanker(WordOverlapRanker):
    def __init__(self, hook: Callable[[str], None], top_k: int) -> None:
        super().__init__(top_k)
        self._hook = hook

    def run(self, query: str, documents: list, top_k: int | None = None) -> dict[str, Any]:
        self._hook(query)
        return super().run(query, documents, top_k)


def overlap_ranker(top_k: int) -> WordOverlapRanker:
    """The plain word-overlap ranker."""
    return WordOverlapRanker(top_k)


def failing_ranker(fail_on: str, delay: float, top_k: int) -> WordOverlapRanker:
    """Raises RuntimeError on the query `fail_on`, after `delay` seconds (the blocks before it are written)."""

    def fail(query: str) -> None:
        if query == fail_on:
            time.sleep(delay)
            msg = f"injected failure on {query!r}"
            raise RuntimeError(msg)

    return _HookedRanker(fail, top_k)


def dying_ranker(die_on: str, marker: str, top_k: int) -> WordOverlapRanker:
    """Kills its own process (as an out-of-memory kill would) the first time any actor sees the query `die_on`."""

    def die(query: str) -> None:
        if query == die_on and not Path(marker).exists():
            Path(marker).write_text(str(os.getpid()), encoding="utf-8")
            os._exit(1)

    return _HookedRanker(die, top_k)

"""Rankers for the Ray tests, built inside Ray actors from these module-level functions (so Ray can pickle them).

Each wraps `CrossEncoderRanker(model, precision="fp32")` (fp32: actors do not get the test session's CPU-flag
patch, and exact scores are compared) and adds one behaviour: fail on one query, or kill its own process the first
time it sees one query.
"""

import os
import time
from pathlib import Path
from typing import Any


class _HookedRanker:
    def __init__(self, model: str, parameters: dict[str, Any], hook: Any) -> None:
        from haystack_integrations.components.rankers.crossencoder import CrossEncoderRanker

        self._ranker = CrossEncoderRanker(model=model, precision="fp32", **parameters)
        self._hook = hook

    def warm_up(self) -> None:
        self._ranker.warm_up()

    def run(self, query: str, documents: list, top_k: int | None = None) -> dict[str, Any]:
        self._hook(query)
        return self._ranker.run(query=query, documents=documents, top_k=top_k)


def failing_ranker(model: str, fail_on: str, delay: float, **parameters: Any) -> Any:
    """Raises RuntimeError on the query `fail_on`, after `delay` seconds (the blocks before it are written)."""

    def fail(query: str) -> None:
        if query == fail_on:
            time.sleep(delay)
            msg = f"injected failure on {query!r}"
            raise RuntimeError(msg)

    return _HookedRanker(model, parameters, fail)


def dying_ranker(model: str, die_on: str, marker: str, **parameters: Any) -> Any:
    """Kills its own process (as an out-of-memory kill would) the first time any actor sees the query `die_on`."""

    def die(query: str) -> None:
        if query == die_on and not Path(marker).exists():
            Path(marker).write_text(str(os.getpid()), encoding="utf-8")
            os._exit(1)

    return _HookedRanker(model, parameters, die)

"""Latency of one stage at one K: per-query wall times summarized as p50, p95 and documents per second."""

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np


@dataclass(frozen=True)
class LatencyStats:
    """
    Wall time per query of a stage over a sample of queries.

    :param queries: How many queries were timed.
    :param p50_ms: Median milliseconds per query.
    :param p95_ms: 95th percentile milliseconds per query (linear interpolation).
    :param docs_per_second: Documents processed per second over the whole sample.
    """

    queries: int
    p50_ms: float
    p95_ms: float
    docs_per_second: float

    @classmethod
    def from_timings(cls, seconds: Sequence[float], documents: Sequence[int]) -> "LatencyStats | None":
        """
        Summarize per-query timings; None when nothing was timed.

        :param seconds: Wall time of each timed query.
        :param documents: How many documents each timed query processed.
        """
        if not seconds:
            return None
        milliseconds = np.asarray(seconds, dtype=np.float64) * 1000.0
        total_seconds = float(np.sum(seconds))
        return cls(
            queries=len(seconds),
            p50_ms=float(np.percentile(milliseconds, 50)),
            p95_ms=float(np.percentile(milliseconds, 95)),
            docs_per_second=float(sum(documents)) / total_seconds if total_seconds > 0 else float("inf"),
        )

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

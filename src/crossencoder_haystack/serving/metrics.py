"""Service metrics in the Prometheus text exposition format (version 0.0.4), for `GET /metrics`.

- `rerank_requests_total{endpoint,status}`: requests answered, by route and HTTP status (499: the client left).
- `rerank_request_duration_seconds{endpoint}`: histogram of the time from request to response.
- `rerank_batch_requests`, `rerank_batch_documents`: histograms of how many requests and documents each model
  batch held; `rerank_batch_duration_seconds`: how long the model took per batch.
- `rerank_documents_total`: documents scored.
- `rerank_queue_depth`: requests waiting for or being scored by the model right now.

Written by hand (a few counters and histograms) so the service needs no metrics library.
"""

import bisect
import threading
from collections.abc import Callable, Sequence

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

DURATION_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
BATCH_REQUEST_BUCKETS = (1, 2, 4, 8, 16, 32, 64)
BATCH_DOCUMENT_BUCKETS = (1, 10, 50, 100, 250, 500, 1000, 2500)

LabelValues = tuple[str, ...]


class _Histogram:
    def __init__(self, name: str, help_text: str, label_names: Sequence[str], buckets: Sequence[float]) -> None:
        self.name = name
        self.help_text = help_text
        self.label_names = tuple(label_names)
        self.buckets = tuple(float(bound) for bound in buckets)
        self.counts: dict[LabelValues, list[int]] = {}
        self.sums: dict[LabelValues, float] = {}

    def observe(self, value: float, labels: LabelValues = ()) -> None:
        counts = self.counts.setdefault(labels, [0] * (len(self.buckets) + 1))
        counts[bisect.bisect_left(self.buckets, value)] += 1
        self.sums[labels] = self.sums.get(labels, 0.0) + value

    def render(self) -> list[str]:
        lines = [f"# HELP {self.name} {self.help_text}", f"# TYPE {self.name} histogram"]
        for labels in sorted(self.counts):
            cumulative = 0
            for bound, count in zip((*self.buckets, float("inf")), self.counts[labels], strict=True):
                cumulative += count
                le = "+Inf" if bound == float("inf") else _number(bound)
                lines.append(f"{self.name}_bucket{_labels((*self.label_names, 'le'), (*labels, le))} {cumulative}")
            lines.append(f"{self.name}_sum{_labels(self.label_names, labels)} {_number(self.sums[labels])}")
            lines.append(f"{self.name}_count{_labels(self.label_names, labels)} {cumulative}")
        return lines


class ServiceMetrics:
    """Counters and histograms of one rerank service; safe to update from any thread."""

    def __init__(self, queue_depth: Callable[[], int] | None = None) -> None:
        """
        :param queue_depth: Returns the current queue depth when metrics are rendered.
        """
        self._queue_depth = queue_depth
        self._lock = threading.Lock()
        self._requests: dict[LabelValues, int] = {}
        self._documents = 0
        self._durations = _Histogram(
            "rerank_request_duration_seconds", "Time from request to response.", ("endpoint",), DURATION_BUCKETS
        )
        self._batch_requests = _Histogram(
            "rerank_batch_requests", "Requests per model batch.", (), BATCH_REQUEST_BUCKETS
        )
        self._batch_documents = _Histogram(
            "rerank_batch_documents", "Documents per model batch.", (), BATCH_DOCUMENT_BUCKETS
        )
        self._batch_durations = _Histogram(
            "rerank_batch_duration_seconds", "Model time per batch.", (), DURATION_BUCKETS
        )

    def observe_request(self, endpoint: str, status: int, seconds: float) -> None:
        """Count one answered request."""
        with self._lock:
            key = (endpoint, str(status))
            self._requests[key] = self._requests.get(key, 0) + 1
            self._durations.observe(seconds, (endpoint,))

    def observe_batch(self, requests: int, documents: int, seconds: float) -> None:
        """Record one model batch."""
        with self._lock:
            self._documents += documents
            self._batch_requests.observe(requests)
            self._batch_documents.observe(documents)
            self._batch_durations.observe(seconds)

    def requests(self, endpoint: str, status: int) -> int:
        """How many requests to `endpoint` were answered with `status`."""
        with self._lock:
            return self._requests.get((endpoint, str(status)), 0)

    def render(self) -> str:
        """All metrics in the Prometheus text format."""
        with self._lock:
            lines = [
                "# HELP rerank_requests_total Requests answered, by endpoint and HTTP status.",
                "# TYPE rerank_requests_total counter",
            ]
            lines += [
                f"rerank_requests_total{_labels(('endpoint', 'status'), key)} {count}"
                for key, count in sorted(self._requests.items())
            ]
            lines += self._durations.render()
            lines += self._batch_requests.render()
            lines += self._batch_documents.render()
            lines += self._batch_durations.render()
            lines += [
                "# HELP rerank_documents_total Documents scored.",
                "# TYPE rerank_documents_total counter",
                f"rerank_documents_total {self._documents}",
            ]
        if self._queue_depth is not None:
            lines += [
                "# HELP rerank_queue_depth Requests waiting for or being scored by the model.",
                "# TYPE rerank_queue_depth gauge",
                f"rerank_queue_depth {self._queue_depth()}",
            ]
        return "\n".join(lines) + "\n"


def _labels(names: Sequence[str], values: Sequence[str]) -> str:
    if not names:
        return ""
    pairs = ",".join(f'{name}="{_escape(value)}"' for name, value in zip(names, values, strict=True))
    return "{" + pairs + "}"


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _number(value: float) -> str:
    return repr(float(value))

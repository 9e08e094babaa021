"""The guard rails of the rerank service: how much one request may ask for and how much work may wait.

Too big is answered with 413, malformed with 422, a full queue with 429 (and `Retry-After`), a request that does
not finish in time with 504. Every message names the field and the limit, so a client knows what to change.
"""

from dataclasses import dataclass

# The environment variable `rerank serve` reads the API key from unless told otherwise.
DEFAULT_API_KEY_ENV = "RERANK_API_KEY"


@dataclass(frozen=True)
class ServiceLimits:
    """
    Limits of one rerank service.

    :param max_documents: Documents (Cohere `documents`, TEI `texts`) one request may send.
    :param max_document_chars: Characters one document, and the query, may have.
    :param max_body_bytes: Bytes one request body may have.
    :param request_timeout: Seconds a request may take, queueing included, before it is answered with 504; the model
        stops scoring it at its next chunk of documents.
    :param max_queue: Requests that may wait for the model, requests whose body is still being read included; one
        more is answered with 429 before its body is read.
    :param batch_window_ms: How long the model worker waits for more requests to join a batch once it has one.
        0 takes only what is already waiting.
    :param max_batch_documents: A batch closes early once its requests hold this many documents.
    """

    max_documents: int = 1000
    max_document_chars: int = 100_000
    max_body_bytes: int = 5_000_000
    request_timeout: float = 30.0
    max_queue: int = 64
    batch_window_ms: float = 5.0
    max_batch_documents: int = 512

    def __post_init__(self) -> None:
        for name in ("max_documents", "max_document_chars", "max_body_bytes", "max_queue", "max_batch_documents"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
                msg = f"{name} must be a positive integer, got {value!r}."
                raise ValueError(msg)
        if not self.request_timeout > 0:
            msg = f"request_timeout must be > 0 seconds, got {self.request_timeout!r}."
            raise ValueError(msg)
        if not self.batch_window_ms >= 0:
            msg = f"batch_window_ms must be >= 0 (0 disables waiting for a batch), got {self.batch_window_ms!r}."
            raise ValueError(msg)

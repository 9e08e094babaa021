"""Loopback fakes of the cloud APIs the integrations call: tests drive the official clients and never leave 127.0.0.1.

Each server speaks enough of one REST contract for the official client to be happy, records every request it gets
(method, path, query, headers, JSON body) and plays programmed faults (status sequences, Retry-After, delays):

- `AzureAIInferenceServer`: Azure AI Inference `POST {endpoint}/embeddings?api-version=...` and `GET {endpoint}/info`,
  for `azure.ai.inference.EmbeddingsClient` (sync and aio).
- `AzureOpenAIServer`: Azure OpenAI `POST /openai/deployments/{deployment}/embeddings?api-version=...`,
  for `openai.AzureOpenAI` and so Haystack's `AzureOpenAITextEmbedder` / `AzureOpenAIDocumentEmbedder`.
- `CohereServer`: Cohere v2 `POST /v2/rerank`, for `cohere.ClientV2` and so `CohereRanker`.

Embeddings are a deterministic hashed bag of words (`hashed_bag_of_words`), so retrieval over them is meaningful;
rerank scores are the share of query words found in the document (`token_overlap`).

Usage:

    with AzureAIInferenceServer(api_key="test-key") as server:
        server.set_faults([429, 200], retry_after=0)
        ...  # point a client at server.base_url
        assert server.requests[-1].body["input"] == ["hello"]
"""

import base64
import hashlib
import json
import math
import re
import struct
import threading
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlsplit

DEFAULT_API_KEY = "test-key"
DEFAULT_DIMENSIONS = 8
_WORD = re.compile(r"\w+")


def words(text: str) -> list[str]:
    """Lower-cased word tokens, the unit both the fake embeddings and the fake rerank scores count."""
    return _WORD.findall(text.lower())


def hashed_bag_of_words(text: str, dimensions: int = DEFAULT_DIMENSIONS) -> list[float]:
    """An L2-normalised vector of word counts hashed into `dimensions` buckets (all zeros for a text without words)."""
    vector = [0.0] * dimensions
    for word in words(text):
        bucket = int.from_bytes(hashlib.blake2b(word.encode(), digest_size=8).digest(), "little") % dimensions
        vector[bucket] += 1.0
    norm = math.sqrt(sum(value * value for value in vector))
    return [value / norm for value in vector] if norm else vector


def token_overlap(query: str, document: str) -> float:
    """The share of the query's distinct words that occur in the document, in [0, 1]."""
    query_words = set(words(query))
    if not query_words:
        return 0.0
    return len(query_words & set(words(document))) / len(query_words)


def base64_float32(vector: list[float]) -> str:
    """An embedding as the OpenAI/Azure `encoding_format="base64"` wire format: little-endian float32 bytes."""
    return base64.b64encode(struct.pack(f"<{len(vector)}f", *vector)).decode("ascii")


@dataclass(frozen=True)
class RecordedRequest:
    """One request as the server received it; header names are lower-cased, `body` is the parsed JSON or None."""

    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: Any


class ServiceError(Exception):
    """Raised by a route to answer with an error status and the service's error body."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


class LoopbackServer:
    """A threaded HTTP server on 127.0.0.1 (random free port) that records requests and plays programmed faults.

    Subclasses implement `authorized`, `route` and `error_body` for one API. Use as a context manager, or call
    `start()` / `stop()`; `base_url` is valid between them.
    """

    keep_alive = True  # False: every answer closes its connection, so clients that are never closed leak no socket

    def __init__(self, api_key: str = DEFAULT_API_KEY, *, dimensions: int = DEFAULT_DIMENSIONS) -> None:
        """
        :param api_key: The key clients must present; requests without it get 401.
        :param dimensions: The embedding size when a request does not ask for `dimensions`.
        """
        self.api_key = api_key
        self.dimensions = dimensions
        self._lock = threading.Lock()
        self._requests: list[RecordedRequest] = []
        self._planned_statuses: deque[int] = deque()
        self._always_status: int | None = None
        self._retry_after: float | None = None
        self._delay = 0.0
        self._stopping = threading.Event()
        self._http: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # --- lifecycle ---------------------------------------------------------------------------------------------

    def start(self) -> "LoopbackServer":
        if self._http is not None:
            return self
        self._stopping.clear()
        self._http = ThreadingHTTPServer(("127.0.0.1", 0), _handler_for(self))
        self._http.daemon_threads = True
        self._thread = threading.Thread(
            target=self._http.serve_forever, kwargs={"poll_interval": 0.05}, name=type(self).__name__, daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._http is None:
            return
        self._stopping.set()  # wakes handlers sleeping in a programmed delay
        self._http.shutdown()
        self._http.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._http = None
        self._thread = None

    def __enter__(self) -> "LoopbackServer":
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    @property
    def base_url(self) -> str:
        if self._http is None:
            raise RuntimeError(f"{type(self).__name__} is not running: call start() or use it as a context manager.")
        host, port = self._http.server_address[:2]
        return f"http://{host}:{port}"

    # --- recording and faults ----------------------------------------------------------------------------------

    @property
    def requests(self) -> list[RecordedRequest]:
        """Every request received so far, oldest first (a copy)."""
        with self._lock:
            return list(self._requests)

    def clear_requests(self) -> None:
        with self._lock:
            self._requests.clear()

    def set_faults(
        self,
        statuses: Iterable[int] = (),
        *,
        always: int | None = None,
        retry_after: float | None = None,
        delay: float = 0.0,
    ) -> None:
        """Program how the next requests are answered (replaces earlier faults).

        :param statuses: One status per coming request, e.g. `[429, 200]`; 200 means "answer normally".
        :param always: The status for every request once `statuses` is used up (None: answer normally).
        :param retry_after: Seconds sent as `Retry-After` with 429 and 5xx answers (None: no header).
        :param delay: Seconds to wait before answering every request (cut short when the server stops).
        """
        with self._lock:
            self._planned_statuses = deque(statuses)
            self._always_status = always
            self._retry_after = retry_after
            self._delay = delay

    def clear_faults(self) -> None:
        self.set_faults()

    def _next_fault(self) -> tuple[int | None, float | None, float]:
        with self._lock:
            status = self._planned_statuses.popleft() if self._planned_statuses else self._always_status
            return status, self._retry_after, self._delay

    # --- one API, implemented by subclasses --------------------------------------------------------------------

    def authorized(self, request: RecordedRequest) -> bool:
        raise NotImplementedError

    def route(self, request: RecordedRequest) -> dict[str, Any]:
        """The JSON answer to an authorized request; raise `ServiceError` for an error answer."""
        raise NotImplementedError

    def error_body(self, status: int, message: str) -> dict[str, Any]:
        return {"error": {"code": HTTPStatus(status).phrase.replace(" ", ""), "message": message}}

    # --- request handling (runs in the server's handler threads) -----------------------------------------------

    def answer(self, request: RecordedRequest) -> tuple[int, dict[str, str], dict[str, Any]]:
        with self._lock:
            self._requests.append(request)
        status, retry_after, delay = self._next_fault()
        if delay > 0:
            self._stopping.wait(delay)
        if status is not None and status != HTTPStatus.OK:
            headers = {}
            if retry_after is not None and (status == HTTPStatus.TOO_MANY_REQUESTS or status >= 500):
                headers["Retry-After"] = f"{retry_after:g}"
            return status, headers, self.error_body(status, f"Programmed fault: HTTP {status}.")
        if not self.authorized(request):
            return HTTPStatus.UNAUTHORIZED, {}, self.error_body(HTTPStatus.UNAUTHORIZED, "Invalid or missing key.")
        try:
            return HTTPStatus.OK, {}, self.route(request)
        except ServiceError as error:
            return error.status, {}, self.error_body(error.status, error.message)

    def embedding_items(self, texts: list[str], dimensions: int | None, encoding_format: str | None) -> list[dict]:
        items = []
        for index, text in enumerate(texts):
            vector = hashed_bag_of_words(text, dimensions or self.dimensions)
            embedding: list[float] | str = base64_float32(vector) if encoding_format == "base64" else vector
            items.append({"object": "embedding", "index": index, "embedding": embedding})
        return items


def _handler_for(server: LoopbackServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_GET(self) -> None:
            self._serve()

        def do_POST(self) -> None:
            self._serve()

        def _serve(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length) if length else b""
            url = urlsplit(self.path)
            try:
                body = json.loads(raw) if raw else None
            except json.JSONDecodeError:
                body = raw.decode(errors="replace")  # kept as text; the routes reject a body that is not an object
            recorded = RecordedRequest(self.command, url.path, dict(parse_qsl(url.query)), self._headers(), body)
            status, headers, payload = server.answer(recorded)
            self._send(status, headers, payload)

        def _headers(self) -> dict[str, str]:
            return {name.lower(): value for name, value in self.headers.items()}

        def _send(self, status: int, headers: dict[str, str], payload: dict[str, Any]) -> None:
            data = json.dumps(payload).encode()
            try:
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                for name, value in headers.items():
                    self.send_header(name, value)
                if not server.keep_alive:
                    self.send_header("Connection", "close")
                    self.close_connection = True
                self.end_headers()
                self.wfile.write(data)
            except (BrokenPipeError, ConnectionResetError):
                pass  # the client gave up (e.g. its timeout fired during a programmed delay)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    return Handler


def _bearer(request: RecordedRequest) -> str | None:
    authorization = request.headers.get("authorization", "")
    return authorization[len("Bearer ") :] if authorization.startswith("Bearer ") else None


def _texts(body: Any, *, allow_single_string: bool) -> list[str]:
    texts = body.get("input") if isinstance(body, dict) else None
    if allow_single_string and isinstance(texts, str):
        return [texts]
    if not isinstance(texts, list) or not texts or not all(isinstance(text, str) for text in texts):
        raise ServiceError(HTTPStatus.BAD_REQUEST, "'input' must be a non-empty list of strings.")
    return texts


def _dimensions(body: dict[str, Any]) -> int | None:
    dimensions = body.get("dimensions")
    if dimensions is not None and (not isinstance(dimensions, int) or dimensions < 1):
        raise ServiceError(HTTPStatus.BAD_REQUEST, "'dimensions' must be a positive integer.")
    return dimensions


def _usage(texts: list[str]) -> dict[str, int]:
    tokens = sum(len(words(text)) for text in texts)
    return {"prompt_tokens": tokens, "total_tokens": tokens}


class AzureAIInferenceServer(LoopbackServer):
    """Azure AI Inference embeddings (`POST .../embeddings`, `GET .../info`); any path prefix works as the endpoint.

    Auth: the `api-key` header or `Authorization: Bearer <key>`, as `EmbeddingsClient` sends both.
    """

    model_name = "loopback-embedding"
    input_types = ("text", "query", "document")

    def authorized(self, request: RecordedRequest) -> bool:
        return self.api_key in (request.headers.get("api-key"), _bearer(request))

    def route(self, request: RecordedRequest) -> dict[str, Any]:
        if "api-version" not in request.query:
            raise ServiceError(HTTPStatus.BAD_REQUEST, "The 'api-version' query parameter is required.")
        if request.method == "GET" and request.path.endswith("/info"):
            return {"model_name": self.model_name, "model_type": "embeddings", "model_provider_name": "Loopback"}
        if request.method == "POST" and request.path.endswith("/embeddings"):
            return self._embeddings(request.body)
        raise ServiceError(HTTPStatus.NOT_FOUND, f"No route for {request.method} {request.path}.")

    def _embeddings(self, body: Any) -> dict[str, Any]:
        texts = _texts(body, allow_single_string=False)
        input_type = body.get("input_type")
        if input_type is not None and input_type not in self.input_types:
            raise ServiceError(HTTPStatus.BAD_REQUEST, f"'input_type' must be one of {self.input_types}.")
        with self._lock:
            request_number = len(self._requests)
        return {
            "id": f"embeddings-{request_number}",
            "object": "list",
            "data": self.embedding_items(texts, _dimensions(body), body.get("encoding_format")),
            "model": body.get("model") or self.model_name,
            "usage": _usage(texts),
        }


class AzureOpenAIServer(LoopbackServer):
    """Azure OpenAI embeddings: `POST /openai/deployments/{deployment}/embeddings?api-version=...`.

    Auth: the `api-key` header (what `openai.AzureOpenAI` sends for a key) or `Authorization: Bearer <key>`
    (an Entra ID token). `encoding_format="base64"` answers base64 float32, as the real service does.
    """

    _route = re.compile(r"^/openai/deployments/(?P<deployment>[^/]+)/embeddings$")

    def authorized(self, request: RecordedRequest) -> bool:
        return self.api_key in (request.headers.get("api-key"), _bearer(request))

    def error_body(self, status: int, message: str) -> dict[str, Any]:
        return {"error": {"message": message, "type": "invalid_request_error", "param": None, "code": str(status)}}

    def route(self, request: RecordedRequest) -> dict[str, Any]:
        match = self._route.match(request.path)
        if request.method != "POST" or match is None:
            raise ServiceError(HTTPStatus.NOT_FOUND, f"No route for {request.method} {request.path}.")
        if "api-version" not in request.query:
            raise ServiceError(HTTPStatus.NOT_FOUND, "Resource not found: the 'api-version' parameter is missing.")
        texts = _texts(request.body, allow_single_string=True)
        return {
            "object": "list",
            "data": self.embedding_items(texts, _dimensions(request.body), request.body.get("encoding_format")),
            "model": request.body.get("model") or match["deployment"],
            "usage": _usage(texts),
        }


class CohereServer(LoopbackServer):
    """Cohere v2 rerank: `POST /v2/rerank`, scored by `token_overlap`, sorted by score (ties by input order).

    Auth: `Authorization: Bearer <key>`.
    """

    keep_alive = False  # CohereRanker has no close(), so its pooled connections would outlive the test

    def authorized(self, request: RecordedRequest) -> bool:
        return _bearer(request) == self.api_key

    def error_body(self, status: int, message: str) -> dict[str, Any]:
        return {"id": "error", "message": message}

    def route(self, request: RecordedRequest) -> dict[str, Any]:
        if request.method != "POST" or request.path != "/v2/rerank":
            raise ServiceError(HTTPStatus.NOT_FOUND, f"No route for {request.method} {request.path}.")
        body = request.body if isinstance(request.body, dict) else {}
        query, documents, top_n = body.get("query"), body.get("documents"), body.get("top_n")
        if not body.get("model"):
            raise ServiceError(HTTPStatus.BAD_REQUEST, "'model' is required.")
        if not isinstance(query, str) or not isinstance(documents, list):
            raise ServiceError(HTTPStatus.BAD_REQUEST, "'query' must be a string and 'documents' a list of strings.")
        if top_n is not None and (not isinstance(top_n, int) or top_n < 1):
            raise ServiceError(HTTPStatus.BAD_REQUEST, "'top_n' must be a positive integer.")
        scores = [token_overlap(query, str(document)) for document in documents]
        ranking = sorted(range(len(documents)), key=lambda index: (-scores[index], index))[:top_n]
        with self._lock:
            request_number = len(self._requests)
        return {
            "id": f"rerank-{request_number}",
            "results": [{"index": index, "relevance_score": scores[index]} for index in ranking],
            "meta": {"api_version": {"version": "2"}, "billed_units": {"search_units": 1}},
        }

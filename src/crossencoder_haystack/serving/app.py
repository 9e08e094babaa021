"""The rerank service as a FastAPI app: Cohere v1/v2 and text-embeddings-inference rerank over one cross-encoder.

Routes:
- `POST /v2/rerank` (and `POST /v1/rerank`): Cohere's request and response, so `cohere.ClientV2(base_url=...)` and
  Haystack's `CohereRanker(api_base_url=...)` work unchanged. Scores are sigmoid scores in 0..1.
- `POST /rerank`: text-embeddings-inference's request and response (`[{"index", "score", "text"?}]`, best first).
- `GET /health`, `GET /info`, `GET /metrics` (Prometheus text); these need no API key.

Every request walks the same path: API key -> a place in the queue (429 when full, before the body is read) ->
body size -> schema -> limits -> model batch -> response, or 504 after `request_timeout` seconds. A request that
times out or whose client disconnects is dropped from the queue, and the model stops scoring it at its next chunk
of documents. Error bodies are Cohere's `{"message"}` on `/v1` and `/v2` and TEI's `{"error", "error_type"}` on
`/rerank`.
"""

import asyncio
import math
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path
from typing import Any, Literal

from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import JSONResponse, PlainTextResponse, Response
from haystack import logging
from haystack.utils import Secret
from pydantic import BaseModel
from pydantic import ValidationError as PydanticValidationError

from crossencoder_haystack.__about__ import __version__
from crossencoder_haystack.serving.auth import bearer_token, secret_matches
from crossencoder_haystack.serving.batcher import BatcherStoppedError, DynamicBatcher, QueueFullError, QueuePlace
from crossencoder_haystack.serving.limits import ServiceLimits
from crossencoder_haystack.serving.metrics import CONTENT_TYPE, ServiceMetrics
from crossencoder_haystack.serving.schemas import (
    CohereRerankRequest,
    CohereRerankResponse,
    CohereRerankResult,
    RelevantSpan,
    RerankedDocumentText,
    ServiceInfo,
    TeiRank,
    TeiRerankRequest,
    validation_message,
)
from crossencoder_haystack.serving.served_model import RankedText, RerankJob, ServedModel

logger = logging.getLogger(__name__)

ENDPOINTS = ("/v2/rerank", "/v1/rerank", "/rerank", "/health", "/info", "/metrics")
# Not an HTTP status a client ever sees: nginx's code for "client closed the request", used in metrics.
CLIENT_CLOSED_REQUEST = 499
_DEFAULT_SPAN_THRESHOLD = 0.1
_DOCUMENTS_PER_SEARCH_UNIT = 100
# The limits `GET /info` tells clients (the queue and batching are the server's business).
_PUBLISHED_LIMITS = ("max_documents", "max_document_chars", "max_body_bytes", "request_timeout")


class ServiceError(Exception):
    """Answer the request with `status` and `message` (in the error body of the route's API)."""

    def __init__(
        self, status: int, message: str, *, error_type: str = "Validation", headers: dict[str, str] | None = None
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.error_type = error_type
        self.headers = headers or {}


class _ClientDisconnectedError(Exception):
    pass


def create_app(
    model: str | Path | ServedModel,
    *,
    backend: Literal["torch", "onnx", "openvino"] = "torch",
    api_key: Secret | str | None = None,
    limits: ServiceLimits | None = None,
    max_length: int | None = None,
    batch_size: int = 16,
    model_name: str | None = None,
    batcher_factory: Callable[[Callable[[int, int, float], None]], DynamicBatcher[RerankJob]] | None = None,
) -> FastAPI:
    """
    Creates the rerank service app; the model loads when the app starts (its lifespan), not here.

    ```python
    import uvicorn
    from crossencoder_haystack.serving import ServiceLimits, create_app

    app = create_app("/models/my-cross-encoder", limits=ServiceLimits(max_documents=200))
    uvicorn.run(app, host="127.0.0.1", port=8080)
    ```

    :param model: A local cross-encoder directory, or a `ServedModel` to serve.
    :param backend: `"torch"`, `"onnx"` or `"openvino"` (ignored when `model` is a `ServedModel`).
    :param api_key: The key clients must send as `Authorization: Bearer <key>`; `None` (or a Secret that resolves
        to nothing) accepts requests without a key.
    :param limits: Request limits, queue size, batch window and timeout; defaults to `ServiceLimits()`.
    :param max_length: Tokens of query plus passage the model sees; `None` uses the model's limit.
    :param batch_size: Pairs per forward pass.
    :param model_name: The model name `GET /info` reports.
    :param batcher_factory: Builds the request queue in front of the model, given the metrics' batch callback
        `on_batch(jobs, documents, seconds)`; it must offer `DynamicBatcher`'s `reserve`, `start`, `stop`, `accepting`
        and `depth`. `None`: a `DynamicBatcher` over the model with `limits` (Ray Serve replicas pass a queue that
        batches with `@serve.batch`, see `crossencoder_haystack.distributed`).
    :returns: The FastAPI app.
    """
    limits = limits or ServiceLimits()
    served = (
        model
        if isinstance(model, ServedModel)
        else ServedModel(model, backend=backend, max_length=max_length, batch_size=batch_size, model_name=model_name)
    )
    metrics = ServiceMetrics(queue_depth=lambda: batcher.depth)
    batcher: DynamicBatcher[RerankJob] = (
        batcher_factory(metrics.observe_batch)
        if batcher_factory is not None
        else DynamicBatcher(
            served.rank_batch,
            max_queue=limits.max_queue,
            batch_window_ms=limits.batch_window_ms,
            max_batch_documents=limits.max_batch_documents,
            on_batch=metrics.observe_batch,
        )
    )
    app = FastAPI(title="crossencoder-haystack rerank service", version=__version__, lifespan=_lifespan)
    app.state.served_model = served
    app.state.batcher = batcher
    app.state.metrics = metrics
    app.state.limits = limits
    app.state.api_key = api_key.resolve_value() if isinstance(api_key, Secret) else api_key
    app.add_middleware(_MetricsMiddleware, metrics=metrics)
    app.add_exception_handler(ServiceError, _service_error)  # type: ignore[arg-type]
    app.include_router(_router)
    return app


@asynccontextmanager
async def _lifespan(app: FastAPI) -> AsyncIterator[None]:
    served: ServedModel = app.state.served_model
    batcher: DynamicBatcher[RerankJob] = app.state.batcher
    await asyncio.to_thread(served.warm_up)
    batcher.start()
    logger.info("Rerank service ready with model {model}.", model=served.model)
    try:
        yield
    finally:
        # Uvicorn has already waited for in-flight requests; this finishes anything still queued.
        await asyncio.to_thread(batcher.stop)


async def _service_error(request: Request, error: ServiceError) -> JSONResponse:
    if request.url.path == "/rerank":
        body: dict[str, Any] = {"error": error.message, "error_type": error.error_type}
    else:
        body = {"message": error.message}
    return JSONResponse(body, status_code=error.status, headers=error.headers)


async def _score(
    request: Request, schema: type[BaseModel], make_job: Callable[..., RerankJob]
) -> tuple[Any, RerankJob, list[RankedText] | None]:
    """Parses and ranks one request: its body, its job, and the ranking (None if the client left)."""
    limits: ServiceLimits = request.app.state.limits
    deadline = time.monotonic() + limits.request_timeout
    _authorize(request, request.app.state.api_key)
    _check_declared_size(request, limits.max_body_bytes)
    with _queue_place(request.app.state.batcher) as place:  # before the body is read: a full queue costs nothing
        body = _parse(schema, await _read_body(request, limits.max_body_bytes))
        job = make_job(body, limits=limits, deadline=deadline)
        try:
            return body, job, await _rank(request, place, job, limits.request_timeout)
        except _ClientDisconnectedError:
            return body, job, None


async def _cohere_rerank(request: Request, api_version: str) -> Response:
    body, job, ranked = await _score(request, CohereRerankRequest, _cohere_job)
    if ranked is None:
        return Response(status_code=CLIENT_CLOSED_REQUEST)
    texts = job.texts
    spans = body.relevant_spans if body.relevant_spans and body.relevant_spans.mode == "enabled" else None
    threshold = _DEFAULT_SPAN_THRESHOLD if spans is None or spans.threshold is None else spans.threshold
    results = [
        CohereRerankResult(
            index=item.index,
            relevance_score=item.score,
            document=RerankedDocumentText(text=texts[item.index]) if body.return_documents else None,
            relevant_spans=_relevant_spans(item, threshold) if spans is not None else None,
        )
        for item in ranked[: body.top_n]
    ]
    response = CohereRerankResponse(
        id=str(uuid.uuid4()),
        results=results,
        meta={
            "api_version": {"version": api_version},
            "billed_units": {"search_units": math.ceil(len(texts) / _DOCUMENTS_PER_SEARCH_UNIT)},
        },
    )
    return JSONResponse(response.model_dump(exclude_none=True))


def _request_schema(model: type[BaseModel]) -> dict[str, Any]:
    # Bodies are parsed by hand (for size limits and clear messages), so the OpenAPI schema is declared here.
    schema = model.model_json_schema()
    return {"requestBody": {"required": True, "content": {"application/json": {"schema": schema}}}}


_router = APIRouter()


@_router.post("/v2/rerank", openapi_extra=_request_schema(CohereRerankRequest))
async def rerank_v2(request: Request) -> Response:
    """Cohere v2 rerank: documents best first with `relevance_score` in 0..1."""
    return await _cohere_rerank(request, "2")


@_router.post("/v1/rerank", openapi_extra=_request_schema(CohereRerankRequest))
async def rerank_v1(request: Request) -> Response:
    """Cohere v1 rerank (the v2 contract, plus `rank_fields` for object documents)."""
    return await _cohere_rerank(request, "1")


@_router.post("/rerank", openapi_extra=_request_schema(TeiRerankRequest))
async def rerank_tei(request: Request) -> Response:
    """text-embeddings-inference rerank: `[{"index", "score", "text"?}]`, best first."""
    body, _, ranked = await _score(request, TeiRerankRequest, _tei_job)
    if ranked is None:
        return Response(status_code=CLIENT_CLOSED_REQUEST)
    ranks = [
        TeiRank(index=item.index, score=item.score, text=body.texts[item.index] if body.return_text else None)
        for item in ranked
    ]
    return JSONResponse([rank.model_dump(exclude_none=True) for rank in ranks])


@_router.get("/health")
async def health(request: Request) -> JSONResponse:
    """200 while the service takes requests, 503 while it shuts down."""
    if request.app.state.batcher.accepting:
        return JSONResponse({"status": "ok"})
    return JSONResponse({"status": "unavailable"}, status_code=503)


@_router.get("/info")
async def info(request: Request) -> ServiceInfo:
    """The served model and the limits clients must respect."""
    served: ServedModel = request.app.state.served_model
    limits: ServiceLimits = request.app.state.limits
    published = {name: getattr(limits, name) for name in _PUBLISHED_LIMITS}
    return ServiceInfo(
        model=served.model_id,
        model_name=served.model_name,
        backend=served.backend,
        max_length=served.max_length,
        version=__version__,
        **published,
    )


@_router.get("/metrics")
async def prometheus_metrics(request: Request) -> PlainTextResponse:
    """Prometheus text exposition of the service metrics."""
    return PlainTextResponse(request.app.state.metrics.render(), media_type=CONTENT_TYPE)


def _authorize(request: Request, key: str | None) -> None:
    if not key:
        return
    presented = bearer_token(request.headers.get("authorization", ""))
    if presented is None:
        raise ServiceError(
            401,
            "Missing API key: send it as 'Authorization: Bearer <key>'.",
            error_type="Unauthorized",
            headers={"WWW-Authenticate": "Bearer"},
        )
    if not secret_matches(presented, key):
        raise ServiceError(401, "Invalid API key.", error_type="Unauthorized", headers={"WWW-Authenticate": "Bearer"})


def _too_large(limit: int) -> ServiceError:
    msg = f"The request body is larger than max_body_bytes={limit} bytes. Send fewer or shorter documents per request."
    return ServiceError(413, msg)


def _check_declared_size(request: Request, limit: int) -> None:
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise _too_large(limit)


async def _read_body(request: Request, limit: int) -> bytearray:
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            raise _too_large(limit)
    return body


def _parse(schema: type[BaseModel], body: bytes | bytearray) -> Any:
    if not body.strip():
        raise ServiceError(422, "The request body is empty; send a JSON object.")
    try:
        return schema.model_validate_json(body)
    except PydanticValidationError as error:
        raise ServiceError(422, validation_message(error)) from None


def _check_sizes(query: str, texts: Sequence[str], field: str, limits: ServiceLimits) -> None:
    if len(texts) > limits.max_documents:
        msg = (
            f"{field} has {len(texts)} entries; max_documents is {limits.max_documents}. "
            "Split the request, or keep only the best candidates of the first stage."
        )
        raise ServiceError(413, msg)
    if len(query) > limits.max_document_chars:
        msg = f"query has {len(query)} characters; max_document_chars is {limits.max_document_chars}."
        raise ServiceError(413, msg)
    for position, text in enumerate(texts):
        if len(text) > limits.max_document_chars:
            msg = (
                f"{field}[{position}] has {len(text)} characters; max_document_chars is "
                f"{limits.max_document_chars}. Shorten it, or cut it into passages first."
            )
            raise ServiceError(413, msg)


def _cohere_job(body: CohereRerankRequest, *, limits: ServiceLimits, deadline: float) -> RerankJob:
    try:
        texts = body.document_texts()
    except ValueError as error:
        raise ServiceError(422, f"Invalid request body: {error}") from None
    _check_sizes(body.query, texts, "documents", limits)
    return RerankJob(
        query=body.query,
        texts=texts,
        long_texts="split",
        max_tokens_per_text=body.max_tokens_per_doc,
        deadline=deadline,
    )


def _tei_job(body: TeiRerankRequest, *, limits: ServiceLimits, deadline: float) -> RerankJob:
    _check_sizes(body.query, body.texts, "texts", limits)
    if body.raw_scores:
        blank = next((i for i, text in enumerate(body.texts) if not text.strip()), None)
        if blank is not None:
            msg = (
                f"texts[{blank}] is blank, and a blank text has no raw score. Leave blank texts out, "
                "or ask for raw_scores=false (blank texts then score 0.0)."
            )
            raise ServiceError(422, msg)
    return RerankJob(
        query=body.query,
        texts=body.texts,
        long_texts="truncate" if body.truncate else "split",
        raw_scores=body.raw_scores,
        deadline=deadline,
    )


@contextmanager
def _queue_errors() -> Iterator[None]:
    try:
        yield
    except QueueFullError as error:
        raise ServiceError(
            429, str(error), error_type="Overloaded", headers={"Retry-After": str(error.retry_after)}
        ) from None
    except BatcherStoppedError as error:
        raise ServiceError(503, str(error), error_type="Unhealthy") from None


@contextmanager
def _queue_place(batcher: DynamicBatcher[RerankJob]) -> Iterator[QueuePlace[RerankJob]]:
    """A place in the queue for the request being read (429 if the queue is full), given back if not used."""
    with _queue_errors():
        place = batcher.reserve()
    try:
        yield place
    finally:
        place.release()


async def _rank(request: Request, place: QueuePlace[RerankJob], job: RerankJob, timeout: float) -> list[RankedText]:
    with _queue_errors():
        pending = place.submit(job, abandoned=job.cancelled)  # abandoning the request stops the model on it too
    disconnect = asyncio.ensure_future(_client_disconnect(request))
    try:
        done, _ = await asyncio.wait(
            {pending.future, disconnect},
            timeout=None if job.deadline is None else max(0.0, job.deadline - time.monotonic()),
            return_when=asyncio.FIRST_COMPLETED,
        )
    finally:
        disconnect.cancel()
    if pending.future in done:
        try:
            return pending.future.result()
        except Exception as error:
            logger.exception("Ranking a request failed.")
            raise ServiceError(500, f"The model failed on this request: {error}", error_type="Backend") from None
    pending.abandon()
    if disconnect in done:
        raise _ClientDisconnectedError
    msg = (
        f"The request did not finish within request_timeout={timeout:g} s (queueing included): the server is busy. "
        "Retry later, or send fewer documents."
    )
    raise ServiceError(504, msg, error_type="Backend")


async def _client_disconnect(request: Request) -> None:
    # The body has been read, so the next ASGI message is the disconnect (or nothing until the response is sent).
    while (await request.receive())["type"] != "http.disconnect":
        pass


def _relevant_spans(item: RankedText, threshold: float) -> list[RelevantSpan]:
    passage = item.best_passage
    if passage is None or passage.score < threshold:
        return []
    return [RelevantSpan(start=passage.start, end=passage.end, score=passage.score)]


class _MetricsMiddleware:
    """Counts every HTTP response by endpoint and status, and times it."""

    def __init__(self, app: Any, metrics: ServiceMetrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def send_and_record_status(message: dict[str, Any]) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_and_record_status)
        finally:
            endpoint = scope["path"] if scope["path"] in ENDPOINTS else "other"
            self.metrics.observe_request(endpoint, status, time.perf_counter() - started)

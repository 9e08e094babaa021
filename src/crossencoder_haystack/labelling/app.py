"""The labelling page and its HTTP API, as a FastAPI app bound to one `LabellingSession`.

Routes:
- `GET /?token=...`: the page (401 without the session's token);
- `GET /static/...`: the page's own script, style and icon, shipped in this package (no CDN, no data in them);
- `GET /api/session`, `GET /api/queries/{query_id}`, `GET /api/progress`, `POST /api/judgements`: JSON, each
  needing `Authorization: Bearer <token>`.

`POST /api/judgements` takes `{"query_id", "document_id", "grade": 0..3 or null, "client"}` and answers only after
the judgement is in the log and on disk (`os.fsync`); a failed write answers 500 and the page keeps the pair unsaved.
Errors are `{"detail": "<one sentence>"}`: 401 (token), 404 (unknown query or document), 422 (bad body or grade).
"""

from pathlib import Path
from typing import Any

from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel

from crossencoder_haystack.__about__ import __version__
from crossencoder_haystack.labelling.log import GRADE_NAMES
from crossencoder_haystack.labelling.session import LabellingSession, UnknownItemError
from crossencoder_haystack.serving.auth import bearer_token, secret_matches

STATIC_DIRECTORY = Path(__file__).with_name("static")
_SECURITY_HEADERS = {
    # Everything the page loads comes from this server: no CDN, no inline script, no other origin to talk to.
    "Content-Security-Policy": (
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
        "frame-ancestors 'none'; base-uri 'none'; form-action 'none'"
    ),
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
    "Cache-Control": "no-store",
}
_NO_TOKEN_PAGE = """<!doctype html><meta charset="utf-8"><title>rerank label: access token needed</title>
<p>This labelling page needs its access token. Open the full URL that <code>rerank label</code> printed
(it ends in <code>?token=...</code>).</p>"""


class LabelRequestError(Exception):
    """Answer with `status` and `{"detail": message}`."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


class JudgementBody(BaseModel):
    """A judgement from the page: `grade` is 0..3, or null to take the judgement back (undo)."""

    query_id: str
    document_id: str
    grade: Any
    client: str = ""


def create_label_app(session: LabellingSession, token: str) -> FastAPI:
    """
    The labelling app for an opened session; every route but the static files needs `token`.

    ```python
    import secrets
    import uvicorn
    from crossencoder_haystack.labelling import create_label_app

    token = secrets.token_urlsafe(24)
    uvicorn.run(create_label_app(session, token), host="127.0.0.1", port=8765)  # session: an opened LabellingSession
    ```

    :param session: The `LabellingSession` (opened) that the page labels.
    :param token: The access token the URL carries and API calls send as `Authorization: Bearer <token>`.
    :raises ValueError: If `token` is shorter than 16 characters.
    """
    if not isinstance(token, str) or len(token) < 16:
        msg = "token must be a random string of at least 16 characters, e.g. secrets.token_urlsafe(24)."
        raise ValueError(msg)
    app = FastAPI(title="rerank label", version=__version__, docs_url=None, redoc_url=None, openapi_url=None)
    app.state.session = session
    app.state.token = token
    app.middleware("http")(_security_headers)
    # Starlette types a handler's error as Exception; these handlers take the subclass they are registered for.
    app.add_exception_handler(LabelRequestError, _request_error)  # type: ignore[arg-type]
    app.add_exception_handler(RequestValidationError, _validation_error)  # type: ignore[arg-type]
    app.add_api_route("/", _page, methods=["GET"], include_in_schema=False)
    app.mount("/static", StaticFiles(directory=STATIC_DIRECTORY), name="static")
    app.include_router(_api)
    return app


async def _security_headers(request: Request, call_next: Any) -> Response:
    response = await call_next(request)
    response.headers.update(_SECURITY_HEADERS)
    return response


async def _request_error(_: Request, error: LabelRequestError) -> JSONResponse:
    return JSONResponse({"detail": error.message}, status_code=error.status)


async def _validation_error(_: Request, error: RequestValidationError) -> JSONResponse:
    problems = "; ".join(f"{'.'.join(map(str, item['loc'][1:])) or 'body'}: {item['msg']}" for item in error.errors())
    return JSONResponse({"detail": f"bad request body ({problems})."}, status_code=422)


def _authorized(request: Request) -> None:
    presented = bearer_token(request.headers.get("authorization", ""))
    if not secret_matches(presented, request.app.state.token):
        raise LabelRequestError(401, "missing or wrong access token: open the URL `rerank label` printed.")


def _session(request: Request) -> LabellingSession:
    return request.app.state.session


def _page(request: Request) -> Response:
    if not secret_matches(request.query_params.get("token"), request.app.state.token):
        return HTMLResponse(_NO_TOKEN_PAGE, status_code=401)
    return FileResponse(STATIC_DIRECTORY / "index.html", media_type="text/html")


_api = APIRouter(prefix="/api", dependencies=[Depends(_authorized)])


@_api.get("/session")
def _session_info(session: LabellingSession = Depends(_session)) -> dict[str, Any]:
    return {
        "queries": session.query_summaries(),
        "resume": session.resume_index(),
        "top_n": session.top_n,
        "retriever": session.retriever,
        "model": Path(session.scorer.model).name if session.scorer is not None else None,
        "grades": {str(value): name for value, name in GRADE_NAMES.items()},
        "log": session.log.path.name,
        "progress": session.progress(),
    }


@_api.get("/progress")
def _progress(session: LabellingSession = Depends(_session)) -> dict[str, Any]:
    return session.progress()


@_api.get("/queries/{query_id:path}")
def _query(query_id: str, session: LabellingSession = Depends(_session)) -> dict[str, Any]:
    candidates = _known(lambda: session.candidates(query_id))
    grades = session.grades(query_id)
    return {
        "query_id": query_id,
        "query": session.dataset.queries[query_id],
        "index": session.query_ids.index(query_id),
        "candidates": [dict(candidate.to_json(), grade=grades.get(candidate.document_id)) for candidate in candidates],
        "progress": session.progress(),
    }


@_api.post("/judgements")
def _judge(body: JudgementBody, session: LabellingSession = Depends(_session)) -> dict[str, Any]:
    try:
        result = _known(lambda: session.judge(body.query_id, body.document_id, body.grade, body.client))
    except ValueError as error:
        raise LabelRequestError(422, str(error)) from None
    except OSError as error:  # the disk refused the write: the page must not show the pair as saved
        raise LabelRequestError(500, f"the judgement was NOT saved: {error}") from None
    return {
        "query_id": result.query_id,
        "document_id": result.document_id,
        "grade": result.grade,
        "previous": result.previous,
        "saved": True,
        "progress": result.progress,
    }


def _known(call: Any) -> Any:
    try:
        return call()
    except UnknownItemError as error:
        raise LabelRequestError(404, str(error)) from None

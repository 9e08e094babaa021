import asyncio
import concurrent.futures
import contextvars
import inspect
import threading
from collections.abc import Callable
from dataclasses import replace
from typing import Any

from haystack import Document, component, logging

from haystack_integrations.components.rankers.crossencoder._nested import wrapper_from_dict, wrapper_to_dict

logger = logging.getLogger(__name__)

PRIMARY = "primary"
FALLBACK = "fallback"


@component
class FallbackRanker:
    """
    Ranks with a primary ranker (e.g. a cloud `CohereRanker`) and falls back to a second one (e.g. a local
    `CrossEncoderRanker`) when the primary fails or takes longer than `timeout` seconds, so an outage of the
    cloud service does not take search down.

    Every returned document says in `meta["ranked_by"]` which ranker ranked it (`"primary"` or `"fallback"`);
    after a fallback, `meta["fallback_reason"]` says why. The `meta` output says the same for the whole call, also
    when no document comes back. Use two rankers that return the same kind of results: with a `CohereRanker`
    (which reads whole documents) as primary, give the cross-encoder `split_long_documents=True`.

    ### Usage example

    ```python
    from haystack_integrations.components.rankers.cohere import CohereRanker
    from haystack_integrations.components.rankers.crossencoder import CrossEncoderRanker, FallbackRanker

    ranker = FallbackRanker(
        primary=CohereRanker(model="rerank-v3.5", top_k=10),
        fallback=CrossEncoderRanker(model="path/to/cross-encoder", top_k=10, split_long_documents=True),
        timeout=3.0,
    )
    result = ranker.run(query="güçlü iletişim becerisine sahip adaylar", documents=documents)
    print(result["meta"])  # {'ranked_by': 'primary'} or {'ranked_by': 'fallback', 'fallback_reason': '...'}
    ```
    """

    def __init__(self, *, primary: Any, fallback: Any, timeout: float | None = 10.0) -> None:
        """
        Creates an instance of FallbackRanker.

        :param primary:
            The ranker to try first: any component with `run(query, documents, top_k)`.
        :param fallback:
            The ranker used when the primary raises or times out.
        :param timeout:
            Seconds the primary may take before the fallback is used; `None` waits for as long as it takes.
            A primary that timed out is abandoned: in `run_async` it is cancelled, in `run` its thread is left to
            finish on its own (it cannot hold up the interpreter's exit).
        :raises TypeError: If a ranker has no `run` method.
        :raises ValueError: If `timeout` is not a positive number or None.
        """
        for name, ranker in ((PRIMARY, primary), (FALLBACK, fallback)):
            if not callable(getattr(ranker, "run", None)):
                msg = f"{name} must be a ranker component with a run(query, documents, top_k) method, got {ranker!r}."
                raise TypeError(msg)
        if timeout is not None and (isinstance(timeout, bool) or not isinstance(timeout, int | float) or timeout <= 0):
            msg = f"timeout must be a positive number of seconds or None (no limit), got {timeout!r}."
            raise ValueError(msg)
        self.primary = primary
        self.fallback = fallback
        self.timeout = timeout

    def warm_up(self) -> None:
        """Warms up both rankers (the fallback too, so that switching to it costs no model loading)."""
        self._call_both("warm_up")

    async def warm_up_async(self) -> None:
        """Warms up both rankers without blocking the event loop (sync warm-ups run in a worker thread)."""
        await self._call_both_async("warm_up", in_thread=True)

    def close(self) -> None:
        """Releases what both rankers hold, for those that have a `close` method (called by `Pipeline.close`)."""
        self._call_both("close")

    async def close_async(self) -> None:
        """Releases what both rankers hold, with `close_async` where there is one (`Pipeline.close_async` calls it)."""
        await self._call_both_async("close", in_thread=False)

    def _call_both(self, method: str) -> None:
        for ranker in (self.primary, self.fallback):
            if hasattr(ranker, method):
                getattr(ranker, method)()

    async def _call_both_async(self, method: str, *, in_thread: bool) -> None:
        """Awaits each ranker's `<method>_async`, or else calls its `<method>`, in a worker thread if `in_thread`."""
        for ranker in (self.primary, self.fallback):
            if inspect.iscoroutinefunction(getattr(ranker, f"{method}_async", None)):
                await getattr(ranker, f"{method}_async")()
            elif hasattr(ranker, method):
                call = getattr(ranker, method)
                await asyncio.to_thread(call) if in_thread else call()

    def to_dict(self) -> dict[str, Any]:
        """
        Serializes the component to a dictionary, with both rankers nested.

        :returns:
            Dictionary with serialized data.
        """
        return wrapper_to_dict(self, {PRIMARY: self.primary, FALLBACK: self.fallback}, timeout=self.timeout)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "FallbackRanker":
        """
        Deserializes the component from a dictionary. The nested rankers are imported through Haystack's
        deserialization allowlist, like the components of a pipeline.

        :param data:
            Dictionary to deserialize from.
        :returns:
            Deserialized component.
        """
        return wrapper_from_dict(cls, data)

    @component.output_types(documents=list[Document], meta=dict[str, Any])
    def run(self, query: str, documents: list[Document], top_k: int | None = None) -> dict[str, Any]:
        """
        Ranks `documents` with the primary ranker, or with the fallback if the primary fails or times out.

        :param query:
            The query.
        :param documents:
            The documents to rank; they are not modified.
        :param top_k:
            The maximum number of documents to return (None: each ranker's own `top_k`).
        :returns:
            A dictionary with:
            - `documents`: copies of the ranked documents, each with `meta["ranked_by"]`
              (and `meta["fallback_reason"]` after a fallback).
            - `meta`: `ranked_by` (None when there was nothing to rank) and, after a fallback, `fallback_reason`.
        :raises ValueError: If `top_k` is not positive.
        :raises RuntimeError: If the fallback fails too.
        """
        arguments = _ranker_arguments(query, documents, top_k)
        if not documents:
            return {"documents": [], "meta": {"ranked_by": None}}
        primary = _in_daemon_thread(self.primary.run, arguments)
        concurrent.futures.wait([primary], timeout=self.timeout)
        output, reason = self._primary_output(primary)
        if output is not None:
            return output
        assert reason is not None  # _primary_output gives an output or a reason
        try:
            ranked = _ranked_documents(self.fallback.run(**arguments))
        except Exception as error:
            raise _fallback_error(reason, error) from error
        return _output(ranked, FALLBACK, reason)

    @component.output_types(documents=list[Document], meta=dict[str, Any])
    async def run_async(self, query: str, documents: list[Document], top_k: int | None = None) -> dict[str, Any]:
        """
        Asynchronously ranks `documents`; see `run`. Rankers with a `run_async` are awaited (a primary that times
        out is cancelled), others run in a worker thread, so the event loop is never blocked.

        :param query:
            The query.
        :param documents:
            The documents to rank; they are not modified.
        :param top_k:
            The maximum number of documents to return (None: each ranker's own `top_k`).
        :returns:
            A dictionary with `documents` and `meta`, as `run` returns them.
        :raises ValueError: If `top_k` is not positive.
        :raises RuntimeError: If the fallback fails too.
        """
        arguments = _ranker_arguments(query, documents, top_k)
        if not documents:
            return {"documents": [], "meta": {"ranked_by": None}}
        primary = asyncio.ensure_future(_run_async(self.primary, arguments))
        await asyncio.wait({primary}, timeout=self.timeout)
        output, reason = self._primary_output(primary)
        if output is not None:
            return output
        assert reason is not None  # _primary_output gives an output or a reason
        if not primary.done():
            primary.cancel()
            primary.add_done_callback(_discard_outcome)
        try:
            ranked = _ranked_documents(await _run_async(self.fallback, arguments))
        except Exception as error:
            raise _fallback_error(reason, error) from error
        return _output(ranked, FALLBACK, reason)

    def _primary_output(
        self, primary: concurrent.futures.Future | asyncio.Future
    ) -> tuple[dict[str, Any], None] | tuple[None, str]:
        """(the output the primary ranked, None), or else (None, why the fallback ranks instead), which is logged."""
        if not primary.done():
            reason = f"the primary ranker took longer than timeout={self.timeout} s"
        else:
            try:
                return _output(_ranked_documents(primary.result()), PRIMARY, None), None
            except Exception as error:  # any failure of the primary is what the fallback is for
                reason = _failure_reason(error)
        logger.warning(
            "FallbackRanker: {reason}; ranking with the fallback {fallback}.",
            reason=reason,
            fallback=type(self.fallback).__name__,
        )
        return None, reason


def _ranker_arguments(query: str, documents: list[Document], top_k: int | None) -> dict[str, Any]:
    if top_k is not None and (isinstance(top_k, bool) or not isinstance(top_k, int) or top_k <= 0):
        msg = f"top_k must be a positive integer or None (each ranker's own top_k), got {top_k!r}."
        raise ValueError(msg)
    arguments: dict[str, Any] = {"query": query, "documents": documents}
    if top_k is not None:
        arguments["top_k"] = top_k
    return arguments


def _in_daemon_thread(function: Callable[..., Any], arguments: dict[str, Any]) -> concurrent.futures.Future:
    """Call `function(**arguments)` in a new daemon thread: unlike a pool's worker, a primary that hangs past the
    timeout cannot keep the interpreter from exiting. The caller's context (e.g. tracing spans) goes along."""
    future: concurrent.futures.Future = concurrent.futures.Future()
    future.set_running_or_notify_cancel()

    def call() -> None:
        try:
            future.set_result(function(**arguments))
        except BaseException as error:
            future.set_exception(error)

    context = contextvars.copy_context()
    threading.Thread(target=context.run, args=(call,), name="fallback-ranker-primary", daemon=True).start()
    return future


async def _run_async(ranker: Any, arguments: dict[str, Any]) -> Any:
    if inspect.iscoroutinefunction(getattr(ranker, "run_async", None)):
        return await ranker.run_async(**arguments)
    return await asyncio.wrap_future(_in_daemon_thread(ranker.run, arguments))


def _discard_outcome(task: asyncio.Future) -> None:
    # The abandoned primary's result or error is of no interest; retrieving it keeps asyncio from logging it.
    if not task.cancelled():
        task.exception()


def _ranked_documents(result: Any) -> list[Document]:
    documents = result.get("documents") if isinstance(result, dict) else None
    if not isinstance(documents, list):
        msg = f"the ranker returned {type(result).__name__} without a 'documents' list"
        raise TypeError(msg)
    return documents


def _failure_reason(error: Exception) -> str:
    return f"the primary ranker failed: {type(error).__name__}: {error}"


def _fallback_error(reason: str, error: Exception) -> RuntimeError:
    return RuntimeError(
        f"FallbackRanker: {reason}, and the fallback ranker failed too: {type(error).__name__}: {error}"
    )


def _output(documents: list[Document], ranked_by: str, reason: str | None) -> dict[str, Any]:
    meta: dict[str, Any] = {"ranked_by": ranked_by}
    if reason is not None:
        meta["fallback_reason"] = reason
    return {"documents": [replace(doc, meta={**doc.meta, **meta}) for doc in documents], "meta": meta}

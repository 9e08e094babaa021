import asyncio
import concurrent.futures
from dataclasses import replace
from typing import Any

from haystack import Document, component, default_to_dict, logging
from haystack.core.serialization import component_from_dict, component_to_dict

logger = logging.getLogger(__name__)


@component
class FallbackRanker:
    """
    Ranks with a primary ranker (e.g. a cloud `CohereRanker`) and falls back to a second one (e.g. a local
    `CrossEncoderRanker`) when the primary fails or takes longer than `timeout` seconds, so an outage of the
    cloud service does not take search down. Every returned document says in `meta["ranked_by"]` which ranker
    ranked it (`"primary"` or `"fallback"`); after a fallback, `meta["fallback_reason"]` says why.

    ### Usage example

    ```python
    from haystack_integrations.components.rankers.cohere import CohereRanker
    from haystack_integrations.components.rankers.crossencoder import CrossEncoderRanker, FallbackRanker

    ranker = FallbackRanker(
        primary=CohereRanker(model="rerank-v3.5", top_k=10),
        fallback=CrossEncoderRanker(model="path/to/cross-encoder", top_k=10),
        timeout=3.0,
    )
    result = ranker.run(query="güçlü iletişim becerisine sahip adaylar", documents=documents)
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
        """
        for name, ranker in (("primary", primary), ("fallback", fallback)):
            if not callable(getattr(ranker, "run", None)):
                msg = f"{name} must be a ranker component with a run(query, documents, top_k) method, got {ranker!r}."
                raise TypeError(msg)
        if timeout is not None and timeout <= 0:
            msg = f"timeout must be > 0 seconds or None, got {timeout}."
            raise ValueError(msg)
        self.primary = primary
        self.fallback = fallback
        self.timeout = timeout
        # Primary calls run in this pool so they can be timed out; one that timed out may still occupy a worker.
        self._executor = concurrent.futures.ThreadPoolExecutor(max_workers=4, thread_name_prefix="fallback-ranker")

    def warm_up(self) -> None:
        """Warms up both rankers (the fallback too, so that switching to it costs no model loading)."""
        for ranker in (self.primary, self.fallback):
            if hasattr(ranker, "warm_up"):
                ranker.warm_up()

    def to_dict(self) -> dict[str, Any]:
        """
        Serializes the component to a dictionary.

        :returns:
            Dictionary with serialized data.
        """
        return default_to_dict(
            self,
            primary=component_to_dict(self.primary, "primary"),
            fallback=component_to_dict(self.fallback, "fallback"),
            timeout=self.timeout,
        )

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "FallbackRanker":
        """
        Deserializes the component from a dictionary.

        :param data:
            Dictionary to deserialize from.
        :returns:
            Deserialized component.
        """
        from haystack.core.errors import DeserializationError
        from haystack.utils.type_serialization import thread_safe_import

        init = dict(data.get("init_parameters", {}))
        for name in ("primary", "fallback"):
            spec = init[name]
            module_name, _, class_name = spec["type"].rpartition(".")
            try:
                cls_ = getattr(thread_safe_import(module_name), class_name)
            except (ImportError, AttributeError) as error:
                msg = f"FallbackRanker could not import its {name} ranker {spec['type']!r}: {error}"
                raise DeserializationError(msg) from error
            init[name] = component_from_dict(cls_, spec, name)
        return cls(**init)

    @component.output_types(documents=list[Document])
    def run(self, query: str, documents: list[Document], top_k: int | None = None) -> dict[str, list[Document]]:
        """
        Ranks `documents` with the primary ranker, or with the fallback if the primary fails or times out.

        :param query:
            The query.
        :param documents:
            The documents to rank.
        :param top_k:
            The maximum number of documents to return.
        :returns:
            A dictionary with `documents`, each with `meta["ranked_by"]`.
        """
        future = self._executor.submit(self._call, self.primary, query, documents, top_k)
        try:
            result = future.result(timeout=self.timeout)
            return {"documents": _marked(result["documents"], "primary", None)}
        except concurrent.futures.TimeoutError:
            reason = f"the primary ranker took longer than {self.timeout} s"
        except Exception as error:  # any failure of the primary is what the fallback is for
            reason = f"the primary ranker failed: {type(error).__name__}: {error}"
        logger.warning("FallbackRanker: {reason}; ranking with the fallback.", reason=reason)
        result = self._call(self.fallback, query, documents, top_k)
        return {"documents": _marked(result["documents"], "fallback", reason)}

    @component.output_types(documents=list[Document])
    async def run_async(
        self, query: str, documents: list[Document], top_k: int | None = None
    ) -> dict[str, list[Document]]:
        """
        Asynchronously ranks `documents`; see `run`.

        :param query:
            The query.
        :param documents:
            The documents to rank.
        :param top_k:
            The maximum number of documents to return.
        :returns:
            A dictionary with `documents`, each with `meta["ranked_by"]`.
        """
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(None, lambda: self.run(query=query, documents=documents, top_k=top_k))

    @staticmethod
    def _call(ranker: Any, query: str, documents: list[Document], top_k: int | None) -> dict[str, Any]:
        if top_k is None:
            return ranker.run(query=query, documents=documents)
        return ranker.run(query=query, documents=documents, top_k=top_k)


def _marked(documents: list[Document], ranked_by: str, reason: str | None) -> list[Document]:
    extra = {"ranked_by": ranked_by} if reason is None else {"ranked_by": ranked_by, "fallback_reason": reason}
    return [replace(doc, meta={**doc.meta, **extra}) for doc in documents]

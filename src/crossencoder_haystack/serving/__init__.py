"""A self-hosted rerank service speaking the Cohere v1/v2 and text-embeddings-inference rerank APIs.

`serve(...)` runs it (the `rerank serve` command); `create_app(...)` builds the FastAPI app for embedding it in
your own ASGI server. Needs the `serve` extra (fastapi, uvicorn).
"""

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from crossencoder_haystack.serving.app import create_app
    from crossencoder_haystack.serving.limits import ServiceLimits
    from crossencoder_haystack.serving.served_model import JobCancelledError, RankedText, RerankJob, ServedModel
    from crossencoder_haystack.serving.server import serve

# Imported on first use, so that `rerank --help` does not pay for fastapi, haystack and torch.
_EXPORTS = {
    "create_app": "app",
    "ServiceLimits": "limits",
    "JobCancelledError": "served_model",
    "RankedText": "served_model",
    "RerankJob": "served_model",
    "ServedModel": "served_model",
    "serve": "server",
}

__all__ = ["JobCancelledError", "RankedText", "RerankJob", "ServedModel", "ServiceLimits", "create_app", "serve"]


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        msg = f"module {__name__!r} has no attribute {name!r}"
        raise AttributeError(msg)
    return getattr(importlib.import_module(f"{__name__}.{_EXPORTS[name]}"), name)

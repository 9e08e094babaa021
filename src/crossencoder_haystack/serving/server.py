"""`serve(...)`: run the rerank service with uvicorn until SIGINT/SIGTERM, then shut down gracefully.

On a shutdown signal uvicorn stops accepting connections and lets in-flight requests finish (for up to
`request_timeout` seconds plus a little), then the app's lifespan stops the model worker after it has scored
everything still queued.

It needs an API key, or an explicit choice not to have one: see `crossencoder_haystack.serving.auth` for the rule.
A missing key is found before the model loads.
"""

from pathlib import Path
from typing import Literal

from crossencoder_haystack.serving.app import create_app
from crossencoder_haystack.serving.auth import resolve_api_key
from crossencoder_haystack.serving.limits import ServiceLimits
from crossencoder_haystack.serving.served_model import ServedModel

_SHUTDOWN_GRACE_SECONDS = 5.0


def serve(
    model: str | Path,
    *,
    backend: Literal["torch", "onnx", "openvino"] = "torch",
    host: str = "127.0.0.1",
    port: int = 8080,
    api_key_env: str | None = None,
    no_auth: bool = False,
    limits: ServiceLimits | None = None,
    max_length: int | None = None,
    batch_size: int = 16,
    num_threads: int | None = None,
    model_name: str | None = None,
    log_level: str = "info",
    precision: Literal["auto", "fp32", "bf16", "fp16", "int8"] = "auto",
    truncation: Literal["longest_first", "query_window"] = "longest_first",
) -> None:
    """
    Serves `model` over HTTP (Cohere v1/v2 and TEI rerank APIs) until interrupted.

    ```python
    from crossencoder_haystack.serving import ServiceLimits, serve

    serve("/models/my-cross-encoder", port=8080, limits=ServiceLimits(max_documents=200))
    ```

    :param model: A local cross-encoder directory.
    :param backend: `"torch"`, `"onnx"` or `"openvino"`.
    :param host: The interface to listen on; `0.0.0.0` for every interface.
    :param port: The TCP port.
    :param api_key_env: The environment variable holding the API key clients must send as
        `Authorization: Bearer <key>`; it must be set. `None` reads `RERANK_API_KEY` if that is set, and otherwise
        serves without a key on a loopback `host` only (see `crossencoder_haystack.serving.auth`).
    :param no_auth: Serve without an API key on any host, on purpose.
    :param limits: Request limits, queue size, batch window and timeout; defaults to `ServiceLimits()`.
    :param max_length: Tokens of query plus passage the model sees; `None` uses the model's limit.
    :param batch_size: Pairs per forward pass.
    :param num_threads: CPU threads for the model; `None` keeps the library default. On a CPU shared with other
        work, 1 can be several times faster than oversubscribing every core.
    :param model_name: The model name `GET /info` reports.
    :param log_level: Uvicorn's log level.
    :param precision: What the model computes in (`auto`: bf16 on CPUs with AMX / AVX512-BF16, else fp32).
    :param truncation: How a long pair is cut: `longest_first` or `query_window`.
    :raises AuthConfigurationError: If no API key is set where one is required (before the model loads).
    :raises ModelNotAvailableError: If the model cannot be loaded.
    :raises RuntimeError: If the server could not start (e.g. the port is taken).
    """
    import uvicorn

    limits = limits or ServiceLimits()
    api_key = resolve_api_key(api_key_env, no_auth=no_auth, host=host)
    served = ServedModel(
        model,
        backend=backend,
        max_length=max_length,
        batch_size=batch_size,
        num_threads=num_threads,
        model_name=model_name,
        precision=precision,
        truncation=truncation,
    )
    served.warm_up()  # a missing model fails here, with the loader's explanation, before the port opens
    app = create_app(served, api_key=api_key, limits=limits)
    config = uvicorn.Config(
        app,
        host=host,
        port=port,
        log_level=log_level,
        lifespan="on",
        timeout_graceful_shutdown=int(limits.request_timeout + _SHUTDOWN_GRACE_SECONDS),
    )
    server = uvicorn.Server(config)
    server.run()
    if not server.started:
        msg = f"The rerank service did not start on {host}:{port}; see the log above."
        raise RuntimeError(msg)

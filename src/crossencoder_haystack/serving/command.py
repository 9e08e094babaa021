"""`rerank serve`: run the rerank service (Cohere v1/v2 and TEI rerank APIs) for one cross-encoder.

Every flag falls back to an environment variable, as in text-embeddings-inference: `--port` to `RERANK_PORT`,
`--max-length` to `RERANK_MAX_LENGTH` and so on (`RERANK_<FLAG>`); the flag wins. The API key itself is read from
`RERANK_API_KEY` (or the variable `--api-key-env` names), never from a flag.
"""

import argparse
import os
import sys
from collections.abc import Mapping
from typing import Any

from crossencoder_haystack.cli_arguments import (
    PRECISION_CHOICES,
    TRUNCATION_CHOICES,
    add_command,
    add_scoring_arguments,
)
from crossencoder_haystack.distributed.options import add_engine_arguments, ray_options
from crossencoder_haystack.serving.environment import add_environment_fallbacks, variable_name
from crossencoder_haystack.serving.limits import DEFAULT_API_KEY_ENV, ServiceLimits

ENVIRONMENT_PREFIX = "RERANK_"
_DEFAULTS = ServiceLimits()
_EXIT_USAGE_ERROR = 2
__all__ = ["PRECISION_CHOICES", "TRUNCATION_CHOICES", "register"]  # the choices live in cli_arguments now
# The ServiceLimits flags: (type, help); each default is ServiceLimits' own.
_LIMIT_FLAGS: dict[str, tuple[type, str]] = {
    "batch_window_ms": (float, "How long the model worker waits for more requests to batch"),
    "max_batch_documents": (
        int,
        "A batch closes once its requests hold this many documents; 1 scores one request at a time",
    ),
    "max_queue": (
        int,
        "Requests that may wait, those still sending their body included; more get 429 before their body is read",
    ),
    "max_documents": (int, "Documents per request"),
    "max_document_chars": (int, "Characters per document and query"),
    "max_body_bytes": (int, "Bytes per request body"),
    "request_timeout": (
        float,
        "Seconds per request, queueing included; then 504, and the model stops scoring it",
    ),
}
_HELP = "Serve a cross-encoder over HTTP with the Cohere v2 and text-embeddings-inference rerank APIs."
_DESCRIPTION = (
    "Serve a cross-encoder over HTTP. POST /v2/rerank (and /v1/rerank) speak Cohere's rerank API, POST /rerank "
    "text-embeddings-inference's; GET /health, /info and /metrics (Prometheus) need no key. Every flag falls back to "
    f"the environment variable shown with it ({ENVIRONMENT_PREFIX}<FLAG>); a flag given on the command line wins."
)
# Passed to serve(...) as they were parsed.
_SERVE_OPTIONS = ("backend", "host", "port", "max_length", "batch_size", "num_threads", "model_name")


def register(subparsers: argparse._SubParsersAction) -> None:
    """Adds the `serve` sub-command."""
    parser = add_command(subparsers, "serve", _serve, _HELP, _DESCRIPTION)
    _add_model_arguments(parser)
    limits = parser.add_argument_group("limits")
    for name, (kind, text) in _LIMIT_FLAGS.items():
        flag = "--" + name.replace("_", "-")
        limits.add_argument(flag, type=kind, default=getattr(_DEFAULTS, name), help=text + " (default: %(default)s).")
    parser.add_argument("--log-level", default="info", choices=("critical", "error", "warning", "info", "debug"))
    add_engine_arguments(parser, unit="replica")
    add_environment_fallbacks(parser, ENVIRONMENT_PREFIX)


def _add_model_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", required=True, help="A local cross-encoder directory.")
    add_scoring_arguments(parser, ["backend"], defaults={"backend": "torch"})
    parser.add_argument("--host", default="127.0.0.1", help="Interface to listen on (default: %(default)s).")
    parser.add_argument("--port", type=int, default=8080, help="TCP port (default: %(default)s).")
    _add_auth_arguments(parser)
    scoring = ["max_length", "batch_size", "num_threads", "precision", "truncation"]
    add_scoring_arguments(parser, scoring, defaults={"batch_size": 16})
    parser.add_argument("--model-name", default=None, help="The model name GET /info reports.")


def _add_auth_arguments(parser: argparse.ArgumentParser) -> None:
    auth = parser.add_mutually_exclusive_group()
    auth.add_argument(
        "--api-key-env",
        default=None,
        metavar="VARIABLE",
        help="Environment variable holding the API key clients send as 'Authorization: Bearer <key>'; it must be "
        f"set, or the service does not start. Without this flag the key is read from {DEFAULT_API_KEY_ENV}; if "
        "that is not set either, the service runs without a key on a loopback --host only.",
    )
    auth.add_argument(
        "--no-auth",
        action="store_true",
        help="Serve without an API key, on any host: anyone who can reach the port may use the service.",
    )


def _serve(args: argparse.Namespace) -> int:
    from crossencoder_haystack.serving.auth import AuthConfigurationError
    from crossencoder_haystack.serving.server import serve

    try:
        limits = ServiceLimits(**{name: getattr(args, name) for name in _LIMIT_FLAGS})
        auth = _auth_options(args, os.environ)
    except ValueError as error:
        return _usage_error(error)
    engine_options = ray_options(args, unit="replica")
    if args.engine == "ray":  # N replicas on Ray Serve, batched by @serve.batch; the same API, key and limits
        from crossencoder_haystack.distributed import serve_on_ray as serve
    else:
        engine_options["log_level"] = args.log_level
    options = {name: getattr(args, name) for name in _SERVE_OPTIONS}
    try:
        serve(args.model, limits=limits, **auth, **options, **engine_options, **_model_options(args))  # type: ignore[arg-type]  # argparse strings, checked by serve
    except AuthConfigurationError as error:  # found before the model loads
        return _usage_error(error)
    return 0


def _auth_options(args: argparse.Namespace, environ: Mapping[str, str]) -> dict[str, Any]:
    """
    `--api-key-env` and `--no-auth`. The command line cannot give both, but a variable and the other flag can: the
    flag on the command line wins; both variables set is an error.
    """
    api_key_env, no_auth = args.api_key_env, args.no_auth
    if api_key_env is not None and no_auth:
        variables = {name: variable_name(name, ENVIRONMENT_PREFIX) for name in ("api-key-env", "no-auth")}
        from_environment = [name for name, variable in variables.items() if environ.get(variable, "").strip()]
        if len(from_environment) != 1:
            msg = f"{' and '.join(variables.values())} exclude each other: unset one of them."
            raise ValueError(msg)
        if from_environment == ["api-key-env"]:
            api_key_env = None
        else:
            no_auth = False
    return {"api_key_env": api_key_env, "no_auth": no_auth}


def _model_options(args: argparse.Namespace) -> dict[str, str]:
    """`--precision` and `--truncation` when given; left out, the ranker's defaults apply."""
    options = {"precision": args.precision, "truncation": args.truncation}
    return {name: value for name, value in options.items() if value is not None}


def _usage_error(error: Exception) -> int:
    print(f"rerank serve: error: {error}", file=sys.stderr)
    return _EXIT_USAGE_ERROR

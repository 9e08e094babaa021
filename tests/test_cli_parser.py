"""The `rerank` sub-commands built with `crossencoder_haystack.cli_arguments`: every shared flag keeps its dest,
default, type and choices, and each sub-command still calls its handler."""

import argparse

import pytest

from crossencoder_haystack.cli import build_parser
from crossencoder_haystack.cli_arguments import (
    add_collection_arguments,
    add_command,
    add_scoring_arguments,
    options_of,
)

PRECISIONS = ["auto", "fp32", "bf16", "fp16", "int8"]
TRUNCATIONS = ["longest_first", "query_window"]
BACKENDS = ["torch", "onnx", "openvino"]
# (sub-command, dest) -> (default, choices, type name), as the flags were before cli_arguments served them.
SHARED_FLAGS = {
    ("calibrate", "backend"): (None, BACKENDS, None),
    ("calibrate", "batch_size"): (None, None, "int"),
    ("calibrate", "max_length"): (None, None, "int"),
    ("calibrate", "precision"): (None, PRECISIONS, None),
    ("calibrate", "truncation"): (None, TRUNCATIONS, None),
    ("demo", "precision"): (None, PRECISIONS, None),
    ("distill", "batch_size"): (32, None, "int"),
    ("distill", "max_length"): (None, None, "int"),
    ("distill", "verbose"): (False, None, None),
    ("evaluate", "backend"): (None, BACKENDS, None),
    ("evaluate", "batch_size"): (None, None, "int"),
    ("evaluate", "max_length"): (None, None, "int"),
    ("evaluate", "num_threads"): (None, None, "int"),
    ("evaluate", "precision"): (None, PRECISIONS, None),
    ("evaluate", "truncation"): (None, TRUNCATIONS, None),
    ("export", "backend"): ("onnx", ["onnx", "openvino"], None),
    ("export", "max_length"): (None, None, "int"),
    ("label", "max_length"): (None, None, "int"),
    ("serve", "backend"): ("torch", BACKENDS, None),
    ("serve", "batch_size"): (16, None, "int"),
    ("serve", "max_length"): (None, None, "int"),
    ("serve", "num_threads"): (None, None, "int"),
    ("serve", "precision"): (None, PRECISIONS, None),
    ("serve", "truncation"): (None, TRUNCATIONS, None),
    ("train", "batch_size"): (32, None, "int"),
    ("train", "max_length"): (128, None, "int"),
    ("train", "verbose"): (False, None, None),
}
# (sub-command) -> (the collection's flag, required, --split's default), as they were before add_collection_arguments.
COLLECTION_FLAGS = {
    "calibrate": ("--data", True, "test"),
    "distill": ("--queries", True, "train"),
    "evaluate": ("--dataset", True, "test"),
    "label": ("--queries", False, None),
    "mine": ("--queries", True, "train"),
}
COMMANDS = (
    "demo",
    "serve",
    "evaluate",
    "export",
    "train",
    "mine",
    "distill",
    "calibrate",
    "label",
    "multilingual-model",
)


def _subparsers() -> dict[str, argparse.ArgumentParser]:
    parser = build_parser()
    return next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction)).choices


@pytest.fixture(scope="module")
def subparsers() -> dict[str, argparse.ArgumentParser]:
    return _subparsers()


def test_every_command_has_a_handler_summary_and_description(subparsers):
    assert set(COMMANDS) <= set(subparsers)
    for name in COMMANDS:
        parser = subparsers[name]
        assert callable(parser.get_default("func")), name
        assert parser.description, name


@pytest.mark.parametrize(("command", "dest"), sorted(SHARED_FLAGS))
def test_shared_flags_keep_dest_default_type_and_choices(subparsers, command, dest):
    (action,) = [a for a in subparsers[command]._actions if a.dest == dest]
    default, choices, type_name = SHARED_FLAGS[command, dest]
    assert action.option_strings == ["--" + dest.replace("_", "-")]
    assert action.default == default
    assert (list(action.choices) if action.choices else None) == choices
    assert (action.type.__name__ if action.type else None) == type_name


def test_add_command_and_scoring_arguments():
    parser = argparse.ArgumentParser(prog="rerank")
    sub = add_command(parser.add_subparsers(dest="command"), "score", lambda _: 0, "Score.", "Score pairs.")
    add_scoring_arguments(sub, ["max_length", "precision"], defaults={"max_length": 64}, prefix="All: ")
    args = parser.parse_args(["score", "--precision", "bf16"])
    assert args.func(args) == 0
    assert options_of(args, ["max_length", "precision"]) == {"max_length": 64, "precision": "bf16"}
    helps = {action.dest: action.help for action in sub._actions}
    assert helps["max_length"].startswith("All: Tokens of query plus document")
    assert helps["max_length"].endswith("(default: %(default)s).")
    with pytest.raises(SystemExit):
        parser.parse_args(["score", "--precision", "fp8"])


@pytest.mark.parametrize("command", sorted(COLLECTION_FLAGS))
def test_collection_flags_keep_required_and_split_default(subparsers, command):
    flag, required, split_default = COLLECTION_FLAGS[command]
    actions = {action.option_strings[0]: action for action in subparsers[command]._actions if action.option_strings}
    assert actions[flag].required is required
    assert actions[flag].default is None
    assert actions["--corpus"].default is None
    assert actions["--split"].default == split_default
    for option in (flag, "--corpus", "--split"):
        assert actions[option].help, (command, option)
    names = [action.option_strings[0] for action in subparsers[command]._actions if action.option_strings]
    start = names.index(flag)
    assert names[start : start + 3] == [flag, "--corpus", "--split"]


def test_add_collection_arguments():
    parser = argparse.ArgumentParser(prog="rerank")
    add_collection_arguments(
        parser, "--data", help="Data.", corpus_help="Corpus.", split_help="Split.", split_default="dev"
    )
    args = parser.parse_args(["--data", "beir/scifact"])
    assert options_of(args, ["data", "corpus", "split"]) == {"data": "beir/scifact", "corpus": None, "split": "dev"}
    helps = {action.dest: action.help for action in parser._actions}
    assert (helps["data"], helps["corpus"], helps["split"]) == ("Data.", "Corpus.", "Split.")
    with pytest.raises(SystemExit):
        parser.parse_args(["--corpus", "corpus.jsonl"])  # --data is required
    optional = argparse.ArgumentParser(prog="rerank")
    add_collection_arguments(optional, "--queries", help="Q.", corpus_help="C.", split_help="S.", required=False)
    assert vars(optional.parse_args([])) == {"queries": None, "corpus": None, "split": None}

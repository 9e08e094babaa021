"""The CLI's literal choices are the components' own: a value a component accepts is offered by every flag that sets
it, and no flag offers one the component would refuse."""

import argparse
import typing

import pytest

from crossencoder_haystack.cli import build_parser
from haystack_integrations.components.preprocessors.crossencoder import PassageSplitter
from haystack_integrations.components.rankers.crossencoder import CrossEncoderRanker

# Flags that deliberately offer a subset of the component's values, and why.
SUBSETS = {
    ("distill", "teacher_precision"): "the teacher's scores are the training targets: fp16 and int8 are not faithful",
}
# Flags that offer a value of their own on top of the component's, and why.
EXTRAS = {
    ("distill", "teacher_backend"): {"auto"},  # the teacher's fastest faithful backend, chosen by `rerank distill`
}
# Flags named like a ranker parameter that set something else.
NOT_RANKER_PARAMETERS = {
    ("export", "backend"),  # the format `rerank export` writes (ONNX or OpenVINO), not the backend a ranker runs on
}


def _literal_parameters(component: type) -> dict[str, tuple[str, ...]]:
    hints = typing.get_type_hints(component.__init__)
    literals = {}
    for name, hint in hints.items():
        for candidate in (hint, *typing.get_args(hint)):
            if typing.get_origin(candidate) is typing.Literal:
                literals[name] = typing.get_args(candidate)
    return literals


RANKER_LITERALS = _literal_parameters(CrossEncoderRanker)


def _options_with_choices() -> list[tuple[str, str, tuple[str, ...]]]:
    options = []
    parser = build_parser()
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for command, subparser in action.choices.items():
                for option in subparser._actions:
                    if option.choices is not None and not isinstance(option, argparse._SubParsersAction):
                        options.append((command, option.dest, tuple(option.choices)))
    return options


def test_the_ranker_declares_its_literal_parameters():
    assert {"backend", "precision", "truncation", "fusion", "activation"} <= set(RANKER_LITERALS)


@pytest.mark.parametrize(
    ("command", "dest", "choices"),
    [
        option
        for option in _options_with_choices()
        if option[1].removeprefix("teacher_") in RANKER_LITERALS and option[:2] not in NOT_RANKER_PARAMETERS
    ],
    ids=lambda value: value if isinstance(value, str) else None,
)
def test_every_ranker_flag_offers_the_rankers_values(command, dest, choices):
    accepted = set(RANKER_LITERALS[dest.removeprefix("teacher_")]) | EXTRAS.get((command, dest), set())
    assert set(choices) <= accepted, f"rerank {command} --{dest} offers values CrossEncoderRanker refuses"
    if (command, dest) not in SUBSETS:
        assert set(choices) == accepted, f"rerank {command} --{dest} misses values CrossEncoderRanker accepts"


def test_every_aggregation_the_cli_documents_is_one_the_ranker_accepts():
    from haystack_integrations.components.rankers.crossencoder._engine.aggregation import AGGREGATIONS

    for name in ("max", "mean", "first", "sum"):
        assert name in AGGREGATIONS
        CrossEncoderRanker(model="m", aggregation=name)


def test_the_flags_that_set_ranker_parameters_are_found():
    found = {(command, dest) for command, dest, _ in _options_with_choices()}
    assert {("serve", "precision"), ("evaluate", "truncation"), ("evaluate", "fusion")} <= found


def test_the_splitter_and_the_ranker_agree_on_the_overlap_name():
    assert "overlap_tokens" in CrossEncoderRanker(model="m").to_dict()["init_parameters"]
    assert "overlap_tokens" in PassageSplitter(tokenizer="m").to_dict()["init_parameters"]

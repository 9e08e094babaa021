"""Serialization of the components that wrap two rankers (`FallbackRanker`, `CascadeRanker`)."""

import copy
from typing import Any, TypeVar

from haystack import default_from_dict, default_to_dict
from haystack.core.serialization import component_to_dict

T = TypeVar("T")


def wrapper_to_dict(wrapper: Any, rankers: dict[str, Any], **init_parameters: Any) -> dict[str, Any]:
    """`default_to_dict` of `wrapper`, each nested ranker serialized by Haystack under its parameter name."""
    nested = {name: component_to_dict(ranker, name) for name, ranker in rankers.items()}
    return default_to_dict(wrapper, **nested, **init_parameters)


def wrapper_from_dict(cls: type[T], data: dict[str, Any]) -> T:
    """
    `default_from_dict` on a copy (some rankers' `from_dict` edit the dict they get; the caller's stays as it was).
    The nested rankers go through Haystack's deserialization allowlist, like the components of a pipeline.
    """
    return default_from_dict(cls, copy.deepcopy(data))

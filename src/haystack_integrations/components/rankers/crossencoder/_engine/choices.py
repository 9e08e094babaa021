"""One rule for a setting that takes one of a few named values, and one wording for the error."""

from collections.abc import Sequence
from typing import Any, TypeVar

_Value = TypeVar("_Value")


def check_choice(name: str, value: _Value, choices: Sequence[Any], hint: str = "") -> _Value:
    """
    `value` if it is one of `choices`, else a ValueError: "`name` must be one of 'a', 'b', got 'c'." and the hint.

    :param name: The setting's name, as the user passes it.
    :param value: The user's value.
    :param choices: The values the setting takes, in the order the error lists them.
    :param hint: A sentence put after the error, e.g. what to pass instead.
    :returns: `value`, unchanged.
    :raises ValueError: If `value` is not one of `choices`.
    """
    if value not in choices:
        msg = f"{name} must be one of {', '.join(map(repr, choices))}, got {value!r}."
        raise ValueError(f"{msg} {hint}" if hint else msg)
    return value

"""One rule, and one wording of the error, for each kind of setting the components check: one of a few named
values, a positive int, a score threshold."""

import math
import numbers
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


def check_positive_int(name: str, value: Any, hint: str) -> int:
    """
    `value` as an int if it is an int > 0 (bools are not), else a ValueError: "`name` must be a positive int, got
    `value`." and the hint (e.g. "Pass e.g. top_k=10.").
    """
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value <= 0:
        msg = f"{name} must be a positive int, got {value!r}. {hint}"
        raise ValueError(msg)
    return int(value)


def check_score_threshold(value: Any, hint: str = "") -> None:
    """
    Accepts None (no threshold) or a real number that is not NaN (bools are not); else a ValueError, with the hint
    after it.
    """
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or math.isnan(value):
        msg = f"score_threshold must be a real number or None (no threshold), got {value!r}."
        raise ValueError(f"{msg} {hint}" if hint else msg)

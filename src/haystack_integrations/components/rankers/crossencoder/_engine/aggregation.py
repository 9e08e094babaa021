"""Passage aggregation: turning the scores of a document's passages into one score for the document.

`aggregation` is one of `max` (the best passage decides; robust default), `mean`, `first` (the first passage,
as plain truncation would see it), `sum` (favours documents with many matching passages) or `topN_mean`
(the mean of the N best passages, e.g. `top2_mean`). Scores are aggregated after the activation.
"""

import re
from collections.abc import Sequence

AGGREGATIONS: tuple[str, ...] = ("max", "mean", "first", "sum", "top2_mean", "top3_mean")
_TOP_N_MEAN = re.compile(r"^top([1-9][0-9]*)_mean$")


def validate_aggregation(aggregation: str, parameter: str = "aggregation") -> str:
    """Return `aggregation` if it is known (any `topN_mean` with N >= 1 is), else raise a ValueError."""
    if aggregation in AGGREGATIONS or (isinstance(aggregation, str) and _TOP_N_MEAN.match(aggregation)):
        return aggregation
    choices = ", ".join(map(repr, AGGREGATIONS))
    msg = f"{parameter} must be one of {choices} or 'topN_mean' with N >= 1, got {aggregation!r}."
    raise ValueError(msg)


def aggregate_scores(scores: Sequence[float], aggregation: str) -> float:
    """
    Aggregate the scores of one document's passages, given in passage order.

    :param scores: The passages' scores in passage order (at least one).
    :param aggregation: See the module docstring.
    """
    if not scores:
        msg = "aggregate_scores needs at least one passage score."
        raise ValueError(msg)
    validate_aggregation(aggregation)
    if aggregation == "max":
        return max(scores)
    if aggregation == "mean":
        return sum(scores) / len(scores)
    if aggregation == "first":
        return scores[0]
    if aggregation == "sum":
        return sum(scores)
    match = _TOP_N_MEAN.match(aggregation)
    assert match is not None  # validated above
    best = sorted(scores, reverse=True)[: int(match.group(1))]
    return sum(best) / len(best)

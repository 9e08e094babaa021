"""Score fusion: combining a cross-encoder's rerank scores with the first stage's retrieval scores, per query.

`fused = (1 - weight) * norm(rerank) + weight * norm(retrieval)`, where `norm` works on one query's list:

- `"minmax"`: `(x - min) / (max - min)`, into 0..1. A constant list (one document, or all scores equal) has no
  spread and normalises to 0.5 everywhere, so it never moves the order.
- `"zscore"`: `(x - mean) / std` with the population standard deviation. A list with zero std normalises to 0.0
  everywhere.
- `"rrf"`: reciprocal rank, `1 / (rrf_k + rank)`, with rank 1 for the highest score. Tied scores share the best
  rank of their group (competition ranking: 1, 2, 2, 4).

Missing retrieval scores (None, NaN or ±inf; a document that came without a score) count as the worst retrieval
evidence of the list: the lowest normalised retrieval score among the documents that have one (`"rrf"`: the rank
after the last scored document). When no document has a retrieval score, the input order is the retrieval
evidence: the first document is the best (its retrieval score is taken as `-position`), so pass documents in
retrieval order.

`weight = 0` returns the rerank scores themselves (no normalisation, so the scores and their order are exactly the
reranker's); `weight = 1` orders by retrieval evidence alone. Ties in the fused score are left to the caller
(`CrossEncoderRanker` breaks them by retrieval rank).

A model directory can declare the fusion it was tuned with in `crossencoder_haystack.json`
(`{"first_stage_weight": 0.3, "fusion": "minmax"}`); `CrossEncoderRanker(model=DIR)` uses it unless told otherwise.
Write it with `write_fusion_defaults`, read it with `read_fusion_defaults`.
"""

import json
import math
import numbers
import os
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Literal

from haystack_integrations.components.rankers.crossencoder._engine.json_files import read_json_object

FusionMethod = Literal["minmax", "zscore", "rrf"]
FUSIONS: tuple[FusionMethod, ...] = ("minmax", "zscore", "rrf")
FUSION_FILE = "crossencoder_haystack.json"  # a JSON file in a model directory

_WEIGHT_KEY = "first_stage_weight"
_FUSION_KEY = "fusion"
_Normaliser = Callable[[list[float | None]], list[float]]


def validate_first_stage_weight(weight: Any, parameter: str = "first_stage_weight") -> float:
    """
    Return `weight` as a float if it is a real number in [0, 1], else raise a ValueError naming `parameter`.

    :param weight: The share of the first stage's evidence in the fused score.
    :param parameter: The name to put in the error message.
    :raises ValueError: If `weight` is not a number in [0, 1] (bools are rejected).
    """
    if (
        isinstance(weight, bool)
        or not isinstance(weight, numbers.Real)
        or not math.isfinite(weight)
        or not 0 <= float(weight) <= 1
    ):
        msg = (
            f"{parameter} must be a number in [0, 1] (0 = rerank scores only, 1 = retrieval order only), "
            f"got {weight!r}."
        )
        raise ValueError(msg)
    return float(weight)


def validate_fusion(fusion: Any, parameter: str = "fusion") -> FusionMethod:
    """
    Return `fusion` if it is one of `FUSIONS`, else raise a ValueError naming `parameter` and the choices.

    :param fusion: The normalisation used before the scores are combined.
    :param parameter: The name to put in the error message.
    :raises ValueError: If `fusion` is unknown.
    """
    for name in FUSIONS:
        if fusion == name:
            return name
    msg = f"{parameter} must be one of {', '.join(map(repr, FUSIONS))}, got {fusion!r}."
    raise ValueError(msg)


def fuse_scores(
    rerank_scores: Sequence[float],
    retrieval_scores: Sequence[float | None],
    weight: float,
    method: str = "minmax",
    rrf_k: int = 60,
) -> list[float]:
    """
    Fuse one query's rerank and retrieval scores: `(1 - weight) * norm(rerank) + weight * norm(retrieval)`.

    See the module docstring for each normalisation and the edge cases (ties, constant lists, missing scores).

    :param rerank_scores: The reranker's scores, finite numbers, one per document.
    :param retrieval_scores: The first stage's scores in the same order; None (or NaN, ±inf) where a document has
        none. When all are missing, the input order is the retrieval evidence (first = best).
    :param weight: The first stage's share, in [0, 1]. 0 returns the rerank scores themselves.
    :param method: `"minmax"`, `"zscore"` or `"rrf"`.
    :param rrf_k: The constant of reciprocal rank fusion (`1 / (rrf_k + rank)`), a number >= 0.
    :returns: The fused scores, in the input order.
    :raises ValueError: If the lists differ in length, a rerank score is not a finite number, a retrieval score
        is neither a number nor None, or `weight`, `method` or `rrf_k` is out of range.
    """
    weight = validate_first_stage_weight(weight, "weight")
    method = validate_fusion(method, "method")
    if isinstance(rrf_k, bool) or not isinstance(rrf_k, numbers.Real) or not math.isfinite(rrf_k) or rrf_k < 0:
        msg = f"rrf_k must be a finite number >= 0 (60 is the usual choice), got {rrf_k!r}."
        raise ValueError(msg)
    check_same_length("rerank_scores", rerank_scores, "retrieval_scores", retrieval_scores, "one of each per document")
    rerank = [_finite_rerank_score(score) for score in rerank_scores]
    if weight == 0.0:
        return rerank
    retrieval = _retrieval_evidence(retrieval_scores)
    normalise = _normaliser(method, rrf_k)
    return [
        (1.0 - weight) * r + weight * f
        for r, f in zip(normalise(list(rerank)), normalise(retrieval), strict=True)  # type: ignore[arg-type]
    ]


def check_same_length(name: str, values: Sequence[Any], other_name: str, others: Sequence[Any], what: str) -> None:
    """Raise a ValueError naming both lists unless they have as many entries; `what` says what to pass instead."""
    if len(values) != len(others):
        msg = f"{name} has {len(values)} entries but {other_name} has {len(others)}; pass {what}, in the same order."
        raise ValueError(msg)


def read_fusion_defaults(model_directory: str | Path) -> dict:
    """
    The fusion a model directory declares in its `crossencoder_haystack.json`.

    :param model_directory: The model directory.
    :returns: `{"first_stage_weight": float, "fusion": str}` with the keys the file has (none, one or both);
        `{}` when the directory or the file does not exist.
    :raises ValueError: If the file is not a JSON object or a declared value is out of range.
    """
    path = Path(model_directory) / FUSION_FILE
    if not path.is_file():
        return {}
    data = _read_json_object(path)
    defaults: dict[str, Any] = {}
    try:
        if data.get(_WEIGHT_KEY) is not None:
            defaults[_WEIGHT_KEY] = validate_first_stage_weight(data[_WEIGHT_KEY], f"{_WEIGHT_KEY} in {path}")
        if data.get(_FUSION_KEY) is not None:
            defaults[_FUSION_KEY] = validate_fusion(data[_FUSION_KEY], f"{_FUSION_KEY} in {path}")
    except ValueError as error:
        msg = f"{error} Fix the file (or rewrite it with write_fusion_defaults), or pass the value to the ranker."
        raise ValueError(msg) from None
    return defaults


def write_fusion_defaults(model_directory: str | Path, first_stage_weight: float, fusion: str) -> None:
    """
    Declare the fusion a model should be used with, in the model directory's `crossencoder_haystack.json`.

    Other keys of the file are kept; the file is replaced atomically.

    :param model_directory: The model directory (created if it does not exist).
    :param first_stage_weight: The first stage's share of the fused score, in [0, 1].
    :param fusion: `"minmax"`, `"zscore"` or `"rrf"`.
    :raises ValueError: If a value is out of range or the existing file is not a JSON object.
    """
    weight = validate_first_stage_weight(first_stage_weight)
    fusion = validate_fusion(fusion)
    directory = Path(model_directory)
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / FUSION_FILE
    data = _read_json_object(path) if path.is_file() else {}
    data.update({_WEIGHT_KEY: weight, _FUSION_KEY: fusion})
    handle, temporary = tempfile.mkstemp(dir=directory, prefix=f".{FUSION_FILE}.", suffix=".tmp")
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as file:
            json.dump(data, file, indent=2, ensure_ascii=False)
            file.write("\n")
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def _read_json_object(path: Path) -> dict[str, Any]:
    return read_json_object(
        path,
        invalid_advice=". Fix or delete it.",
        not_object_advice=".",
        example=' such as {"first_stage_weight": 0.3}',
    )


def _finite_rerank_score(score: Any) -> float:
    if isinstance(score, bool) or not isinstance(score, numbers.Real) or not math.isfinite(score):
        msg = f"rerank_scores must be finite numbers, got {score!r}. Drop documents without a score before fusing."
        raise ValueError(msg)
    return float(score)


def _retrieval_evidence(retrieval_scores: Sequence[float | None]) -> list[float | None]:
    """Retrieval scores as floats, None where missing; the input order (`-position`) when all are missing."""
    evidence: list[float | None] = []
    for score in retrieval_scores:
        if score is not None and (isinstance(score, bool) or not isinstance(score, numbers.Real)):
            msg = f"retrieval_scores must be numbers or None, got {score!r}."
            raise ValueError(msg)
        evidence.append(float(score) if score is not None and math.isfinite(score) else None)
    if all(score is None for score in evidence):
        return [-float(position) for position in range(len(evidence))]
    return evidence


def _normaliser(method: str, rrf_k: float) -> _Normaliser:
    if method == "minmax":
        return _minmax
    if method == "zscore":
        return _zscore
    return lambda values: _reciprocal_ranks(values, rrf_k)


def _scaled(values: list[float | None]) -> list[float | None]:
    """Values divided by their largest magnitude: min-max and z-scores do not change, and nothing overflows."""
    largest = max((abs(value) for value in values if value is not None), default=0.0)
    if largest == 0.0:
        return values
    return [None if value is None else value / largest for value in values]


def _with_missing_as_worst(normalised: list[float | None]) -> list[float]:
    worst = min((value for value in normalised if value is not None), default=0.0)
    return [worst if value is None else value for value in normalised]


def _minmax(values: list[float | None]) -> list[float]:
    scaled = _scaled(values)
    present = [value for value in scaled if value is not None]
    low, high = min(present, default=0.0), max(present, default=0.0)
    if high == low:
        return [0.5] * len(values)
    return _with_missing_as_worst([None if value is None else (value - low) / (high - low) for value in scaled])


def _zscore(values: list[float | None]) -> list[float]:
    scaled = _scaled(values)
    present = [value for value in scaled if value is not None]
    if not present:
        return [0.0] * len(values)
    mean = math.fsum(present) / len(present)
    std = math.sqrt(math.fsum((value - mean) ** 2 for value in present) / len(present))
    if std == 0.0:
        return [0.0] * len(values)
    return _with_missing_as_worst([None if value is None else (value - mean) / std for value in scaled])


def _reciprocal_ranks(values: list[float | None], rrf_k: float) -> list[float]:
    present = sorted((value for value in values if value is not None), reverse=True)
    first_rank: dict[float, int] = {}
    for rank, value in enumerate(present, start=1):
        first_rank.setdefault(value, rank)
    worst = len(present) + 1
    return [1.0 / (rrf_k + (worst if value is None else first_rank[value])) for value in values]

"""Fitting the logit -> P(relevant) mapping: Platt scaling or isotonic regression (scikit-learn), or the better one.

Expects raw logits (one per judged (query, document) pair, as `CrossEncoderRanker(activation="identity")` returns
them) and 0/1 relevance labels. The result is the component's `Calibration`, which needs only numpy to apply:

- `platt`: `LogisticRegression` on the single feature `logit`, unregularised, with Platt's smoothed targets:
  `sigmoid(slope * logit + intercept)`;
- `isotonic`: `IsotonicRegression` (non-decreasing, clipped to 0..1 and flat outside the fitted range), stored as
  its knots (`X_thresholds_`, `y_thresholds_`), which the component interpolates exactly as `predict` does;
- `auto`: the one with the lower Brier score in cross-validation over queries (`GroupKFold`, up to 5 folds, so no
  query is in a fold's fitting and scoring part at once); Platt when there are too few queries to cross-validate.

Isotonic regression is flexible and needs data (rule of thumb: a thousand pairs, dozens of positives); Platt has
two parameters and is hard to overfit but assumes a sigmoid-shaped relation.
"""

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from haystack_integrations.components.rankers.crossencoder.calibration import METHODS, Calibration

FIT_METHODS: tuple[str, ...] = ("auto", *METHODS)
_AUTO_FOLDS = 5
# The probe tolerance: this share of the fitted logits' standard deviation (see the component's calibration.py).
_PROBE_TOLERANCE_SHARE = 0.25
_MIN_PROBE_TOLERANCE = 1e-3


@dataclass
class FittedMapping:
    """A fitted mapping's method and parameters, and the cross-validated Brier score of each method tried."""

    method: str
    parameters: dict[str, Any]
    cross_validated_brier: dict[str, float] = field(default_factory=dict)


def fit_mapping(
    logits: Sequence[float] | np.ndarray,
    labels: Sequence[int] | np.ndarray,
    method: str = "auto",
    groups: Sequence[Any] | None = None,
) -> FittedMapping:
    """
    Fit a monotone mapping from logits to P(relevant).

    :param logits: One raw logit per pair.
    :param labels: 1 for a relevant pair, 0 for the others.
    :param method: `"platt"`, `"isotonic"` or `"auto"` (the lower cross-validated Brier score).
    :param groups: The query of each pair, for `"auto"`'s folds; None treats every pair as its own query.
    :returns: The method and its parameters.
    :raises ValueError: If the method is unknown, the lists differ in length, a class is missing, or the logits do
        not rise with relevance.
    """
    x, y = _checked(logits, labels)
    if method not in FIT_METHODS:
        msg = f"method must be one of {', '.join(map(repr, FIT_METHODS))}, got {method!r}."
        raise ValueError(msg)
    if method != "auto":
        return FittedMapping(method, _FITTERS[method](x, y))
    scores = _cross_validated_brier(x, y, np.arange(len(x)) if groups is None else np.asarray(groups))
    chosen = min(scores, key=lambda name: (scores[name], name != "platt")) if scores else "platt"
    return FittedMapping(chosen, _FITTERS[chosen](x, y), scores)


def build_calibration(
    fitted: FittedMapping,
    logits: Sequence[float] | np.ndarray,
    probe_logits: Sequence[float],
    records: Mapping[str, Any] | None = None,
) -> Calibration:
    """
    The component's `Calibration` for a fitted mapping.

    :param fitted: The mapping.
    :param logits: The logits it was fitted on (their spread sets the probe tolerance).
    :param probe_logits: The model's logits for the component's probe pairs (`PROBE_QUERY`, `PROBE_TEXTS`).
    :param records: Provenance kept in the file (`fitted_on`, `held_out`, ...).
    """
    spread = float(np.std(np.asarray(logits, dtype=np.float64)))
    tolerance = max(_PROBE_TOLERANCE_SHARE * spread, _MIN_PROBE_TOLERANCE)
    return Calibration(
        fitted.method, fitted.parameters, tuple(map(float, probe_logits)), tolerance, dict(records or {})
    )


def fit_platt(x: np.ndarray, y: np.ndarray) -> dict[str, float]:
    """
    `{"slope", "intercept"}` of `sigmoid(slope * x + intercept)`: unregularised logistic regression on Platt's
    smoothed targets (`(N+ + 1) / (N+ + 2)` for relevant pairs, `1 / (N- + 2)` for the others), which keep the fit
    finite when the logits separate the classes perfectly. Each pair enters twice, as label 1 weighted by its target
    and as label 0 weighted by the rest.
    """
    from sklearn.linear_model import LogisticRegression

    positives = int(y.sum())
    negatives = len(y) - positives
    target = np.where(y == 1, (positives + 1) / (positives + 2), 1 / (negatives + 2))
    features = np.concatenate([x, x]).reshape(-1, 1)
    labels = np.concatenate([np.ones(len(x)), np.zeros(len(x))])
    weights = np.concatenate([target, 1 - target])
    model = LogisticRegression(C=np.inf, max_iter=1000).fit(features, labels, sample_weight=weights)
    slope, intercept = float(model.coef_[0, 0]), float(model.intercept_[0])
    if not slope > 0:
        msg = (
            f"The model's logits do not rise with relevance on this data (Platt slope {slope:.3g}): check the labels "
            "and the relevance cut, or that the data belongs to this model's task."
        )
        raise ValueError(msg)
    return {"slope": slope, "intercept": intercept}


def fit_isotonic(x: np.ndarray, y: np.ndarray) -> dict[str, list[float]]:
    """The knots `{"logits", "probabilities"}` of a non-decreasing isotonic regression, clipped to 0..1."""
    from sklearn.isotonic import IsotonicRegression

    model = IsotonicRegression(y_min=0.0, y_max=1.0, increasing=True, out_of_bounds="clip").fit(x, y)
    knots_x, knots_y = np.asarray(model.X_thresholds_, float), np.asarray(model.y_thresholds_, float)
    if len(knots_x) < 2 or knots_y[-1] <= knots_y[0]:
        msg = (
            "Isotonic regression found no rise of relevance with the logit on this data (one flat step): check the "
            "labels and the relevance cut, or use method='platt'."
        )
        raise ValueError(msg)
    return {"logits": knots_x.tolist(), "probabilities": knots_y.tolist()}


_FITTERS: dict[str, Callable[[np.ndarray, np.ndarray], dict[str, Any]]] = {"platt": fit_platt, "isotonic": fit_isotonic}


def _cross_validated_brier(x: np.ndarray, y: np.ndarray, groups: np.ndarray) -> dict[str, float]:
    """Mean out-of-fold Brier score per method; {} when there are fewer than 2 groups to fold over."""
    from sklearn.model_selection import GroupKFold

    folds = min(_AUTO_FOLDS, len(np.unique(groups)))
    if folds < 2:
        return {}
    squared_errors: dict[str, list[float]] = {name: [] for name in METHODS}
    for fit_index, test_index in GroupKFold(n_splits=folds).split(x, y, groups):
        if len(np.unique(y[fit_index])) < 2:
            continue
        for name in METHODS:
            try:
                parameters = _FITTERS[name](x[fit_index], y[fit_index])
            except ValueError:
                squared_errors[name].append(np.inf)
                continue
            probabilities = Calibration(name, parameters, (), 1.0).probabilities(x[test_index])
            squared_errors[name].extend(((probabilities - y[test_index]) ** 2).tolist())
    return {name: float(np.mean(errors)) for name, errors in squared_errors.items() if errors}


def _checked(logits: Any, labels: Any) -> tuple[np.ndarray, np.ndarray]:
    x, y = np.asarray(logits, dtype=np.float64).reshape(-1), np.asarray(labels).reshape(-1)
    if len(x) != len(y):
        msg = f"logits has {len(x)} values but labels has {len(y)}; pass one label per logit."
        raise ValueError(msg)
    if not np.all(np.isfinite(x)):
        msg = "logits must be finite numbers (score the pairs with activation='identity')."
        raise ValueError(msg)
    if not np.isin(y, (0, 1)).all() or len(np.unique(y)) < 2:
        msg = "labels must be 0 or 1, with both relevant (1) and non-relevant (0) pairs among them."
        raise ValueError(msg)
    return x, y.astype(np.int64)

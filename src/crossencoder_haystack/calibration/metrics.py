"""How well probabilities are calibrated: ECE, Brier score, precision/recall at a threshold, a reliability diagram.

Expects one predicted P(relevant) per judged pair and its 0/1 label.

- Expected calibration error (ECE): the predictions are put in 10 equal-width bins over [0, 1] ([0, 0.1), ...,
  [0.9, 1.0], the last one closed); ECE is the average over bins of |share of relevant pairs - mean prediction|,
  weighted by the share of pairs in the bin. 0 is perfect.
- Brier score: the mean squared difference between prediction and label (scikit-learn's `brier_score_loss`); it
  mixes calibration with how well the scores separate the classes, so a perfectly calibrated useless model scores
  the base rate's variance, not 0.
- The reliability diagram plots, per bin, the share of relevant pairs against the mean prediction
  (scikit-learn's `calibration_curve`); a calibrated model lies on the diagonal.
"""

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

ECE_BINS = 10


@dataclass(frozen=True)
class CalibrationMetrics:
    """ECE, Brier score and, above `threshold`, precision (share relevant) and recall (share of relevant kept)."""

    ece: float
    brier: float
    precision: float | None
    recall: float
    threshold: float
    pairs: int
    relevant: int

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def expected_calibration_error(probabilities: Any, labels: Any, bins: int = ECE_BINS) -> float:
    """ECE over `bins` equal-width bins of [0, 1] (see the module docstring)."""
    p, y = _arrays(probabilities, labels)
    index = np.minimum((p * bins).astype(np.int64), bins - 1)
    total = 0.0
    for bin_index in np.unique(index):
        members = index == bin_index
        total += int(members.sum()) * abs(float(y[members].mean()) - float(p[members].mean()))
    return total / len(p)


def brier_score(probabilities: Any, labels: Any) -> float:
    """The mean squared error of the probabilities against the 0/1 labels."""
    from sklearn.metrics import brier_score_loss

    p, y = _arrays(probabilities, labels)
    return float(brier_score_loss(y, p))


def calibration_metrics(probabilities: Any, labels: Any, threshold: float = 0.5) -> CalibrationMetrics:
    """All of the module's numbers for one set of predictions; precision is None when nothing is above threshold."""
    p, y = _arrays(probabilities, labels)
    above = p >= threshold
    relevant = int(y.sum())
    return CalibrationMetrics(
        ece=round(expected_calibration_error(p, y), 4),
        brier=round(brier_score(p, y), 4),
        precision=round(float(y[above].mean()), 4) if above.any() else None,
        recall=round(float(y[above].sum() / relevant), 4) if relevant else 0.0,
        threshold=threshold,
        pairs=len(p),
        relevant=relevant,
    )


def plot_reliability(
    curves: Mapping[str, tuple[Sequence[float] | np.ndarray, Sequence[int] | np.ndarray]], path: str | Path, title: str
) -> Path:
    """
    Write a reliability diagram (PNG) with one curve per entry of `curves` (name -> (probabilities, labels)), the
    diagonal, and a histogram of the first curve's predictions below it.
    """
    from matplotlib.figure import Figure
    from sklearn.calibration import calibration_curve

    figure = Figure(figsize=(6, 7), dpi=110, layout="constrained")
    top, bottom = figure.subplots(2, 1, height_ratios=(3, 1), sharex=True)
    top.plot([0, 1], [0, 1], linestyle="--", color="grey", label="perfectly calibrated")
    for name, (probabilities, labels) in curves.items():
        p, y = _arrays(probabilities, labels)
        share, mean = calibration_curve(y, p, n_bins=ECE_BINS, strategy="uniform")
        top.plot(mean, share, marker="o", label=f"{name} (ECE {expected_calibration_error(p, y):.3f})")
    for name, (probabilities, _) in curves.items():
        bottom.hist(np.asarray(probabilities, float), bins=ECE_BINS, range=(0, 1), alpha=0.5, label=name)
    top.set_ylabel("share of relevant pairs")
    top.set_title(title)
    top.legend(loc="upper left")
    top.grid(True, alpha=0.3)
    bottom.set_xlabel("predicted P(relevant)")
    bottom.set_ylabel("pairs")
    bottom.set_yscale("log")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path)
    return path


def _arrays(probabilities: Any, labels: Any) -> tuple[np.ndarray, np.ndarray]:
    p, y = np.asarray(probabilities, dtype=np.float64).reshape(-1), np.asarray(labels).reshape(-1)
    if len(p) != len(y) or not len(p):
        msg = f"probabilities ({len(p)}) and labels ({len(y)}) must be non-empty and of the same length."
        raise ValueError(msg)
    if np.any((p < 0) | (p > 1)) or not np.all(np.isfinite(p)):
        msg = "probabilities must lie in [0, 1]; calibration metrics apply to probabilities, not raw logits."
        raise ValueError(msg)
    return p, y.astype(np.float64)


def ranking_calibration_metrics(
    rankings: Mapping[str, Sequence[tuple[str, float]]], qrels: Mapping[str, Mapping[str, int]], relevant_from: int = 1
) -> dict[str, float]:
    """
    ECE and Brier score of a run's scores against graded judgements: a (query, document) pair is relevant when its
    grade is >= `relevant_from`; unjudged documents are not relevant. Documents without a finite score are left out.

    :param rankings: Query id -> [(document id, probability), ...].
    :param qrels: Query id -> {document id: grade}.
    :returns: `{"ece", "brier"}`, or `{}` when no pair has a probability.
    """
    scores, labels = [], []
    for query_id, ranking in rankings.items():
        judgements = qrels.get(query_id, {})
        for doc_id, score in ranking:
            if math.isfinite(score):
                scores.append(score)
                labels.append(int(judgements.get(doc_id, 0) >= relevant_from))
    if not scores:
        return {}
    return {"ece": expected_calibration_error(scores, labels), "brier": brier_score(scores, labels)}

"""Calibrated scores: a monotone mapping from a reranker's raw logit to P(relevant), stored with the model.

`rerank calibrate` (tooling) fits the mapping on judged pairs and writes it into the model directory as
`calibration.json`; `CrossEncoderRanker` reads and applies it here with numpy alone (no scikit-learn, no tooling):

- `platt`: `sigmoid(slope * logit + intercept)`, slope > 0 (Platt scaling);
- `isotonic`: a non-decreasing step function fitted by isotonic regression, interpolated linearly between its
  knots (`numpy.interp`, what scikit-learn's `IsotonicRegression.predict` computes) and flat outside them.

Both are blended with `TIE_BREAK = 1e-6` of `0.5 + arctan(logit) / pi`, a strictly increasing function that
never saturates, so the mapping is strictly increasing: distinct logits keep distinct scores in the same order and
a ranking is never changed by calibrating it (a probability moves by at most 1e-6).

The input is the raw logit of one (query, document) pair as the ranker scores it (`scale` 1, no activation). In
passage mode the ranker aggregates the passages' logits into the parent's logit first and calibrates that.

The file also holds probe logits: the model's logits for a few fixed pairs (`PROBE_QUERY`, `PROBE_TEXTS`) when
it was fitted. On `warm_up` the ranker scores the probes again and refuses the file if they moved by more than its
tolerance (a quarter of the spread of the fitted logits): the file then belongs to another model. Backends and
precisions (onnx, OpenVINO, bf16, int8) move logits far less than that.

File format, version 1 (JSON object): `format` (= `CALIBRATION_FORMAT`), `version`, `method`, `parameters`
(`{"slope", "intercept"}` or `{"logits": [...], "probabilities": [...]}` with strictly increasing logits),
`tie_break`, `probe` (`{"query", "texts", "logits", "tolerance"}`) and free-form `fitted_on` / `held_out` records.
"""

import json
import math
import numbers
import os
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NoReturn, TypeGuard

import numpy as np

from haystack_integrations.components.rankers.crossencoder._engine.activations import ACTIVATIONS

CALIBRATION_FILE = "calibration.json"
CALIBRATION_FORMAT = "crossencoder-haystack/calibration"
CALIBRATION_VERSION = 1
CALIBRATED = "calibrated"
METHODS: tuple[str, ...] = ("platt", "isotonic")
TIE_BREAK = 1e-6
PROBE_QUERY = "Does aspirin lower the risk of a heart attack?"
PROBE_TEXTS: tuple[str, ...] = (
    "Daily low-dose aspirin reduced the risk of myocardial infarction in the trial.",
    "Aspirin is a common pain reliever.",
    "The Rhine flows through Germany and the Netherlands.",
    "Python is a programming language.",
)
_FIX = "Run `rerank calibrate --model DIR --data JUDGED` again, or delete the file to use uncalibrated scores."


class CalibrationError(ValueError):
    """A calibration file that cannot be used: corrupt, from a newer version, or fitted on another model."""


@dataclass(frozen=True)
class Calibration:
    """
    A fitted mapping from a raw logit to P(relevant).

    :param method: `"platt"` or `"isotonic"`.
    :param parameters: Platt: `{"slope": a, "intercept": b}`; isotonic: `{"logits": [...], "probabilities": [...]}`.
    :param probe_logits: The model's logits for `PROBE_TEXTS` against `PROBE_QUERY` when it was fitted.
    :param probe_tolerance: How far the probe logits may move before the file counts as another model's.
    :param records: Free-form provenance kept in the file (`fitted_on`, `held_out`, `created_by`).
    """

    method: str
    parameters: Mapping[str, Any]
    probe_logits: tuple[float, ...]
    probe_tolerance: float
    records: Mapping[str, Any] = field(default_factory=dict)

    def probabilities(self, logits: Any) -> np.ndarray:
        """P(relevant) for raw logits, in float64; strictly increasing in the logit."""
        x = np.asarray(logits, dtype=np.float64)
        if self.method == "platt":
            z = float(self.parameters["slope"]) * x + float(self.parameters["intercept"])
            base = np.exp(-np.logaddexp(0.0, -z))  # sigmoid without overflow
        else:
            base = np.interp(x, self.parameters["logits"], self.parameters["probabilities"])
        return (1.0 - TIE_BREAK) * base + TIE_BREAK * (0.5 + np.arctan(x) / np.pi)

    def to_dict(self) -> dict[str, Any]:
        """The JSON object written to `calibration.json`."""
        return {
            "format": CALIBRATION_FORMAT,
            "version": CALIBRATION_VERSION,
            "method": self.method,
            "parameters": {key: _plain(value) for key, value in self.parameters.items()},
            "tie_break": TIE_BREAK,
            "probe": {
                "query": PROBE_QUERY,
                "texts": list(PROBE_TEXTS),
                "logits": [float(value) for value in self.probe_logits],
                "tolerance": float(self.probe_tolerance),
            },
            **{key: value for key, value in self.records.items() if key not in _RESERVED_KEYS},
        }

    @classmethod
    def from_dict(cls, data: Any, source: str = CALIBRATION_FILE) -> "Calibration":
        """
        A calibration from its JSON object, checked.

        :raises CalibrationError: If the object is not a calibration of a version this package reads, or a value
            is missing or out of range; the message names `source` and the fix.
        """
        if not isinstance(data, dict) or data.get("format") != CALIBRATION_FORMAT:
            _fail(source, f'it is not a calibration file (expected "format": "{CALIBRATION_FORMAT}")')
        version = data.get("version")
        if not isinstance(version, int) or isinstance(version, bool) or version < 1:
            _fail(source, f"its version {version!r} is not a positive integer")
        if version > CALIBRATION_VERSION:
            msg = (
                f"{source} is a version {version} calibration, written by a newer crossencoder-haystack; this one "
                f"reads version {CALIBRATION_VERSION}. Upgrade crossencoder-haystack, or calibrate again."
            )
            raise CalibrationError(msg)
        method = data.get("method")
        if method not in METHODS:
            _fail(source, f"its method {method!r} is not one of {', '.join(map(repr, METHODS))}")
        parameters = _checked_parameters(method, data.get("parameters"), source)
        probe_logits, tolerance = _checked_probe(data.get("probe"), source)
        records = {key: value for key, value in data.items() if key not in _RESERVED_KEYS}
        return cls(method, parameters, probe_logits, tolerance, records)


_RESERVED_KEYS = frozenset({"format", "version", "method", "parameters", "tie_break", "probe"})


def read_calibration(model_directory: str | Path) -> Calibration | None:
    """
    The calibration stored in a model directory, or None when it has none (or `model_directory` is not a directory).

    :raises CalibrationError: If `calibration.json` is there but corrupt, from a newer version or out of range.
    """
    path = Path(model_directory).expanduser() / CALIBRATION_FILE
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        _fail(str(path), f"it is not valid JSON ({error})")
    return Calibration.from_dict(data, str(path))


def write_calibration(model_directory: str | Path, calibration: Calibration) -> Path:
    """Write `calibration` into `model_directory/calibration.json` (replaced atomically) and return the path."""
    directory = Path(model_directory).expanduser()
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / CALIBRATION_FILE
    Calibration.from_dict(calibration.to_dict(), str(path))  # never write a file the reader would refuse
    handle, temporary = tempfile.mkstemp(dir=directory, prefix=f".{CALIBRATION_FILE}.", suffix=".tmp")
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as file:
            json.dump(calibration.to_dict(), file, indent=2, ensure_ascii=False)
            file.write("\n")
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    return path


def has_calibration(model: str | Path) -> bool:
    """Whether `model` is a local directory with a `calibration.json` (not checked: see `read_calibration`)."""
    return (Path(model).expanduser() / CALIBRATION_FILE).is_file()


def uses_calibration(model: str | Path, activation: str | None, scale: float, scale_score: bool | None) -> bool:
    """
    Whether a ranker with these settings scores with the calibration: asked for (`activation="calibrated"`), or
    by default (`activation=None`, no `scale_score`, `scale` 1) when the model directory carries one.
    """
    if activation is not None:
        return activation == CALIBRATED
    return scale_score is None and scale == 1.0 and has_calibration(model)


def validate_ranker_activation(activation: Any, parameter: str = "activation") -> str:
    """`activation` if it is one of `ACTIVATIONS` or `"calibrated"`, else a ValueError naming the choices."""
    if activation != CALIBRATED and activation not in ACTIVATIONS:
        choices = ", ".join(map(repr, (*ACTIVATIONS, CALIBRATED)))
        msg = f"{parameter} must be one of {choices}, got {activation!r}."
        raise ValueError(msg)
    return str(activation)


def check_calibrated_scale(scale: float) -> None:
    """Calibrated scores are a function of the raw logit: a `scale` other than 1 is an error."""
    if scale != 1.0:
        msg = (
            f"scale={scale} cannot be combined with activation='calibrated': the calibration maps the raw logit to "
            "a probability. Leave scale at 1.0, or pick another activation."
        )
        raise ValueError(msg)


def missing_calibration_error(model: str) -> CalibrationError:
    """The error for `activation="calibrated"` with a model that carries no calibration (or a ranker that did not
    load it)."""
    if has_calibration(model):
        msg = (
            "activation='calibrated' at run time needs a ranker created with activation='calibrated' or None (the "
            f"default); this one was created with another activation, so it did not load {model}'s "
            f"{CALIBRATION_FILE}."
        )
        return CalibrationError(msg)
    msg = (
        f"activation='calibrated' needs a calibration, but the model {model!r} has no {CALIBRATION_FILE}. Fit one "
        f"with `rerank calibrate --model {model} --data JUDGED_PAIRS.jsonl`, or pass activation='sigmoid' "
        "(or None for the model's default)."
    )
    return CalibrationError(msg)


def check_probe(calibration: Calibration, probe_logits: Sequence[float] | np.ndarray, model: str) -> None:
    """
    Refuse a calibration fitted on another model: the probe pairs' logits must be within its tolerance.

    :param probe_logits: The loaded model's logits for `PROBE_TEXTS` against `PROBE_QUERY`.
    :raises CalibrationError: If a probe logit moved by more than the tolerance.
    """
    now = np.asarray(probe_logits, dtype=np.float64)
    then = np.asarray(calibration.probe_logits, dtype=np.float64)
    if now.shape == then.shape and bool(np.all(np.abs(now - then) <= calibration.probe_tolerance)):
        return
    msg = (
        f"The {CALIBRATION_FILE} of {model} was fitted on another model: its probe pairs score "
        f"{_rounded(now)} with this model but scored {_rounded(then)} when it was fitted (tolerance "
        f"{calibration.probe_tolerance:.3g}). {_FIX}"
    )
    raise CalibrationError(msg)


def _checked_parameters(method: str, parameters: Any, source: str) -> dict[str, Any]:
    if not isinstance(parameters, dict):
        _fail(source, '"parameters" must be an object')
    if method == "platt":
        slope, intercept = parameters.get("slope"), parameters.get("intercept")
        if not _finite(slope) or not _finite(intercept) or slope <= 0:
            _fail(source, f"Platt needs a finite slope > 0 and a finite intercept, got {slope!r} and {intercept!r}")
        return {"slope": float(slope), "intercept": float(intercept)}
    logits, probabilities = parameters.get("logits"), parameters.get("probabilities")
    if not _numbers(logits) or not _numbers(probabilities) or len(logits) != len(probabilities) or len(logits) < 2:
        _fail(source, "isotonic needs two lists of at least 2 finite numbers of the same length")
    x, y = np.asarray(logits, dtype=np.float64), np.asarray(probabilities, dtype=np.float64)
    if np.any(np.diff(x) <= 0) or np.any(np.diff(y) < 0) or y[0] < 0 or y[-1] > 1:
        _fail(source, "isotonic needs strictly increasing logits and non-decreasing probabilities in 0..1")
    return {"logits": x.tolist(), "probabilities": y.tolist()}


def _checked_probe(probe: Any, source: str) -> tuple[tuple[float, ...], float]:
    if not isinstance(probe, dict):
        _fail(source, '"probe" must be an object')
    if probe.get("query") != PROBE_QUERY or probe.get("texts") != list(PROBE_TEXTS):
        _fail(source, "its probe pairs are not the ones this version of crossencoder-haystack scores")
    logits, tolerance = probe.get("logits"), probe.get("tolerance")
    if not _numbers(logits) or len(logits) != len(PROBE_TEXTS) or not _finite(tolerance) or tolerance <= 0:
        _fail(source, f"its probe needs {len(PROBE_TEXTS)} finite logits and a tolerance > 0")
    return tuple(float(value) for value in logits), float(tolerance)


def _finite(value: Any) -> TypeGuard[float]:
    return isinstance(value, numbers.Real) and not isinstance(value, bool) and math.isfinite(value)


def _numbers(values: Any) -> TypeGuard[list[float]]:
    return isinstance(values, list) and all(_finite(value) for value in values)


def _plain(value: Any) -> Any:
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, (list, tuple)):
        return [float(item) for item in value]
    return float(value)


def _rounded(values: np.ndarray) -> str:
    return "[" + ", ".join(f"{value:.3f}" for value in values) + "]"


def _fail(source: str, reason: str) -> NoReturn:
    raise CalibrationError(f"{source} cannot be used: {reason}. {_FIX}")

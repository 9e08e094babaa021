"""Score activations: how a cross-encoder's raw logit becomes the `score` a user sees.

The score is `activation(scale * logit)`. Only the order of scores is reliable across models and queries;
the activation only changes their range: `sigmoid` (0..1), `identity` (raw logits), `tanh` (-1..1).
"""

from typing import Any, Literal

import numpy as np

from haystack_integrations.components.rankers.crossencoder._engine.checks import check_choice

Activation = Literal["sigmoid", "identity", "tanh"]
ACTIVATIONS: tuple[str, ...] = ("sigmoid", "identity", "tanh")

# sentence-transformers stores the activation as a dotted torch class path in config_sentence_transformers.json
_TORCH_ACTIVATION_NAMES = {"Sigmoid": "sigmoid", "Identity": "identity", "Tanh": "tanh"}
# The only dotted paths a model's files may name as its activation (unless the user trusts its code): as
# sentence-transformers writes them (`torch.nn.modules...`) and as torch exports them (`torch.nn.Sigmoid`).
# They are looked up here, never imported.
TORCH_ACTIVATION_PATHS: dict[str, str] = {
    "torch.nn.modules.activation.Sigmoid": "sigmoid",
    "torch.nn.Sigmoid": "sigmoid",
    "torch.nn.modules.linear.Identity": "identity",
    "torch.nn.Identity": "identity",
    "torch.nn.modules.activation.Tanh": "tanh",
    "torch.nn.Tanh": "tanh",
}


def validate_activation(activation: str, parameter: str = "activation") -> str:
    """Return `activation` if it is known, else raise a ValueError naming the parameter and the choices."""
    return check_choice(parameter, activation, ACTIVATIONS)


def validate_scale(scale: float, parameter: str = "scale") -> float:
    """Return `scale` as a float if it is a finite positive number, else raise a ValueError."""
    if isinstance(scale, bool) or not isinstance(scale, (int, float)) or not np.isfinite(scale) or scale <= 0:
        msg = f"{parameter} must be a finite number > 0 (1.0 keeps logits as they are), got {scale!r}."
        raise ValueError(msg)
    return float(scale)


def activation_from_torch_module(module: object) -> str | None:
    """Name of our activation matching a torch activation module (e.g. `torch.nn.Sigmoid()`), or None."""
    return _TORCH_ACTIVATION_NAMES.get(type(module).__name__)


def activation_from_torch_path(path: object) -> str | None:
    """Name of our activation for a dotted torch class path from a model's configuration, or None if unknown."""
    return TORCH_ACTIVATION_PATHS.get(path) if isinstance(path, str) else None


def torch_activation_module(activation: str) -> Any:
    """
    A new torch module for one of our activations, e.g. `torch.nn.Sigmoid()` for `"sigmoid"`.

    :param activation: One of `ACTIVATIONS`.
    :raises ValueError: If the activation is unknown.
    """
    from torch import nn

    modules = {"sigmoid": nn.Sigmoid, "identity": nn.Identity, "tanh": nn.Tanh}
    return modules[validate_activation(activation)]()


def apply_activation(logits: np.ndarray, activation: str, scale: float = 1.0) -> np.ndarray:
    """Compute `activation(scale * logits)` in float64 (so sigmoid keeps ties apart longer than float32 would)."""
    z = np.asarray(logits, dtype=np.float64) * scale
    if activation == "sigmoid":
        # Numerically stable: exp of a non-positive number only.
        return np.where(z >= 0, 1.0 / (1.0 + np.exp(-np.abs(z))), np.exp(-np.abs(z)) / (1.0 + np.exp(-np.abs(z))))
    if activation == "tanh":
        return np.tanh(z)
    if activation == "identity":
        return z
    return apply_activation(logits, validate_activation(activation), scale)

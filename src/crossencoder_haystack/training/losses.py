"""Which sentence-transformers cross-encoder loss trains on which data shape, and the activation it implies.

- pairs (`query, document, label`) -> `BinaryCrossEntropyLoss`, `pos_weight` = negatives / positives, so a
  data set with 5 negatives per positive does not teach "everything is irrelevant";
- triplets (`query, positive[, negatives]`) -> `CachedMultipleNegativesRankingLoss` (in-batch and hard negatives,
  GradCache mini-batches keep memory flat);
- lists (`query, documents, labels`) -> `LambdaLoss` (NDCG-weighted pairwise loss over graded labels).

A model trained with BCE outputs logits of a probability: its activation is sigmoid. Ranking losses only fix the
order of scores, so their models keep raw logits (identity).
"""

from dataclasses import dataclass
from typing import Any

from crossencoder_haystack.training.data import DataShape, TrainingData

DEFAULT_LOSS_FOR_SHAPE: dict[str, str] = {"pairs": "bce", "triplets": "cmnrl", "lists": "lambda"}
LOSS_ALIASES: dict[str, str] = {
    "bce": "BinaryCrossEntropyLoss",
    "cmnrl": "CachedMultipleNegativesRankingLoss",
    "lambda": "LambdaLoss",
}
SHAPES_FOR_LOSS: dict[str, tuple[str, ...]] = {
    "BinaryCrossEntropyLoss": ("pairs",),
    "MSELoss": ("pairs",),
    "CachedMultipleNegativesRankingLoss": ("triplets",),
    "MultipleNegativesRankingLoss": ("triplets",),
    "LambdaLoss": ("lists",),
    "ListNetLoss": ("lists",),
    "ListMLELoss": ("lists",),
    "PListMLELoss": ("lists",),
    "RankNetLoss": ("lists",),
}
_SIGMOID_LOSSES = {"BinaryCrossEntropyLoss", "CachedMultipleNegativesRankingLoss", "MultipleNegativesRankingLoss"}


@dataclass
class LossChoice:
    """The loss object to train with, its class name and the activation a ranker should apply to its logits."""

    loss: Any
    name: str
    activation: str
    settings: dict[str, Any]


def loss_class_name(loss: str | None, shape: DataShape) -> str:
    """Resolve `loss` (None, an alias `bce|cmnrl|lambda`, or a loss class name) to a class name fitting `shape`."""
    from sentence_transformers.cross_encoder import losses

    name = LOSS_ALIASES.get((loss or DEFAULT_LOSS_FOR_SHAPE[shape]).lower(), loss or "")
    if not hasattr(losses, name) or name.startswith("_") or not isinstance(getattr(losses, name), type):
        choices = ", ".join([*LOSS_ALIASES, *sorted(n for n in losses.__all__ if n.endswith("Loss"))])
        msg = f"loss {loss!r} is not a sentence-transformers cross-encoder loss; choose one of: {choices}."
        raise ValueError(msg)
    fitting = SHAPES_FOR_LOSS.get(name)
    if fitting is not None and shape not in fitting:
        msg = (
            f"loss {loss!r} ({name}) trains on {' or '.join(fitting)} data, but the data is {shape}; "
            f"omit loss to use {DEFAULT_LOSS_FOR_SHAPE[shape]!r} or convert the data (see `rerank mine --format`)."
        )
        raise ValueError(msg)
    return name


def choose_loss(model: Any, data: TrainingData, loss: str | None = None, mini_batch_size: int = 16) -> LossChoice:
    """
    Build the loss for `data`, chosen from its shape unless `loss` forces one.

    :param model: The CrossEncoder being trained.
    :param data: The training rows.
    :param loss: None (from the shape), `"bce"`, `"cmnrl"`, `"lambda"` or any class name from
        `sentence_transformers.cross_encoder.losses`.
    :param mini_batch_size: GradCache / list chunk size for CMNRL and LambdaLoss (memory, not results).
    """
    import torch
    from sentence_transformers.cross_encoder import losses

    name = loss_class_name(loss, data.shape)
    settings: dict[str, Any] = {}
    instance: torch.nn.Module
    if name == "BinaryCrossEntropyLoss":
        positives, negatives = data.label_counts()
        if positives == 0:
            msg = f"The pairs data {data.source} has no positive label (> 0); BCE needs some positives."
            raise ValueError(msg)
        settings["pos_weight"] = round(max(negatives, 1) / positives, 4)
        instance = losses.BinaryCrossEntropyLoss(model, pos_weight=torch.tensor(settings["pos_weight"]))
    elif name == "CachedMultipleNegativesRankingLoss":
        settings.update(num_negatives=3, mini_batch_size=mini_batch_size)
        instance = losses.CachedMultipleNegativesRankingLoss(model, **settings)
    elif name == "LambdaLoss":
        settings["mini_batch_size"] = mini_batch_size
        instance = losses.LambdaLoss(model, **settings)
    else:
        instance = getattr(losses, name)(model)
    activation = "sigmoid" if name in _SIGMOID_LOSSES else "identity"
    return LossChoice(instance, name, activation, settings)

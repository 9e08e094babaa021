"""`TrainConfig`: every setting of a fine-tuning run, in one place.

`train(...)` takes one (or builds one from its keyword arguments), `rerank train` takes its defaults from it and
builds one from the command line, the model card lists its settings and the demo's starter recipe derives one.
"""

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from crossencoder_haystack.training.base_model import Head
from crossencoder_haystack.training.data import DataShape

_CARD = {"card": True}  # field metadata: the setting is a hyper-parameter the model card lists


@dataclass(frozen=True)
class TrainConfig:
    """
    How to fine-tune a reranker: the base model, the schedule, evaluation and what to show.

    Usage example:
    ```python
    from crossencoder_haystack.training import TrainConfig, train

    config = TrainConfig(max_steps=300, batch_size=16)
    result = train("train.jsonl", "models/my-reranker", config=config)
    # the same run: train("train.jsonl", "models/my-reranker", max_steps=300, batch_size=16)
    ```

    :param eval_fraction: Share of training queries held out for evaluation when no `eval_data` is given; 0 skips
        evaluation (then the last weights are saved).
    :param base_model: Cross-encoder (its head is kept), sentence-transformers bi-encoder or encoder directory, or a
        reachable hub id; None uses the bundled all-MiniLM-L6-v2, `"multilingual"` the converted
        multilingual-e5-small.
    :param loss: None (chosen from the data's shape), `"bce"`, `"cmnrl"`, `"lambda"` or another class name from
        `sentence_transformers.cross_encoder.losses`.
    :param shape: Force the data shape (`"pairs"`, `"triplets"`, `"lists"`); None detects it from the columns.
    :param epochs: Passes over the training data (ignored when `max_steps` is set). None: one epoch, and with a
        bi-encoder base at most `bi_encoder.RECIPE.default_max_steps` steps.
    :param max_steps: Optimizer steps to train for; None trains for `epochs`. 0 (bi-encoder base only) saves the
        untrained bi-encoder reranker.
    :param batch_size: Rows per step (pairs, triplets or lists).
    :param learning_rate: Peak learning rate of the encoder; None uses the recipe of the head (`trainer.RECIPES`).
    :param head_learning_rate: Peak learning rate of the scoring head; None uses the recipe of the head.
    :param head: The new head of an encoder or bi-encoder: `"auto"`, `"bi-encoder"`, `"cosine"` or `"dense"`; see
        `build_cross_encoder`. A cross-encoder keeps its head.
    :param warmup_ratio: Share of the steps spent warming the learning rate up from 0.
    :param max_length: Maximum tokens of a (query, document) pair; longer pairs are truncated.
    :param seed: Seed for the head, data order and dropout: the same seed gives the same weights on CPU.
    :param eval_steps: Evaluate and checkpoint every this many steps; None picks about 5 evaluations per run.
    :param mini_batch_size: Chunk size for CMNRL (GradCache) and LambdaLoss forward passes (memory only).
    :param max_minutes: Stop training after this wall-clock budget (the schedule still follows `max_steps`).
    :param show_progress: Show the progress display (steps with the ETA, the current loss and the last evaluation)
        and the final summary table.
    :param verbose: Let transformers, sentence-transformers and datasets print as they do on their own (the
        trainer's raw log dicts, their tqdm bars and info logs) instead of the one progress display.
    :param check_data: A BEIR folder or a judged data file outside the training domain (bi-encoder recipe): the
        start and every candidate are scored there, and none more than a point below the start is kept.
    :param check_split: The BEIR split of `check_data` (the only split, if it has one).
    :param check_max_queries: Score at most this many `check_data` queries (the first ones).
    :param anchor_weights: Interpolation weights between the start (0) and the tuned weights (1) to choose from
        (bi-encoder recipe); None uses `bi_encoder.DEFAULT_ANCHOR_WEIGHTS`.
    :param calibrate: After training, fit a calibration on the held-out evaluation queries and store it with the
        model, so that `CrossEncoderRanker` returns P(relevant).
    """

    eval_fraction: float = 0.1
    base_model: str | Path | None = field(default=None, metadata=_CARD)
    loss: str | None = None
    shape: DataShape | None = None
    epochs: float | None = field(default=None, metadata=_CARD)
    max_steps: int | None = field(default=None, metadata=_CARD)
    batch_size: int = field(default=32, metadata=_CARD)
    learning_rate: float | None = field(default=None, metadata=_CARD)
    head_learning_rate: float | None = field(default=None, metadata=_CARD)
    head: Head = field(default="auto", metadata=_CARD)
    warmup_ratio: float = field(default=0.1, metadata=_CARD)
    max_length: int = field(default=128, metadata=_CARD)
    seed: int = field(default=42, metadata=_CARD)
    eval_steps: int | None = None
    mini_batch_size: int = 16
    max_minutes: float | None = None
    show_progress: bool = True
    verbose: bool = False
    check_data: str | Path | None = None
    check_split: str = "test"
    check_max_queries: int | None = None
    anchor_weights: Sequence[float] | None = None
    calibrate: bool = False

    def replace(self, **changes: Any) -> "TrainConfig":
        """
        A copy with `changes` applied.

        :param changes: Settings by field name.
        :raises TypeError: If a name is not a `TrainConfig` field.
        """
        unknown = sorted(set(changes) - {item.name for item in dataclasses.fields(self)})
        if unknown:
            msg = f"unknown training setting(s): {', '.join(unknown)}; see TrainConfig for the settings."
            raise TypeError(msg)
        return dataclasses.replace(self, **changes) if changes else self

    def hyper_parameters(self, exclude: Sequence[str] = (), **resolved: Any) -> dict[str, Any]:
        """
        The settings the model card lists: the hyper-parameter fields, with the values the run resolved (a recipe's
        learning rate for None, the base model's path for its name) in their place and `resolved`'s extra entries
        after them.

        :param exclude: Fields the run did not use (left out).
        :param resolved: Values that replace or extend the settings.
        """
        settings = {
            item.name: getattr(self, item.name)
            for item in dataclasses.fields(self)
            if item.metadata.get("card") and item.name not in exclude
        }
        return {**settings, **resolved}

    def validate(self, bi_encoder: bool) -> None:
        """
        Fail fast, naming the setting, on a value out of range.

        :param bi_encoder: Whether the run keeps a bi-encoder base a bi-encoder (it may train 0 steps).
        :raises ValueError: If a setting is out of range.
        """
        max_steps = self.max_steps
        if max_steps is not None and not (bi_encoder and max_steps == 0 and not isinstance(max_steps, bool)):
            check_positive("max_steps", max_steps)
        if not 0.0 <= self.warmup_ratio < 1.0:
            msg = f"warmup_ratio must be in [0, 1) (e.g. 0.1), got {self.warmup_ratio!r}."
            raise ValueError(msg)

    def validate_sizes(self) -> None:
        """
        Check the batch size, learning rates and length (before the base model is even looked at).

        :raises ValueError: If one is not a number > 0.
        """
        check_positive("batch_size", self.batch_size)
        for name in ("learning_rate", "head_learning_rate"):
            if (value := getattr(self, name)) is not None:
                check_positive(name, value)
        check_positive("max_length", self.max_length)


def check_positive(name: str, value: float) -> None:
    """
    Raise unless `value` is a number > 0 (a bool is not a number here).

    :param name: The setting's name, for the message.
    :param value: Its value.
    :raises ValueError: If `value` is not a number > 0.
    """
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
        msg = f"{name} must be a number > 0, got {value!r}."
        raise ValueError(msg)

"""Trainer settings and callbacks shared by the cross-encoder and the bi-encoder recipes."""

import time
from pathlib import Path
from typing import Any


def time_budget(max_minutes: float) -> Any:
    from transformers import TrainerCallback

    class TimeBudget(TrainerCallback):
        """
        Stop training (after the current step) once the wall-clock budget is spent, evaluating and saving first
        where the run evaluates and saves at all: asking a trainer without an eval dataset to evaluate is an error
        that loses the whole run (`rerank distill` trains without one).
        """

        def __init__(self) -> None:
            self.deadline = time.monotonic() + max_minutes * 60

        def on_step_end(self, args, state, control, **kwargs):
            if time.monotonic() >= self.deadline:
                control.should_training_stop = True
                control.should_evaluate = _strategy(args.eval_strategy) != "no"
                control.should_save = _strategy(args.save_strategy) != "no"
            return control

    return TimeBudget()


def _strategy(value: Any) -> str:
    """A trainer's eval/save strategy as its name ("no", "steps", "epoch"), from the enum or a string."""
    return str(getattr(value, "value", value))


def schedule_arguments(
    output_dir: Path,
    epochs: float,
    max_steps: int | None,
    batch_size: int,
    learning_rate: float,
    warmup_ratio: float,
    seed: int,
) -> dict[str, Any]:
    """The training-arguments both recipes share: length, batch, linear schedule with warm-up, no decay, seeds."""
    return {
        "output_dir": str(output_dir),
        "num_train_epochs": epochs,
        "max_steps": max_steps or -1,
        "per_device_train_batch_size": batch_size,
        "learning_rate": learning_rate,
        "warmup_steps": warmup_ratio,
        "lr_scheduler_type": "linear",
        "weight_decay": 0.0,
        "seed": seed,
        "data_seed": seed,
    }

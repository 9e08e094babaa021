"""Trainer callbacks shared by the cross-encoder and the bi-encoder recipes."""

import time
from typing import Any


def time_budget(max_minutes: float) -> Any:
    from transformers import TrainerCallback

    class TimeBudget(TrainerCallback):
        """Stop training (after the current step) once the wall-clock budget is spent."""

        def __init__(self) -> None:
            self.deadline = time.monotonic() + max_minutes * 60

        def on_step_end(self, args, state, control, **kwargs):
            if time.monotonic() >= self.deadline:
                control.should_training_stop = True
                control.should_evaluate = True
                control.should_save = True
            return control

    return TimeBudget()

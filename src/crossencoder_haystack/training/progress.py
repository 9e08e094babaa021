"""What a long training job shows a person: one rich progress display, and the libraries' own output kept quiet.

`JobDisplay` is the one display of a job (`rerank train`, `rerank distill`, the demo's starter build): a line per
phase and a bar for the training steps with the ETA, the current loss and the last evaluation, which
`training_progress` (a `transformers.TrainerCallback`) drives. `quiet_libraries` silences what transformers,
sentence-transformers and datasets print on their own (the trainer's raw `{'loss': ...}` dicts, tqdm bars such as
"Loading weights" and "Writing model shards", info logs) for the length of the job; `verbose=True` leaves them on.
"""

import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

_LIBRARY_LOGGERS = ("sentence_transformers", "datasets")


class JobDisplay:
    """
    The one rich progress display of a job: a line per phase, a bar per counted task.

    :param enabled: False shows nothing (every method still works).
    """

    def __init__(self, enabled: bool) -> None:
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            SpinnerColumn,
            TextColumn,
            TimeElapsedColumn,
            TimeRemainingColumn,
        )

        self.progress = Progress(
            SpinnerColumn(),
            TextColumn("{task.description}"),
            BarColumn(bar_width=24),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            TextColumn("ETA"),
            TimeRemainingColumn(),
            TextColumn("{task.fields[status]}"),
            disable=not enabled,
        )

    def __enter__(self) -> "JobDisplay":
        self.progress.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.progress.stop()

    def add(self, description: str, total: int | None) -> Any:
        """A new task (a bar when `total` is known) and its id."""
        return self.progress.add_task(description, total=total, status="")

    def advance(self, task: Any, amount: int) -> None:
        """Move `task` on by `amount`."""
        self.progress.advance(task, amount)

    def update(self, task: Any, **changes: Any) -> None:
        """Change `task`'s `completed`, `total`, `description` or `status`."""
        self.progress.update(task, **changes)

    @contextmanager
    def phase(self, description: str) -> Iterator[None]:
        """A step without a count: a spinner while it runs, ticked off when it ends."""
        task = self.add(description, total=1)
        yield
        self.progress.update(task, completed=1)


def training_progress(display: JobDisplay, description: str = "training steps") -> Any:
    """
    A `transformers.TrainerCallback` that moves a bar of `display` with the trainer's steps and shows the current
    loss and the last evaluation's nDCG@10 (or its first metric).

    :param display: The job's display.
    :param description: The bar's label.
    """
    from transformers import TrainerCallback

    class TrainingProgress(TrainerCallback):
        def __init__(self) -> None:
            self.task: Any = None
            self.loss = ""
            self.evaluation = ""

        def on_train_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
            self.task = display.add(description, total=state.max_steps or None)

        def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
            if self.task is not None:
                display.update(self.task, completed=state.global_step, total=state.max_steps or None)

        def on_log(self, args: Any, state: Any, control: Any, logs: Any = None, **kwargs: Any) -> None:
            if logs and "loss" in logs and self.task is not None:
                self.loss = f"loss {float(logs['loss']):.4f}"
                display.update(self.task, status=self._status())

        def on_evaluate(self, args: Any, state: Any, control: Any, metrics: Any = None, **kwargs: Any) -> None:
            if metrics and self.task is not None:
                self.evaluation = _evaluation_status(metrics)
                display.update(self.task, status=self._status())

        def _status(self) -> str:
            return ", ".join(part for part in (self.loss, self.evaluation) if part)

    return TrainingProgress()


def _evaluation_status(metrics: dict[str, Any]) -> str:
    """`eval nDCG@10 0.8123` from a trainer's evaluation metrics (its first numeric metric without nDCG@10)."""
    for name, value in metrics.items():
        if name.endswith("ndcg@10") and isinstance(value, int | float):
            return f"eval nDCG@10 {value:.4f}"
    for name, value in metrics.items():
        if isinstance(value, int | float) and not name.endswith(("runtime", "per_second", "epoch")):
            return f"{name} {value:.4f}"
    return ""


def timed_training(trainer: Any) -> tuple[float, bool]:
    """
    Run the trainer.

    :param trainer: A transformers or sentence-transformers trainer.
    :returns: The minutes it took, and whether Ctrl-C stopped it.
    """
    started = time.monotonic()
    interrupted = False
    try:
        trainer.train()
    except KeyboardInterrupt:
        interrupted = True
    return (time.monotonic() - started) / 60, interrupted


def quiet_trainer(trainer: Any, verbose: bool) -> Any:
    """
    Take the trainer's own printing of its logs (`PrinterCallback`, the raw `{'loss': ...}` dicts) away, unless
    `verbose`; the trainer is returned.

    :param trainer: A `transformers.Trainer`.
    :param verbose: Keep the trainer's own output.
    """
    from transformers.trainer_callback import PrinterCallback, ProgressCallback

    if not verbose:
        trainer.remove_callback(PrinterCallback)
        trainer.remove_callback(ProgressCallback)
    return trainer


@contextmanager
def quiet_libraries(verbose: bool = False) -> Iterator[None]:
    """
    For the length of the block, keep transformers, sentence-transformers and datasets from printing: their info
    logs and their tqdm bars; everything is restored afterwards. `verbose=True` changes nothing.

    :param verbose: Leave the libraries' output on.
    """
    if verbose:
        yield
        return
    import datasets
    import transformers

    hf_logging = transformers.utils.logging
    saved = (hf_logging.get_verbosity(), hf_logging.is_progress_bar_enabled(), datasets.is_progress_bar_enabled())
    levels = {name: logging.getLogger(name).level for name in _LIBRARY_LOGGERS}
    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    datasets.disable_progress_bars()
    for name in _LIBRARY_LOGGERS:
        logging.getLogger(name).setLevel(logging.ERROR)
    try:
        yield
    finally:
        hf_logging.set_verbosity(saved[0])
        if saved[1]:
            hf_logging.enable_progress_bar()
        if saved[2]:
            datasets.enable_progress_bars()
        for name, level in levels.items():
            logging.getLogger(name).setLevel(level)

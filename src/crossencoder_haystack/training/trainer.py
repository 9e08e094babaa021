"""`train(...)`: fine-tune a cross-encoder reranker on pairs, triplets or lists, with the recipe that works on CPU.

The defaults are the candidate recipe described in `train`'s docstring; what was measured with it is in
`benchmarks/results/train_scifact.md`.
"""

import math
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

from crossencoder_haystack.training.base_model import (
    build_cross_encoder,
    head_parameter_names,
    resolve_base_model,
    uses_bi_encoder_recipe,
)
from crossencoder_haystack.training.callbacks import schedule_arguments, time_budget
from crossencoder_haystack.training.config import TrainConfig
from crossencoder_haystack.training.data import TrainingData, load_training_data
from crossencoder_haystack.training.losses import choose_loss
from crossencoder_haystack.training.model_card import write_model_card
from crossencoder_haystack.training.precision import training_uses_bf16
from crossencoder_haystack.training.progress import (
    JobDisplay,
    quiet_libraries,
    quiet_trainer,
    timed_training,
    training_progress,
)

EVALUATOR_NAME = "rerank"
_CHECKPOINTS = "checkpoints"


@dataclass
class TrainingResult:
    """What a training run produced: where the model is, how it was trained and how it scored."""

    output_dir: Path
    loss: str
    activation: str
    steps: int
    minutes: float
    before: dict[str, float] = field(default_factory=dict)
    after: dict[str, float] = field(default_factory=dict)
    loss_history: list[tuple[int, float]] = field(default_factory=list)
    interrupted: bool = False
    best_checkpoint_step: int | None = None
    anchor: Any = None  # bi-encoder recipe: the `AnchorChoice` (interpolation weight and its metrics)
    check_name: str | None = None  # the check collection's name, when `check_data` was given
    fusion: Any = None  # bi-encoder recipe: the `FusionTuning` with the first stage, when `rerank mine` saved one
    calibration: Any = None  # the `CalibrationResult`, when `calibrate=True` fitted one on the held-out queries
    config: TrainConfig | None = None  # the settings of the run


@dataclass(frozen=True)
class Recipe:
    """Peak learning rates that worked for a head (see benchmarks/results/train_scifact.md)."""

    learning_rate: float
    head_learning_rate: float


RECIPES: dict[str, Recipe] = {
    "cosine": Recipe(learning_rate=5e-5, head_learning_rate=1e-2),
    "dense": Recipe(learning_rate=1e-4, head_learning_rate=1e-3),
    "kept": Recipe(learning_rate=1e-4, head_learning_rate=1e-3),
}


def train(
    data: Any,
    output: str | Path,
    config: TrainConfig | None = None,
    *,
    eval_data: Any = None,
    callbacks: list[Any] | None = None,
    **settings: Any,
) -> TrainingResult:
    """
    Fine-tune a cross-encoder reranker and save it as a sentence-transformers CrossEncoder directory.

    Default recipe: start from the bundled all-MiniLM-L6-v2 bi-encoder and keep it a bi-encoder (query and document
    encoded separately, `training.bi_encoder`), anchored to the start; an encoder, or `head="cosine"` / `"dense"`,
    gets a cross-encoder head (`build_cross_encoder`) trained at the learning rates of `RECIPES`. The loss of a
    cross-encoder follows the data's shape: pairs -> BCE with `pos_weight` = negatives/positives, triplets ->
    CachedMultipleNegativesRankingLoss, lists -> LambdaLoss. What was measured with these recipes is in
    `benchmarks/results/`.

    Where the hardware multiplies bfloat16 natively (`training_uses_bf16`) the forward and backward passes run in
    bf16 autocast; the weights, and so the saved model, stay float32.

    Evaluation runs on `eval_data` (or `config.eval_fraction` of the queries held out) with
    `CrossEncoderRerankingEvaluator` (nDCG@10, MRR@10); the best checkpoint by nDCG@10 is the one saved.
    Ctrl-C stops training and still saves the best checkpoint so far (`interrupted=True` in the result).

    Usage example:
    ```python
    from crossencoder_haystack.training import TrainConfig, train

    result = train("train.jsonl", "models/my-reranker", config=TrainConfig(max_steps=300))
    # the same: train("train.jsonl", "models/my-reranker", max_steps=300)
    print(result.after)  # {"ndcg@10": ..., "mrr@10": ...}
    # then: CrossEncoderRanker(model="models/my-reranker")
    ```

    :param data: Training data: a `.csv`, `.tsv` or `.jsonl` path or a `datasets.Dataset` (pairs, triplets or lists).
    :param output: Directory to save the trained model (with a README.md model card) into.
    :param config: The run's settings (`TrainConfig`); None uses the defaults.
    :param eval_data: Evaluation data in any of the same formats; None holds out `config.eval_fraction` of the
        queries.
    :param callbacks: Extra `transformers.TrainerCallback`s.
    :param settings: `TrainConfig` fields by name (`max_steps=300`, ...): they replace the same fields of `config`.
    :returns: A `TrainingResult` with the output directory, loss, activation, before/after metrics and the config.
    :raises TypeError: If a keyword argument is not a `TrainConfig` field.
    :raises ValueError: If a setting is out of range.
    """
    config = (config or TrainConfig()).replace(**settings)
    config.validate_sizes()
    bi_encoder = uses_bi_encoder_recipe(config.base_model, config.head)
    config.validate(bi_encoder)
    train_data, evaluation_data = _training_and_evaluation_data(data, eval_data, config)
    with quiet_libraries(config.verbose):
        with JobDisplay(config.show_progress and not config.verbose) as display:
            run = _Run(train_data, evaluation_data, Path(output).expanduser(), config, list(callbacks or []), display)
            result = _train_bi_encoder(run) if bi_encoder else _train_cross_encoder(run)
        result.config = config
        if config.show_progress:
            print_summary(result)
        return _calibrated(result, evaluation_data, config.show_progress) if config.calibrate else result


@dataclass
class _Run:
    """What one training run works on: its data, where it saves, its settings and the caller's callbacks."""

    train_data: TrainingData
    evaluation_data: TrainingData | None
    output_dir: Path
    config: TrainConfig
    callbacks: list[Any]
    display: JobDisplay


def _training_and_evaluation_data(
    data: Any, eval_data: Any, config: TrainConfig
) -> tuple[TrainingData, TrainingData | None]:
    """The training data, and the evaluation data (`eval_data`, held-out queries, or none)."""
    train_data = data if isinstance(data, TrainingData) else load_training_data(data, config.shape)
    evaluation_data: TrainingData | None = None
    if eval_data is not None:
        evaluation_data = eval_data if isinstance(eval_data, TrainingData) else load_training_data(eval_data)
    elif config.eval_fraction:
        train_data, evaluation_data = train_data.split_by_query(config.eval_fraction, config.seed)
    if config.calibrate and (evaluation_data is None or len(evaluation_data.queries) < 2):
        msg = "calibrate=True needs at least 2 held-out queries: pass eval_data, or an eval_fraction that keeps some."
        raise ValueError(msg)
    return train_data, evaluation_data


def _calibrated(result: TrainingResult, evaluation_data: TrainingData | None, show_progress: bool) -> TrainingResult:
    """The result, with a calibration fitted on the held-out queries and stored with the model (a warning if not)."""
    import logging

    from crossencoder_haystack.calibration import calibrate
    from crossencoder_haystack.calibration.pairs import pairs_from_training_data

    assert evaluation_data is not None  # checked before training
    if result.interrupted:
        return result
    try:
        result.calibration = calibrate(
            result.output_dir, pairs_from_training_data(evaluation_data), show_progress=show_progress
        )
    except ValueError as error:
        logging.getLogger(__name__).warning("The model is saved, but not calibrated: %s", error)
    return result


# --- the cross-encoder recipe ------------------------------------------------------------------------------------


def _train_cross_encoder(run: _Run) -> TrainingResult:
    """Train a cross-encoder (a new head on an encoder, or a cross-encoder's own) and save the best checkpoint."""
    import transformers

    config = run.config
    transformers.set_seed(config.seed)
    base = build_cross_encoder(config.base_model, max_length=config.max_length, seed=config.seed, head=config.head)
    recipe = RECIPES[base.head]
    rates = (
        recipe.learning_rate if config.learning_rate is None else config.learning_rate,
        recipe.head_learning_rate if config.head_learning_rate is None else config.head_learning_rate,
    )
    choice = choose_loss(base.model, run.train_data, config.loss, mini_batch_size=config.mini_batch_size)
    _set_activation(base.model, choice.activation)
    evaluator = _evaluator(run.evaluation_data)
    epochs = 1.0 if config.epochs is None else config.epochs
    trainer = _cross_encoder_trainer(run, base.model, choice, evaluator, epochs, rates)
    with run.display.phase("evaluating the starting model"):
        before = _metrics(evaluator(base.model)) if evaluator else {}
    minutes, interrupted = timed_training(trainer)
    with run.display.phase("evaluating and saving the kept model"):
        model, after = _kept_model(trainer, base.model, choice.activation, evaluator, interrupted)
        run.output_dir.mkdir(parents=True, exist_ok=True)
        model.save(str(run.output_dir))
        shutil.rmtree(run.output_dir / _CHECKPOINTS, ignore_errors=True)
    best = trainer.state.best_model_checkpoint
    result = TrainingResult(
        output_dir=run.output_dir,
        loss=choice.name,
        activation=choice.activation,
        steps=trainer.state.global_step,
        minutes=round(minutes, 2),
        before=before,
        after=after,
        loss_history=_loss_history(trainer),
        interrupted=interrupted,
        best_checkpoint_step=int(best.rsplit("-", 1)[-1]) if best else None,
    )
    hyper_parameters = config.hyper_parameters(
        base_model=base.source,
        head=base.head,
        epochs=epochs,
        learning_rate=rates[0],
        head_learning_rate=rates[1],
        base_model_kind=base.kind,
        **choice.settings,
    )
    return _finished(run, result, hyper_parameters)


def _set_activation(model: Any, activation: str) -> None:
    import torch

    model.activation_fn = torch.nn.Sigmoid() if activation == "sigmoid" else torch.nn.Identity()


def _evaluator(evaluation_data: TrainingData | None) -> Any:
    """A `CrossEncoderRerankingEvaluator` over the evaluation data's queries, or None without evaluation data."""
    from sentence_transformers.cross_encoder.evaluation import CrossEncoderRerankingEvaluator

    if evaluation_data is None:
        return None
    samples = evaluation_data.evaluation_samples()
    if not samples:
        msg = (
            f"The evaluation data {evaluation_data.source} has no query with both a positive and a negative "
            "document; pass eval_data with negatives, or eval_fraction=0 to train without evaluation."
        )
        raise ValueError(msg)
    return CrossEncoderRerankingEvaluator(samples, at_k=10, name=EVALUATOR_NAME, batch_size=64)


def _cross_encoder_trainer(
    run: _Run, model: Any, choice: Any, evaluator: Any, epochs: float, rates: tuple[float, float]
) -> Any:
    """A `CrossEncoderTrainer` that evaluates and checkpoints about 5 times and keeps the best checkpoint."""
    import torch
    from sentence_transformers.base.sampler import BatchSamplers
    from sentence_transformers.cross_encoder import CrossEncoderTrainer, CrossEncoderTrainingArguments

    config = run.config
    dataset = run.train_data.to_dataset()
    steps_per_epoch = math.ceil(len(dataset) / config.batch_size)
    total_steps = config.max_steps or max(1, math.ceil(steps_per_epoch * epochs))
    eval_every = config.eval_steps or max(1, total_steps // 5)
    schedule = schedule_arguments(
        run.output_dir / _CHECKPOINTS,
        epochs,
        config.max_steps,
        config.batch_size,
        rates[0],
        config.warmup_ratio,
        config.seed,
    )
    args = CrossEncoderTrainingArguments(
        **schedule,
        bf16=training_uses_bf16(),  # autocast only: the weights, and so the saved model, stay fp32
        per_device_eval_batch_size=config.batch_size,
        eval_strategy="steps" if evaluator else "no",
        eval_steps=eval_every,
        save_strategy="steps" if evaluator else "no",
        save_steps=eval_every,
        save_total_limit=1,
        load_best_model_at_end=evaluator is not None,
        metric_for_best_model=f"eval_{EVALUATOR_NAME}_ndcg@10" if evaluator else None,
        greater_is_better=True,
        logging_steps=max(1, min(10, eval_every)),
        report_to="none",
        dataloader_num_workers=0,
        disable_tqdm=not (config.verbose and config.show_progress),  # else the one display shows the steps
        use_cpu=not torch.cuda.is_available(),
        batch_sampler=(
            BatchSamplers.NO_DUPLICATES if run.train_data.shape == "triplets" else BatchSamplers.BATCH_SAMPLER
        ),
        push_to_hub=False,
    )
    trainer = CrossEncoderTrainer(
        model=model,
        args=args,
        train_dataset=dataset,
        loss=choice.loss,
        evaluator=evaluator,
        callbacks=_trainer_callbacks(run),
        # The library annotates `optimizers` without None, yet None (its default) lets it build the scheduler.
        optimizers=cast(
            "tuple[torch.optim.Optimizer, torch.optim.lr_scheduler.LambdaLR]", (_optimizer(model, *rates), None)
        ),
    )
    return quiet_trainer(trainer, config.verbose)


def _trainer_callbacks(run: _Run) -> list[Any]:
    """The caller's callbacks, the progress display's and the time budget when there is one."""
    callbacks = [*run.callbacks, training_progress(run.display)]
    if run.config.max_minutes is not None:
        callbacks.append(time_budget(run.config.max_minutes))
    return callbacks


def _kept_model(
    trainer: Any, model: Any, activation: str, evaluator: Any, interrupted: bool
) -> tuple[Any, dict[str, float]]:
    """The model to save (the best checkpoint's after Ctrl-C) and its metrics."""
    best = trainer.state.best_model_checkpoint
    if interrupted and best:
        from haystack_integrations.components.rankers.crossencoder._engine.model_loading import load_cross_encoder

        model = load_cross_encoder(best, device="cpu", activation_fn=model.activation_fn)
    _set_activation(model, activation)
    after = _metrics(evaluator(model)) if evaluator and (best or not interrupted) else {}
    return model, after


def _loss_history(trainer: Any) -> list[tuple[int, float]]:
    return [(entry["step"], entry["loss"]) for entry in trainer.state.log_history if "loss" in entry]


def _finished(run: _Run, result: TrainingResult, hyper_parameters: dict[str, Any]) -> TrainingResult:
    """Write the model card and return the result."""
    write_model_card(run.output_dir, result, run.train_data, run.evaluation_data, hyper_parameters)
    return result


# --- the bi-encoder recipe ---------------------------------------------------------------------------------------


@dataclass
class _AnchorEvaluations:
    """In-domain metrics of each interpolation weight, computed once per weight (the start's are `before`)."""

    samples: list[dict[str, Any]]
    by_weight: dict[float, dict[str, float]] = field(default_factory=dict)
    weight_now: float = 0.0

    def in_domain(self, candidate: Any) -> float:
        from crossencoder_haystack.training import bi_encoder

        # choose_anchor loads each weight before calling this
        if self.weight_now not in self.by_weight:
            self.by_weight[self.weight_now] = bi_encoder.evaluate_reranking(candidate, self.samples)
        return self.by_weight[self.weight_now]["ndcg@10"]

    def on_weight(self, weight: float) -> None:
        self.weight_now = weight


def _train_bi_encoder(run: _Run) -> TrainingResult:
    """The default recipe for a bi-encoder base: contrastive fine-tuning anchored to the start (`bi_encoder`)."""
    import transformers

    from crossencoder_haystack.training import bi_encoder
    from crossencoder_haystack.training.check_data import load_check_set

    config = run.config
    transformers.set_seed(config.seed)
    source_name = resolve_base_model(config.base_model)
    source = Path(source_name).expanduser()
    model = bi_encoder.load_base(source, config.max_length)
    samples = run.evaluation_data.evaluation_samples() if run.evaluation_data is not None else []
    check_set = None
    if config.check_data is not None:
        check_set = load_check_set(config.check_data, config.check_split, config.check_max_queries)
    evaluations = _AnchorEvaluations(samples)
    with run.display.phase("evaluating the starting model"):
        before = evaluations.by_weight[0.0] = bi_encoder.evaluate_reranking(model, samples) if samples else {}
    start_state = bi_encoder.snapshot(model)
    rows = bi_encoder.triplet_rows(run.train_data, config.seed)
    schedule = _bi_encoder_schedule(config, len(rows))
    fitted = _fit_bi_encoder(run, model, rows, schedule)
    with run.display.phase("choosing the interpolation weight towards the start"):
        choice = bi_encoder.choose_anchor(
            model,
            start_state,
            bi_encoder.snapshot(model),
            evaluations.in_domain if samples else None,
            check_set.ndcg_at_10 if check_set is not None else None,
            (0.0,) if fitted[0] == 0 else config.anchor_weights or bi_encoder.DEFAULT_ANCHOR_WEIGHTS,
            on_weight=evaluations.on_weight,
        )
    model.max_seq_length = bi_encoder.base_max_length(source)
    with run.display.phase("saving"):
        fusion = _save_bi_encoder(run, model, choice, samples)
    steps, minutes, history, interrupted = fitted
    result = TrainingResult(
        output_dir=run.output_dir,
        loss="MultipleNegativesRankingLoss" if steps else "none (untrained)",
        activation="identity",
        steps=steps,
        minutes=round(minutes, 2),
        before=before,
        after=evaluations.by_weight.get(choice.weight, {}),
        loss_history=history,
        interrupted=interrupted,
        anchor=choice,
        check_name=check_set.name if check_set is not None else None,
        fusion=fusion,
    )
    hyper_parameters = config.hyper_parameters(
        exclude=("head_learning_rate",),
        base_model=source_name,
        head="bi-encoder",
        **schedule,
        base_model_kind="bi-encoder",
        loss_scale=bi_encoder.RECIPE.loss_scale,
        training_rows=len(rows),
        anchor_weight=choice.weight,
        first_stage_weight=fusion.weight if fusion is not None else None,
    )
    return _finished(run, result, hyper_parameters)


def _bi_encoder_schedule(config: TrainConfig, rows: int) -> dict[str, Any]:
    """The bi-encoder recipe's `epochs`, `max_steps` and `learning_rate` where the config leaves them open."""
    from crossencoder_haystack.training import bi_encoder

    max_steps = config.max_steps
    if config.epochs is None and max_steps is None:  # one epoch, at most the recipe's step budget
        max_steps = max(1, min(math.ceil(rows / config.batch_size), bi_encoder.RECIPE.default_max_steps))
    return {
        "epochs": 1.0 if config.epochs is None else config.epochs,
        "max_steps": max_steps,
        "learning_rate": bi_encoder.RECIPE.learning_rate if config.learning_rate is None else config.learning_rate,
    }


def _fit_bi_encoder(
    run: _Run, model: Any, rows: list[dict[str, str]], schedule: dict[str, Any]
) -> tuple[int, float, list[tuple[int, float]], bool]:
    """MNRL steps on the rows (none for `max_steps=0`): (steps, minutes, loss history, interrupted)."""
    from crossencoder_haystack.training import bi_encoder

    if schedule["max_steps"] == 0:
        return 0, 0.0, [], False
    config = run.config
    return bi_encoder.fit(
        model,
        rows,
        output_dir=run.output_dir,
        max_steps=schedule["max_steps"],
        epochs=schedule["epochs"],
        batch_size=config.batch_size,
        learning_rate=schedule["learning_rate"],
        warmup_ratio=config.warmup_ratio,
        seed=config.seed,
        max_minutes=config.max_minutes,
        show_progress=config.show_progress,
        callbacks=[*run.callbacks, training_progress(run.display)],
        verbose=config.verbose,
    )


def _save_bi_encoder(run: _Run, model: Any, choice: Any, samples: list[dict[str, Any]]) -> Any:
    """Save the anchored model with its reranker config and, when `rerank mine` saved candidates, the fusion."""
    from crossencoder_haystack.training import bi_encoder
    from crossencoder_haystack.training.fusion_weight import bi_encoder_scores, save_fusion, tune_first_stage_weight

    source = str(run.train_data.source)
    fusion = tune_first_stage_weight(source, samples, bi_encoder_scores(model)) if samples else None
    run.output_dir.mkdir(parents=True, exist_ok=True)
    model.save(str(run.output_dir))
    shutil.rmtree(run.output_dir / _CHECKPOINTS, ignore_errors=True)
    bi_encoder.write_reranker_config(run.output_dir, choice)
    if fusion is not None:
        save_fusion(run.output_dir, fusion)
    return fusion


def _metrics(scores: dict[str, float]) -> dict[str, float]:
    prefix = f"{EVALUATOR_NAME}_"
    return {
        key.removeprefix(prefix): round(float(value), 4)
        for key, value in scores.items()
        if key.removeprefix(prefix) in {"ndcg@10", "mrr@10", "map"}
    }


def _optimizer(model: Any, learning_rate: float, head_learning_rate: float) -> Any:
    """AdamW with the head at its own (larger) learning rate: a new head must move far, the encoder little."""
    import torch

    head_names = head_parameter_names(model)
    head = [parameter for name, parameter in model.named_parameters() if name in head_names]
    encoder = [parameter for name, parameter in model.named_parameters() if name not in head_names]
    groups = [{"params": encoder, "lr": learning_rate}]
    if head:
        groups.append({"params": head, "lr": head_learning_rate})
    return torch.optim.AdamW(groups, lr=learning_rate, weight_decay=0.0)


def print_summary(result: TrainingResult) -> None:
    """Print a before/after table of the evaluation metrics and where the model was saved."""
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"Fine-tuning summary ({result.loss}, {result.steps} steps, {result.minutes:.1f} min)")
    table.add_column("metric")
    table.add_column("before", justify="right")
    table.add_column("after", justify="right")
    for metric in ("ndcg@10", "mrr@10", "map"):
        if metric in result.before or metric in result.after:
            before, after = result.before.get(metric), result.after.get(metric)
            table.add_row(metric, "-" if before is None else f"{before:.4f}", "-" if after is None else f"{after:.4f}")
    if result.loss_history:
        first, last = result.loss_history[0][1], result.loss_history[-1][1]
        table.add_row("train loss", f"{first:.4f}", f"{last:.4f}")
    console = Console()
    console.print(table)
    note = " (interrupted; best checkpoint kept)" if result.interrupted else ""
    console.print(f"Saved to {result.output_dir}{note}; activation: {result.activation}")

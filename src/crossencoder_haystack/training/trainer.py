"""`train(...)`: fine-tune a cross-encoder reranker on pairs, triplets or lists, with the recipe that works on CPU.

The defaults are the candidate recipe described in `train`'s docstring; what was measured with it is in
`benchmarks/results/train_scifact.md` (on a heavily shared 2-core CPU it has NOT yet been shown to beat BM25).
"""

import math
import shutil
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from crossencoder_haystack.training.base_model import (
    Head,
    build_cross_encoder,
    head_parameter_names,
    resolve_base_model,
    uses_bi_encoder_recipe,
)
from crossencoder_haystack.training.callbacks import schedule_arguments, time_budget
from crossencoder_haystack.training.data import DataShape, TrainingData, load_training_data
from crossencoder_haystack.training.losses import choose_loss
from crossencoder_haystack.training.model_card import write_model_card
from crossencoder_haystack.training.precision import training_uses_bf16

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
    *,
    eval_data: Any = None,
    eval_fraction: float = 0.1,
    base_model: str | Path | None = None,
    loss: str | None = None,
    shape: DataShape | None = None,
    epochs: float | None = None,
    max_steps: int | None = None,
    batch_size: int = 32,
    learning_rate: float | None = None,
    head_learning_rate: float | None = None,
    head: Head = "auto",
    warmup_ratio: float = 0.1,
    max_length: int = 128,
    seed: int = 42,
    eval_steps: int | None = None,
    mini_batch_size: int = 16,
    max_minutes: float | None = None,
    show_progress: bool = True,
    callbacks: list[Any] | None = None,
    check_data: str | Path | None = None,
    check_split: str = "test",
    check_max_queries: int | None = None,
    anchor_weights: Sequence[float] | None = None,
    calibrate: bool = False,
) -> TrainingResult:
    """
    Fine-tune a cross-encoder reranker and save it as a sentence-transformers CrossEncoder directory.

    Default recipe: start from the bundled all-MiniLM-L6-v2 bi-encoder with the segment-cosine head
    (`build_cross_encoder`), so the untrained model already ranks about like the bi-encoder; encoder learning rate
    5e-5, head (scale and bias) 1e-2, linear decay after 10% warm-up, `max_length` 128, batch 32. On SciFact
    (809 train queries, 5 BM25 hard negatives each, ~10-15 min on 2 CPU cores) it reranks BM25's top-20 of 50 test
    queries to nDCG@10 0.76 against BM25's 0.64, but only ties BM25 over all 300 test queries
    (`benchmarks/results/train_scifact.md`): plan for more steps on real data. The loss
    follows the data's shape: pairs -> BCE with `pos_weight` = negatives/positives, triplets ->
    CachedMultipleNegativesRankingLoss, lists -> LambdaLoss. `head="dense"` puts a linear head on the mean-pooled
    pair instead (1e-4 / 1e-3); it learned far slower here.

    Where the hardware multiplies bfloat16 natively (a CPU with AMX or AVX512-BF16, a CUDA device of compute
    capability 8.0 or later; `training_uses_bf16`) the forward and backward passes run in bf16 autocast, so the
    same minutes buy more steps; the weights, and so the saved model, stay float32.

    Evaluation runs on `eval_data` (or `eval_fraction` of the queries held out) with
    `CrossEncoderRerankingEvaluator` (nDCG@10, MRR@10); the best checkpoint by nDCG@10 is the one saved.
    Ctrl-C stops training and still saves the best checkpoint so far (`interrupted=True` in the result).

    Usage example:
    ```python
    from crossencoder_haystack.training import train

    result = train("train.jsonl", "models/my-reranker", max_steps=300)
    print(result.after)  # {"ndcg@10": ..., "mrr@10": ...}
    # then: CrossEncoderRanker(model="models/my-reranker")
    ```

    :param data: Training data: a `.csv`, `.tsv` or `.jsonl` path or a `datasets.Dataset` (pairs, triplets or lists).
    :param output: Directory to save the trained model (with a README.md model card) into.
    :param eval_data: Evaluation data in any of the same formats; None holds out `eval_fraction` of the queries.
    :param eval_fraction: Share of training queries held out for evaluation when `eval_data` is None; 0 skips
        evaluation (then the last weights are saved).
    :param base_model: Cross-encoder (its head is kept), sentence-transformers bi-encoder or encoder directory, or a
        reachable hub id; None uses the bundled all-MiniLM-L6-v2.
    :param loss: None (chosen from the data's shape), `"bce"`, `"cmnrl"`, `"lambda"` or another class name from
        `sentence_transformers.cross_encoder.losses`.
    :param shape: Force the data shape (`"pairs"`, `"triplets"`, `"lists"`); None detects it from the columns.
    :param epochs: Passes over the training data (ignored when `max_steps` is set). None: one epoch, and with a
        bi-encoder base at most `bi_encoder.RECIPE.default_max_steps` steps (about 20 minutes on 2 CPU cores).
    :param max_steps: Optimizer steps to train for; None trains for `epochs`.
    :param batch_size: Rows per step (pairs, triplets or lists).
    :param learning_rate: Peak learning rate of the encoder; None uses the recipe of the head (`RECIPES`).
    :param head_learning_rate: Peak learning rate of the scoring head; None uses the recipe of the head.
    :param head: The new head of an encoder or bi-encoder: `"auto"` (cosine when the tokenizer marks segments,
        as BERT's does), `"cosine"` or `"dense"`; see `build_cross_encoder`. A cross-encoder keeps its head.
    :param warmup_ratio: Share of the steps spent warming the learning rate up from 0.
    :param max_length: Maximum tokens of a (query, document) pair; longer pairs are truncated.
    :param seed: Seed for the head, data order and dropout: the same seed gives the same weights on CPU.
    :param eval_steps: Evaluate and checkpoint every this many steps; None picks about 5 evaluations per run.
    :param mini_batch_size: Chunk size for CMNRL (GradCache) and LambdaLoss forward passes (memory only).
    :param max_minutes: Stop training after this wall-clock budget (the schedule still follows `max_steps`).
    :param show_progress: Show the progress bar and the final summary table.
    :param callbacks: Extra `transformers.TrainerCallback`s.
    :param check_data: A BEIR folder or a judged data file outside the training domain (bi-encoder recipe): the
        start and every candidate are scored there, and none more than a point below the start is kept.
    :param check_split: The BEIR split of `check_data` (the only split, if it has one).
    :param check_max_queries: Score at most this many `check_data` queries (the first ones).
    :param anchor_weights: Interpolation weights between the start (0) and the tuned weights (1) to choose from
        (bi-encoder recipe); None uses `DEFAULT_ANCHOR_WEIGHTS`.
    :param calibrate: After training, fit a calibration (`rerank calibrate`) on the held-out evaluation queries,
        measured on 30% of them kept apart, and store it in the model directory: `CrossEncoderRanker` then returns
        P(relevant). Those queries also chose the checkpoint, so the held-out numbers are slightly optimistic.
    :returns: A `TrainingResult` with the output directory, loss, activation and before/after metrics.
    """
    _check_positive("batch_size", batch_size)
    for name, value in (("learning_rate", learning_rate), ("head_learning_rate", head_learning_rate)):
        if value is not None:
            _check_positive(name, value)
    _check_positive("max_length", max_length)
    bi_encoder = uses_bi_encoder_recipe(base_model, head)
    if max_steps is not None and not (bi_encoder and max_steps == 0 and not isinstance(max_steps, bool)):
        _check_positive("max_steps", max_steps)
    if not 0.0 <= warmup_ratio < 1.0:
        msg = f"warmup_ratio must be in [0, 1) (e.g. 0.1), got {warmup_ratio!r}."
        raise ValueError(msg)

    train_data = data if isinstance(data, TrainingData) else load_training_data(data, shape)
    evaluation_data: TrainingData | None
    if eval_data is not None:
        evaluation_data = eval_data if isinstance(eval_data, TrainingData) else load_training_data(eval_data)
    elif eval_fraction:
        train_data, evaluation_data = train_data.split_by_query(eval_fraction, seed)
    else:
        evaluation_data = None
    if calibrate and (evaluation_data is None or len(evaluation_data.queries) < 2):
        msg = "calibrate=True needs at least 2 held-out queries: pass eval_data, or an eval_fraction that keeps some."
        raise ValueError(msg)

    if bi_encoder:
        result = _train_bi_encoder(
            train_data,
            evaluation_data,
            output,
            base_model=base_model,
            max_steps=max_steps,
            epochs=epochs,
            batch_size=batch_size,
            learning_rate=learning_rate,
            warmup_ratio=warmup_ratio,
            max_length=max_length,
            seed=seed,
            max_minutes=max_minutes,
            show_progress=show_progress,
            callbacks=callbacks or [],
            check_data=check_data,
            check_split=check_split,
            check_max_queries=check_max_queries,
            anchor_weights=anchor_weights,
        )
        return _calibrated(result, evaluation_data, show_progress) if calibrate else result
    epochs = 1.0 if epochs is None else epochs
    import torch
    import transformers
    from sentence_transformers.base.sampler import BatchSamplers
    from sentence_transformers.cross_encoder import CrossEncoderTrainer, CrossEncoderTrainingArguments
    from sentence_transformers.cross_encoder.evaluation import CrossEncoderRerankingEvaluator

    transformers.set_seed(seed)
    base = build_cross_encoder(base_model, max_length=max_length, seed=seed, head=head)
    model = base.model
    recipe = RECIPES[base.head]
    learning_rate = recipe.learning_rate if learning_rate is None else learning_rate
    head_learning_rate = recipe.head_learning_rate if head_learning_rate is None else head_learning_rate
    choice = choose_loss(model, train_data, loss, mini_batch_size=mini_batch_size)
    model.activation_fn = torch.nn.Sigmoid() if choice.activation == "sigmoid" else torch.nn.Identity()

    evaluator = None
    if evaluation_data is not None:
        samples = evaluation_data.evaluation_samples()
        if not samples:
            msg = (
                f"The evaluation data {evaluation_data.source} has no query with both a positive and a negative "
                "document; pass eval_data with negatives, or eval_fraction=0 to train without evaluation."
            )
            raise ValueError(msg)
        evaluator = CrossEncoderRerankingEvaluator(samples, at_k=10, name=EVALUATOR_NAME, batch_size=64)

    dataset = train_data.to_dataset()
    steps_per_epoch = math.ceil(len(dataset) / batch_size)
    total_steps = max_steps or max(1, math.ceil(steps_per_epoch * epochs))
    eval_every = eval_steps or max(1, total_steps // 5)
    output_dir = Path(output).expanduser()
    checkpoints = output_dir / _CHECKPOINTS

    args = CrossEncoderTrainingArguments(
        **schedule_arguments(checkpoints, epochs, max_steps, batch_size, learning_rate, warmup_ratio, seed),
        bf16=training_uses_bf16(),  # autocast only: the weights, and so the saved model, stay fp32
        per_device_eval_batch_size=batch_size,
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
        disable_tqdm=not show_progress,
        use_cpu=not torch.cuda.is_available(),
        batch_sampler=BatchSamplers.NO_DUPLICATES if train_data.shape == "triplets" else BatchSamplers.BATCH_SAMPLER,
        push_to_hub=False,
    )
    trainer_callbacks = [*(callbacks or [])]
    if max_minutes is not None:
        trainer_callbacks.append(time_budget(max_minutes))
    trainer = CrossEncoderTrainer(
        model=model,
        args=args,
        train_dataset=dataset,
        loss=choice.loss,
        evaluator=evaluator,
        callbacks=trainer_callbacks,
        optimizers=(_optimizer(model, learning_rate, head_learning_rate), None),
    )

    before = _metrics(evaluator(model)) if evaluator else {}
    started = time.monotonic()
    interrupted = False
    try:
        trainer.train()
    except KeyboardInterrupt:
        interrupted = True
    minutes = (time.monotonic() - started) / 60

    best = trainer.state.best_model_checkpoint
    if interrupted and best:
        from haystack_integrations.components.rankers.crossencoder._engine.model_loading import load_cross_encoder

        model = load_cross_encoder(best, device="cpu", activation_fn=model.activation_fn)
    model.activation_fn = torch.nn.Sigmoid() if choice.activation == "sigmoid" else torch.nn.Identity()
    after = _metrics(evaluator(model)) if evaluator and (best or not interrupted) else {}
    output_dir.mkdir(parents=True, exist_ok=True)
    model.save(str(output_dir))
    shutil.rmtree(checkpoints, ignore_errors=True)

    result = TrainingResult(
        output_dir=output_dir,
        loss=choice.name,
        activation=choice.activation,
        steps=trainer.state.global_step,
        minutes=round(minutes, 2),
        before=before,
        after=after,
        loss_history=[(entry["step"], entry["loss"]) for entry in trainer.state.log_history if "loss" in entry],
        interrupted=interrupted,
        best_checkpoint_step=int(best.rsplit("-", 1)[-1]) if best else None,
    )
    hyper_parameters = {
        "base_model": base.source,
        "base_model_kind": base.kind,
        "head": base.head,
        "epochs": epochs,
        "max_steps": max_steps,
        "batch_size": batch_size,
        "learning_rate": learning_rate,
        "head_learning_rate": head_learning_rate,
        "warmup_ratio": warmup_ratio,
        "max_length": max_length,
        "seed": seed,
        **choice.settings,
    }
    write_model_card(output_dir, result, train_data, evaluation_data, hyper_parameters)
    if show_progress:
        print_summary(result)
    return _calibrated(result, evaluation_data, show_progress) if calibrate else result


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


def _train_bi_encoder(
    train_data: TrainingData,
    evaluation_data: TrainingData | None,
    output: str | Path,
    *,
    base_model: str | Path | None,
    max_steps: int | None,
    epochs: float | None,
    batch_size: int,
    learning_rate: float | None,
    warmup_ratio: float,
    max_length: int,
    seed: int,
    max_minutes: float | None,
    show_progress: bool,
    callbacks: list[Any],
    check_data: str | Path | None,
    check_split: str,
    check_max_queries: int | None,
    anchor_weights: Sequence[float] | None,
) -> TrainingResult:
    """The default recipe for a bi-encoder base: contrastive fine-tuning anchored to the start (`bi_encoder`)."""
    import transformers

    from crossencoder_haystack.training import bi_encoder
    from crossencoder_haystack.training.check_data import load_check_set
    from crossencoder_haystack.training.fusion_weight import bi_encoder_scores, save_fusion, tune_first_stage_weight

    transformers.set_seed(seed)
    source = resolve_base_model(base_model)
    model = bi_encoder.load_base(Path(source).expanduser(), max_length)
    serving_max_length = bi_encoder.base_max_length(Path(source).expanduser())
    samples = evaluation_data.evaluation_samples() if evaluation_data is not None else []
    check_set = load_check_set(check_data, check_split, check_max_queries) if check_data is not None else None

    evaluations: dict[float, dict[str, float]] = {}
    weight_now = [0.0]

    def in_domain(candidate: Any) -> float:
        # choose_anchor loads each weight before calling this; the start's metrics are `before`, computed once
        if weight_now[0] not in evaluations:
            evaluations[weight_now[0]] = bi_encoder.evaluate_reranking(candidate, samples)
        return evaluations[weight_now[0]]["ndcg@10"]

    before = evaluations[0.0] = bi_encoder.evaluate_reranking(model, samples) if samples else {}
    start_state = bi_encoder.snapshot(model)
    rows = bi_encoder.triplet_rows(train_data, seed)
    if epochs is None and max_steps is None:  # one epoch, at most the recipe's step budget
        max_steps = max(1, min(math.ceil(len(rows) / batch_size), bi_encoder.RECIPE.default_max_steps))
    epochs = 1.0 if epochs is None else epochs
    learning_rate = bi_encoder.RECIPE.learning_rate if learning_rate is None else learning_rate
    output_dir = Path(output).expanduser()
    steps, minutes, history, interrupted = 0, 0.0, [], False
    if max_steps != 0:
        steps, minutes, history, interrupted = bi_encoder.fit(
            model,
            rows,
            output_dir=output_dir,
            max_steps=max_steps,
            epochs=epochs,
            batch_size=batch_size,
            learning_rate=learning_rate,
            warmup_ratio=warmup_ratio,
            seed=seed,
            max_minutes=max_minutes,
            show_progress=show_progress,
            callbacks=callbacks,
        )
    choice = bi_encoder.choose_anchor(
        model,
        start_state,
        bi_encoder.snapshot(model),
        in_domain if samples else None,
        check_set.ndcg_at_10 if check_set is not None else None,
        (0.0,) if steps == 0 else anchor_weights or bi_encoder.DEFAULT_ANCHOR_WEIGHTS,
        on_weight=lambda weight: weight_now.__setitem__(0, weight),
    )
    after = evaluations.get(choice.weight, {})
    model.max_seq_length = serving_max_length
    fusion = tune_first_stage_weight(str(train_data.source), samples, bi_encoder_scores(model)) if samples else None
    output_dir.mkdir(parents=True, exist_ok=True)
    model.save(str(output_dir))
    shutil.rmtree(output_dir / _CHECKPOINTS, ignore_errors=True)
    bi_encoder.write_reranker_config(output_dir, choice)
    if fusion is not None:
        save_fusion(output_dir, fusion)
    result = TrainingResult(
        output_dir=output_dir,
        loss="MultipleNegativesRankingLoss" if steps else "none (untrained)",
        activation="identity",
        steps=steps,
        minutes=round(minutes, 2),
        before=before,
        after=after,
        loss_history=history,
        interrupted=interrupted,
        anchor=choice,
        check_name=check_set.name if check_set is not None else None,
        fusion=fusion,
    )
    hyper_parameters = {
        "base_model": source,
        "base_model_kind": "bi-encoder",
        "head": "bi-encoder",
        "epochs": epochs,
        "max_steps": max_steps,
        "batch_size": batch_size,
        "learning_rate": learning_rate,
        "warmup_ratio": warmup_ratio,
        "max_length": max_length,
        "seed": seed,
        "loss_scale": bi_encoder.RECIPE.loss_scale,
        "training_rows": len(rows),
        "anchor_weight": choice.weight,
        "first_stage_weight": fusion.weight if fusion is not None else None,
    }
    write_model_card(output_dir, result, train_data, evaluation_data, hyper_parameters)
    if show_progress:
        print_summary(result)
    return result


def _check_positive(name: str, value: float) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
        msg = f"{name} must be a number > 0, got {value!r}."
        raise ValueError(msg)


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

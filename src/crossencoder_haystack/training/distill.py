"""`distill(...)` (`rerank distill`): a small, fast student cross-encoder trained to reproduce a teacher's scores.

Data: no labels, only pairs. The queries given (a BEIR split, a training file or a list of queries) and
pseudo-queries drawn from the corpus (titles, first sentences), each with its first-stage candidates (BM25's and
the embedding model's top 100 together: the whole list a reranker sees, not only its head); see `distill_data`.

Teacher: any reranker directory `CrossEncoderRanker` loads (a cross-encoder, or the bi-encoder reranker `rerank
train` makes). Its raw scores (logits; cosines for a bi-encoder) are computed once on its fastest faithful backend
and cached on disk, so an interrupted or repeated run resumes (`teacher_scores`).

Student: the teacher's own layers (`layers` of them, evenly spaced) or another base (`student`), trained with
sentence-transformers' cross-encoder `MSELoss` on the teacher's logits (`loss="mse"`, default: the student's
scores land on the teacher's scale, which a cascade's merged list relies on) or `MarginMSELoss` on the margins
between two candidates of a query (`loss="margin_mse"`: only differences count).

Budget: with `max_minutes`, the teacher gets at most `teacher_share` of it (held-out queries first, then the given
queries, then pseudo-queries), the student's steps are planned from a timed probe step to fill what is left, and
the agreement with the teacher is measured on held-out queries before and after training. One rich progress
display shows every phase.

The saved directory is a plain sentence-transformers CrossEncoder with the teacher's activation; its README.md
names the teacher, the data and the agreement, and `crossencoder_distillation.json` records them for tools
(`rerank evaluate --cascade-keep` finds the teacher there).
"""

import math
import random
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, cast

from crossencoder_haystack.training.agreement import Agreement, teacher_agreement
from crossencoder_haystack.training.distill_data import DistillationSet, load_distillation_set, retrieve_first_stage
from crossencoder_haystack.training.progress import JobDisplay, quiet_libraries, quiet_trainer, training_progress
from crossencoder_haystack.training.student import Student, build_student
from crossencoder_haystack.training.teacher_scores import (
    TeacherScoreCache,
    TeacherScoring,
    load_teacher,
    score_pairs,
    teacher_cache_path,
)

DistillationLoss = Literal["mse", "margin_mse"]
LOSSES: tuple[str, ...] = ("mse", "margin_mse")
_NEW_HEAD_LEARNING_RATE = 1e-2  # a new head must move far, the kept layers little (as `rerank train`'s recipes)
_PROBE_MARGIN = 1.15  # planned steps leave this much slack for the optimizer and logging


@dataclass
class DistillationResult:
    """What a distillation produced: the student, the data it saw and how well it agrees with the teacher."""

    output_dir: Path
    teacher: str
    teacher_backend: str
    student: str  # how the student was made, e.g. "layers [1, 3, 5] of 6 of the teacher"
    loss: str
    queries: int
    pseudo_queries: int
    held_out_queries: int
    pairs: int  # candidate pairs of all queries
    pairs_scored: int  # scored by the teacher in this run
    pairs_reused: int  # found in the cache
    training_pairs: int
    steps: int
    minutes: float
    before: Agreement
    after: Agreement
    loss_history: list[tuple[int, float]] = field(default_factory=list)
    interrupted: bool = False
    same_tokenizer: bool = True
    teacher_scores_file: str = ""


@dataclass(frozen=True)
class _Plan:
    """Which queries are held out for agreement, and in which order the others are scored and trained on."""

    held_out: list[str]
    train: list[str]


# About 100 lines: 28 parameters and their docstring; the body is the steps, each a function of its own.
def distill(
    teacher: str | Path,
    queries: str | Path | None = None,
    *,
    output: str | Path,
    corpus: str | Path | None = None,
    split: str = "train",
    layers: int | None = 3,
    student: str | Path | None = None,
    pseudo_queries: int = 1000,
    retriever: str = "hybrid",
    embedding_model: str | Path | None = None,
    top_n: int = 100,
    loss: DistillationLoss = "mse",
    max_minutes: float | None = None,
    teacher_share: float = 0.5,
    max_steps: int | None = None,
    epochs: float = 1.0,
    batch_size: int = 32,
    learning_rate: float = 5e-5,
    warmup_ratio: float = 0.1,
    max_length: int | None = None,
    eval_queries: int = 20,
    teacher_backend: str = "auto",
    teacher_precision: str = "auto",
    cache_dir: str | Path | None = None,
    seed: int = 42,
    show_progress: bool = True,
    verbose: bool = False,
) -> DistillationResult:
    """
    Train a student cross-encoder to reproduce `teacher`'s scores on your own queries and corpus, and save it.

    Usage example:
    ```python
    from crossencoder_haystack.training.distill import distill

    result = distill("models/my-reranker", "data/scifact", output="models/my-reranker-3l", max_minutes=40)
    print(result.after)  # Agreement(ndcg_at_10=..., spearman=..., queries=20)
    # then: CascadeRanker(student=CrossEncoderRanker(model="models/my-reranker-3l"),
    #                     teacher=CrossEncoderRanker(model="models/my-reranker"), cascade_keep=20)
    ```

    :param teacher: The teacher directory: a cross-encoder or a bi-encoder reranker (`rerank train`'s output).
    :param queries: A BEIR directory (its `split` queries), a pairs/triplets/lists file, a `queries.jsonl` or a
        `.txt` of queries; None distils on pseudo-queries of `corpus` only.
    :param output: Directory to save the student into (with a README.md model card).
    :param corpus: The corpus (`.jsonl`/`.csv`); a BEIR directory brings its own.
    :param split: The BEIR split whose queries are used; keep test queries out of distillation.
    :param layers: Transformer layers the student keeps (2, 3 or 4 of a 6-layer teacher); None with `student`
        keeps all of that base's layers.
    :param student: Another base model to start from instead of the teacher's layers.
    :param pseudo_queries: How many pseudo-queries to draw from the corpus (0: only your queries).
    :param retriever: The first stage: `"hybrid"` (BM25 and the embedding model), `"bm25"` or `"embedding"`.
    :param embedding_model: The first stage's embedding model; None uses the bundled all-MiniLM-L6-v2.
    :param top_n: Candidates per query from each retriever.
    :param loss: `"mse"` (teacher logits) or `"margin_mse"` (margins between two candidates of a query).
    :param max_minutes: Wall-clock budget of the whole run; None: score every pair, train `epochs`.
    :param teacher_share: The share of `max_minutes` the teacher may spend scoring new pairs.
    :param max_steps: Optimizer steps; None trains `epochs` (fewer if the budget runs out).
    :param epochs: Passes over the scored pairs when `max_steps` is None.
    :param batch_size: Rows per step.
    :param learning_rate: Peak learning rate of the student's layers (a new head gets 1e-2).
    :param warmup_ratio: Share of the steps spent warming the learning rate up.
    :param max_length: Tokens per (query, document) pair for the student; None uses the teacher's.
    :param eval_queries: Queries held out to measure the agreement with the teacher (0: none).
    :param teacher_backend: `"auto"` (the fastest faithful one), `"torch"`, `"onnx"` or `"openvino"`.
    :param teacher_precision: The teacher's `precision`: `"auto"` (bf16 on CPUs with AMX / AVX512-BF16, float32
        elsewhere) or `"fp32"` (exact float32 targets, slower on those CPUs).
    :param cache_dir: Where teacher scores (and a teacher export) are kept; None: the user cache directory.
    :param seed: Seeds pseudo-queries, held-out queries, data order and a new head.
    :param show_progress: Show the progress display and the summary table.
    :param verbose: Let transformers, sentence-transformers and datasets print as they do on their own (raw log
        dicts, tqdm bars, info logs) instead of the one progress display.
    :returns: A `DistillationResult`.
    :raises ValueError: If a parameter is out of range.
    """
    _check_arguments(teacher, loss, max_minutes, teacher_share, batch_size, learning_rate, eval_queries, max_steps)
    started = time.monotonic()
    deadlines = _Deadlines.of(started, max_minutes, teacher_share)
    cache_root = Path(cache_dir).expanduser() if cache_dir is not None else _default_cache_dir()
    output_dir = Path(output).expanduser()
    built = build_student(teacher, layers=layers, base=student, max_length=max_length, seed=seed)  # checks layers
    settings = {
        "queries": queries,
        "corpus": corpus,
        "split": split,
        "pseudo_queries": pseudo_queries,
        "retriever": retriever,
        "embedding_model": embedding_model,
        "top_n": top_n,
        "how": {"backend": teacher_backend, "precision": teacher_precision, "export_dir": cache_root / "exports"},
        "eval_queries": eval_queries,
        "seed": seed,
    }
    schedule = _Schedule(max_steps, epochs, batch_size, learning_rate, warmup_ratio, seed, verbose)
    with quiet_libraries(verbose), JobDisplay(show_progress and not verbose) as display:
        outcome = _phases(teacher, built, settings, cache_root, deadlines, loss, schedule, display, output_dir)
    result = _distillation_result(teacher, built, outcome, loss, started, output_dir)
    save_student(built, result, outcome.dataset.source, Path(teacher).expanduser())
    if show_progress:
        print_summary(result)
    return result


@dataclass
class _Outcome:
    """What the phases of a distillation produced."""

    dataset: DistillationSet
    plan: _Plan
    scored: "_TeacherScores"
    held_out: dict[str, dict[str, float]]
    rows: Any
    fit: "_Fit"
    before: Agreement
    after: Agreement


def _phases(
    teacher: str | Path,
    built: Student,
    settings: dict[str, Any],
    cache_root: Path,
    deadlines: "_Deadlines",
    loss: str,
    schedule: "_Schedule",
    display: JobDisplay,
    output_dir: Path,
) -> _Outcome:
    """First stage, teacher scores, agreement before, training, agreement after: each a line of the display."""
    seed = settings["seed"]
    dataset = load_distillation_set(
        settings["queries"],
        settings["corpus"],
        split=settings["split"],
        pseudo_queries=settings["pseudo_queries"],
        seed=seed,
    )
    with display.phase("first stage: BM25 and embedding candidates"):
        retrieve_first_stage(
            dataset,
            retriever=settings["retriever"],
            embedding_model=settings["embedding_model"],
            top_n=settings["top_n"],
            cache_dir=cache_root,
        )
    plan = _plan(dataset, settings["eval_queries"], seed)
    scored = _teacher_phase(teacher, settings["how"], cache_root, dataset, plan, deadlines.scoring, display)
    held_out = {query_id: scored.scores[query_id] for query_id in plan.held_out if scored.scores.get(query_id)}
    probe_started = time.monotonic()
    with display.phase("agreement with the teacher, before training"):
        before = teacher_agreement(held_out, _student_scores(built.model, dataset, held_out))
    reserve = 1.5 * (time.monotonic() - probe_started) + 10  # the agreement after training, and saving
    rows = _rows(dataset, scored.scores, plan.train, loss, seed)
    fit = _fit(built, rows, loss, schedule, deadlines.training(reserve), display, output_dir)
    with display.phase("agreement with the teacher, after training"):
        after = teacher_agreement(held_out, _student_scores(built.model, dataset, held_out))
    return _Outcome(dataset, plan, scored, held_out, rows, fit, before, after)


def _distillation_result(
    teacher: str | Path, built: Student, outcome: _Outcome, loss: str, started: float, output_dir: Path
) -> DistillationResult:
    dataset, scored = outcome.dataset, outcome.scored
    return DistillationResult(
        output_dir=output_dir,
        teacher=str(Path(teacher).expanduser().resolve()),
        teacher_backend=scored.backend,
        student=_describe_student(built),
        loss="MSELoss" if loss == "mse" else "MarginMSELoss",
        queries=len(dataset.queries),
        pseudo_queries=len(dataset.pseudo_queries),
        held_out_queries=len(outcome.held_out),
        pairs=dataset.pairs(outcome.plan.held_out + outcome.plan.train),
        pairs_scored=scored.scoring.scored,
        pairs_reused=scored.scoring.reused,
        training_pairs=len(outcome.rows),
        steps=outcome.fit.steps,
        minutes=round((time.monotonic() - started) / 60, 2),
        before=outcome.before,
        after=outcome.after,
        loss_history=outcome.fit.history,
        interrupted=outcome.fit.interrupted,
        same_tokenizer=built.same_tokenizer,
        teacher_scores_file=str(scored.cache_path),
    )


def _check_arguments(
    teacher: Any,
    loss: str,
    max_minutes: float | None,
    teacher_share: float,
    batch_size: int,
    learning_rate: float,
    eval_queries: int,
    max_steps: int | None,
) -> None:
    if not Path(teacher).expanduser().is_dir():
        msg = f"teacher {str(teacher)!r} is not a model directory; pass the directory of a reranker (rerank train)."
        raise FileNotFoundError(msg)
    if loss not in LOSSES:
        msg = f"loss must be one of {', '.join(LOSSES)}, got {loss!r}."
        raise ValueError(msg)
    for name, value in (("max_minutes", max_minutes), ("max_steps", max_steps)):
        if value is not None and (isinstance(value, bool) or not isinstance(value, int | float) or value <= 0):
            msg = f"{name} must be a number > 0 or None (no limit), got {value!r}."
            raise ValueError(msg)
    if not 0 < teacher_share < 1:
        msg = f"teacher_share must be between 0 and 1 (e.g. 0.5), got {teacher_share!r}."
        raise ValueError(msg)
    for name, value in (("batch_size", batch_size), ("learning_rate", learning_rate)):
        if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
            msg = f"{name} must be a number > 0, got {value!r}."
            raise ValueError(msg)
    if isinstance(eval_queries, bool) or not isinstance(eval_queries, int) or eval_queries < 0:
        msg = f"eval_queries must be an int >= 0 (0: no agreement measured), got {eval_queries!r}."
        raise ValueError(msg)


def _default_cache_dir() -> Path:
    from platformdirs import user_cache_dir

    return Path(user_cache_dir("crossencoder-haystack")) / "distill"


@dataclass(frozen=True)
class _Deadlines:
    """`time.monotonic()` values: when the teacher stops starting new calls, and when the whole run must end."""

    scoring: float | None
    end: float | None

    @classmethod
    def of(cls, started: float, max_minutes: float | None, teacher_share: float) -> "_Deadlines":
        if max_minutes is None:
            return cls(None, None)
        return cls(started + max_minutes * 60 * teacher_share, started + max_minutes * 60)

    def training(self, reserve: float) -> float | None:
        return None if self.end is None else self.end - reserve


def _plan(dataset: DistillationSet, eval_queries: int, seed: int) -> _Plan:
    """
    Held-out queries (`eval_queries`, at most a fifth of the pool they come from: the given queries when there
    are at least twice as many, else all) and the training order: the given queries, then the pseudo-queries, each
    shuffled; queries without candidates are left out.
    """
    rng = random.Random(seed)
    given = [query_id for query_id in dataset.queries if dataset.candidates.get(query_id)]
    pseudo = [query_id for query_id in dataset.pseudo_queries if dataset.candidates.get(query_id)]
    rng.shuffle(given)
    rng.shuffle(pseudo)
    pool = given if len(given) >= 2 * eval_queries else given + pseudo
    count = min(eval_queries, max(1, len(pool) // 5)) if len(pool) >= 2 else 0  # at most a fifth: scored first
    held_out = set(rng.sample(pool, count)) if count else set()
    return _Plan(
        held_out=[query_id for query_id in given + pseudo if query_id in held_out],
        train=[query_id for query_id in given + pseudo if query_id not in held_out],
    )


@dataclass
class _TeacherScores:
    scores: dict[str, dict[str, float]]  # query id -> {document id: teacher logit}, in candidate order
    scoring: Any  # teacher_scores.TeacherScoring
    backend: str
    cache_path: Path


def _teacher_phase(
    teacher: str | Path,
    how: dict[str, Any],
    cache_root: Path,
    dataset: DistillationSet,
    plan: _Plan,
    deadline: float | None,
    display: JobDisplay,
) -> _TeacherScores:
    """Load the teacher on its fastest faithful backend and score the missing pairs, held-out queries first."""
    order = plan.held_out + plan.train
    queries = dataset.all_queries()
    cache = TeacherScoreCache(teacher_cache_path(cache_root, teacher, None, how["precision"]))
    task = display.add("teacher: scoring pairs", dataset.pairs(order))
    if all(cache.get(queries[q], dataset.corpus[d]) is not None for q in order for d in dataset.candidates[q]):
        display.advance(task, dataset.pairs(order))  # everything cached: the teacher need not even load
        scoring, description = TeacherScoring(reused=dataset.pairs(order)), "its score cache (not loaded)"
    else:
        with display.phase("teacher: loading"):
            loaded = load_teacher(teacher, **how)
        scoring = score_pairs(
            loaded.ranker, dataset, order, cache, deadline=deadline, on_pairs=lambda n: display.advance(task, n)
        )
        description = loaded.description
    scores: dict[str, dict[str, float]] = {}
    for query_id in order:
        found = {
            doc_id: cache.get(queries[query_id], dataset.corpus[doc_id]) for doc_id in dataset.candidates[query_id]
        }
        scores[query_id] = {doc_id: value for doc_id, value in found.items() if value is not None}
    return _TeacherScores(scores, scoring, description, cache.path)


def _student_scores(model: Any, dataset: DistillationSet, teacher: dict[str, dict[str, float]]) -> dict:
    """The student's raw scores of the pairs the teacher scored (query id -> {document id: logit})."""
    import torch

    from crossencoder_haystack.training.precision import fast_inference

    queries = dataset.all_queries()
    pairs = [(queries[query_id], dataset.corpus[doc_id]) for query_id, docs in teacher.items() for doc_id in docs]
    if not pairs:
        return {}
    with fast_inference():
        logits = model.predict(pairs, batch_size=64, activation_fn=torch.nn.Identity(), show_progress_bar=False)
    values = iter(float(value) for value in logits)
    return {query_id: {doc_id: next(values) for doc_id in docs} for query_id, docs in teacher.items()}


def _rows(
    dataset: DistillationSet, scores: dict[str, dict[str, float]], query_ids: list[str], loss: str, seed: int
) -> Any:
    """
    The training rows as a `datasets.Dataset`: `mse` -> (query, document, teacher logit); `margin_mse` -> (query,
    document, another candidate of the query drawn at random, the teacher's margin between the two).
    """
    from datasets import Dataset

    queries = dataset.all_queries()
    rng = random.Random(seed)
    columns: dict[str, list[Any]] = {"query": [], "document": [], "label": []}
    if loss == "margin_mse":
        columns = {"query": [], "document": [], "other": [], "label": []}
    for query_id in query_ids:
        scored = scores.get(query_id, {})
        doc_ids = list(scored)
        for doc_id in doc_ids:
            columns["query"].append(queries[query_id])
            columns["document"].append(dataset.corpus[doc_id])
            if loss == "mse":
                columns["label"].append(scored[doc_id])
                continue
            other = rng.choice([candidate for candidate in doc_ids if candidate != doc_id] or [doc_id])
            columns["other"].append(dataset.corpus[other])
            columns["label"].append(scored[doc_id] - scored[other])
    return Dataset.from_dict(columns)


@dataclass(frozen=True)
class _Schedule:
    max_steps: int | None
    epochs: float
    batch_size: int
    learning_rate: float
    warmup_ratio: float
    seed: int
    verbose: bool = False


@dataclass
class _Fit:
    steps: int = 0
    history: list[tuple[int, float]] = field(default_factory=list)
    interrupted: bool = False


def _fit(
    student: Student,
    rows: Any,
    loss_name: str,
    schedule: _Schedule,
    deadline: float | None,
    display: JobDisplay,
    output_dir: Path,
) -> _Fit:
    """Train the student on the rows with sentence-transformers' CrossEncoderTrainer, within the deadline."""
    import torch
    import transformers
    from sentence_transformers.cross_encoder import CrossEncoderTrainer, CrossEncoderTrainingArguments, losses

    from crossencoder_haystack.training.callbacks import schedule_arguments, time_budget
    from crossencoder_haystack.training.precision import training_attention, training_uses_bf16

    if len(rows) == 0:
        return _Fit()
    transformers.set_seed(schedule.seed)
    model = student.model
    without_dropout(model)
    loss = losses.MSELoss(model) if loss_name == "mse" else losses.MarginMSELoss(model)
    steps = _planned_steps(model, loss, rows, schedule, deadline)
    if steps == 0:
        return _Fit()
    checkpoints = output_dir / "checkpoints"
    arguments = schedule_arguments(
        checkpoints,
        schedule.epochs,
        steps,
        schedule.batch_size,
        schedule.learning_rate,
        schedule.warmup_ratio,
        schedule.seed,
    )
    callbacks = [training_progress(display, "student: training steps")]
    if deadline is not None:
        callbacks.append(time_budget(max(0.01, (deadline - time.monotonic()) / 60)))
    trainer = CrossEncoderTrainer(
        model=model,
        args=CrossEncoderTrainingArguments(
            **arguments,
            bf16=training_uses_bf16(),  # autocast only: the weights, and so the saved student, stay fp32
            use_cpu=not torch.cuda.is_available(),
            eval_strategy="no",
            save_strategy="no",
            logging_steps=10,
            report_to="none",
            dataloader_num_workers=0,
            disable_tqdm=True,  # the job's display shows the steps (and --verbose the raw logs)
            push_to_hub=False,
        ),
        train_dataset=rows,
        loss=loss,
        callbacks=callbacks,
        # The library annotates `optimizers` without None, yet None (its default) lets it build the scheduler.
        optimizers=cast(
            "tuple[torch.optim.Optimizer, torch.optim.lr_scheduler.LambdaLR]",
            (_optimizer(student, schedule.learning_rate), None),
        ),
    )
    quiet_trainer(trainer, schedule.verbose)
    fit = _Fit()
    try:
        with training_attention():
            trainer.train()
    except KeyboardInterrupt:
        fit.interrupted = True
    shutil.rmtree(checkpoints, ignore_errors=True)
    fit.steps = trainer.state.global_step
    fit.history = [(int(entry["step"]), entry["loss"]) for entry in trainer.state.log_history if "loss" in entry]
    return fit


def _planned_steps(model: Any, loss: Any, rows: Any, schedule: _Schedule, deadline: float | None) -> int:
    """
    The optimizer steps to plan the learning-rate schedule for: `max_steps`, else `epochs` over the rows; with a
    deadline, at most as many as fit before it at the speed of a timed probe step (so the schedule ends on time).
    """
    planned = schedule.max_steps or max(1, math.ceil(len(rows) / schedule.batch_size * schedule.epochs))
    if deadline is None:
        return planned
    seconds = _probe_step_seconds(model, loss, rows, schedule.batch_size)
    available = deadline - time.monotonic()
    return max(0, min(planned, int(available / (seconds * _PROBE_MARGIN))))


def _probe_step_seconds(model: Any, loss: Any, rows: Any, batch_size: int) -> float:
    """Seconds of one forward and backward pass on a batch (the second of two: the first warms up)."""
    import torch

    from crossencoder_haystack.training.precision import training_attention, training_uses_bf16

    batch = rows[: min(batch_size, len(rows))]
    inputs = [batch[column] for column in rows.column_names if column != "label"]
    labels = torch.tensor(batch["label"], dtype=torch.float32)
    model.train()
    seconds = 0.0
    for _ in range(2):
        started = time.monotonic()
        with training_attention():
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=training_uses_bf16()):
                value = loss(inputs, labels)
            value.backward()
        seconds = time.monotonic() - started
    model.zero_grad(set_to_none=True)
    return max(seconds, 1e-3)


def without_dropout(model: Any) -> None:
    """
    Turn off every dropout of `model` (its modules; the saved config keeps its values for later fine-tuning).

    A student regressing on the teacher's scores sees each pair at most once in a CPU budget (under one epoch), so
    dropout only adds noise to the targets it must match, and on a CPU it cost ~25% of a training step.
    """
    import torch

    for module in model.modules():
        if isinstance(module, torch.nn.Dropout):
            module.p = 0.0


def _optimizer(student: Student, learning_rate: float) -> Any:
    """AdamW; a head the student did not inherit (cosine or dense on a new base) learns at 1e-2."""
    import torch

    from crossencoder_haystack.training.base_model import head_parameter_names

    new_head = head_parameter_names(student.model) if student.head in ("cosine", "dense") else set()
    named = list(student.model.named_parameters())
    groups = [{"params": [p for name, p in named if name not in new_head], "lr": learning_rate}]
    if new_head:
        groups.append({"params": [p for name, p in named if name in new_head], "lr": _NEW_HEAD_LEARNING_RATE})
    return torch.optim.AdamW(groups, lr=learning_rate, weight_decay=0.0)


def _describe_student(student: Student) -> str:
    origin = "the teacher" if student.kind == "teacher layers" else student.source
    if student.layers is None:
        return f"all {student.source_layers} layers of {origin}, head: {student.head}"
    kept = ", ".join(str(index + 1) for index in student.layers)
    return f"layers {kept} of the {student.source_layers} of {origin}, head: {student.head}"


def save_student(student: Student, result: DistillationResult, data_source: str, teacher: Path) -> None:
    """Save the student with its model card, its distillation record and the teacher's fusion defaults."""
    from crossencoder_haystack.training.distill_card import write_distillation_record, write_student_card
    from haystack_integrations.components.rankers.crossencoder.fusion import (
        read_fusion_defaults,
        write_fusion_defaults,
    )

    result.output_dir.mkdir(parents=True, exist_ok=True)
    student.model.save(str(result.output_dir))
    declared = read_fusion_defaults(teacher)
    if declared.get("first_stage_weight") is not None:
        write_fusion_defaults(result.output_dir, declared["first_stage_weight"], declared.get("fusion", "minmax"))
    write_distillation_record(result, student, data_source)
    write_student_card(result, student, data_source)


def print_summary(result: DistillationResult) -> None:
    """Print what was distilled and how well the student agrees with the teacher."""
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"Distillation ({result.loss}, {result.steps} steps, {result.minutes:.1f} min)")
    table.add_column("agreement with the teacher")
    table.add_column("before", justify="right")
    table.add_column("after", justify="right")
    for name, before, after in (
        ("nDCG@10 vs the teacher's ranking", result.before.ndcg_at_10, result.after.ndcg_at_10),
        ("Spearman of the scores", result.before.spearman, result.after.spearman),
    ):
        table.add_row(name, _number(before), _number(after))
    console = Console()
    console.print(table)
    console.print(
        f"Student ({result.student}) saved to {result.output_dir}; {result.training_pairs} training pairs from "
        f"{result.queries} queries and {result.pseudo_queries} pseudo-queries; teacher scored {result.pairs_scored} "
        f"new pairs, reused {result.pairs_reused}" + (" (interrupted)" if result.interrupted else "")
    )


def _number(value: float | None) -> str:
    return "-" if value is None else f"{value:.4f}"

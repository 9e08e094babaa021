"""Fine-tuning a reranker that starts as the bi-encoder it was built from, and stays anchored to it.

The default recipe for a sentence-transformers bi-encoder base (such as the bundled all-MiniLM-L6-v2):

1. **Start exactly at the bi-encoder.** The reranker scores a (query, document) pair by the cosine of their
   separately computed embeddings, so the untrained reranker *is* the bi-encoder (same scores) and fine-tuning can
   only start from its quality. A joint forward pass with a new head (the earlier recipe) starts below it and has
   to recover with little data.
2. **Train it contrastively**: `MultipleNegativesRankingLoss` on (query, positive, hard negative) rows, in-batch
   negatives for free, batches without duplicate queries, bf16 autocast where the CPU has it. A base with a large
   vocabulary (more than `LARGE_VOCABULARY` tokens: multilingual-e5-small's 250K-token matrix holds 96M of its
   118M weights) keeps its token embeddings frozen: a step costs about a third less and the few thousand rows a
   user has would only move the rows of the tokens they contain.
3. **Stay anchored** (weight-space ensembling, WiSE-FT): the saved weights are `(1 - t) * start + t * tuned`.
   `t` is chosen on the held-out queries (and on `check_data`, if given: never more than `check_tolerance`
   below the starting model there). Interpolating towards the start keeps what the bi-encoder learned from a
   billion pairs while most of the in-domain gain survives.

A base that declares texts to put before queries and documents (multilingual-e5: `query: ` / `passage: `, in its
`crossencoder_haystack.json`) is trained, evaluated and saved with them: they become the model's `query` and
`document` prompts, the loss sees prefixed anchors and passages, and the saved directory declares the same prefixes,
so the untrained reranker ranks exactly as the base does in `CrossEncoderRanker`.

The saved directory is a plain `SentenceTransformer` (no code of ours, loads with `trust_remote_code=False`) plus
`crossencoder_haystack.json`, which tells `CrossEncoderRanker` how to use it.
"""

import copy
import math
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from crossencoder_haystack.training.data import TrainingData

DEFAULT_ANCHOR_WEIGHTS: tuple[float, ...] = (0.0, 0.5, 0.75, 1.0)
CHECK_TOLERANCE = 0.01
LARGE_VOCABULARY = 100_000


@dataclass(frozen=True)
class BiEncoderRecipe:
    """The defaults that measured best for a bi-encoder base (see benchmarks/results/generalization.md)."""

    learning_rate: float = 2e-5
    loss_scale: float = 20.0
    default_max_steps: int = 200


RECIPE = BiEncoderRecipe()


@dataclass
class AnchorChoice:
    """Which interpolation weight was kept, and the metrics of every candidate weight."""

    weight: float
    in_domain: dict[float, float] = field(default_factory=dict)
    check: dict[float, float] = field(default_factory=dict)


def triplet_rows(data: TrainingData, seed: int) -> list[dict[str, str]]:
    """
    (anchor, positive, negative) rows from pairs, triplets or lists: one row per positive and hard negative.

    Data without any negative gives (anchor, positive) rows (the loss's in-batch negatives still apply). When only
    some queries lack negatives (mining's false-negative guard can leave a query none), each of those borrows one
    negative, drawn (seeded) from the other queries' negatives and never one of its own positives, so that every
    row keeps the hard-negative column.
    """
    groups = _positives_and_negatives(data)
    rng = random.Random(seed)
    pool = list(dict.fromkeys(negative for _, negatives in groups.values() for negative in negatives))
    rows: list[dict[str, str]] = []
    for query, (positives, negatives) in groups.items():
        if pool and not negatives:
            negatives = _borrowed_negative(pool, set(positives), rng)
            if not negatives:  # nothing to borrow: left out rather than giving rows of another shape
                continue
        for positive in positives:
            if negatives:
                rows.extend({"anchor": query, "positive": positive, "negative": neg} for neg in negatives)
            else:
                rows.append({"anchor": query, "positive": positive})
    rng.shuffle(rows)
    return rows


def _borrowed_negative(pool: list[str], positives: set[str], rng: random.Random) -> list[str]:
    for _ in range(20):
        candidate = rng.choice(pool)
        if candidate not in positives:
            return [candidate]
    others = [text for text in pool if text not in positives]
    return [rng.choice(others)] if others else []


def _positives_and_negatives(data: TrainingData) -> dict[str, tuple[list[str], list[str]]]:
    groups: dict[str, tuple[list[str], list[str]]] = {}
    for row in data.rows:
        positives, negatives = groups.setdefault(row["query"], ([], []))
        if data.shape == "pairs":
            (positives if row["label"] > 0 else negatives).append(row["document"])
        elif data.shape == "triplets":
            positives.append(row["positive"])
            negatives.extend(row.get("negatives") or [])
        else:
            for document, label in zip(row["documents"], row["labels"], strict=True):
                (positives if label > 0 else negatives).append(document)
    return {
        query: (list(dict.fromkeys(pos)), [n for n in dict.fromkeys(neg) if n not in set(pos)])
        for query, (pos, neg) in groups.items()
        if pos
    }


def evaluate_reranking(model: Any, samples: Sequence[dict[str, Any]]) -> dict[str, float]:
    """nDCG@10, MRR@10 and MAP of `model` reranking each sample's own documents."""
    from sentence_transformers.sentence_transformer.evaluation import RerankingEvaluator

    from crossencoder_haystack.training.precision import fast_inference

    evaluator = RerankingEvaluator(list(samples), at_k=10, name="rerank", batch_size=64, show_progress_bar=False)
    with fast_inference():
        scores = evaluator(model)
    return {name: round(float(scores[f"rerank_{name}"]), 4) for name in ("ndcg@10", "mrr@10", "map")}


def interpolate(start: dict[str, Any], tuned: dict[str, Any], weight: float) -> dict[str, Any]:
    """Weights `(1 - weight) * start + weight * tuned`, tensor by tensor (non-float tensors from `tuned`)."""
    return {
        name: (start[name] + weight * (value - start[name])) if value.is_floating_point() else value
        for name, value in tuned.items()
    }


def choose_anchor(
    model: Any,
    start_state: dict[str, Any],
    tuned_state: dict[str, Any],
    in_domain: Callable[[Any], float] | None,
    check: Callable[[Any], float] | None,
    weights: Sequence[float] = DEFAULT_ANCHOR_WEIGHTS,
    tolerance: float = CHECK_TOLERANCE,
    on_weight: Callable[[float], None] | None = None,
) -> AnchorChoice:
    """
    Pick the interpolation weight: best in domain, never more than `tolerance` below the start on the check data.

    Without in-domain data the largest weight that passes the check is kept (the fully tuned model without either).
    Ties go to the smaller weight (closer to the start). Leaves `model` with the chosen weights loaded.
    `on_weight` is told each weight before it is evaluated (for callers that cache evaluations by weight).
    """
    choice = AnchorChoice(weight=max(weights))
    best: tuple[float, float] | None = None
    floor = None
    for weight in sorted(weights):
        model.load_state_dict(interpolate(start_state, tuned_state, weight))
        if on_weight is not None:
            on_weight(weight)
        if check is not None:
            choice.check[weight] = check(model)
            floor = choice.check[sorted(weights)[0]] - tolerance if floor is None else floor
            if choice.check[weight] < floor:
                continue
        score = in_domain(model) if in_domain is not None else weight
        if in_domain is not None:
            choice.in_domain[weight] = score
        if best is None or score > best[0] + 1e-9:
            best = (score, weight)
    choice.weight = best[1] if best is not None else min(weights)
    model.load_state_dict(interpolate(start_state, tuned_state, choice.weight))
    return choice


def fit(
    model: Any,
    rows: list[dict[str, str]],
    *,
    output_dir: Path,
    max_steps: int | None,
    epochs: float,
    batch_size: int,
    learning_rate: float,
    warmup_ratio: float,
    seed: int,
    max_minutes: float | None,
    show_progress: bool,
    callbacks: list[Any],
    verbose: bool = False,
) -> tuple[int, float, list[tuple[int, float]], bool]:
    """
    Train `model` in place with MNRL; returns (steps, minutes, loss history, interrupted).

    The trainer prints nothing of its own (a `progress.training_progress` callback shows the steps) unless
    `verbose`: then its raw log dicts, and its tqdm bar when `show_progress`, are back.
    """
    import torch
    from datasets import Dataset
    from sentence_transformers import SentenceTransformerTrainer, SentenceTransformerTrainingArguments
    from sentence_transformers.base.sampler import BatchSamplers
    from sentence_transformers.sentence_transformer.losses import MultipleNegativesRankingLoss

    from crossencoder_haystack.training.callbacks import schedule_arguments, time_budget
    from crossencoder_haystack.training.precision import training_uses_bf16
    from crossencoder_haystack.training.progress import quiet_trainer, timed_training

    dataset = Dataset.from_list(rows)
    prompts = column_prompts(model, dataset.column_names)
    steps_per_epoch = math.ceil(len(dataset) / batch_size)
    total_steps = max_steps or max(1, math.ceil(steps_per_epoch * epochs))
    args = SentenceTransformerTrainingArguments(
        **schedule_arguments(
            output_dir / "checkpoints", epochs, max_steps, batch_size, learning_rate, warmup_ratio, seed
        ),
        bf16=training_uses_bf16(),
        eval_strategy="no",
        save_strategy="no",
        logging_steps=max(1, min(10, total_steps // 10 or 1)),
        report_to="none",
        dataloader_num_workers=0,
        disable_tqdm=not (verbose and show_progress),
        use_cpu=not torch.cuda.is_available(),
        batch_sampler=BatchSamplers.NO_DUPLICATES,
        push_to_hub=False,
        prompts=prompts or None,
    )
    trainer_callbacks = list(callbacks)
    if has_large_vocabulary(model):
        trainer_callbacks.append(frozen_token_embeddings())
    if max_minutes is not None:
        trainer_callbacks.append(time_budget(max_minutes))
    trainer = SentenceTransformerTrainer(
        model=model,
        args=args,
        train_dataset=dataset,
        loss=MultipleNegativesRankingLoss(model, scale=RECIPE.loss_scale),
        callbacks=trainer_callbacks,
    )
    quiet_trainer(trainer, verbose)
    minutes, interrupted = timed_training(trainer)
    history = [(int(entry["step"]), entry["loss"]) for entry in trainer.state.log_history if "loss" in entry]
    return trainer.state.global_step, minutes, history, interrupted


def has_large_vocabulary(model: Any) -> bool:
    """Whether `model`'s tokenizer has more than `LARGE_VOCABULARY` tokens (its token embeddings stay frozen)."""
    tokenizer = getattr(model, "tokenizer", None)
    return tokenizer is not None and len(tokenizer) > LARGE_VOCABULARY


def frozen_token_embeddings() -> Any:
    """A `transformers.TrainerCallback` that stops training the token embeddings when training begins."""
    from transformers import PreTrainedModel, TrainerCallback

    class FrozenTokenEmbeddings(TrainerCallback):
        def on_train_begin(self, args: Any, state: Any, control: Any, model: Any = None, **kwargs: Any) -> None:
            # The optimizer exists already; it skips weights that get no gradient.
            for module in model.modules():
                if isinstance(module, PreTrainedModel):
                    module.get_input_embeddings().weight.requires_grad_(False)

    return FrozenTokenEmbeddings()


def column_prompts(model: Any, columns: Sequence[str]) -> dict[str, str]:
    """
    The prompt of each training column: the model's `query` prompt for the anchor, its `document` prompt for the
    positive and negative columns; columns without a (non-empty) prompt are left out.
    """
    names = {"anchor": "query", "positive": "document", "negative": "document"}
    prompts = getattr(model, "prompts", None) or {}
    return {column: prompts[names[column]] for column in columns if prompts.get(names.get(column, ""))}


def load_base(path: Path, max_length: int) -> Any:
    """
    The bi-encoder to start from, on the CPU, truncating at `max_length` tokens while training.

    Its `query` and `document` prompts are the prefixes the directory declares to `CrossEncoderRanker`
    (`base_model.declared_prefixes`), so that `encode_query` / `encode_document`, training and the saved model all
    put the same texts before queries and documents as the ranker does.
    """
    from crossencoder_haystack.training.base_model import declared_prefixes
    from haystack_integrations.components.rankers.crossencoder._engine.bi_encoder_scoring import load_bi_encoder

    model = load_bi_encoder(path, device="cpu", max_length=None, trust_remote_code=False)
    model.max_seq_length = min(int(model.max_seq_length), max_length)
    model.prompts = {**model.prompts, **declared_prefixes(path)}
    return model


def snapshot(model: Any) -> dict[str, Any]:
    """A detached copy of the model's weights."""
    return copy.deepcopy({name: value.detach().clone() for name, value in model.state_dict().items()})


def base_max_length(path: Path) -> int:
    """The token limit the bi-encoder was configured with (sentence_bert_config.json), 256 if it names none."""
    import json

    try:
        config = json.loads((path / "sentence_bert_config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return 256
    value = config.get("max_seq_length")
    return int(value) if isinstance(value, int) and value > 0 else 256


def write_reranker_config(output_dir: Path, choice: AnchorChoice) -> None:
    """
    Record in `crossencoder_haystack.json` that this directory is a bi-encoder reranker, how it was anchored, and
    the query and document prefixes it was trained with (the `query` / `document` prompts `model.save` wrote into
    `config_sentence_transformers.json`; none for a model without prompts).
    """
    import json

    path = output_dir / "crossencoder_haystack.json"
    try:
        config = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        config = {}
    config = config if isinstance(config, dict) else {}
    config.update({"scorer": "bi-encoder", "activation": "identity", "anchor_weight": choice.weight})
    for name, prefix in _saved_prompts(output_dir).items():
        config.pop(f"{name}_prefix", None)
        if prefix:
            config[f"{name}_prefix"] = prefix
    path.write_text(json.dumps(config, indent=2) + "\n", encoding="utf-8")


def _saved_prompts(output_dir: Path) -> dict[str, str]:
    import json

    try:
        prompts = json.loads((output_dir / "config_sentence_transformers.json").read_text(encoding="utf-8"))["prompts"]
    except (OSError, ValueError, KeyError, TypeError):
        prompts = {}
    prompts = prompts if isinstance(prompts, dict) else {}
    return {name: prompt if isinstance(prompt := prompts.get(name), str) else "" for name in ("query", "document")}


def encode_normalized(model: Any, texts: list[str], prompt_name: str | None = None) -> Any:
    """
    Unit-length embeddings of `texts` (numpy), in bf16 autocast where the CPU multiplies bf16 natively.

    :param prompt_name: `"query"` or `"document"` puts the model's prompt of that name (its declared prefix) before
        each text, as `CrossEncoderRanker` does; None encodes the texts as they are.
    """
    from crossencoder_haystack.training.precision import fast_inference

    prompt = (getattr(model, "prompts", None) or {}).get(prompt_name, "") if prompt_name is not None else ""
    with fast_inference():
        return model.encode(
            texts, prompt=prompt or None, batch_size=32, normalize_embeddings=True, convert_to_numpy=True
        )

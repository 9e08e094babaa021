"""The README.md model card of a fine-tuned reranker: data, loss, hyper-parameters, results and the activation."""

import json
from pathlib import Path
from typing import Any

from crossencoder_haystack.training.data import TrainingData

_ACTIVATION_WHY = {
    "sigmoid": "the loss treats logits as log-odds of relevance, so sigmoid gives a 0..1 relevance probability",
    "identity": "a ranking loss only fixes the order of the logits, so they are used as they are",
}


def write_model_card(
    output_dir: Path,
    result: Any,
    train_data: TrainingData,
    eval_data: TrainingData | None,
    hyper_parameters: dict[str, Any],
) -> Path:
    """Write `output_dir/README.md` describing how the model was trained and how to use it."""
    positives, negatives = train_data.label_counts()
    lines = [
        "---",
        "library_name: sentence-transformers",
        "pipeline_tag: text-ranking",
        "tags: [cross-encoder, reranker, haystack, crossencoder-haystack]",
        "---",
        "",
        "# Reranker fine-tuned with `rerank train`",
        "",
        "## Use it",
        "",
        "```python",
        "from haystack_integrations.components.rankers.crossencoder import CrossEncoderRanker",
        "",
        "# model: the path of this directory (the card names none, so it stays true wherever the model is moved)",
        f'ranker = CrossEncoderRanker(model="path/to/this/directory")  # applies its activation: {result.activation}',
        "ranker.warm_up()",
        'ranker.run(query="...", documents=documents)',
        "```",
        "",
        *_activation_note(result.activation, hyper_parameters.get("head")),
        *_head_note(hyper_parameters.get("head")),
        "",
        "## Training data",
        "",
        f"- path: `{train_data.source}`",
        f"- shape: {train_data.shape}; rows: {len(train_data)}; queries: {len(train_data.queries)}",
        f"- labelled documents: {positives} positive, {negatives} negative",
    ]
    if eval_data is not None:
        lines.append(f"- evaluation: `{eval_data.source}` ({len(eval_data.queries)} queries)")
    lines += [
        "",
        "## Training",
        "",
        f"- loss: `{result.loss}`",
        f"- steps: {result.steps} in {result.minutes:.1f} min"
        + (" (interrupted; best checkpoint kept)" if result.interrupted else ""),
        f"- best checkpoint: step {result.best_checkpoint_step}" if result.best_checkpoint_step else "- last weights",
    ]
    if result.loss_history:
        lines.append(f"- training loss: {result.loss_history[0][1]:.4f} → {result.loss_history[-1][1]:.4f}")
    lines += ["", "Hyper-parameters:", "", "```json", json.dumps(hyper_parameters, indent=2, default=str), "```"]
    if result.before or result.after:
        lines += [
            "",
            "## Evaluation (reranking the evaluation set)",
            "",
            "| metric | before | after |",
            "|---|---|---|",
        ]
        for metric in sorted(set(result.before) | set(result.after)):
            before, after = result.before.get(metric), result.after.get(metric)
            lines.append(f"| {metric} | {_number(before)} | {_number(after)} |")
    lines += _anchor_lines(result)
    path = output_dir / "README.md"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def _activation_note(activation: str, head: str | None) -> list[str]:
    if head == "bi-encoder":
        return [
            "Scores are the cosine of the query's and the document's embeddings (-1..1), used as they are "
            "(`identity`); `crossencoder_haystack.json` tells `CrossEncoderRanker` so."
        ]
    return [
        f"Activation: **{activation}** ({_ACTIVATION_WHY[activation]}). It is saved as `activation_fn` "
        "in `config_sentence_transformers.json`, so `CrossEncoder(path).predict` and `CrossEncoderRanker` apply it."
    ]


def _anchor_lines(result: Any) -> list[str]:
    """The anchoring to the start (bi-encoder recipe): nDCG@10 per interpolation weight, and the fusion weight."""
    anchor = getattr(result, "anchor", None)
    lines: list[str] = []
    if anchor is not None:
        check = f" and on the check data ({result.check_name})" if anchor.check else ""
        lines += [
            "",
            "## Anchoring to the starting model",
            "",
            f"Saved weights: `(1 - t) * start + t * tuned` with **t = {anchor.weight}** (0 is the starting model "
            f"itself), chosen by nDCG@10 on the held-out queries{check}; on the check data no weight more than one "
            "point below the start is kept.",
            "",
            "| t | held-out nDCG@10 | check nDCG@10 |",
            "|---|---|---|",
        ]
        for weight in sorted(set(anchor.in_domain) | set(anchor.check)):
            lines.append(
                f"| {weight} | {_number(anchor.in_domain.get(weight))} | {_number(anchor.check.get(weight))} |"
            )
    fusion = getattr(result, "fusion", None)
    if fusion is not None:
        lines += [
            "",
            "## Fusion with the first stage",
            "",
            f"`first_stage_weight` **{fusion.weight}** (min-max), tuned on {fusion.queries} held-out training "
            f"queries against the {fusion.first_stage} candidates `rerank mine` saved; `CrossEncoderRanker` uses it "
            "by default (pass `first_stage_weight=0` for the model's own order).",
            "",
            "| first_stage_weight | held-out nDCG@10 |",
            "|---|---|",
            *(f"| {weight} | {value:.4f} |" for weight, value in sorted(fusion.per_weight.items())),
        ]
    return lines


def _head_note(head: str | None) -> list[str]:
    if head == "bi-encoder":
        return [
            "",
            "Head: none. This is a plain sentence-transformers `SentenceTransformer` (query and document encoded "
            "separately); it loads without `trust_remote_code` in `CrossEncoderRanker`, sentence-transformers and "
            "any embedding tool.",
        ]
    if head != "cosine":
        return []
    return [
        "",
        "Head: `SegmentCosineScore` from `haystack_integrations.components.rankers.crossencoder.score_heads` (the "
        "cosine of the query's and the document's mean-pooled token embeddings, scaled). `CrossEncoderRanker` loads "
        "it as is; plain sentence-transformers needs the package installed and "
        "`CrossEncoder(path, trust_remote_code=True)`.",
    ]


def _number(value: float | None) -> str:
    return "-" if value is None else f"{value:.4f}"

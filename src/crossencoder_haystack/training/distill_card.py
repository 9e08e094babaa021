"""What a distilled student says about itself: its README.md model card and `crossencoder_distillation.json`.

The card names the teacher, the data the student saw and how closely it agrees with the teacher (nDCG@10 of its
ranking against the teacher's, Spearman of the scores, on held-out queries, before and after training). The JSON
record holds the same for tools: `rerank evaluate --cascade-keep` reads the teacher's directory from it.
"""

import json
from pathlib import Path
from typing import Any

from haystack_integrations.components.rankers.crossencoder._engine.json_files import read_json_object

DISTILLATION_FILE = "crossencoder_distillation.json"


def write_distillation_record(result: Any, student: Any, data_source: str) -> Path:
    """Write `crossencoder_distillation.json` (teacher, student layers, data, agreement) into the student directory."""
    record = {
        "teacher": result.teacher,
        "teacher_backend": result.teacher_backend,
        "student": result.student,
        "layers": None if student.layers is None else [index + 1 for index in student.layers],
        "source_layers": student.source_layers,
        "same_tokenizer": result.same_tokenizer,
        "loss": result.loss,
        "data": {
            "queries_from": data_source,
            "queries": result.queries,
            "pseudo_queries": result.pseudo_queries,
            "held_out_queries": result.held_out_queries,
            "training_pairs": result.training_pairs,
            "teacher_scores": result.teacher_scores_file,
        },
        "steps": result.steps,
        "minutes": result.minutes,
        "agreement": {"before": result.before.as_dict(), "after": result.after.as_dict()},
    }
    path = result.output_dir / DISTILLATION_FILE
    path.write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
    return path


def read_distillation_record(directory: str | Path) -> dict[str, Any]:
    """
    The distillation record of a student directory; `{}` for a model that was not distilled.

    :raises ValueError: If the file exists but is not a JSON object.
    """
    path = Path(directory).expanduser() / DISTILLATION_FILE
    if not path.is_file():
        return {}
    return read_json_object(path, invalid_advice="; fix or delete it.", not_object_advice=".")


def write_student_card(result: Any, student: Any, data_source: str) -> Path:
    """Write the student's README.md: how to use it (alone and in a cascade), its teacher, data and agreement."""
    activation = _activation_name(student.model)
    lines = [
        "---",
        "library_name: sentence-transformers",
        "pipeline_tag: text-ranking",
        "tags: [cross-encoder, reranker, haystack, crossencoder-haystack, distillation]",
        "---",
        "",
        "# Reranker distilled with `rerank distill`",
        "",
        f"A student of **`{result.teacher}`**: {result.student}, trained to reproduce the teacher's scores "
        f"({result.loss} on its raw scores). Activation: **{activation}**, the teacher's, so both score on one "
        "scale.",
        "",
        "## Use it",
        "",
        "```python",
        "from haystack_integrations.components.rankers.crossencoder import CascadeRanker, CrossEncoderRanker",
        "",
        f'student = CrossEncoderRanker(model="{result.output_dir}")',
        "# or let it prune for the teacher, which re-ranks its best 20:",
        f'teacher = CrossEncoderRanker(model="{result.teacher}")',
        "ranker = CascadeRanker(student=student, teacher=teacher, cascade_keep=20)",
        "```",
        "",
        *_data_lines(result, data_source),
        *_agreement_lines(result),
    ]
    path = result.output_dir / "README.md"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def _data_lines(result: Any, data_source: str) -> list[str]:
    tokenizer = "the teacher's" if result.same_tokenizer else "its own (not the teacher's)"
    return [
        "## Distillation",
        "",
        f"- teacher: `{result.teacher}` (scored on {result.teacher_backend})",
        f"- student: {result.student}; tokenizer: {tokenizer}",
        f"- queries: {result.queries} from {data_source}, plus {result.pseudo_queries} pseudo-queries drawn from "
        "the corpus (titles and first sentences); candidates: the first stage's whole top list for each",
        f"- pairs: {result.pairs} candidate pairs, {result.training_pairs} used for training "
        f"({result.held_out_queries} queries held out); the teacher scored {result.pairs_scored} in this run and "
        f"{result.pairs_reused} came from its score cache (`{result.teacher_scores_file}`)",
        f"- training: {result.steps} steps, {result.minutes:.1f} min in all"
        + (" (interrupted; the last weights are saved)" if result.interrupted else ""),
    ] + (
        [f"- training loss: {result.loss_history[0][1]:.4f} → {result.loss_history[-1][1]:.4f}"]
        if result.loss_history
        else []
    )


def _agreement_lines(result: Any) -> list[str]:
    return [
        "",
        f"## Agreement with the teacher ({result.after.queries} held-out queries)",
        "",
        "nDCG@10 of the student's ranking against the teacher's (its top 10 graded 10..1; 1.0 is the same top 10 "
        "in the same order) and Spearman's correlation of the two models' scores, per query, averaged.",
        "",
        "| | nDCG@10 vs teacher | Spearman |",
        "|---|---|---|",
        f"| before training | {_number(result.before.ndcg_at_10)} | {_number(result.before.spearman)} |",
        f"| after training | {_number(result.after.ndcg_at_10)} | {_number(result.after.spearman)} |",
    ]


def _activation_name(model: Any) -> str:
    return type(model.activation_fn).__name__.lower()


def _number(value: float | None) -> str:
    return "-" if value is None else f"{value:.4f}"

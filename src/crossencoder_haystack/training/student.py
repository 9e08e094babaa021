"""The student a distillation trains: a cross-encoder built from the teacher's own layers, or from another base.

- A cross-encoder teacher: the student is the teacher with `layers` of its transformer layers kept, evenly
  spaced and ending with the last one (3 of 6: layers 2, 4 and 6, "every other layer"; 2 of 6: 3 and 6), with the
  teacher's embeddings and head. It starts close to the teacher and runs `layers / total` of its encoder's work.
- A bi-encoder teacher (what `rerank train` makes by default): the student is a cross-encoder made from the
  teacher's kept layers with the segment-cosine head (`base_model.build_cross_encoder`): the cosine of the query's
  and the document's mean-pooled tokens, now computed in one joint forward pass. The head starts at scale 1 and
  bias 0 and the student learns the teacher's cosines (its logits), so its scores stay on the teacher's scale. A
  cross-encoder rather than a smaller bi-encoder: per query without a warm embedding cache both cost about the
  same, and the joint pass lets a few layers see the query and the document together.
- `base`: any other cross-encoder, bi-encoder or encoder directory (`build_cross_encoder`), optionally cut to
  `layers` the same way. Its tokenizer may differ from the teacher's: each model reads the texts itself.

The student's activation is the teacher's (sigmoid, identity, tanh), so `CrossEncoderRanker` reads both scores on
the same scale.
"""

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass
class Student:
    """A student ready to train, and what it was made from (for the model card)."""

    model: Any  # a sentence-transformers CrossEncoder
    source: str  # the teacher's directory, or the base's
    kind: str  # "teacher layers" or "base"
    head: str  # "the teacher's", "cosine", "dense" or "kept"
    layers: list[int] | None  # 0-based indices of the source's transformer layers kept; None: all
    source_layers: int
    same_tokenizer: bool


def layer_indices(total: int, keep: int) -> list[int]:
    """
    Which of `total` layers (0-based) a student of `keep` layers takes: evenly spaced, ending with the last.

    `layer_indices(6, 3) == [1, 3, 5]`, `layer_indices(6, 2) == [2, 5]`, `layer_indices(6, 4) == [0, 2, 3, 5]`.

    :raises ValueError: If `keep` is not between 1 and `total - 1`.
    """
    if isinstance(keep, bool) or not isinstance(keep, int) or not 1 <= keep < total:
        msg = f"layers must be an int from 1 to {total - 1} (the source has {total} layers), got {keep!r}."
        raise ValueError(msg)
    return [(position + 1) * total // keep - 1 for position in range(keep)]


def build_student(
    teacher: str | Path,
    *,
    layers: int | None = 3,
    base: str | Path | None = None,
    max_length: int | None = None,
    seed: int = 42,
) -> Student:
    """
    Build the student (see the module docstring).

    :param teacher: The teacher directory (a cross-encoder or a bi-encoder reranker).
    :param layers: How many transformer layers the student keeps; None keeps all of `base`'s (required without a
        `base`).
    :param base: Another model to start from instead of the teacher's layers.
    :param max_length: Tokens per (query, document) pair; None uses the teacher's.
    :param seed: Seeds a new head.
    :raises ValueError: If `layers` is out of range or the model's layers cannot be found.
    """
    from crossencoder_haystack.training.base_model import build_cross_encoder
    from haystack_integrations.components.rankers.crossencoder._engine.bi_encoder_scoring import is_bi_encoder_directory

    teacher_dir = Path(teacher).expanduser()
    max_length = max_length or configured_max_length(teacher_dir)
    if base is None and layers is None:
        msg = "layers is required when the student starts from the teacher's layers (e.g. layers=3), or pass a base."
        raise ValueError(msg)
    if base is None and not is_bi_encoder_directory(teacher_dir):
        from haystack_integrations.components.rankers.crossencoder._engine.model_loading import load_cross_encoder

        model = load_cross_encoder(str(teacher_dir), max_length=max_length, device="cpu")
        kind, head, source = "teacher layers", "the teacher's", str(teacher_dir)
    else:
        source = str(teacher_dir if base is None else Path(base).expanduser())
        built = build_cross_encoder(source, max_length=max_length or 128, seed=seed, head="auto")
        model, head = built.model, built.head
        if base is None and head == "cosine":
            _start_at_plain_cosine(model)
        kind = "teacher layers" if base is None else "base"
    total = len(transformer_layers(model))
    kept = None if layers is None else layer_indices(total, layers)
    if kept is not None:
        keep_layers(model, kept)
    model.activation_fn = activation_module(teacher_activation(teacher_dir))
    return Student(model, source, kind, head, kept, total, same_tokenizer(teacher_dir, model.tokenizer))


def _start_at_plain_cosine(model: Any) -> None:
    """
    Give a segment-cosine head scale 1 and bias 0: the student then starts out scoring the plain cosine, on the
    scale of a bi-encoder teacher's logits (its cosines), instead of the head's default 20 * cosine - 10.
    """
    from haystack_integrations.components.rankers.crossencoder.score_heads import SegmentCosineScore

    for module in model.modules():
        if isinstance(module, SegmentCosineScore):
            module.scale.data.fill_(1.0)
            module.bias.data.fill_(0.0)


def transformer_layers(model: Any) -> Any:
    """The `ModuleList` of a CrossEncoder's transformer layers (BERT, RoBERTa, XLM-R, MiniLM, ...)."""
    import torch

    transformer = model.transformers_model
    encoder = getattr(getattr(transformer, "base_model", transformer), "encoder", None)
    found = getattr(encoder, "layer", None)
    if not isinstance(found, torch.nn.ModuleList):
        msg = (
            f"Cannot find the transformer layers of {type(transformer).__name__} (expected encoder.layer, as in BERT "
            "models), so a student cannot keep some of them. Pass a smaller base model instead (--student-base)."
        )
        raise ValueError(msg)
    return found


def keep_layers(model: Any, indices: list[int]) -> None:
    """Keep only the transformer layers at `indices` (in order), renumbered, in the model and its config."""
    import torch

    layers = transformer_layers(model)
    kept = torch.nn.ModuleList([layers[index] for index in indices])
    module: Any  # an attention module's `layer_idx` is a plain int that torch's Module type does not declare
    for position, layer in enumerate(kept):
        for module in layer.modules():
            if hasattr(module, "layer_idx"):
                module.layer_idx = position
    transformer = model.transformers_model
    getattr(transformer, "base_model", transformer).encoder.layer = kept
    transformer.config.num_hidden_layers = len(indices)


def configured_max_length(directory: Path) -> int | None:
    """The `max_seq_length` a sentence-transformers directory declares, or None."""
    config = directory / "sentence_bert_config.json"
    try:
        value = json.loads(config.read_text(encoding="utf-8")).get("max_seq_length")
    except (OSError, ValueError, AttributeError):
        return None
    return value if isinstance(value, int) and value > 0 else None


def teacher_activation(directory: Path) -> str:
    """The activation the teacher's scores go through: what its directory declares (as `CrossEncoderRanker` reads)."""
    from haystack_integrations.components.rankers.crossencoder._engine.bi_encoder_scoring import (
        declared_activation,
        is_bi_encoder_directory,
    )
    from haystack_integrations.components.rankers.crossencoder._engine.model_loading import configured_activation

    if is_bi_encoder_directory(directory):
        return declared_activation(directory)
    return configured_activation(str(directory)) or "sigmoid"


def activation_module(activation: str) -> Any:
    """The torch module sentence-transformers saves as a CrossEncoder's `activation_fn`."""
    import torch

    modules = {"sigmoid": torch.nn.Sigmoid, "identity": torch.nn.Identity, "tanh": torch.nn.Tanh}
    return modules[activation]()


def same_tokenizer(teacher: Path, tokenizer: Any) -> bool:
    """Whether `tokenizer` has the teacher's vocabulary (recorded in the card; a different one is supported)."""
    from transformers import AutoTokenizer

    try:
        return AutoTokenizer.from_pretrained(str(teacher)).get_vocab() == tokenizer.get_vocab()
    except (OSError, ValueError):
        return False

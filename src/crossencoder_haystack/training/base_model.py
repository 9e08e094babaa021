"""The model a fine-tuning run starts from: a cross-encoder (kept with its head), or an encoder that gets a new head.

An encoder or bi-encoder (such as the bundled all-MiniLM-L6-v2) becomes
`Transformer -> Pooling(mean) -> Dense(hidden -> 1, "scores")`: the head reads the mean-pooled token embeddings,
which is what a sentence-embedding model was trained to produce. The alternative, Hugging Face's
`...ForSequenceClassification` head, reads the [CLS] pooler, which mean-pooling bi-encoders never trained (its
weights are leftovers from masked-language-model pre-training), and learned far slower here. The new head starts
near zero (std 0.01, seeded): the first updates do not fight a random ranking, yet scores are never exactly tied
(a tie would flatter the evaluator, which lists positives first).
"""

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

BaseModelKind = Literal["cross-encoder", "bi-encoder", "encoder"]

_LEGACY_POOLING_KEYS = {
    "pooling_mode_mean_tokens": "mean",
    "pooling_mode_cls_token": "cls",
    "pooling_mode_max_tokens": "max",
    "pooling_mode_lasttoken": "lasttoken",
}


@dataclass
class BaseModel:
    """A CrossEncoder ready to train, with what it was built from."""

    model: Any
    source: str
    kind: BaseModelKind


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


def build_cross_encoder(base_model: str | Path | None = None, max_length: int = 128, seed: int = 42) -> BaseModel:
    """
    Build a trainable CrossEncoder.

    :param base_model: A local directory (cross-encoder, sentence-transformers bi-encoder or Hugging Face encoder),
        or a hub id when the hub is reachable. None uses the bundled all-MiniLM-L6-v2 bi-encoder.
    :param max_length: Maximum tokens per (query, document) pair; longer pairs are truncated.
    :param seed: Seeds the new head (for reproducible runs).
    :raises ModelNotAvailableError: If the model is neither a local directory nor reachable on the hub.
    """
    import torch
    from sentence_transformers import CrossEncoder
    from sentence_transformers.base.modules import Dense, Transformer
    from sentence_transformers.sentence_transformer.modules import Pooling

    from haystack_integrations.components.rankers.crossencoder.model_loading import (
        ModelNotAvailableError,
        hub_is_reachable,
    )

    if base_model is None:
        from crossencoder_haystack.bundled_model import bundled_minilm_path

        base_model = bundled_minilm_path()
    source = str(base_model)
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
        model = CrossEncoder(source, max_length=max_length, local_files_only=local, device="cpu")
        if model.num_labels != 1:
            msg = f"base_model {source!r} has {model.num_labels} output labels; a reranker needs exactly 1."
            raise ValueError(msg)
        return BaseModel(model, source, kind)

    transformer = Transformer(source, max_seq_length=max_length, model_kwargs={"local_files_only": local})
    dimension = transformer.get_embedding_dimension()
    pooling = Pooling(dimension, pooling_mode=_pooling_mode(path) if kind == "bi-encoder" else "mean")
    head = Dense(
        pooling.get_embedding_dimension(),
        1,
        activation_function=None,
        init_weight=torch.randn(1, pooling.get_embedding_dimension()) * 0.01,
        init_bias=torch.zeros(1),
        module_output_name="scores",
    )
    model = CrossEncoder(modules=[transformer, pooling, head], device="cpu")
    return BaseModel(model, source, kind)


def head_parameter_names(model: Any) -> set[str]:
    """Names of the parameters of the scoring head (trained with a larger learning rate)."""
    from sentence_transformers.base.modules import Dense

    names = set()
    for module_name, module in model.named_children():
        if isinstance(module, Dense):
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

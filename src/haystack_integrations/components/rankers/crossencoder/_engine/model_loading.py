"""Loading a sentence-transformers CrossEncoder from a local path or the Hugging Face hub, failing fast offline.

Without this, an unreachable hub makes `CrossEncoder("org/name")` retry for most of a minute before it fails
with a message that does not mention local paths.

A model directory is untrusted input. Unless the caller passes `trust_remote_code=True`, no code a model names is
run: transformers and sentence-transformers get `trust_remote_code=False` (so `auto_map` entries in any config or
tokenizer file and `.py` files are refused), module classes outside sentence-transformers load only if they are
in `KNOWN_HEADS` (and then from this installed package, not from the model), and the activation a model declares
is accepted only if it is one of `ACTIVATIONS` (looked up by name, never imported).
"""

import importlib
import json
import os
import re
import socket
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from haystack import logging

from haystack_integrations.components.rankers.crossencoder._engine.activations import (
    ACTIVATIONS,
    activation_from_torch_path,
    torch_activation_module,
)

logger = logging.getLogger(__name__)

_HUB_CHECK_TIMEOUT_SECONDS = 3.0
# Module classes of this package that saved models may name in modules.json; they load without trust_remote_code
# (imported from this package, never from the model). One line per class.
KNOWN_HEADS = frozenset(
    {
        "haystack_integrations.components.rankers.crossencoder.score_heads.SegmentCosineScore",
    }
)
# Where sentence-transformers looks for a cross-encoder's activation, in its order: (file, keys down to the value).
_ACTIVATION_SOURCES: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("config_sentence_transformers.json", ("activation_fn",)),
    ("config.json", ("sentence_transformers", "activation_fn")),
    ("config.json", ("sbert_ce_default_activation_function",)),
)
_HUB_KWARGS = ("revision", "token", "cache_folder", "local_files_only")


class ModelNotAvailableError(OSError):
    """The model is neither a local directory nor reachable on (or cached from) the Hugging Face hub."""


def hub_endpoint() -> str:
    return os.environ.get("HF_ENDPOINT", "https://huggingface.co")


def hub_is_reachable(timeout: float = _HUB_CHECK_TIMEOUT_SECONDS) -> bool:
    """Whether a TCP connection to the Hugging Face hub can be opened within `timeout` seconds (never hangs)."""
    if os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in {"1", "true", "yes", "on"}:
        return False
    parsed = urlparse(hub_endpoint())
    host = parsed.hostname or "huggingface.co"
    port = parsed.port or (443 if parsed.scheme != "http" else 80)
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*(/[A-Za-z0-9][\w.-]*)?$")


def looks_like_hub_id(model: str) -> bool:
    """Whether `model` has the shape of a hub id (`name` or `org/name`) rather than of a filesystem path."""
    return bool(_HUB_ID.match(model)) and not model.endswith((".", "-"))


def is_cached_on_hub(model: str) -> bool:
    """Whether `model` (a hub id) has a config in the local Hugging Face cache."""
    try:
        from huggingface_hub import try_to_load_from_cache
    except ImportError:  # pragma: no cover - huggingface_hub ships with transformers
        return False
    try:
        found = try_to_load_from_cache(repo_id=model, filename="config.json")
    except Exception:
        return False
    return isinstance(found, str)


def _not_available(model: str, reason: str) -> ModelNotAvailableError:
    return ModelNotAvailableError(
        f"Could not load the cross-encoder model {model!r}: {reason}. "
        "Pass a local directory instead, e.g. CrossEncoderRanker(model='/path/to/model'), where the directory "
        "holds a sentence-transformers CrossEncoder or a Hugging Face sequence-classification model "
        "(config.json, weights and tokenizer files). To use a hub model offline, download it once on a machine "
        "with internet access (e.g. `huggingface-cli download cross-encoder/ms-marco-MiniLM-L6-v2 --local-dir DIR`) "
        "and copy DIR here."
    )


def load_cross_encoder(model: str, **kwargs: Any) -> Any:
    """
    Load a sentence-transformers `CrossEncoder`, with one clear error when the model cannot be had.

    Without `trust_remote_code=True` in `kwargs`, nothing the model's files name is imported or run (see the module
    docstring); with it, sentence-transformers loads the model as it would on its own (the caller's choice).

    :param model: A local directory or a Hugging Face hub id.
    :param kwargs: Passed to `sentence_transformers.CrossEncoder`.
    :raises ModelNotAvailableError: If the path does not exist, or the id is neither cached nor reachable.
    """
    path = Path(model).expanduser()
    if path.exists():
        if not path.is_dir():
            raise _not_available(model, f"{path} is a file, not a model directory")
        return _build_cross_encoder(str(path), local_files_only=True, **kwargs)
    if not looks_like_hub_id(model):
        raise _not_available(model, f"the directory {path} does not exist")
    if is_cached_on_hub(model):
        return _build_cross_encoder(model, local_files_only=True, **kwargs)
    if not hub_is_reachable():
        raise _not_available(model, f"it is not in the local Hugging Face cache and {hub_endpoint()} is unreachable")
    try:
        return _build_cross_encoder(model, **kwargs)
    except OSError as error:
        raise _not_available(model, str(error).splitlines()[0]) from error


def _build_cross_encoder(model: str, **kwargs: Any) -> Any:
    """
    Construct the `CrossEncoder`; without `trust_remote_code=True`, with our heads and an explicit activation.

    :param model: A local directory or a hub id that sentence-transformers can load.
    :param kwargs: Passed to `sentence_transformers.CrossEncoder`.
    """
    from sentence_transformers import CrossEncoder

    if kwargs.get("trust_remote_code"):
        return CrossEncoder(model, **kwargs)
    explicit = kwargs.pop("activation_fn", None)
    declared = None if explicit is not None else configured_activation(model, kwargs)
    # An explicit activation keeps sentence-transformers from resolving (importing) the one the model names.
    activation = explicit if explicit is not None else torch_activation_module(declared or "sigmoid")
    kwargs = {**kwargs, "trust_remote_code": False, "activation_fn": activation}
    resolve_with_module_classes = getattr(CrossEncoder, "_load_with_module_classes", None)
    if resolve_with_module_classes is None:  # pragma: no cover - in sentence-transformers since 6.0
        # Without the resolver a model naming one of our heads fails with sentence-transformers' own error.
        cross_encoder = CrossEncoder(model, **kwargs)
    else:
        cross_encoder = resolve_with_module_classes(model, known_head_classes(), **kwargs)
    if explicit is None and declared is None and cross_encoder.num_labels != 1:
        # sentence-transformers' default for a model that declares none: sigmoid for one label, identity otherwise.
        cross_encoder.activation_fn = torch_activation_module("identity")
    return cross_encoder


def known_head_classes() -> dict[str, type]:
    """The classes `KNOWN_HEADS` names, imported from this installed package (never from a model directory)."""
    classes = {}
    for dotted in sorted(KNOWN_HEADS):
        module_name, _, class_name = dotted.rpartition(".")
        classes[dotted] = getattr(importlib.import_module(module_name), class_name)
    return classes


def configured_activation(model: str, kwargs: dict[str, Any] | None = None) -> str | None:
    """
    The activation a model's files declare, as one of `ACTIVATIONS`; None if they declare none.

    Read where sentence-transformers reads it (`config_sentence_transformers.json` `activation_fn`, then
    `config.json`), by name only: nothing is imported. Any other value is ignored with a warning (the caller then
    uses the default, sigmoid), as a dotted path there would otherwise make sentence-transformers import and call it.

    :param model: A local directory or a hub id (its files read from the local cache, or the hub).
    :param kwargs: The loading keyword arguments; `revision`, `token`, `cache_folder`, `local_files_only` are used.
    """
    hub_kwargs = {key: value for key, value in (kwargs or {}).items() if key in _HUB_KWARGS}
    for file_name, keys in _ACTIVATION_SOURCES:
        value = _nested_value(_model_json(model, file_name, hub_kwargs), keys)
        if value is None:
            continue
        known = activation_from_torch_path(value)
        if known is None:
            logger.warning(
                "The model {model} names the activation {value!r} in {file} (key {key!r}); only {known_paths} "
                "are accepted from a model's files, so it is not imported and the default (sigmoid) is used. "
                "Pass activation='sigmoid', 'identity' or 'tanh' to CrossEncoderRanker to choose one, or "
                "trust_remote_code=True if you trust the model's code.",
                model=model,
                value=value,
                file=file_name,
                key=".".join(keys),
                known_paths=", ".join(f"torch.nn.{name.capitalize()}" for name in ACTIVATIONS),
            )
        return known
    return None


def _nested_value(data: Any, keys: tuple[str, ...]) -> Any:
    for key in keys:
        if not isinstance(data, dict):
            return None
        data = data.get(key)
    return data


def _model_json(model: str, file_name: str, hub_kwargs: dict[str, Any]) -> Any:
    """The parsed JSON file `file_name` of a local model directory or hub model; None if missing or unreadable."""
    path = Path(model).expanduser()
    file = path / file_name if path.is_dir() else _hub_file(model, file_name, hub_kwargs)
    try:
        return json.loads(file.read_text(encoding="utf-8")) if file is not None else None
    except (OSError, ValueError):
        return None


def _hub_file(model: str, file_name: str, hub_kwargs: dict[str, Any]) -> Path | None:
    from huggingface_hub import hf_hub_download
    from sentence_transformers.util import ORIGINAL_TRANSFORMER_MODELS

    # sentence-transformers reads a bare CrossEncoder name such as "ms-marco-MiniLM-L6-v2" from cross-encoder/.
    if "/" not in model and model.lower() not in ORIGINAL_TRANSFORMER_MODELS:
        model = f"cross-encoder/{model}"
    try:
        return Path(
            hf_hub_download(
                model,
                file_name,
                revision=hub_kwargs.get("revision"),
                token=hub_kwargs.get("token"),
                cache_dir=hub_kwargs.get("cache_folder"),
                local_files_only=bool(hub_kwargs.get("local_files_only")),
            )
        )
    except Exception:  # not in the repository, not cached, or the hub failed: sentence-transformers reports it
        return None


def uses_only_known_heads(directory: Path) -> bool:
    """
    Whether a local model names a module class of this package (e.g. `SegmentCosineScore`) and no other code.

    Informational only: `load_cross_encoder` no longer switches `trust_remote_code` on for such models; it loads
    every model with `trust_remote_code=False` and resolves the classes in `KNOWN_HEADS` itself.
    """
    try:
        modules = json.loads((directory / "modules.json").read_text(encoding="utf-8"))
        config = json.loads((directory / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    types = {module.get("type", "") for module in modules if isinstance(module, dict)}
    foreign = {name for name in types if not name.startswith("sentence_transformers.")}
    has_code = "auto_map" in config or any(directory.rglob("*.py"))
    return bool(foreign) and foreign <= KNOWN_HEADS and not has_code

"""Loading a sentence-transformers CrossEncoder from a local path or the Hugging Face hub, failing fast offline.

Without this, an unreachable hub makes `CrossEncoder("org/name")` retry for most of a minute before it fails
with a message that does not mention local paths.
"""

import json
import os
import re
import socket
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from haystack import logging

logger = logging.getLogger(__name__)

_HUB_CHECK_TIMEOUT_SECONDS = 3.0
# Module classes of this package that saved models may name in modules.json.
KNOWN_HEADS = frozenset({"haystack_integrations.components.rankers.crossencoder.score_heads.SegmentCosineScore"})


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

    :param model: A local directory or a Hugging Face hub id.
    :param kwargs: Passed to `sentence_transformers.CrossEncoder`.
    :raises ModelNotAvailableError: If the path does not exist, or the id is neither cached nor reachable.
    """
    from sentence_transformers import CrossEncoder

    path = Path(model).expanduser()
    if path.exists():
        if not path.is_dir():
            raise _not_available(model, f"{path} is a file, not a model directory")
        if uses_only_known_heads(path):
            kwargs = {**kwargs, "trust_remote_code": True}
        return CrossEncoder(str(path), local_files_only=True, **kwargs)
    if not looks_like_hub_id(model):
        raise _not_available(model, f"the directory {path} does not exist")
    if is_cached_on_hub(model):
        return CrossEncoder(model, local_files_only=True, **kwargs)
    if not hub_is_reachable():
        raise _not_available(model, f"it is not in the local Hugging Face cache and {hub_endpoint()} is unreachable")
    try:
        return CrossEncoder(model, **kwargs)
    except OSError as error:
        raise _not_available(model, str(error).splitlines()[0]) from error


def uses_only_known_heads(directory: Path) -> bool:
    """
    Whether a local model names a module class of this package (e.g. `SegmentCosineScore`) and no other code.

    sentence-transformers imports a module class outside its own namespace only with `trust_remote_code=True`.
    Such a model is loaded with it when every foreign class is one of ours (already installed, so no code comes
    from the model) and the directory holds no code of its own (no `.py` file, no `auto_map` in config.json).
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

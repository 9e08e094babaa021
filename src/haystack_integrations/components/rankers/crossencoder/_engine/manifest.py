"""Reading an export's manifest and finding the model file a backend loads (the reading half of `rerank export`).

An exported directory (written by `crossencoder_haystack.export`) holds `crossencoder_export.json`: per backend,
the file to load, `max_length`, the activation and how it was optimized and quantized. The scorers read it here;
the writing lives with the tooling.
"""

import json
from dataclasses import dataclass
from pathlib import Path

from haystack_integrations.components.rankers.crossencoder._engine.model_loading import ModelNotAvailableError

MANIFEST_NAME = "crossencoder_export.json"
CROSS_ENCODER_SCORER = "cross-encoder"
BI_ENCODER_SCORER = "bi-encoder"


@dataclass(frozen=True)
class ExportedModel:
    """One exported model file, as the manifest records it."""

    backend: str
    file: str  # relative to the export directory
    max_length: int
    activation: str | None
    optimize: str | None = None
    quantize: str | None = None  # the preset used (also when it was chosen by quantize="auto")
    source_model: str = ""
    quantize_chosen_by: str | None = None  # why quantize="auto" chose the preset, e.g. "auto: the CPU has amx_int8"
    scorer: str = CROSS_ENCODER_SCORER  # "cross-encoder" (a logit per pair) or "bi-encoder" (an embedding per text)
    embedding_dimension: int | None = None  # bi-encoders: the size of the embeddings the file outputs


def read_manifest(model_dir: str | Path) -> dict[str, ExportedModel]:
    """The exports recorded in `model_dir`'s manifest, by backend (empty if there is no manifest)."""
    path = Path(model_dir) / MANIFEST_NAME
    if not path.is_file():
        return {}
    data = json.loads(path.read_text(encoding="utf-8"))
    return {backend: ExportedModel(**entry) for backend, entry in data.get("backends", {}).items()}


def find_exported_model(model_dir: str | Path, backend: str, file_name: str | None = None) -> Path:
    """
    The model file `backend` should load from `model_dir`: `file_name` if given (relative to the directory or to
    its `onnx/` / `openvino/` folder), else the manifest's entry, else the sentence-transformers default name
    (`onnx/model.onnx`, `openvino/openvino_model.xml`), as found in models downloaded from the hub.

    :raises ModelNotAvailableError: If there is no such file, with the command that creates one.
    """
    directory = Path(model_dir)
    default = Path("onnx/model.onnx") if backend == "onnx" else Path("openvino/openvino_model.xml")
    if file_name is not None:
        candidates = [directory / file_name, directory / default.parent / file_name]
    else:
        recorded = read_manifest(directory).get(backend)
        candidates = [directory / recorded.file] if recorded is not None else []
        candidates.append(directory / default)
    for candidate in candidates:
        if candidate.is_file():
            return candidate
    looked_at = ", ".join(str(c) for c in candidates)
    msg = (
        f"No {backend} model in {directory} (looked for {looked_at}). Export one first with "
        f"`rerank export {directory} --backend {backend} --output {directory}` "
        f"(or export_cross_encoder({str(directory)!r}, {str(directory)!r}, backend={backend!r}) in Python), "
        "then pass that output directory as the model."
    )
    raise ModelNotAvailableError(msg)

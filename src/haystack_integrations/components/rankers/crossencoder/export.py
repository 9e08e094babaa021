"""Exporting a reranker to ONNX or OpenVINO, optionally graph-optimized and int8-quantized, for fast CPU scoring.

sentence-transformers' own ONNX/OpenVINO export needs optimum, which does not install next to transformers 5,
so we export with `torch.onnx.export` and quantize with onnxruntime directly. The output directory holds what
`CrossEncoderRanker(model=DIR, backend="onnx"|"openvino")` needs and nothing else (no torch weights):

    DIR/config.json, tokenizer files, config_sentence_transformers.json (the model's activation)
    DIR/onnx/model[_O2][_qint8_avx2].onnx   or   DIR/openvino/openvino_model[_qint8_static].xml + .bin
    DIR/crossencoder_export.json            the manifest: per backend, the file to load, max_length, activation
    DIR/crossencoder_haystack.json          copied from the model: how the ranker uses it (scorer, prefixes, fusion)
    DIR/calibration.json                    copied from the model, if it has one (`rerank calibrate`)

Two kinds of model export, each to the graph its scorer runs:

- a cross-encoder: (query, document) token ids in, one relevance logit per pair out;
- a bi-encoder reranker (a sentence-transformers `SentenceTransformer` directory, as `rerank train` saves one
  built from all-MiniLM-L6-v2): one text's token ids in, its embedding out (transformer, pooling and any dense or
  normalize modules traced together). The ranker encodes query and documents separately with it and scores by
  their cosine, with the same prefixes and document-embedding cache as on torch; `modules.json` and the module
  configs are copied for the record, but nothing in them is run.

`quantize="auto"` picks the dynamic int8 preset for the CPU the export runs on (`auto_quantization_preset`):
`avx512_vnni` where the CPU has AVX-512 VNNI or AMX, `avx512` on AVX-512 without VNNI, `arm64` on ARM, `avx2`
otherwise; the manifest records the preset and why it was chosen. Export on (a CPU like) the one that will serve.

Dynamic int8 computes activation ranges per batch at run time, so an int8 score moves a little (~1e-4 here)
with the batch the pair lands in; static int8 and float32 do not.

Exporting twice into one directory keeps both files; the manifest points each backend at the latest export
(pass `model_kwargs={"file_name": "onnx/model.onnx"}` to the ranker to load another one).
"""

import inspect
import json
import shutil
import tempfile
import warnings
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
from haystack import logging

from haystack_integrations.components.rankers.crossencoder._engine.activations import activation_from_torch_module
from haystack_integrations.components.rankers.crossencoder._engine.bi_encoder_scoring import (
    RERANKER_CONFIG_FILE,
    ExportedSentenceEncoder,
    declared_activation,
    declared_prefixes,
    is_bi_encoder_directory,
    load_bi_encoder,
)
from haystack_integrations.components.rankers.crossencoder._engine.model_loading import (
    ModelNotAvailableError,
    load_cross_encoder,
)
from haystack_integrations.components.rankers.crossencoder._engine.precision import cpu_flags
from haystack_integrations.components.rankers.crossencoder.calibration import CALIBRATION_FILE

logger = logging.getLogger(__name__)

MANIFEST_NAME = "crossencoder_export.json"
EXPORT_BACKENDS: tuple[str, ...] = ("onnx", "openvino")
OPTIMIZATION_LEVELS: tuple[str, ...] = ("O1", "O2", "O3", "O4")
# Dynamic int8 presets named after the CPU they target (as optimum names them), plus static int8 (calibrated).
QUANTIZATION_PRESETS: tuple[str, ...] = ("avx2", "avx512", "avx512_vnni", "arm64", "int8-static")
# `quantize="auto"`: the dynamic preset for the CPU the export runs on (see `auto_quantization_preset`).
AUTO_QUANTIZATION = "auto"

# Signed int8 weights: measured faster than unsigned on this AVX2 CPU (see benchmarks/results/latency.md).
# reduce_range (7-bit weights) avoids int16 saturation in the u8*s8 kernels of CPUs without VNNI.
_DYNAMIC_PRESETS: dict[str, dict[str, Any]] = {
    "avx2": {"per_channel": True, "reduce_range": True},
    "avx512": {"per_channel": True, "reduce_range": True},
    "avx512_vnni": {"per_channel": True, "reduce_range": False},
    "arm64": {"per_channel": True, "reduce_range": False},
}
# CPU flags (as /proc/cpuinfo names them) that make a preset the right one, checked in this order. AMX CPUs
# (Sapphire Rapids and later) also have AVX-512 VNNI; onnxruntime runs the avx512_vnni model with AMX tiles.
_PRESET_FLAGS: tuple[tuple[str, frozenset[str]], ...] = (
    ("avx512_vnni", frozenset({"amx_int8", "avx512_vnni"})),
    ("avx512", frozenset({"avx512f", "avx512bw"})),
    ("arm64", frozenset({"asimd"})),  # aarch64 reports its features as "Features: fp asimd ..."
)
_FALLBACK_PRESET = "avx2"  # 7-bit weights (reduce_range) compute correctly on every CPU
_WEIGHT_FILES = (
    "model.safetensors",
    "model.safetensors.index.json",
    "pytorch_model.bin",
    "pytorch_model.bin.index.json",
)
_ONNX_OPSET = 17
_INPUT_NAMES = ("input_ids", "attention_mask", "token_type_ids")
# Texts an exported bi-encoder must embed as sentence-transformers does: truncated, padded, stray whitespace.
_PROBE_QUERY = "does the p53 protein regulate apoptosis?"
_PROBE_TEXTS = (
    "p53 is a tumour suppressor " * 200,
    "short",
    "  Apoptosis is programmed cell death.\n",
    "ünïcödé Ωμέγα",
)
_CROSS_ENCODER = "cross-encoder"
_BI_ENCODER = "bi-encoder"


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
    scorer: str = _CROSS_ENCODER  # "cross-encoder" (a logit per pair) or "bi-encoder" (an embedding per text)
    embedding_dimension: int | None = None  # bi-encoders: the size of the embeddings the file outputs


def auto_quantization_preset(flags: frozenset[str] | None = None) -> tuple[str, str]:
    """
    The dynamic int8 preset for a CPU, and why: `quantize="auto"` of an export.

    A pure function of `flags` when they are given. `avx512_vnni` (8-bit weights, VNNI/AMX dot products) where the
    CPU has AVX-512 VNNI or AMX-INT8, `avx512` on AVX-512 without VNNI, `arm64` on ARM (NEON), else `avx2` (7-bit
    weights, correct on every x86 CPU, and the choice where the flags cannot be read).

    :param flags: The CPU's feature flags; `None` reads them from /proc/cpuinfo (`precision.cpu_flags`).
    :returns: `(preset, reason)`, e.g. `("avx512_vnni", "auto: the CPU has amx_int8, avx512_vnni")`.
    """
    flags = cpu_flags() if flags is None else flags
    for preset, wanted in _PRESET_FLAGS:
        present = sorted(flags & wanted)
        if present:
            return preset, f"auto: the CPU has {', '.join(present)}"
    if not flags:
        return _FALLBACK_PRESET, "auto: the CPU's flags could not be read; avx2 runs correctly on every x86 CPU"
    return _FALLBACK_PRESET, "auto: the CPU has neither AVX-512 (VNNI) nor AMX"


def validate_export_options(backend: str, optimize: str | None, quantize: str | None) -> None:
    """Raise a ValueError naming the parameter if `backend`, `optimize` or `quantize` is not supported."""
    if backend not in EXPORT_BACKENDS:
        msg = f"backend must be one of {', '.join(map(repr, EXPORT_BACKENDS))} for an export, got {backend!r}."
        raise ValueError(msg)
    if optimize is not None and optimize not in OPTIMIZATION_LEVELS:
        msg = f"optimize must be None or one of {', '.join(map(repr, OPTIMIZATION_LEVELS))}, got {optimize!r}."
        raise ValueError(msg)
    if quantize is not None and quantize not in (*QUANTIZATION_PRESETS, AUTO_QUANTIZATION):
        choices = ", ".join(map(repr, (AUTO_QUANTIZATION, *QUANTIZATION_PRESETS)))
        msg = f"quantize must be None or one of {choices}, got {quantize!r}."
        raise ValueError(msg)
    if backend == "openvino" and optimize is not None:
        msg = (
            f"optimize={optimize!r} applies to backend='onnx' only (onnxruntime graph fusions); OpenVINO fuses the "
            "graph itself when it compiles the model. Leave optimize=None for backend='openvino'."
        )
        raise ValueError(msg)
    if backend == "openvino" and quantize not in (None, "int8-static"):
        msg = (
            f"quantize={quantize!r} is an onnxruntime dynamic-quantization preset; OpenVINO runs such a model in "
            "float32. For an int8 OpenVINO model use quantize='int8-static' with calibration_pairs (nncf, "
            "OpenVINO's own quantizer, is not a dependency), or use backend='onnx' for dynamic int8."
        )
        raise ValueError(msg)


def export_cross_encoder(
    model: str | Path,
    output_dir: str | Path,
    *,
    backend: str = "onnx",
    optimize: str | None = None,
    quantize: str | None = None,
    calibration_pairs: Sequence[tuple[str, str]] | None = None,
    max_length: int | None = None,
    trust_remote_code: bool = False,
) -> ExportedModel:
    """
    Export a reranker for `CrossEncoderRanker(model=output_dir, backend=backend)`.

    A sentence-transformers cross-encoder is exported as a pair-scoring graph. A local bi-encoder reranker
    directory (what `rerank train` saves from all-MiniLM-L6-v2; any `SentenceTransformer` with pooling) is
    exported by `export_bi_encoder`, with the same options.

    :param model: A local CrossEncoder or bi-encoder directory (or a cross-encoder hub id in the local cache).
    :param output_dir: Where to write; created if missing. May be the model's own directory (nothing is deleted).
    :param backend: `"onnx"` (onnxruntime) or `"openvino"`.
    :param optimize: onnxruntime graph optimization, as optimum defines the levels: `"O1"` basic (constant
        folding, redundant nodes), `"O2"` plus transformer fusions (attention, skip-layer-norm, bias-GELU),
        `"O3"` plus the GELU approximation, `"O4"` plus float16 weights (GPUs only: slower on a CPU).
        onnx only.
    :param quantize: int8 quantization: `"avx2"`, `"avx512"`, `"avx512_vnni"`, `"arm64"` (dynamic: weights int8
        per channel, activations quantized at run time, for that CPU; onnx only), `"auto"` (the dynamic preset for
        this machine's CPU, see `auto_quantization_preset`; onnx only) or `"int8-static"` (weights and
        activations int8 with ranges calibrated on `calibration_pairs`; onnx or openvino).
    :param calibration_pairs: (query, document) pairs representative of production traffic; required for
        `"int8-static"` (a few dozen suffice).
    :param max_length: The maximum tokens per pair the exported model is used with; `None` keeps the model's.
    :param trust_remote_code: Whether to run code the model directory names (`auto_map` entries, custom module
        classes, a custom activation). `False` loads the model with `load_cross_encoder`'s safe defaults and leaves
        the `auto_map` entries out of the exported config files; pass `True` only for a model whose code you trust.
    :returns: What was written, as recorded in the manifest.
    :raises ValueError: If an option is not supported, or `"int8-static"` comes without calibration pairs.
    :raises ModelNotAvailableError: If the model cannot be loaded.
    """
    _check_export_arguments(backend, optimize, quantize, calibration_pairs, max_length)
    if _is_local_bi_encoder(model):
        return export_bi_encoder(
            model,
            output_dir,
            backend=backend,
            optimize=optimize,
            quantize=quantize,
            calibration_pairs=calibration_pairs,
            max_length=max_length,
            trust_remote_code=trust_remote_code,
        )
    cross_encoder = load_cross_encoder(
        str(model), device="cpu", max_length=max_length, trust_remote_code=trust_remote_code
    )
    if cross_encoder.num_labels != 1:
        msg = (
            "Only cross-encoders with one relevance logit (num_labels=1) can be exported, "
            f"got num_labels={cross_encoder.num_labels}."
        )
        raise ValueError(msg)
    output = Path(output_dir).expanduser()
    output.mkdir(parents=True, exist_ok=True)
    _write_model_files(cross_encoder.save, output, keep_code_references=trust_remote_code)
    _copy_reranker_config(model, output)
    _copy_calibration(model, output)
    tokenizer, limit = cross_encoder.tokenizer, int(cross_encoder.max_seq_length)
    with tempfile.TemporaryDirectory(prefix="crossencoder-export-") as scratch:
        onnx_file = _export_onnx(cross_encoder, Path(scratch) / "model.onnx")
        relative, preset, reason = _write_model_file(
            onnx_file,
            output,
            backend=backend,
            optimize=optimize,
            quantize=quantize,
            config=cross_encoder.transformers_model.config,
            calibration=lambda: _pair_batches(tokenizer, calibration_pairs or [], limit),
        )
    exported = ExportedModel(
        backend=backend,
        file=relative.as_posix(),
        max_length=limit,
        activation=activation_from_torch_module(cross_encoder.activation_fn),
        optimize=optimize,
        quantize=preset,
        source_model=str(model),
        quantize_chosen_by=reason,
    )
    _record_in_manifest(output, exported)
    logger.info("Exported {model} to {file}", model=str(model), file=str(output / relative))
    return exported


def export_bi_encoder(
    model: str | Path,
    output_dir: str | Path,
    *,
    backend: str = "onnx",
    optimize: str | None = None,
    quantize: str | None = None,
    calibration_pairs: Sequence[tuple[str, str]] | None = None,
    max_length: int | None = None,
    trust_remote_code: bool = False,
) -> ExportedModel:
    """
    Export a bi-encoder reranker directory for `CrossEncoderRanker(model=output_dir, backend=backend)`.

    The graph maps one text's token ids to its embedding (the whole module stack: transformer, pooling, dense,
    normalize); the ranker scores by the cosine of the query's and each document's embedding, as on torch. The
    directory's `crossencoder_haystack.json` (query/document prefixes, fusion defaults) is copied, marked
    `"scorer": "bi-encoder"`. The options are those of `export_cross_encoder`; for `"int8-static"` the queries and
    the documents of `calibration_pairs` (with their prefixes) calibrate the ranges.

    :param model: A local sentence-transformers bi-encoder directory.
    :param output_dir: Where to write; created if missing.
    :param backend: `"onnx"` or `"openvino"`.
    :param optimize: As in `export_cross_encoder` (onnx only).
    :param quantize: As in `export_cross_encoder`, `"auto"` included.
    :param calibration_pairs: (query, document) pairs; required for `"int8-static"`.
    :param max_length: Tokens per text; `None` keeps the model's.
    :param trust_remote_code: Whether module classes outside sentence-transformers may load (their code runs).
    :returns: What was written, as recorded in the manifest.
    :raises ValueError: If an option is not supported, the directory is not a bi-encoder, or it names module
        classes outside sentence-transformers and `trust_remote_code` is False.
    :raises RuntimeError: If the exported graph does not reproduce the model's embeddings.
    """
    _check_export_arguments(backend, optimize, quantize, calibration_pairs, max_length)
    directory = Path(model).expanduser()
    if not _is_local_bi_encoder(directory):
        msg = (
            f"{model} is not a local sentence-transformers bi-encoder directory (modules.json with a Pooling "
            "module); export a cross-encoder with export_cross_encoder."
        )
        raise ValueError(msg)
    # In float32 whatever dtype the weights were saved in: the graph is float32, quantized from float32 if asked.
    encoder = load_bi_encoder(
        directory, device="cpu", max_length=max_length, trust_remote_code=trust_remote_code, precision="fp32"
    )
    output = Path(output_dir).expanduser()
    output.mkdir(parents=True, exist_ok=True)
    _write_model_files(encoder.save, output, keep_code_references=trust_remote_code)
    _copy_reranker_config(directory, output, scorer=_BI_ENCODER)
    _copy_calibration(directory, output)
    prefixes = declared_prefixes(output)
    limit = int(encoder.max_seq_length)
    texts = [prefixes.get("query_prefix", "") + query for query, _ in calibration_pairs or []]
    texts += [prefixes.get("document_prefix", "") + document for _, document in calibration_pairs or []]
    with tempfile.TemporaryDirectory(prefix="crossencoder-export-") as scratch:
        onnx_file = _export_bi_encoder_onnx(encoder, Path(scratch) / "model.onnx")
        relative, preset, reason = _write_model_file(
            onnx_file,
            output,
            backend=backend,
            optimize=optimize,
            quantize=quantize,
            config=_transformer_config(encoder),
            calibration=lambda: _text_batches(encoder.tokenizer, texts, limit),
        )
    exported = ExportedModel(
        backend=backend,
        file=relative.as_posix(),
        max_length=limit,
        activation=declared_activation(output),
        optimize=optimize,
        quantize=preset,
        source_model=str(model),
        quantize_chosen_by=reason,
        scorer=_BI_ENCODER,
        embedding_dimension=int(encoder.get_embedding_dimension() or 0) or None,
    )
    _record_in_manifest(output, exported)
    logger.info("Exported the bi-encoder {model} to {file}", model=str(model), file=str(output / relative))
    return exported


def _check_export_arguments(
    backend: str,
    optimize: str | None,
    quantize: str | None,
    calibration_pairs: Sequence[tuple[str, str]] | None,
    max_length: int | None,
) -> None:
    """Everything that can be checked before a model is loaded."""
    validate_export_options(backend, optimize, quantize)
    if quantize == "int8-static" and not calibration_pairs:
        msg = (
            "quantize='int8-static' needs calibration_pairs: a few dozen (query, document) pairs like the ones the "
            "model will score (e.g. `rerank export ... --calibration pairs.tsv`)."
        )
        raise ValueError(msg)
    if max_length is not None and max_length <= 0:
        msg = f"max_length must be > 0 or None (the model's limit), got {max_length}."
        raise ValueError(msg)


def _is_local_bi_encoder(model: str | Path) -> bool:
    path = Path(model).expanduser()
    return path.is_dir() and is_bi_encoder_directory(path)


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


def _exported_file_name(backend: str, optimize: str | None, quantize: str | None) -> Path:
    suffix = (f"_{optimize}" if optimize else "") + (
        "_qint8_static" if quantize == "int8-static" else f"_qint8_{quantize}" if quantize else ""
    )
    if backend == "onnx":
        return Path("onnx") / f"model{suffix}.onnx"
    return Path("openvino") / f"openvino_model{suffix}.xml"


def _write_model_files(save: Callable[[str], Any], output: Path, keep_code_references: bool = False) -> None:
    """
    Tokenizer, configs (module configs in their sub-folders too) and model card of a model, without torch weights.
    Files already in `output` are kept (the output may be the model's own directory).

    :param save: The loaded model's `save` method (a CrossEncoder's or a SentenceTransformer's).
    :param keep_code_references: Keep `auto_map` entries (custom code for transformers' Auto classes) in the JSON
        files; without it they are dropped, as the model was loaded without that code.
    """
    with tempfile.TemporaryDirectory(prefix="crossencoder-export-") as scratch:
        save(scratch)
        for path in sorted(Path(scratch).rglob("*")):
            target = output / path.relative_to(scratch)
            if not path.is_file() or path.name in _WEIGHT_FILES or target.exists():
                continue
            target.parent.mkdir(parents=True, exist_ok=True)
            if path.suffix == ".json" and not keep_code_references:
                _copy_json_without_auto_map(path, target)
            else:
                shutil.copyfile(path, target)


def _copy_calibration(model: str | Path, output: Path) -> None:
    """
    Copy the model's `calibration.json` (logit -> P(relevant), from `rerank calibrate`): the export computes the same
    logits up to what its precision moves them, which the ranker checks with the file's probe pairs.
    """
    source = Path(model).expanduser() / CALIBRATION_FILE
    target = output / CALIBRATION_FILE
    if source.is_file() and not (target.is_file() and target.resolve() == source.resolve()):
        shutil.copyfile(source, target)


def _copy_reranker_config(model: str | Path, output: Path, scorer: str | None = None) -> None:
    """
    Copy the model directory's `crossencoder_haystack.json` (prefixes, fusion defaults, activation, provenance)
    into the export, with `"scorer"` set when given; keys already in the export's file and not in the model's stay.
    """
    source = Path(model).expanduser() / RERANKER_CONFIG_FILE
    target = output / RERANKER_CONFIG_FILE
    config = _read_json_object(source) if source.is_file() else {}
    if target.is_file() and target.resolve() != source.resolve():
        config = {**_read_json_object(target), **config}
    if scorer is not None:
        config["scorer"] = scorer
    unchanged = target.is_file() and _read_json_object(target) == config
    if config and not unchanged:
        target.write_text(json.dumps(config, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")


def _read_json_object(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        msg = f"{path} is not valid JSON ({error}); fix or delete it before exporting."
        raise ValueError(msg) from None
    if not isinstance(data, dict):
        msg = f"{path} must hold a JSON object, got {type(data).__name__}; fix or delete it before exporting."
        raise ValueError(msg)
    return data


def _copy_json_without_auto_map(source: Path, target: Path) -> None:
    data = json.loads(source.read_text(encoding="utf-8"))
    if isinstance(data, dict) and "auto_map" in data:
        data.pop("auto_map")
        target.write_text(json.dumps(data, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    else:
        shutil.copyfile(source, target)


def _write_model_file(
    onnx_file: Path,
    output: Path,
    *,
    backend: str,
    optimize: str | None,
    quantize: str | None,
    config: Any,
    calibration: Callable[[], list[dict[str, np.ndarray]]],
) -> tuple[Path, str | None, str | None]:
    """
    Optimize and quantize a checked float32 ONNX graph as asked and write it for `backend` into `output`.

    :param config: The transformer's config (attention heads and hidden size for the fusions).
    :param calibration: Makes the model-input batches that calibrate `"int8-static"` (called only for it).
    :returns: The file written (relative to `output`), the quantization preset used (`"auto"` resolved) and, for
        `"auto"`, why that preset was chosen.
    """
    reason = None
    if quantize == AUTO_QUANTIZATION:
        quantize, reason = auto_quantization_preset()
        logger.info("quantize='auto' chose {preset} ({reason}).", preset=quantize, reason=reason)
    if optimize is not None:
        onnx_file = _optimize_onnx(onnx_file, config, optimize)
    if quantize == "int8-static":
        onnx_file = _quantize_static(onnx_file, calibration())
    elif quantize is not None:
        onnx_file = _quantize_dynamic(onnx_file, quantize)
    relative = _exported_file_name(backend, optimize, quantize)
    target = output / relative
    target.parent.mkdir(parents=True, exist_ok=True)
    if backend == "onnx":
        shutil.copyfile(onnx_file, target)
    else:
        _convert_to_openvino(onnx_file, target)
    return relative, quantize, reason


def _export_onnx(cross_encoder: Any, path: Path) -> Path:
    """Trace the whole CrossEncoder (transformer and any pooling / dense modules) to ONNX, and check the graph."""
    import torch

    model = cross_encoder.transformers_model
    accepted = set(inspect.signature(model.forward).parameters) & set(cross_encoder.tokenizer.model_input_names)
    names = [name for name in _INPUT_NAMES if name in accepted]
    sample = cross_encoder.tokenizer(
        ["a query", "another query"],
        ["a short document", "a somewhat longer document text"],
        padding=True,
        return_tensors="pt",
    )

    class ScoresOnly(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.cross_encoder = cross_encoder

        def forward(self, *inputs: torch.Tensor) -> torch.Tensor:
            scores = self.cross_encoder(dict(zip(names, inputs, strict=True)))["scores"]
            return scores.reshape(inputs[0].shape[0], -1)

    with _eager_attention(model):
        _trace(ScoresOnly(), tuple(sample[name] for name in names), path, names, "logits")
    _check_onnx(path, cross_encoder, names)
    return path


@contextmanager
def _eager_attention(model: Any) -> Iterator[None]:
    """The eager attention graph is the one onnxruntime's transformer optimizer recognizes and fuses."""
    previous = model.config._attn_implementation
    model.set_attn_implementation("eager")
    try:
        yield
    finally:
        model.set_attn_implementation(previous)


def _trace(module: Any, sample: tuple[Any, ...], path: Path, names: list[str], output: str) -> None:
    """`torch.onnx.export` with dynamic batch and sequence axes; the output's first axis is the batch."""
    import torch

    with torch.no_grad(), warnings.catch_warnings():
        # Tracing warns about Python conditionals in the attention-mask code and about advanced indexing;
        # the callers' checks run the graph on other batch sizes and lengths, with padding, against torch.
        warnings.simplefilter("ignore")
        torch.onnx.export(
            # In eval mode: the exporter restores the wrapper's mode, recursively, when it is done.
            module.eval(),
            sample,
            str(path),
            input_names=names,
            output_names=[output],
            dynamic_axes={**{name: {0: "batch", 1: "sequence"} for name in names}, output: {0: "batch"}},
            opset_version=_ONNX_OPSET,
            do_constant_folding=True,
            dynamo=False,
        )


def _check_onnx(path: Path, cross_encoder: Any, names: list[str]) -> None:
    """Raise if the exported graph's logits differ from torch's on a padded batch of another shape."""
    import onnxruntime
    import torch

    encoded = cross_encoder.tokenizer(
        ["what does p53 do", "q", "tumour suppressors and apoptosis"],
        ["p53 is a tumour suppressor " * 12, "short", "apoptosis is programmed cell death"],
        padding=True,
        truncation="longest_first",
        max_length=int(cross_encoder.max_seq_length),
        return_tensors="pt",
    )
    cross_encoder.eval()
    with torch.inference_mode():
        expected = cross_encoder({name: encoded[name] for name in names})["scores"].float().reshape(3, -1).numpy()
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    got = session.run(None, {name: encoded[name].numpy().astype(np.int64) for name in names})[0]
    if not np.allclose(got, expected, atol=1e-4, rtol=1e-3):
        msg = (
            f"The ONNX export of this model does not reproduce its torch scores (max difference "
            f"{float(np.abs(got - expected).max()):.2g}); use backend='torch' for it."
        )
        raise RuntimeError(msg)


def _export_bi_encoder_onnx(encoder: Any, path: Path) -> Path:
    """Trace a SentenceTransformer's whole module stack (one text's token ids -> its embedding) and check it."""
    import torch

    transformer = encoder[0]
    accepted = set(inspect.signature(transformer.auto_model.forward).parameters)
    names = [name for name in _INPUT_NAMES if name in accepted and name in encoder.tokenizer.model_input_names]
    sample = encoder.tokenizer(["a query", "a somewhat longer document text"], padding=True, return_tensors="pt")

    class EmbeddingOnly(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.encoder = encoder

        def forward(self, *inputs: torch.Tensor) -> torch.Tensor:
            return self.encoder(dict(zip(names, inputs, strict=True)))["sentence_embedding"]

    with _eager_attention(transformer.auto_model):
        _trace(EmbeddingOnly(), tuple(sample[name] for name in names), path, names, "sentence_embedding")
    _check_bi_encoder_onnx(path, encoder)
    return path


def _check_bi_encoder_onnx(path: Path, encoder: Any) -> None:
    """
    Raise if the exported graph, fed as the ranker feeds it (`ExportedSentenceEncoder`: our tokenization, padded
    length-sorted batches), does not reproduce `SentenceTransformer.encode` (which also checks the tokenization).
    """
    from haystack_integrations.components.rankers.crossencoder._engine.onnx_backend import OnnxForward

    texts = [_PROBE_QUERY, *_PROBE_TEXTS]
    expected = encoder.encode(texts, batch_size=2, convert_to_numpy=True, normalize_embeddings=True)
    exported = ExportedSentenceEncoder(OnnxForward(path), encoder.tokenizer, int(encoder.max_seq_length))
    got = exported.encode(texts, batch_size=2)
    if got.shape != expected.shape or not np.allclose(got, expected, atol=1e-4, rtol=1e-3):
        difference = float(np.abs(got - expected).max()) if got.shape == expected.shape else float("nan")
        msg = (
            f"The ONNX export of this bi-encoder does not reproduce its torch embeddings (max difference "
            f"{difference:.2g}; e.g. its sentence-transformers config adds prompts); use backend='torch' for it."
        )
        raise RuntimeError(msg)


def _transformer_config(encoder: Any) -> Any:
    """The Hugging Face config of a SentenceTransformer's transformer (for the graph fusions)."""
    return getattr(getattr(encoder[0], "auto_model", None), "config", None)


def _pair_batches(tokenizer: Any, pairs: Sequence[tuple[str, str]], max_length: int) -> list[dict[str, np.ndarray]]:
    """A cross-encoder's inputs for `pairs`, in batches of 8."""
    return [
        _as_int64(
            tokenizer(
                [query for query, _ in pairs[start : start + 8]],
                [document for _, document in pairs[start : start + 8]],
                padding=True,
                truncation="longest_first",
                max_length=max_length,
                return_tensors="np",
            )
        )
        for start in range(0, len(pairs), 8)
    ]


def _text_batches(tokenizer: Any, texts: Sequence[str], max_length: int) -> list[dict[str, np.ndarray]]:
    """A bi-encoder's inputs for `texts`, in batches of 8."""
    return [
        _as_int64(
            tokenizer(
                list(texts[start : start + 8]),
                padding=True,
                truncation=True,
                max_length=max_length,
                return_tensors="np",
            )
        )
        for start in range(0, len(texts), 8)
    ]


def _as_int64(encoded: Any) -> dict[str, np.ndarray]:
    return {name: np.asarray(value, dtype=np.int64) for name, value in encoded.items() if name in _INPUT_NAMES}


def _optimize_onnx(path: Path, config: Any, level: str) -> Path:
    from onnxruntime.transformers.fusion_options import FusionOptions
    from onnxruntime.transformers.optimizer import optimize_model

    optimized_path = path.with_name(f"model_{level}.onnx")
    if level == "O1":
        optimized = optimize_model(str(path), opt_level=1, only_onnxruntime=True)
    else:
        options = FusionOptions("bert")
        options.enable_gelu_approximation = level in ("O3", "O4")
        optimized = optimize_model(
            str(path),
            model_type="bert",  # the fusions for BERT-style encoders (also RoBERTa, XLM-R, ELECTRA, MiniLM)
            num_heads=int(getattr(config, "num_attention_heads", 0)),
            hidden_size=int(getattr(config, "hidden_size", 0)),
            optimization_options=options,
            opt_level=0,
        )
        if level == "O4":
            logger.warning("optimize='O4' stores float16 weights: on a CPU this is slower; it is meant for GPUs.")
            optimized.convert_float_to_float16(keep_io_types=True)
    optimized.save_model_to_file(str(optimized_path))
    return optimized_path


def _quantize_dynamic(path: Path, preset: str) -> Path:
    from onnx import TensorProto
    from onnxruntime.quantization import QuantType, quantize_dynamic

    quantized_path = path.with_name(f"{path.stem}_qint8_{preset}.onnx")
    quantize_dynamic(
        str(path),
        str(quantized_path),
        weight_type=QuantType.QInt8,
        # Fused operators (Attention, BiasGelu) have no shape-inferred types; their outputs are float32.
        extra_options={"DefaultTensorType": TensorProto.FLOAT},
        **_DYNAMIC_PRESETS[preset],
    )
    return quantized_path


def _quantize_static(path: Path, batches: list[dict[str, np.ndarray]]) -> Path:
    """Weights and activations int8 (QDQ), the activation ranges calibrated on `batches` of model inputs."""
    import onnx
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    prepared_path = path.with_name(f"{path.stem}_prepared.onnx")
    quant_pre_process(str(path), str(prepared_path), skip_symbolic_shape=True)
    graph_inputs = {node.name for node in onnx.load(str(prepared_path), load_external_data=False).graph.input}

    class Calibration(CalibrationDataReader):
        def __init__(self) -> None:
            self.batches = iter(batches)

        def get_next(self) -> dict[str, Any] | None:
            batch = next(self.batches, None)
            return None if batch is None else {name: batch[name] for name in graph_inputs}

    quantized_path = path.with_name(f"{path.stem}_qint8_static.onnx")
    quantize_static(
        str(prepared_path),
        str(quantized_path),
        Calibration(),
        quant_format=QuantFormat.QDQ,  # the format OpenVINO turns into int8 kernels
        activation_type=QuantType.QUInt8,
        weight_type=QuantType.QInt8,
        per_channel=True,
        op_types_to_quantize=["MatMul", "Gemm"],
        extra_options={
            "WeightSymmetric": True,
            "ActivationSymmetric": False,
            "DefaultTensorType": onnx.TensorProto.FLOAT,
        },
    )
    return quantized_path


def _convert_to_openvino(onnx_file: Path, target: Path) -> None:
    try:
        import openvino as ov
    except ImportError as error:
        msg = "backend='openvino' needs openvino: pip install 'crossencoder-haystack[openvino]'."
        raise ImportError(msg) from error
    ov.save_model(ov.convert_model(str(onnx_file)), str(target), compress_to_fp16=False)


def _record_in_manifest(output: Path, exported: ExportedModel) -> None:
    path = output / MANIFEST_NAME
    data = json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}
    data["format_version"] = 1
    data.setdefault("backends", {})[exported.backend] = asdict(exported)
    path.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")

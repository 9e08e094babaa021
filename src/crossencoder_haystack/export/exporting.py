"""Exporting a reranker to ONNX or OpenVINO, optionally graph-optimized and int8-quantized, for fast CPU scoring.

The model file itself is made by `onnx_graph.py`; the ranker reads the manifest with
`haystack_integrations.components.rankers.crossencoder._engine.manifest`. The output directory holds what
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

import json
import shutil
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
from haystack import logging

from crossencoder_haystack.export.onnx_graph import (
    DYNAMIC_PRESETS,
    convert_to_openvino,
    export_bi_encoder_graph,
    export_cross_encoder_graph,
    optimize_onnx,
    pair_batches,
    quantize_dynamic_int8,
    quantize_static_int8,
    text_batches,
    transformer_config,
)
from haystack_integrations.components.rankers.crossencoder._engine.activations import activation_from_torch_module
from haystack_integrations.components.rankers.crossencoder._engine.bi_encoder_scoring import (
    RERANKER_CONFIG_FILE,
    declared_activation,
    declared_prefixes,
    is_bi_encoder_directory,
    load_bi_encoder,
)
from haystack_integrations.components.rankers.crossencoder._engine.json_files import read_json_object
from haystack_integrations.components.rankers.crossencoder._engine.manifest import (
    BI_ENCODER_SCORER,
    MANIFEST_NAME,
    ExportedModel,
)
from haystack_integrations.components.rankers.crossencoder._engine.model_loading import load_cross_encoder
from haystack_integrations.components.rankers.crossencoder._engine.precision import cpu_flags
from haystack_integrations.components.rankers.crossencoder.calibration import CALIBRATION_FILE

logger = logging.getLogger(__name__)

EXPORT_BACKENDS: tuple[str, ...] = ("onnx", "openvino")
OPTIMIZATION_LEVELS: tuple[str, ...] = ("O1", "O2", "O3", "O4")
# The dynamic int8 presets, plus static int8 (calibrated).
QUANTIZATION_PRESETS: tuple[str, ...] = (*DYNAMIC_PRESETS, "int8-static")
# `quantize="auto"`: the dynamic preset for the CPU the export runs on (see `auto_quantization_preset`).
AUTO_QUANTIZATION = "auto"

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


@dataclass(frozen=True)
class _ExportOptions:
    """The options of one export (the keyword arguments of `export_cross_encoder`)."""

    backend: str = "onnx"
    optimize: str | None = None
    quantize: str | None = None
    calibration_pairs: Sequence[tuple[str, str]] | None = None
    max_length: int | None = None
    trust_remote_code: bool = False

    def check(self) -> None:
        """Everything that can be checked before a model is loaded."""
        validate_export_options(self.backend, self.optimize, self.quantize)
        if self.quantize == "int8-static" and not self.calibration_pairs:
            msg = (
                "quantize='int8-static' needs calibration_pairs: a few dozen (query, document) pairs like the ones "
                "the model will score (e.g. `rerank export ... --calibration pairs.tsv`)."
            )
            raise ValueError(msg)
        if self.max_length is not None and self.max_length <= 0:
            msg = f"max_length must be > 0 or None (the model's limit), got {self.max_length}."
            raise ValueError(msg)


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
    options = _ExportOptions(backend, optimize, quantize, calibration_pairs, max_length, trust_remote_code)
    options.check()
    if _is_local_bi_encoder(model):
        return _export_bi_encoder(Path(model).expanduser(), output_dir, options)
    cross_encoder = _load_cross_encoder(model, options)
    output = _prepare_output(model, output_dir, cross_encoder.save, options)
    tokenizer, limit = cross_encoder.tokenizer, int(cross_encoder.max_seq_length)
    exported = _export_model_file(
        output,
        options,
        graph=lambda path: export_cross_encoder_graph(cross_encoder, path),
        config=cross_encoder.transformers_model.config,
        calibration=lambda: pair_batches(tokenizer, options.calibration_pairs or [], limit),
        max_length=limit,
        activation=activation_from_torch_module(cross_encoder.activation_fn),
        source_model=str(model),
    )
    logger.info("Exported {model} to {file}", model=str(model), file=str(output / exported.file))
    return exported


def export_bi_encoder(model: str | Path, output_dir: str | Path, **options: Any) -> ExportedModel:
    """
    Export a bi-encoder reranker directory for `CrossEncoderRanker(model=output_dir, backend=backend)`.

    The graph maps one text's token ids to its embedding (the whole module stack: transformer, pooling, dense,
    normalize); the ranker scores by the cosine of the query's and each document's embedding, as on torch. The
    directory's `crossencoder_haystack.json` (query/document prefixes, fusion defaults) is copied, marked
    `"scorer": "bi-encoder"`. The options are those of `export_cross_encoder`, by keyword; for `"int8-static"` the
    queries and the documents of `calibration_pairs` (with their prefixes) calibrate the ranges.

    :param model: A local sentence-transformers bi-encoder directory.
    :param output_dir: Where to write; created if missing.
    :param options: `backend`, `optimize`, `quantize`, `calibration_pairs`, `max_length` (tokens per text) and
        `trust_remote_code` (whether module classes outside sentence-transformers may load: their code runs), as in
        `export_cross_encoder`.
    :returns: What was written, as recorded in the manifest.
    :raises TypeError: If an option is not one of those.
    :raises ValueError: If an option is not supported, the directory is not a bi-encoder, or it names module
        classes outside sentence-transformers and `trust_remote_code` is False.
    :raises RuntimeError: If the exported graph does not reproduce the model's embeddings.
    """
    checked = _ExportOptions(**options)
    checked.check()
    directory = Path(model).expanduser()
    if not _is_local_bi_encoder(directory):
        msg = (
            f"{model} is not a local sentence-transformers bi-encoder directory (modules.json with a Pooling "
            "module); export a cross-encoder with export_cross_encoder."
        )
        raise ValueError(msg)
    return _export_bi_encoder(directory, output_dir, checked)


def _export_bi_encoder(directory: Path, output_dir: str | Path, options: _ExportOptions) -> ExportedModel:
    # In float32 whatever dtype the weights were saved in: the graph is float32, quantized from float32 if asked.
    encoder = load_bi_encoder(
        directory,
        device="cpu",
        max_length=options.max_length,
        trust_remote_code=options.trust_remote_code,
        precision="fp32",
    )
    output = _prepare_output(directory, output_dir, encoder.save, options, scorer=BI_ENCODER_SCORER)
    prefixes = declared_prefixes(output)
    limit = int(encoder.max_seq_length)
    pairs = options.calibration_pairs or []
    texts = [prefixes.get("query_prefix", "") + query for query, _ in pairs]
    texts += [prefixes.get("document_prefix", "") + document for _, document in pairs]
    exported = _export_model_file(
        output,
        options,
        graph=lambda path: export_bi_encoder_graph(encoder, path),
        config=transformer_config(encoder),
        calibration=lambda: text_batches(encoder.tokenizer, texts, limit),
        max_length=limit,
        activation=declared_activation(output),
        source_model=str(directory),
        scorer=BI_ENCODER_SCORER,
        embedding_dimension=int(encoder.get_embedding_dimension() or 0) or None,
    )
    logger.info("Exported the bi-encoder {model} to {file}", model=str(directory), file=str(output / exported.file))
    return exported


def _load_cross_encoder(model: str | Path, options: _ExportOptions) -> Any:
    """The cross-encoder to export, on the CPU; only one with a single relevance logit can be exported."""
    cross_encoder = load_cross_encoder(
        str(model), device="cpu", max_length=options.max_length, trust_remote_code=options.trust_remote_code
    )
    if cross_encoder.num_labels != 1:
        msg = (
            "Only cross-encoders with one relevance logit (num_labels=1) can be exported, "
            f"got num_labels={cross_encoder.num_labels}."
        )
        raise ValueError(msg)
    return cross_encoder


def _prepare_output(
    model: str | Path,
    output_dir: str | Path,
    save: Callable[[str], Any],
    options: _ExportOptions,
    scorer: str | None = None,
) -> Path:
    """Create the output directory and copy the model's files (no weights), its reranker config and calibration."""
    output = Path(output_dir).expanduser()
    output.mkdir(parents=True, exist_ok=True)
    _write_model_files(save, output, keep_code_references=options.trust_remote_code)
    _copy_reranker_config(model, output, scorer=scorer)
    _copy_calibration(model, output)
    return output


def _export_model_file(
    output: Path,
    options: _ExportOptions,
    *,
    graph: Callable[[Path], Path],
    config: Any,
    calibration: Callable[[], list[dict[str, np.ndarray]]],
    **recorded: Any,
) -> ExportedModel:
    """
    Trace the model with `graph`, write its file for the backend and record it in the manifest.

    :param graph: Traces the model to an ONNX file at the path it is given, and checks it against torch.
    :param config: The transformer's config (attention heads and hidden size for the fusions).
    :param calibration: Makes the model-input batches that calibrate `"int8-static"` (called only for it).
    :param recorded: The manifest fields that depend on the model (`max_length`, `activation`, ...).
    """
    with tempfile.TemporaryDirectory(prefix="crossencoder-export-") as scratch:
        onnx_file = graph(Path(scratch) / "model.onnx")
        relative, preset, reason = _write_model_file(onnx_file, output, options, config, calibration)
    exported = ExportedModel(
        backend=options.backend,
        file=relative.as_posix(),
        optimize=options.optimize,
        quantize=preset,
        quantize_chosen_by=reason,
        **recorded,
    )
    _record_in_manifest(output, exported)
    return exported


def _is_local_bi_encoder(model: str | Path) -> bool:
    path = Path(model).expanduser()
    return path.is_dir() and is_bi_encoder_directory(path)


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
    advice = "; fix or delete it before exporting."
    return read_json_object(path, invalid_advice=advice, not_object_advice=advice)


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
    options: _ExportOptions,
    config: Any,
    calibration: Callable[[], list[dict[str, np.ndarray]]],
) -> tuple[Path, str | None, str | None]:
    """
    Optimize and quantize a checked float32 ONNX graph as asked and write it for the backend into `output`.

    :returns: The file written (relative to `output`), the quantization preset used (`"auto"` resolved) and, for
        `"auto"`, why that preset was chosen.
    """
    quantize, reason = options.quantize, None
    if quantize == AUTO_QUANTIZATION:
        quantize, reason = auto_quantization_preset()
        logger.info("quantize='auto' chose {preset} ({reason}).", preset=quantize, reason=reason)
    if options.optimize is not None:
        onnx_file = optimize_onnx(onnx_file, config, options.optimize)
    if quantize == "int8-static":
        onnx_file = quantize_static_int8(onnx_file, calibration())
    elif quantize is not None:
        onnx_file = quantize_dynamic_int8(onnx_file, quantize)
    relative = _exported_file_name(options.backend, options.optimize, quantize)
    target = output / relative
    target.parent.mkdir(parents=True, exist_ok=True)
    if options.backend == "onnx":
        shutil.copyfile(onnx_file, target)
    else:
        convert_to_openvino(onnx_file, target)
    return relative, quantize, reason


def _record_in_manifest(output: Path, exported: ExportedModel) -> None:
    path = output / MANIFEST_NAME
    data = json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}
    data["format_version"] = 1
    data.setdefault("backends", {})[exported.backend] = asdict(exported)
    path.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")

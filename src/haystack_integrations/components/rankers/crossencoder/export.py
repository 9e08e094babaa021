"""Exporting a cross-encoder to ONNX or OpenVINO, optionally graph-optimized and int8-quantized, for fast CPU scoring.

sentence-transformers' own ONNX/OpenVINO export needs optimum, which does not install next to transformers 5,
so we export with `torch.onnx.export` and quantize with onnxruntime directly. The output directory holds what
`CrossEncoderRanker(model=DIR, backend="onnx"|"openvino")` needs and nothing else (no torch weights):

    DIR/config.json, tokenizer files, config_sentence_transformers.json (the model's activation)
    DIR/onnx/model[_O2][_qint8_avx2].onnx   or   DIR/openvino/openvino_model[_qint8_static].xml + .bin
    DIR/crossencoder_export.json            the manifest: per backend, the file to load, max_length, activation

Dynamic int8 computes activation ranges per batch at run time, so an int8 score moves a little (~1e-4 here)
with the batch the pair lands in; static int8 and float32 do not.

Exporting twice into one directory keeps both files; the manifest points each backend at the latest export
(pass `model_kwargs={"file_name": "onnx/model.onnx"}` to the ranker to load another one).
"""

import json
import shutil
import tempfile
import warnings
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from haystack import logging

from haystack_integrations.components.rankers.crossencoder.activations import activation_from_torch_module
from haystack_integrations.components.rankers.crossencoder.model_loading import (
    ModelNotAvailableError,
    load_cross_encoder,
)

logger = logging.getLogger(__name__)

MANIFEST_NAME = "crossencoder_export.json"
EXPORT_BACKENDS: tuple[str, ...] = ("onnx", "openvino")
OPTIMIZATION_LEVELS: tuple[str, ...] = ("O1", "O2", "O3", "O4")
# Dynamic int8 presets named after the CPU they target (as optimum names them), plus static int8 (calibrated).
QUANTIZATION_PRESETS: tuple[str, ...] = ("avx2", "avx512", "avx512_vnni", "arm64", "int8-static")

# Signed int8 weights: measured faster than unsigned on this AVX2 CPU (see benchmarks/results/latency.md).
# reduce_range (7-bit weights) avoids int16 saturation in the u8*s8 kernels of CPUs without VNNI.
_DYNAMIC_PRESETS: dict[str, dict[str, Any]] = {
    "avx2": {"per_channel": True, "reduce_range": True},
    "avx512": {"per_channel": True, "reduce_range": True},
    "avx512_vnni": {"per_channel": True, "reduce_range": False},
    "arm64": {"per_channel": True, "reduce_range": False},
}
_WEIGHT_FILES = (
    "model.safetensors",
    "model.safetensors.index.json",
    "pytorch_model.bin",
    "pytorch_model.bin.index.json",
)
_ONNX_OPSET = 17


@dataclass(frozen=True)
class ExportedModel:
    """One exported model file, as the manifest records it."""

    backend: str
    file: str  # relative to the export directory
    max_length: int
    activation: str | None
    optimize: str | None = None
    quantize: str | None = None
    source_model: str = ""


def validate_export_options(backend: str, optimize: str | None, quantize: str | None) -> None:
    """Raise a ValueError naming the parameter if `backend`, `optimize` or `quantize` is not supported."""
    if backend not in EXPORT_BACKENDS:
        msg = f"backend must be one of {', '.join(map(repr, EXPORT_BACKENDS))} for an export, got {backend!r}."
        raise ValueError(msg)
    if optimize is not None and optimize not in OPTIMIZATION_LEVELS:
        msg = f"optimize must be None or one of {', '.join(map(repr, OPTIMIZATION_LEVELS))}, got {optimize!r}."
        raise ValueError(msg)
    if quantize is not None and quantize not in QUANTIZATION_PRESETS:
        msg = f"quantize must be None or one of {', '.join(map(repr, QUANTIZATION_PRESETS))}, got {quantize!r}."
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
    Export a sentence-transformers cross-encoder for `CrossEncoderRanker(model=output_dir, backend=backend)`.

    :param model: A local CrossEncoder directory (or a hub id in the local Hugging Face cache).
    :param output_dir: Where to write; created if missing. May be the model's own directory (nothing is deleted).
    :param backend: `"onnx"` (onnxruntime) or `"openvino"`.
    :param optimize: onnxruntime graph optimization, as optimum defines the levels: `"O1"` basic (constant
        folding, redundant nodes), `"O2"` plus transformer fusions (attention, skip-layer-norm, bias-GELU),
        `"O3"` plus the GELU approximation, `"O4"` plus float16 weights (GPUs only: slower on a CPU).
        onnx only.
    :param quantize: int8 quantization: `"avx2"`, `"avx512"`, `"avx512_vnni"`, `"arm64"` (dynamic: weights int8
        per channel, activations quantized at run time, for that CPU; onnx only) or `"int8-static"` (weights and
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

    _refuse_bi_encoder(model)
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
    _write_model_files(cross_encoder, output, keep_code_references=trust_remote_code)

    with tempfile.TemporaryDirectory(prefix="crossencoder-export-") as scratch:
        onnx_file = _export_onnx(cross_encoder, Path(scratch) / "model.onnx")
        if optimize is not None:
            onnx_file = _optimize_onnx(onnx_file, cross_encoder.transformers_model.config, optimize)
        if quantize == "int8-static":
            onnx_file = _quantize_static(
                onnx_file, cross_encoder.tokenizer, calibration_pairs or [], int(cross_encoder.max_seq_length)
            )
        elif quantize is not None:
            onnx_file = _quantize_dynamic(onnx_file, quantize)
        relative = _exported_file_name(backend, optimize, quantize)
        target = output / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        if backend == "onnx":
            shutil.copyfile(onnx_file, target)
        else:
            _convert_to_openvino(onnx_file, target)

    exported = ExportedModel(
        backend=backend,
        file=relative.as_posix(),
        max_length=int(cross_encoder.max_seq_length),
        activation=activation_from_torch_module(cross_encoder.activation_fn),
        optimize=optimize,
        quantize=quantize,
        source_model=str(model),
    )
    _record_in_manifest(output, exported)
    logger.info("Exported {model} to {file}", model=str(model), file=str(target))
    return exported


def _refuse_bi_encoder(model: str | Path) -> None:
    """A bi-encoder reranker (scored by the cosine of separate encodings) has no pair graph to export yet."""
    from haystack_integrations.components.rankers.crossencoder.bi_encoder_scoring import is_bi_encoder_directory

    if Path(model).expanduser().is_dir() and is_bi_encoder_directory(Path(model).expanduser()):
        msg = (
            f"{model} is a bi-encoder reranker (query and document encoded separately, as `rerank train` saves a "
            "model built from all-MiniLM-L6-v2); `rerank export` exports cross-encoders only. Serve it with "
            "backend='torch'; its document embeddings are cached, so repeated documents cost no model time."
        )
        raise ValueError(msg)


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


def _write_model_files(cross_encoder: Any, output: Path, keep_code_references: bool = False) -> None:
    """
    Tokenizer, configs and model card of the cross-encoder, without its torch weights.

    :param keep_code_references: Keep `auto_map` entries (custom code for transformers' Auto classes) in the JSON
        files; without it they are dropped, as the model was loaded without that code.
    """
    with tempfile.TemporaryDirectory(prefix="crossencoder-export-") as scratch:
        cross_encoder.save(scratch)
        for path in Path(scratch).iterdir():
            if path.is_file() and path.name not in _WEIGHT_FILES and not (output / path.name).exists():
                if path.suffix == ".json" and not keep_code_references:
                    _copy_json_without_auto_map(path, output / path.name)
                else:
                    shutil.copyfile(path, output / path.name)


def _copy_json_without_auto_map(source: Path, target: Path) -> None:
    data = json.loads(source.read_text(encoding="utf-8"))
    if isinstance(data, dict) and "auto_map" in data:
        data.pop("auto_map")
        target.write_text(json.dumps(data, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    else:
        shutil.copyfile(source, target)


def _export_onnx(cross_encoder: Any, path: Path) -> Path:
    """Trace the whole CrossEncoder (transformer and any pooling / dense modules) to ONNX, and check the graph."""
    import inspect

    import torch

    model = cross_encoder.transformers_model
    accepted = set(inspect.signature(model.forward).parameters) & set(cross_encoder.tokenizer.model_input_names)
    names = [name for name in ("input_ids", "attention_mask", "token_type_ids") if name in accepted]
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

    # The eager attention graph is the one onnxruntime's transformer optimizer recognizes and fuses.
    previous = model.config._attn_implementation
    model.set_attn_implementation("eager")
    try:
        with torch.no_grad(), warnings.catch_warnings():
            # Tracing warns about Python conditionals in the attention-mask code and about advanced indexing;
            # `_check_onnx` runs the graph on other batch sizes and lengths, with padding, against torch.
            warnings.simplefilter("ignore")
            torch.onnx.export(
                # In eval mode: the exporter restores the wrapper's mode, recursively, when it is done.
                ScoresOnly().eval(),
                tuple(sample[name] for name in names),
                str(path),
                input_names=names,
                output_names=["logits"],
                dynamic_axes={**{name: {0: "batch", 1: "sequence"} for name in names}, "logits": {0: "batch"}},
                opset_version=_ONNX_OPSET,
                do_constant_folding=True,
                dynamo=False,
            )
    finally:
        model.set_attn_implementation(previous)
    _check_onnx(path, cross_encoder, names)
    return path


def _check_onnx(path: Path, cross_encoder: Any, names: list[str]) -> None:
    """Raise if the exported graph's logits differ from torch's on a padded batch of another shape."""
    import numpy as np
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


def _quantize_static(path: Path, tokenizer: Any, pairs: Sequence[tuple[str, str]], max_length: int) -> Path:
    import numpy as np
    from onnx import TensorProto
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    prepared_path = path.with_name(f"{path.stem}_prepared.onnx")
    quant_pre_process(str(path), str(prepared_path), skip_symbolic_shape=True)

    class Calibration(CalibrationDataReader):
        def __init__(self) -> None:
            self.batches = iter(range(0, len(pairs), 8))

        def get_next(self) -> dict[str, Any] | None:
            start = next(self.batches, None)
            if start is None:
                return None
            batch = pairs[start : start + 8]
            encoded = tokenizer(
                [query for query, _ in batch],
                [document for _, document in batch],
                padding=True,
                truncation="longest_first",
                max_length=max_length,
                return_tensors="np",
            )
            return {name: np.asarray(value, dtype=np.int64) for name, value in encoded.items()}

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
        extra_options={"WeightSymmetric": True, "ActivationSymmetric": False, "DefaultTensorType": TensorProto.FLOAT},
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

"""The graph half of an export: trace a model to ONNX and check it against torch, optimize, quantize, convert.

`sentence-transformers`' own ONNX/OpenVINO export needs optimum, which does not install next to transformers 5,
so we export with `torch.onnx.export` and quantize with onnxruntime directly. `exporting.py` decides what to write;
this module makes the model file.
"""

import inspect
import warnings
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
from haystack import logging

from haystack_integrations.components.rankers.crossencoder._engine.bi_encoder_scoring import ExportedSentenceEncoder

logger = logging.getLogger(__name__)

# Dynamic int8 presets named after the CPU they target (as optimum names them).
# Signed int8 weights: measured faster than unsigned on an AVX2 CPU (see benchmarks/results/latency.md).
# reduce_range (7-bit weights) avoids int16 saturation in the u8*s8 kernels of CPUs without VNNI.
DYNAMIC_PRESETS: dict[str, dict[str, Any]] = {
    "avx2": {"per_channel": True, "reduce_range": True},
    "avx512": {"per_channel": True, "reduce_range": True},
    "avx512_vnni": {"per_channel": True, "reduce_range": False},
    "arm64": {"per_channel": True, "reduce_range": False},
}
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


def export_cross_encoder_graph(cross_encoder: Any, path: Path) -> Path:
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


def export_bi_encoder_graph(encoder: Any, path: Path) -> Path:
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


def transformer_config(encoder: Any) -> Any:
    """The Hugging Face config of a SentenceTransformer's transformer (for the graph fusions)."""
    return getattr(getattr(encoder[0], "auto_model", None), "config", None)


def pair_batches(tokenizer: Any, pairs: Sequence[tuple[str, str]], max_length: int) -> list[dict[str, np.ndarray]]:
    """A cross-encoder's inputs for `pairs`, in batches of 8."""
    return _in_batches(
        lambda chunk: tokenizer(
            [query for query, _ in chunk],
            [document for _, document in chunk],
            padding=True,
            truncation="longest_first",
            max_length=max_length,
            return_tensors="np",
        ),
        pairs,
    )


def text_batches(tokenizer: Any, texts: Sequence[str], max_length: int) -> list[dict[str, np.ndarray]]:
    """A bi-encoder's inputs for `texts`, in batches of 8."""
    return _in_batches(
        lambda chunk: tokenizer(list(chunk), padding=True, truncation=True, max_length=max_length, return_tensors="np"),
        texts,
    )


def _in_batches(tokenize: Callable[[Sequence[Any]], Any], items: Sequence[Any]) -> list[dict[str, np.ndarray]]:
    return [_as_int64(tokenize(items[start : start + 8])) for start in range(0, len(items), 8)]


def _as_int64(encoded: Any) -> dict[str, np.ndarray]:
    return {name: np.asarray(value, dtype=np.int64) for name, value in encoded.items() if name in _INPUT_NAMES}


def optimize_onnx(path: Path, config: Any, level: str) -> Path:
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


def quantize_dynamic_int8(path: Path, preset: str) -> Path:
    from onnx import TensorProto
    from onnxruntime.quantization import QuantType, quantize_dynamic

    quantized_path = path.with_name(f"{path.stem}_qint8_{preset}.onnx")
    quantize_dynamic(
        str(path),
        str(quantized_path),
        weight_type=QuantType.QInt8,
        # Fused operators (Attention, BiasGelu) have no shape-inferred types; their outputs are float32.
        extra_options={"DefaultTensorType": TensorProto.FLOAT},
        **DYNAMIC_PRESETS[preset],
    )
    return quantized_path


def quantize_static_int8(path: Path, batches: list[dict[str, np.ndarray]]) -> Path:
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


def convert_to_openvino(onnx_file: Path, target: Path) -> None:
    from haystack_integrations.components.rankers.crossencoder._engine.backend_imports import import_backend_library

    ov = import_backend_library("openvino", "openvino")
    ov.save_model(ov.convert_model(str(onnx_file)), str(target), compress_to_fp16=False)

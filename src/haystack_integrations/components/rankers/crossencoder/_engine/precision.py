"""Which numeric precision the hardware runs fastest without changing the ranking: read from the CPU's flags.

On CPUs with AMX or AVX512-BF16 (Intel Sapphire Rapids and later, AMD Zen 4 and later), bfloat16 matrix
multiplications run at several times the fp32 rate; on AVX2-only CPUs bf16 is emulated and slower, so fp32 stays.
The flags come from /proc/cpuinfo (Linux, no root, no extra tools); elsewhere nothing is assumed. A process that
caps oneDNN below its bf16 kernels (`ONEDNN_MAX_CPU_ISA=AVX2`, e.g. to reproduce an AVX2-only CPU) multiplies bf16
without them, so `"auto"` stays fp32 there too.

`resolve_precision` turns the ranker's `precision` setting into what the model computes in:

- `"auto"`: bf16 on a CPU with AMX-BF16 or AVX512-BF16 and on a CUDA device that multiplies bf16 natively
  (compute capability 8.0 and later), fp16 on other CUDA devices, fp32 everywhere else;
- `"fp32"`, `"bf16"`: as named, on any device; `"fp16"`: GPUs only (a CPU emulates it, slowly);
- `"int8"`: an int8-quantized export (`rerank export --quantize ...`) run by the onnx or openvino backend.

How much faster bf16 is, and how closely its scores follow fp32's: see README, Performance.
"""

import os
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

from haystack_integrations.components.rankers.crossencoder._engine.checks import check_choice

BF16_CPU_FLAGS = frozenset({"amx_bf16", "avx512_bf16"})
# oneDNN's ISA caps (ONEDNN_MAX_CPU_ISA, or DNNL_MAX_CPU_ISA before oneDNN 2.0) below its bf16 kernels: torch's bf16
# matrix products run on oneDNN, so under such a cap bf16 is emulated as on a CPU without the flags.
ONEDNN_ISA_CAP_VARIABLES = ("ONEDNN_MAX_CPU_ISA", "DNNL_MAX_CPU_ISA")
_ISA_CAPS_WITHOUT_BF16 = frozenset(
    {"SSE41", "AVX", "AVX2", "AVX2_VNNI", "AVX2_VNNI_2", "AVX512_CORE", "AVX512_CORE_VNNI", "AVX512_MIC"}
)
REPORTED_CPU_FLAGS = ("avx2", "avx512f", "avx512_vnni", "avx512_bf16", "amx_bf16", "amx_int8", "amx_tile")

Precision = Literal["auto", "fp32", "bf16", "fp16", "int8"]  # the ranker's `precision` argument
PRECISIONS: tuple[str, ...] = ("auto", "fp32", "bf16", "fp16", "int8")
# What each backend can compute in when asked explicitly (onnx and openvino always run on the CPU).
_BACKEND_PRECISIONS: dict[str, tuple[str, ...]] = {
    "torch": ("auto", "fp32", "bf16", "fp16"),
    "onnx": ("auto", "fp32", "int8"),
    "openvino": ("auto", "fp32", "bf16", "int8"),
}
_ELSEWHERE = {
    "bf16": " (bf16 runs on backend='torch' or 'openvino')",
    "fp16": " (fp16 runs on a GPU with backend='torch')",
    "fp32": "",
    "int8": "",
    "auto": "",
}
_TORCH_DTYPE_NAMES = {"fp32": "float32", "bf16": "bfloat16", "fp16": "float16"}
_CUDA_BF16_MAJOR = 8  # Ampere and later multiply bf16 natively; older GPUs emulate it


@lru_cache(maxsize=1)
def cpu_flags() -> frozenset[str]:
    """The CPU's feature flags as Linux reports them (empty where /proc/cpuinfo is not available)."""
    try:
        text = Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace")
    except OSError:
        return frozenset()
    for line in text.splitlines():
        if line.lower().startswith(("flags", "features")):
            return frozenset(line.split(":", 1)[1].split())
    return frozenset()


def onednn_isa_cap() -> str | None:
    """The oneDNN ISA cap this process runs under when it keeps oneDNN from bf16 kernels (e.g. `"AVX2"`), else None."""
    for variable in ONEDNN_ISA_CAP_VARIABLES:
        value = os.environ.get(variable, "").strip().upper()
        if value:
            return value if value in _ISA_CAPS_WITHOUT_BF16 else None
    return None


def cpu_has_fast_bf16(flags: frozenset[str] | None = None) -> bool:
    """
    Whether the CPU multiplies bfloat16 matrices natively (AMX-BF16 or AVX512-BF16).

    :param flags: The CPU's feature flags (a pure function of them); `None` reads /proc/cpuinfo and honours a oneDNN
        ISA cap below bf16 (`onednn_isa_cap`).
    """
    if flags is None:
        return onednn_isa_cap() is None and bool(cpu_flags() & BF16_CPU_FLAGS)
    return bool(flags & BF16_CPU_FLAGS)


def device_type(device: str) -> str:
    """`"cuda"` for `"cuda:1"`, `"cpu"` for `"cpu"`: the part of a torch device string before the index."""
    return str(device).split(":", 1)[0].strip().lower()


def check_precision(precision: Any, *, backend: str, device: str) -> str:
    """
    Reject a `precision` that cannot work with `backend` on `device`, before anything is loaded.

    :param precision: The user's setting, one of `PRECISIONS`.
    :param backend: `"torch"`, `"onnx"` or `"openvino"`.
    :param device: The torch device string (e.g. `"cpu"`, `"cuda:0"`); onnx and openvino run on the CPU.
    :returns: `precision`, unchanged.
    :raises ValueError: Naming `precision` and what to pass instead.
    """
    check_choice("precision", precision, PRECISIONS)
    allowed = _BACKEND_PRECISIONS.get(backend, PRECISIONS)
    if precision == "int8" and backend == "torch":
        msg = (
            "precision='int8' needs an int8-quantized export: run `rerank export MODEL --backend onnx --quantize "
            "auto --output DIR` (it picks the int8 preset for this CPU) and pass DIR with backend='onnx'. "
            "On backend='torch' use precision='auto', 'fp32' or 'bf16'."
        )
        raise ValueError(msg)
    if precision not in allowed:
        msg = (
            f"precision={precision!r} is not available with backend={backend!r}, which computes in "
            f"{', '.join(map(repr, allowed[1:]))}; pass one of those or precision='auto'{_ELSEWHERE[precision]}."
        )
        raise ValueError(msg)
    if precision == "fp16" and device_type(device) == "cpu":
        _raise_fp16_on_cpu()
    return precision


def resolve_precision(
    precision: str, device: str, flags: frozenset[str] | None = None, cuda_bf16: bool | None = None
) -> str:
    """
    What a model on `device` computes in for the `precision` setting: `"fp32"`, `"bf16"`, `"fp16"` or `"int8"`.

    A pure function of its arguments when `flags` (and, for a CUDA device, `cuda_bf16`) are given.

    :param precision: One of `PRECISIONS`; `"auto"` chooses by the hardware, anything else is kept.
    :param device: A torch device string such as `"cpu"`, `"cuda:0"` or `"mps"`.
    :param flags: The CPU's feature flags; `None` reads them from /proc/cpuinfo.
    :param cuda_bf16: Whether the CUDA device multiplies bf16 natively; `None` asks torch (CUDA devices only).
    :raises ValueError: If `precision` is unknown, or `"fp16"` on a CPU.
    """
    check_choice("precision", precision, PRECISIONS)
    kind = device_type(device)
    if precision == "fp16" and kind == "cpu":
        _raise_fp16_on_cpu()
    if precision != "auto":
        return precision
    if kind == "cuda":
        native = cuda_supports_bf16(device) if cuda_bf16 is None else cuda_bf16
        return "bf16" if native else "fp16"
    if kind == "cpu":
        return "bf16" if cpu_has_fast_bf16(flags) else "fp32"
    return "fp32"


def precision_reason(precision: str, resolved: str, device: str, flags: frozenset[str] | None = None) -> str:
    """Why `resolved` was chosen, for the log line: `"auto: the CPU has amx_bf16"`, `"asked for"`, ..."""
    if precision != "auto":
        return "asked for"
    kind = device_type(device)
    if kind == "cpu":
        present = sorted((cpu_flags() if flags is None else flags) & BF16_CPU_FLAGS)
        cap = onednn_isa_cap() if flags is None else None
        if present and cap:
            return f"auto: the CPU has {', '.join(present)}, but oneDNN is capped at {cap} (ONEDNN_MAX_CPU_ISA)"
        if present:
            return f"auto: the CPU has {', '.join(present)}"
        return "auto: the CPU has neither amx_bf16 nor avx512_bf16; pass precision='bf16' to force it"
    if kind == "cuda":
        return f"auto: the GPU {'multiplies' if resolved == 'bf16' else 'does not multiply'} bf16 natively"
    return f"auto: fp32 on {kind}"


def cuda_supports_bf16(device: str) -> bool:
    """Whether the CUDA device multiplies bf16 natively (compute capability 8.0 or later), not by emulation."""
    import torch

    if not torch.cuda.is_available():
        return False
    major, _ = torch.cuda.get_device_capability(torch.device(device))
    return major >= _CUDA_BF16_MAJOR


def torch_dtype(precision: str) -> Any:
    """The torch dtype of `"fp32"`, `"bf16"` or `"fp16"`."""
    import torch

    if precision not in _TORCH_DTYPE_NAMES:
        msg = f"precision must be one of {', '.join(map(repr, _TORCH_DTYPE_NAMES))} for torch, got {precision!r}."
        raise ValueError(msg)
    return getattr(torch, _TORCH_DTYPE_NAMES[precision])


def module_precision(module: Any) -> str:
    """The precision of a torch module's floating-point weights (`"fp32"` if it has none or an unusual dtype)."""
    by_name = {name: precision for precision, name in _TORCH_DTYPE_NAMES.items()}
    for parameter in module.parameters():
        if parameter.is_floating_point():
            return by_name.get(str(parameter.dtype).removeprefix("torch."), "fp32")
    return "fp32"


def cast_module(module: Any, precision: str) -> Any:
    """
    Cast a torch module's floating-point weights and buffers to `precision` (`"fp32"`, `"bf16"`, `"fp16"`).

    In bf16 or fp16 a cross-encoder's score head (its last linear layer with one output) stays in float32 and
    gets its input in float32: the logit then varies continuously instead of in bf16's steps (1/128 at 1.0, 1/16
    at 10), which would tie documents whose scores differ; the head is one small matrix, so speed is unchanged.
    The segment-cosine head (`SegmentCosineScore`) keeps its scale and bias in float32 and pools in float32.
    """
    if module_precision(module) != precision:
        module.to(dtype=torch_dtype(precision))
    if precision != "fp32":
        _keep_score_head_in_fp32(module)
    return module


def _keep_score_head_in_fp32(module: Any) -> None:
    import torch

    for layer in module.modules():
        if type(layer).__name__ == "SegmentCosineScore":  # pools in float32 itself; keep its scale and bias exact
            layer.float()
    heads = [layer for layer in module.modules() if isinstance(layer, torch.nn.Linear) and layer.out_features == 1]
    if not heads:
        return
    head: Any = heads[-1].float()  # Any: it gets a marker attribute, which torch's Module type does not declare
    if not getattr(head, "_crossencoder_fp32_input", False):
        head.register_forward_pre_hook(_inputs_to_fp32)
        head._crossencoder_fp32_input = True


def _inputs_to_fp32(_module: Any, inputs: tuple[Any, ...]) -> tuple[Any, ...]:
    return tuple(
        value.float() if getattr(value, "is_floating_point", None) and value.is_floating_point() else value
        for value in inputs
    )


def dtype_in_kwargs(model_kwargs: dict[str, Any] | None) -> bool:
    """Whether the user chose a concrete dtype for loading (`torch_dtype`/`dtype` other than None or "auto")."""
    kwargs = model_kwargs or {}
    return any(kwargs.get(key) not in (None, "auto") for key in ("torch_dtype", "dtype"))


def _raise_fp16_on_cpu() -> None:
    msg = (
        "precision='fp16' runs on a GPU only: a CPU emulates float16 and gets slower, not faster. "
        "On a CPU pass precision='auto' (bf16 where the CPU has AMX or AVX512-BF16), 'bf16' or 'fp32'."
    )
    raise ValueError(msg)

"""Mixed precision for training: bf16 autocast where the hardware multiplies bf16 natively; weights stay fp32."""

from haystack_integrations.components.rankers.crossencoder._engine.precision import cpu_has_fast_bf16, resolve_precision


def training_uses_bf16() -> bool:
    """
    Whether training runs in bf16 autocast: exactly where the ranker's `precision="auto"` would score in bf16.

    That is a CPU with AMX-BF16 or AVX512-BF16, or a CUDA device that multiplies bf16 natively (compute capability
    8.0 and later; older GPUs emulate it, and train in fp32 here). Autocast leaves the weights in fp32, so the saved
    model is fp32 either way.
    """
    import torch

    return resolve_precision("auto", "cuda" if torch.cuda.is_available() else "cpu") == "bf16"


def fast_inference():
    """A context in which CPU inference runs in bf16 autocast where the CPU has AMX / AVX512-BF16 (else a no-op).

    Used for the many encodings training makes to choose among checkpoints; the saved weights stay fp32.
    """
    import torch

    return torch.autocast("cpu", dtype=torch.bfloat16, enabled=not torch.cuda.is_available() and cpu_has_fast_bf16())


def training_attention():
    """
    A context for training steps: on a CPU in bf16 autocast, attention runs on PyTorch's math kernel (else a no-op).

    The CPU flash-attention kernel's backward pass in bf16 took ~12x its forward, more than all the linear layers
    (MiniLM-L6 layers at 128 tokens, batch 32, 2-core Xeon with AMX); the math kernel's (matrix products) about
    half as long. In fp32 and on GPUs the two are close, and PyTorch's choice stays.
    """
    import contextlib

    import torch

    if torch.cuda.is_available() or not training_uses_bf16():
        return contextlib.nullcontext()
    from torch.nn.attention import SDPBackend, sdpa_kernel

    return sdpa_kernel([SDPBackend.MATH])

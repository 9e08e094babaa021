"""Mixed precision for training: bf16 autocast where the hardware multiplies bf16 natively; weights stay fp32."""

from haystack_integrations.components.rankers.crossencoder.precision import cpu_has_fast_bf16


def training_uses_bf16() -> bool:
    """bf16 autocast on a CUDA device that supports it, or on a CPU with AMX / AVX512-BF16; else fp32."""
    import torch

    if torch.cuda.is_available():
        return bool(torch.cuda.is_bf16_supported())
    return cpu_has_fast_bf16()


def fast_inference():
    """A context in which CPU inference runs in bf16 autocast where the CPU has AMX / AVX512-BF16 (else a no-op).

    Used for the many encodings training makes to choose among checkpoints; the saved weights stay fp32.
    """
    import torch

    return torch.autocast("cpu", dtype=torch.bfloat16, enabled=not torch.cuda.is_available() and cpu_has_fast_bf16())

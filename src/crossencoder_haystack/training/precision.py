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

"""Training precision: `rerank train` runs in bf16 autocast exactly where `precision="auto"` would, saves fp32."""

import json

import pytest

from crossencoder_haystack.training import train
from crossencoder_haystack.training.precision import training_uses_bf16
from haystack_integrations.components.rankers.crossencoder._engine import precision as precision_module

AVX2_ONLY = frozenset({"sse4_2", "avx", "avx2", "fma"})  # e.g. AMD EPYC (Zen 2/3)
AMX = frozenset({"avx2", "avx512f", "amx_tile", "amx_bf16", "amx_int8"})  # Intel Sapphire Rapids and later
AVX512_BF16 = frozenset({"avx2", "avx512f", "avx512_bf16"})  # e.g. AMD Zen 4

FAST = {"learning_rate": 3e-3, "head_learning_rate": 3e-3, "max_length": 16, "show_progress": False}


def _pretend(monkeypatch, flags: frozenset[str], cuda: bool = False, cuda_bf16: bool = False) -> None:
    import torch

    monkeypatch.setattr(precision_module, "cpu_flags", lambda: flags)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: cuda)
    monkeypatch.setattr(precision_module, "cuda_supports_bf16", lambda device: cuda_bf16)


@pytest.mark.parametrize(
    ("flags", "cuda", "cuda_bf16", "expected"),
    [
        (AMX, False, False, True),
        (AVX512_BF16, False, False, True),
        (AVX2_ONLY, False, False, False),
        (frozenset(), False, False, False),  # flags unknown (not Linux): nothing assumed
        (AVX2_ONLY, True, True, True),  # Ampere and later
        (AMX, True, False, False),  # a GPU that only emulates bf16 trains in fp32, whatever the CPU
    ],
)
def test_training_uses_bf16_where_auto_scores_in_bf16(monkeypatch, flags, cuda, cuda_bf16, expected):
    _pretend(monkeypatch, flags, cuda, cuda_bf16)
    assert training_uses_bf16() is expected
    device = "cuda" if cuda else "cpu"
    assert (precision_module.resolve_precision("auto", device) == "bf16") is expected


@pytest.fixture(scope="module")
def toy_pairs(tmp_path_factory):
    """Fruit documents are relevant, vehicles are not: 24 queries, one positive and two negatives each."""
    path = tmp_path_factory.mktemp("toy") / "pairs.jsonl"
    rows = []
    for index in range(24):
        query = f"which food is good {index}"
        rows.append({"query": query, "document": "apple pear plum", "label": 1})
        rows.extend({"query": query, "document": text, "label": 0} for text in ("car bus van", "boat tram ship"))
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return path


def _train_recording(tmp_path, toy_pairs, base_model):
    """Train 2 steps; return (the training arguments' bf16, autocast state seen by each forward pass, output dir)."""
    import torch
    from transformers import TrainerCallback

    seen: dict = {"forward": []}

    def record_autocast(_module, _inputs):
        if torch.is_grad_enabled():  # training forwards, not the evaluator's
            dtype = torch.get_autocast_dtype("cpu") if torch.is_autocast_enabled("cpu") else None
            seen["forward"].append(dtype)

    class Record(TrainerCallback):
        def on_train_begin(self, args, state, control, model=None, **kwargs):
            seen["bf16"] = args.bf16
            # an inner layer: accelerate puts autocast around the model's forward, after the model's own hooks
            next(m for m in model.modules() if isinstance(m, torch.nn.Linear)).register_forward_pre_hook(
                record_autocast
            )

    output = tmp_path / "model"
    train(
        toy_pairs,
        output,
        eval_fraction=0,
        base_model=base_model,
        max_steps=2,
        batch_size=8,
        callbacks=[Record()],
        **FAST,
    )
    return seen["bf16"], seen["forward"], output


def _saved_dtypes(directory) -> set[str]:
    from safetensors import safe_open

    files = list(directory.rglob("*.safetensors"))
    assert files, f"no weights saved in {directory}"
    dtypes = set()
    for path in files:
        with safe_open(str(path), framework="pt") as weights:
            dtypes |= {str(weights.get_slice(name).get_dtype()) for name in weights.keys()}
    return dtypes


def test_a_cross_encoder_trains_in_bf16_autocast_on_an_amx_cpu_and_saves_fp32(
    monkeypatch, tmp_path, toy_pairs, tiny_model_path
):
    import torch

    _pretend(monkeypatch, AMX)
    bf16, forwards, output = _train_recording(tmp_path, toy_pairs, tiny_model_path)
    assert bf16 is True
    assert forwards and all(dtype == torch.bfloat16 for dtype in forwards)
    assert _saved_dtypes(output) == {"F32"}


def test_a_cross_encoder_trains_in_fp32_on_an_avx2_only_cpu(monkeypatch, tmp_path, toy_pairs, tiny_model_path):
    _pretend(monkeypatch, AVX2_ONLY)
    bf16, forwards, output = _train_recording(tmp_path, toy_pairs, tiny_model_path)
    assert bf16 is False
    assert forwards and all(dtype is None for dtype in forwards)
    assert _saved_dtypes(output) == {"F32"}

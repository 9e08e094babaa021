"""Shared fixtures: tiny models built once per session, so tests need neither the hub nor much CPU."""

import os
from pathlib import Path

import pytest

# Loopback fakes of the cloud APIs (Azure AI Inference, Azure OpenAI, Cohere) as fixtures for every test module.
# And a check that every test loading the real MiniLM weights is marked `integration` (tests/weight_loads.py).
pytest_plugins = ["tests.cloud_fixtures", "tests.weight_loads"]

# Tests must never reach for the Hugging Face hub.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
# Nor send Haystack usage telemetry (read once, when haystack is first imported: nothing above imports it).
os.environ.setdefault("HAYSTACK_TELEMETRY_ENABLED", "False")


@pytest.fixture(scope="session")
def minilm_path() -> Path:
    """The bundled all-MiniLM-L6-v2 bi-encoder (real weights, ~90 MB)."""
    from crossencoder_haystack.bundled_model import bundled_minilm_path

    return bundled_minilm_path()


@pytest.fixture(scope="session")
def minilm_tokenizer(minilm_path):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(minilm_path))


def build_tiny_cross_encoder(
    directory: Path, tokenizer, seed: int = 0, max_length: int = 128, head_gain: float = 1.0
) -> Path:
    """
    Save a random 2-layer BERT sequence classifier (1 logit) with `tokenizer` as a CrossEncoder directory.

    `head_gain` multiplies the classification head's weights: a random tiny model gives nearly equal logits,
    a gain of ~100 spreads them so that orderings in tests are not decided by float noise.
    """
    import torch
    from sentence_transformers import CrossEncoder
    from transformers import BertConfig, BertForSequenceClassification

    torch.manual_seed(seed)
    config = BertConfig(
        vocab_size=tokenizer.vocab_size,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=512,
        num_labels=1,
    )
    raw = directory / "raw"
    classifier = BertForSequenceClassification(config)
    with torch.no_grad():
        classifier.classifier.weight.mul_(head_gain)
    classifier.save_pretrained(raw)
    tokenizer.save_pretrained(raw)
    model = CrossEncoder(str(raw), local_files_only=True, max_length=max_length)
    model.save(str(directory))
    return directory


@pytest.fixture(scope="session")
def tiny_model_path(tmp_path_factory, minilm_tokenizer) -> Path:
    """A random tiny CrossEncoder (2 layers, hidden 32, MiniLM tokenizer, max_length 128). Scores are arbitrary."""
    return build_tiny_cross_encoder(tmp_path_factory.mktemp("tiny_cross_encoder"), minilm_tokenizer)


@pytest.fixture(scope="session")
def spread_model_path(tmp_path_factory, minilm_tokenizer) -> Path:
    """Like `tiny_model_path` but with logits spread apart (head gain 100), so different texts get clearly
    different scores. The scores still mean nothing: use it for plumbing, ordering and formula tests."""
    return build_tiny_cross_encoder(tmp_path_factory.mktemp("spread_cross_encoder"), minilm_tokenizer, head_gain=100.0)


@pytest.fixture(autouse=True, scope="session")
def _cpu_without_fast_bf16():
    """
    Tests compare exact scores: run as on a CPU without AMX / AVX512-BF16 (`precision="auto"` -> fp32), so the suite
    behaves the same on every x86 machine. tests/test_precision.py covers the bf16 selection with its own flags.
    """
    from haystack_integrations.components.rankers.crossencoder import precision

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(precision, "cpu_flags", lambda: frozenset())
        yield

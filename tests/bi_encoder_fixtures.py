"""A tiny sentence-transformers bi-encoder (Transformer -> mean Pooling -> Normalize), built on the fly for tests."""

from pathlib import Path
from typing import Any


def save_tiny_bi_encoder(root: Path, tokenizer: Any, num_layers: int = 1) -> Path:
    """Save a randomly initialised (seed 0) 32-dimensional bi-encoder under `root / "bi"` and return that path."""
    import torch
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.base.modules import Transformer
    from sentence_transformers.sentence_transformer.modules import Normalize, Pooling
    from transformers import BertConfig, BertModel

    torch.manual_seed(0)
    config = BertConfig(
        vocab_size=tokenizer.vocab_size,
        hidden_size=32,
        num_hidden_layers=num_layers,
        num_attention_heads=2,
        intermediate_size=64,
    )
    BertModel(config).save_pretrained(root / "raw")
    tokenizer.save_pretrained(root / "raw")
    modules = [Transformer(str(root / "raw"), max_seq_length=64), Pooling(32, "mean"), Normalize()]
    SentenceTransformer(modules=modules).save(str(root / "bi"))
    return root / "bi"

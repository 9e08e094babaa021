"""The model side of the ranker: (query, texts) -> raw logits, thread-safe, for every backend.

The component only deals with documents; everything about running the model (backend, batching, threads)
lives here behind one small interface, `PairScorer`.
"""

import threading
from collections.abc import Sequence
from typing import Any, Protocol

import numpy as np

from haystack_integrations.components.rankers.crossencoder.activations import activation_from_torch_module
from haystack_integrations.components.rankers.crossencoder.model_loading import load_cross_encoder


class PairScorer(Protocol):
    """What the ranker needs from a loaded model."""

    tokenizer: Any
    max_length: int
    declared_activation: str | None  # the activation the model's configuration declares, if any

    def logits(self, query: str, texts: Sequence[str], show_progress_bar: bool = False) -> np.ndarray:
        """Raw logits, one per text, in the order of `texts`."""
        ...


class TorchPairScorer:
    """
    Scores (query, text) pairs with a sentence-transformers `CrossEncoder` on torch and returns raw logits.

    Calls are serialized with a lock: Hugging Face fast tokenizers raise "Already borrowed" when one
    tokenizer is used from several threads at once, and on a CPU the model already uses every core.
    """

    def __init__(self, cross_encoder: Any, batch_size: int) -> None:
        if cross_encoder.num_labels != 1:
            msg = (
                f"The model has {cross_encoder.num_labels} outputs per pair; a reranker needs a cross-encoder "
                "with exactly one relevance logit (num_labels=1)."
            )
            raise ValueError(msg)
        self.cross_encoder = cross_encoder
        self.batch_size = batch_size
        self.tokenizer = cross_encoder.tokenizer
        self.max_length = int(cross_encoder.max_seq_length)
        self.declared_activation = activation_from_torch_module(cross_encoder.activation_fn)
        self._lock = threading.Lock()

    def logits(self, query: str, texts: Sequence[str], show_progress_bar: bool = False) -> np.ndarray:
        """Raw logits, one per text, in the order of `texts`."""
        if not texts:
            return np.zeros(0, dtype=np.float32)
        from torch.nn import Identity

        pairs = [(query, text) for text in texts]
        with self._lock:
            scores = self.cross_encoder.predict(
                pairs,
                batch_size=self.batch_size,
                activation_fn=Identity(),
                show_progress_bar=show_progress_bar,
                convert_to_numpy=True,
            )
        return np.asarray(scores, dtype=np.float32).reshape(len(texts))


def load_pair_scorer(
    model: str,
    *,
    backend: str,
    device: str,
    batch_size: int,
    max_length: int | None,
    token: str | None,
    trust_remote_code: bool,
    model_kwargs: dict[str, Any] | None,
    tokenizer_kwargs: dict[str, Any] | None,
    config_kwargs: dict[str, Any] | None,
    max_tokens_per_batch: int | None = None,
    cache_size: int = 0,
    num_threads: int | None = None,
) -> PairScorer:
    """Load `model` for `backend` and return a scorer. Raises `ModelNotAvailableError` if it cannot be had."""
    if backend != "torch":
        msg = f"backend={backend!r} is not available yet; use backend='torch'."
        raise ValueError(msg)
    cross_encoder = load_cross_encoder(
        model,
        device=device,
        token=token,
        trust_remote_code=trust_remote_code,
        model_kwargs=model_kwargs,
        processor_kwargs=tokenizer_kwargs,
        config_kwargs=config_kwargs,
        max_length=max_length,
    )
    return TorchPairScorer(cross_encoder, batch_size=batch_size)

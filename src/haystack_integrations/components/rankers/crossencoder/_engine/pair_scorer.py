"""What the ranker needs from a loaded model (`PairScorer`), and the base every scorer shares."""

from collections.abc import Sequence
from typing import Any, Protocol

import numpy as np


class PairScorer(Protocol):
    """What the ranker needs from a loaded model."""

    tokenizer: Any
    max_length: int
    declared_activation: str | None  # the activation the model's configuration declares, if any

    def logits(self, query: str, texts: Sequence[str], show_progress_bar: bool = False) -> np.ndarray:
        """Raw logits, one per text, in the order of `texts`."""
        ...

    def logits_many(
        self, requests: Sequence[tuple[str, Sequence[str]]], show_progress_bar: bool = False
    ) -> list[np.ndarray]:
        """Raw logits for several (query, texts) requests scored in shared batches; one array per request."""
        ...


class ManyRequestScorer:
    """A scorer whose one request is a batch of one: subclasses implement `logits_many`."""

    def logits(self, query: str, texts: Sequence[str], show_progress_bar: bool = False) -> np.ndarray:
        """Raw logits (a bi-encoder's: cosines), one per text, in the order of `texts`."""
        return self.logits_many([(query, texts)], show_progress_bar=show_progress_bar)[0]

    def logits_many(
        self, requests: Sequence[tuple[str, Sequence[str]]], show_progress_bar: bool = False
    ) -> list[np.ndarray]:
        """Raw logits for several (query, texts) requests; one array per request, in the order of its texts."""
        raise NotImplementedError

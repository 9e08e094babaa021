"""Batches of encoded pairs sorted by token length, by count or by a token budget, padded per batch.

On a CPU every padding token costs as much as a real one. Sorting pairs by length before batching keeps each
batch's padding small; a token budget (`max_tokens_per_batch`, padding included) additionally lets short pairs go
in large batches and long ones in small, so the memory and the time per batch stay even.
"""

from collections.abc import Callable, Iterator, Sequence
from typing import Any

import numpy as np

from haystack_integrations.components.rankers.crossencoder._engine.pair_encoding import EncodedPair
from haystack_integrations.components.rankers.crossencoder._engine.streams import BatchStreams, balanced_batch_size


def plan_batches(lengths: Sequence[int], batch_size: int, max_tokens_per_batch: int | None = None) -> list[list[int]]:
    """
    Group pair indices into batches, longest pairs first.

    :param lengths: The token length of each pair.
    :param batch_size: The number of pairs per batch when there is no token budget.
    :param max_tokens_per_batch: If set, a batch holds as many pairs as fit
        `pairs_in_batch * longest_pair_in_batch <= max_tokens_per_batch` (at least one pair), and `batch_size` is
        not used.
    :returns: Lists of indices into `lengths`; every index appears exactly once.
    """
    # A stable sort keeps equal-length pairs in input order, so results do not depend on ties.
    order = sorted(range(len(lengths)), key=lambda i: -lengths[i])
    if max_tokens_per_batch is None:
        return [order[start : start + batch_size] for start in range(0, len(order), batch_size)]
    batches: list[list[int]] = []
    current: list[int] = []
    for index in order:
        # Sorted longest first, so the first pair of a batch sets its padded length.
        longest = lengths[current[0]] if current else lengths[index]
        if current and (len(current) + 1) * longest > max_tokens_per_batch:
            batches.append(current)
            current = []
        current.append(index)
    if current:
        batches.append(current)
    return batches


def pad_batch(pairs: Sequence[EncodedPair], pad_token_id: int) -> dict[str, np.ndarray]:
    """Right-pad pairs to the longest one: `input_ids`, `attention_mask`, `token_type_ids` as int64 arrays."""
    width = max(len(pair.input_ids) for pair in pairs)
    input_ids = np.full((len(pairs), width), pad_token_id, dtype=np.int64)
    attention_mask = np.zeros((len(pairs), width), dtype=np.int64)
    token_type_ids = np.zeros((len(pairs), width), dtype=np.int64)
    for row, pair in enumerate(pairs):
        n = len(pair.input_ids)
        input_ids[row, :n] = pair.input_ids
        attention_mask[row, :n] = 1
        token_type_ids[row, :n] = pair.token_type_ids
    return {"input_ids": input_ids, "attention_mask": attention_mask, "token_type_ids": token_type_ids}


class BatchedForward:
    """
    A backend's forward pass run over encoded inputs the way every scorer runs it: sorted by length, batched by
    count or by a token budget, padded per batch. The base of the cross-encoder scorer and the exported bi-encoder.

    :param forward: The backend's forward pass: padded `input_ids`, `attention_mask`, `token_type_ids` in, one
        output row per input out.
    :param tokenizer: The model's Hugging Face tokenizer (its `pad_token_id` pads; 0 when it declares none).
    :param max_tokens_per_batch: A token budget per batch (padding included); overrides the batch size.

    `streams` (set after loading, see `streams.py`) runs several batches at once; fixed-size batches are then cut
    evenly (at most the batch size each) so that every stream gets the same number of pairs.
    """

    def __init__(
        self, forward: Callable[[dict[str, np.ndarray]], np.ndarray], tokenizer: Any, max_tokens_per_batch: int | None
    ) -> None:
        self.forward = forward
        self.tokenizer = tokenizer
        self.max_tokens_per_batch = max_tokens_per_batch
        self.pad_token_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
        self.streams = BatchStreams(1, 1)

    def forward_batches(
        self, inputs: Sequence[EncodedPair], batch_size: int, *, desc: str, show_progress_bar: bool
    ) -> Iterator[tuple[list[int], np.ndarray]]:
        """Each batch's indices into `inputs` and the forward pass's output for them, longest inputs first."""
        from tqdm.auto import tqdm

        batch_size = balanced_batch_size(len(inputs), batch_size, self.streams.streams)
        batches = plan_batches([len(item.input_ids) for item in inputs], batch_size, self.max_tokens_per_batch)
        outputs = self.streams.map(
            lambda batch: self.forward(pad_batch([inputs[i] for i in batch], self.pad_token_id)), batches
        )
        yield from tqdm(
            zip(batches, outputs, strict=True),
            desc=desc,
            unit="batch",
            total=len(batches),
            disable=not show_progress_bar,
        )

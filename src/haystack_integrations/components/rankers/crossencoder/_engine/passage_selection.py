"""Query-aware truncation: which `keep` tokens of a long text the model sees, when it cannot see them all.

Plain truncation keeps a text's first tokens. `select_passage` keeps the first `lead` tokens (the title and
opening, usually the most informative) and then the window of the rest that holds the most query tokens,
weighted by how rare each token is among the request's candidates (an IDF over the candidates: tokens every
candidate has, such as "the" or ",", weigh nothing). With no query token in the rest, it keeps the first
tokens, i.e. it falls back to plain truncation. This lets a shorter `max_length` (less compute) keep the
evidence of long documents in view.
"""

import math
from collections import Counter
from collections.abc import Sequence

import numpy as np

WINDOW_STRIDE = 8


def query_token_weights(query_ids: Sequence[int], text_ids: Sequence[Sequence[int]]) -> dict[int, float]:
    """IDF of each query token over the candidate texts, log(n / df); tokens in every text (or none) are left out."""
    terms = set(query_ids)
    document_frequency: Counter[int] = Counter()
    for ids in text_ids:
        document_frequency.update(terms.intersection(ids))
    n = len(text_ids)
    return {term: math.log(n / df) for term, df in document_frequency.items() if df < n}


def select_passage(ids: Sequence[int], keep: int, weights: dict[int, float], lead: int) -> list[int]:
    """`keep` tokens of `ids`: the first `lead` of them, then the best-matching window of the rest."""
    if len(ids) <= keep:
        return list(ids)
    lead = min(lead, keep)
    rest, width = ids[lead:], keep - lead
    if width == 0 or not weights:
        return list(ids[:keep])
    gains = np.fromiter((weights.get(token, 0.0) for token in rest), dtype=np.float64, count=len(rest))
    totals = np.concatenate(([0.0], np.cumsum(gains)))
    starts = np.arange(0, len(rest) - width + 1, WINDOW_STRIDE)
    if starts[-1] != len(rest) - width:
        starts = np.append(starts, len(rest) - width)
    window = totals[starts + width] - totals[starts]
    best = int(starts[int(np.argmax(window))])  # the first of equal windows: no match keeps plain truncation
    return [*ids[:lead], *rest[best : best + width]]

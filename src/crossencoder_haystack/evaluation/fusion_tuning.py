"""Fusing rerank scores with first-stage scores, as evaluation rows and to tune the first stage's weight α.

The arithmetic is `fuse_scores` from `haystack_integrations.components.rankers.crossencoder.fusion`
(`(1 - α) * norm(rerank) + α * norm(first stage)` per query), the same function `CrossEncoderRanker` fuses with,
so a weight tuned here means the same in the ranker. A fused ranking sorts by fused score and breaks ties by
first-stage rank, like the ranker. Documents the ranker dropped (score None) stay out; documents it returned
without a score (-inf) come last, in first-stage order.

`tune_fusion_weight(...)` picks α on held-out queries from scores computed once: no model runs.
"""

import math
from collections.abc import Mapping, Sequence

from crossencoder_haystack.evaluation.metrics import evaluate_rankings

DEFAULT_WEIGHTS: tuple[float, ...] = tuple(round(step / 10, 1) for step in range(11))
"""0, 0.1, ..., 1."""


def validated_weights(weights: Sequence[float], parameter: str = "weights") -> list[float]:
    """
    The weights as floats in [0, 1], sorted and without repeats.

    :param weights: The first stage's shares to try.
    :param parameter: The name to put in error messages.
    :raises ValueError: If `weights` is empty or holds a value that is not a number in [0, 1].
    """
    from haystack_integrations.components.rankers.crossencoder.fusion import validate_first_stage_weight

    if isinstance(weights, (int, float)):
        weights = [weights]
    if not weights:
        msg = f"{parameter} must hold at least one weight in [0, 1], e.g. [0, 0.1, 0.2, 0.3]."
        raise ValueError(msg)
    return sorted({validate_first_stage_weight(weight, parameter) for weight in weights})


def validated_method(method: str, parameter: str = "method") -> str:
    """`method` if it is one of `minmax`, `zscore` or `rrf`; else a ValueError naming `parameter`."""
    from haystack_integrations.components.rankers.crossencoder.fusion import validate_fusion

    return validate_fusion(method, parameter)


def fused_ranking(
    candidates: Sequence[str],
    rerank_scores: Mapping[str, float | None],
    first_stage_scores: Mapping[str, float | None],
    weight: float,
    method: str = "minmax",
) -> list[tuple[str, float]]:
    """
    One query's ranking by fused score.

    :param candidates: The document ids the ranker reordered, in first-stage order (best first).
    :param rerank_scores: Document id -> rerank score; None (or absent) = dropped by the ranker, -inf = returned
        without a score.
    :param first_stage_scores: Document id -> first-stage score (None or absent = unknown, counted as the worst).
    :param weight: The first stage's share α in [0, 1]; 0 gives the ranker's own ranking and scores.
    :param method: `minmax`, `zscore` or `rrf`.
    :returns: [(document id, fused score), ...], best first.
    """
    from haystack_integrations.components.rankers.crossencoder.fusion import fuse_scores

    kept = [
        (rank, doc_id, score)
        for rank, doc_id in enumerate(candidates)
        if (score := rerank_scores.get(doc_id)) is not None
    ]
    scored = [(rank, doc_id, float(score)) for rank, doc_id, score in kept if math.isfinite(score)]
    unscored = [(doc_id, float(score)) for _, doc_id, score in kept if not math.isfinite(score)]
    fused = fuse_scores(
        [score for _, _, score in scored],
        [first_stage_scores.get(doc_id) for _, doc_id, _ in scored],
        weight,
        method,
    )
    ranked = sorted(zip(fused, scored, strict=True), key=lambda item: (-item[0], item[1][0]))
    return [(doc_id, value) for value, (_, doc_id, _) in ranked] + unscored


def _first_stage_order(rerank: Mapping[str, float], first_stage: Mapping[str, float | None]) -> list[str]:
    """The query's documents by first-stage score, best first; documents without one after, in `rerank` order."""
    positions = {doc_id: position for position, doc_id in enumerate(rerank)}

    def key(doc_id: str) -> tuple[bool, float, int]:
        score = first_stage.get(doc_id)
        if score is None or not math.isfinite(score):
            return (True, 0.0, positions[doc_id])
        return (False, -score, positions[doc_id])

    return sorted(rerank, key=key)


def tune_fusion_weight(
    rerank: Mapping[str, Mapping[str, float]],
    first_stage: Mapping[str, Mapping[str, float | None]],
    qrels: Mapping[str, Mapping[str, int]],
    weights: Sequence[float] = DEFAULT_WEIGHTS,
    method: str = "minmax",
    metric: str = "ndcg@10",
) -> tuple[float, dict[float, float]]:
    """
    Pick the first stage's weight α that maximizes `metric` over held-out queries, from precomputed scores.

    Usage example:

    ```python
    from crossencoder_haystack.evaluation.fusion_tuning import tune_fusion_weight

    best, per_weight = tune_fusion_weight(
        rerank={"q1": {"d1": 2.3, "d2": -0.4}},
        first_stage={"q1": {"d1": 11.2, "d2": 14.8}},
        qrels={"q1": {"d1": 1}},
    )
    ```

    :param rerank: Query id -> {document id: rerank score} over each query's candidates (a score of None drops the
        document, -inf ranks it last).
    :param first_stage: Query id -> {document id: first-stage score, e.g. BM25}; a document without one counts as
        the worst retrieved. Its order (score, then the order of `rerank`) breaks ties between fused scores.
    :param qrels: Query id -> {document id: grade}. The queries tuned on are those in `rerank` with at least one
        relevant (grade > 0) judgement.
    :param weights: The α values to try, each in [0, 1] (0 = rerank scores only, 1 = first-stage order only).
    :param method: The normalisation before fusing: `minmax`, `zscore` or `rrf`.
    :param metric: A ranx metric name, e.g. `ndcg@10`, `mrr@10`, `map@100`, `recall@20`.
    :returns: (the best weight, ties going to the smaller weight; {weight: mean metric} in ascending weight order).
    :raises ValueError: If no query of `rerank` has a relevant judgement, or a weight or `method` is invalid.
    """
    weights = validated_weights(weights)
    method = validated_method(method)
    query_ids = [query_id for query_id in rerank if any(grade > 0 for grade in qrels.get(query_id, {}).values())]
    if not query_ids:
        msg = (
            "tune_fusion_weight needs queries that are both in `rerank` and judged relevant somewhere in `qrels` "
            f"(grade > 0); none of the {len(rerank)} queries in `rerank` is. Check that the query ids match."
        )
        raise ValueError(msg)
    judgements = {query_id: dict(qrels[query_id]) for query_id in query_ids}
    orders = {query_id: _first_stage_order(rerank[query_id], first_stage.get(query_id, {})) for query_id in query_ids}
    per_weight: dict[float, float] = {}
    for weight in weights:
        rankings = {
            query_id: [
                doc_id
                for doc_id, _ in fused_ranking(
                    orders[query_id], rerank[query_id], first_stage.get(query_id, {}), weight, method
                )
            ]
            for query_id in query_ids
        }
        per_weight[weight] = evaluate_rankings(judgements, query_ids, rankings, [metric])[metric]
    best = max(per_weight.values())
    return next(weight for weight, value in per_weight.items() if value == best), per_weight

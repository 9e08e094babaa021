"""Tuning the reranker's fusion with the first stage on held-out training queries, at the end of `rerank train`.

`rerank mine` saves each query's first-stage candidates and scores next to the rows it writes
(`mining.first_stage_path`). For the held-out queries, `train` reranks those candidates with the trained model,
fuses its scores with the first stage's (`CrossEncoderRanker`'s own `fuse_scores`, min-max) at every weight from
0 to 1 and keeps the best by nDCG@10 (ties go to the smaller weight). The weight is written into the model
directory, so `CrossEncoderRanker(model=DIR)` uses it by default; training queries only, never test queries.
"""

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

MAX_TUNING_QUERIES = 20
TUNING_METHOD = "minmax"


@dataclass
class FusionTuning:
    """The weight kept, the first stage it was tuned against, and nDCG@10 per weight."""

    weight: float
    first_stage: str
    queries: int
    per_weight: dict[float, float] = field(default_factory=dict)


def tune_first_stage_weight(
    data_source: str,
    samples: Sequence[dict[str, Any]],
    score: Callable[[str, list[str]], list[float]],
    max_queries: int = MAX_TUNING_QUERIES,
) -> FusionTuning | None:
    """
    Tune the first stage's weight on held-out `samples` (`{"query", "positive", "negative"}`).

    :param data_source: The training data's path; its first-stage file from `rerank mine` is read from beside it.
    :param samples: The held-out queries with their positive texts.
    :param score: The model's scores for one query's texts.
    :param max_queries: Tune on at most this many held-out queries that the first stage file knows.
    :returns: The tuning, or None when there is no first-stage file or no held-out query in it.
    """
    from crossencoder_haystack.evaluation.fusion_tuning import tune_fusion_weight
    from crossencoder_haystack.training.mining import first_stage_path

    path = first_stage_path(data_source)
    if not path.is_file():
        return None
    saved = json.loads(path.read_text(encoding="utf-8"))
    runs, documents = saved["runs"], saved["documents"]
    rerank, first_stage, qrels = {}, {}, {}
    for number, sample in enumerate(sample for sample in samples if sample["query"] in runs):
        if number >= max_queries:
            break
        query_id = f"q{number}"
        run = runs[sample["query"]]
        doc_ids = list(run)
        scores = score(sample["query"], [documents[doc_id] for doc_id in doc_ids])
        rerank[query_id] = dict(zip(doc_ids, scores, strict=True))
        first_stage[query_id] = run
        positives = set(sample["positive"])
        qrels[query_id] = {doc_id: 1 for doc_id in doc_ids if documents[doc_id] in positives}
    if not any(any(grades.values()) for grades in qrels.values()):
        return None
    weight, per_weight = tune_fusion_weight(rerank, first_stage, qrels, method=TUNING_METHOD)
    return FusionTuning(weight, saved.get("first_stage", "bm25"), len(rerank), per_weight)


def bi_encoder_scores(model: Any) -> Callable[[str, list[str]], list[float]]:
    """A `SentenceTransformer`'s cosine scores for one query's texts; each distinct text is encoded once."""
    from crossencoder_haystack.training.bi_encoder import encode_normalized

    cache: dict[str, Any] = {}

    def score(query: str, texts: list[str]) -> list[float]:
        missing = [text for text in dict.fromkeys(texts) if text not in cache]
        if missing:
            cache.update(zip(missing, encode_normalized(model, missing), strict=True))
        query_embedding = encode_normalized(model, [query])[0]
        return [float(cache[text] @ query_embedding) for text in texts]

    return score


def save_fusion(output_dir: Path, tuning: FusionTuning) -> None:
    """Declare the tuned weight in the model directory (read by `CrossEncoderRanker`)."""
    from haystack_integrations.components.rankers.crossencoder.fusion import write_fusion_defaults

    write_fusion_defaults(output_dir, tuning.weight, TUNING_METHOD)

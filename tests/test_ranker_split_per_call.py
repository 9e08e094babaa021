"""`split_long_documents` per call: one splitting ranker truncates a call on request, as a truncating ranker does."""

import asyncio
import sys
from typing import Any

import pytest
from haystack import Document

from haystack_integrations.components.rankers.crossencoder import CrossEncoderRanker

# Single-token words of the MiniLM vocabulary: a text of 400 of them is far over the tiny model's 128 tokens.
WORDS = ["paris", "berlin", "london", "river", "city", "house", "water", "music", "green", "table"]
LONG_TEXT = " ".join(WORDS[(i * 7) % len(WORDS)] for i in range(400)) + "."
TEXTS = ["Berlin is the capital of Germany.", LONG_TEXT, "music " * 150 + "berlin", "The river Spree."]
QUERIES = ["capital of Germany", "music in berlin"]


def _ranker(model: Any, split: bool) -> CrossEncoderRanker:
    ranker = CrossEncoderRanker(
        model=str(model), token=None, activation="sigmoid", aggregation="max", split_long_documents=split
    )
    ranker.warm_up()
    return ranker


def _documents() -> list[Document]:
    return [Document(id=str(i), content=text) for i, text in enumerate(TEXTS)]


def _scores(documents: list[Document]) -> list[tuple[str, float]]:
    return [(document.id, document.score) for document in documents]


@pytest.fixture(scope="module")
def rankers(spread_model_path) -> tuple[CrossEncoderRanker, CrossEncoderRanker]:
    return _ranker(spread_model_path, split=True), _ranker(spread_model_path, split=False)


def test_a_call_with_split_false_equals_a_truncating_ranker(rankers):
    splitting, truncating = rankers
    truncated = splitting.run(query=QUERIES[0], documents=_documents(), top_k=9, split_long_documents=False)
    split = splitting.run(query=QUERIES[0], documents=_documents(), top_k=9)

    assert _scores(truncated["documents"]) == _scores(
        truncating.run(query=QUERIES[0], documents=_documents())["documents"]
    )
    assert _scores(split["documents"]) == _scores(
        splitting.run(query=QUERIES[0], documents=_documents(), split_long_documents=True)["documents"]
    )
    assert _scores(truncated["documents"]) != _scores(split["documents"])  # the long texts score differently
    assert "best_passage_start" in {key for d in split["documents"] for key in d.meta}
    assert not {key for d in truncated["documents"] for key in d.meta} & {"best_passage_start", "passage_count"}


def test_run_batch_and_run_async_take_the_option_too(rankers):
    splitting, truncating = rankers
    batch = splitting.run_batch(queries=QUERIES, documents=[_documents(), _documents()], split_long_documents=False)
    expected = truncating.run_batch(queries=QUERIES, documents=[_documents(), _documents()])
    asynchronous = asyncio.run(
        splitting.run_async(query=QUERIES[1], documents=_documents(), split_long_documents=False)
    )

    assert [_scores(docs) for docs in batch["documents"]] == [_scores(docs) for docs in expected["documents"]]
    assert _scores(asynchronous["documents"]) == _scores(expected["documents"][1])


def test_the_model_loads_once_for_split_and_truncated_calls(spread_model_path, monkeypatch):
    module = sys.modules[CrossEncoderRanker.__module__]
    loads = []
    load = module.load_pair_scorer

    def counting_load(*args: Any, **kwargs: Any) -> Any:
        loads.append(args)
        return load(*args, **kwargs)

    monkeypatch.setattr(module, "load_pair_scorer", counting_load)
    ranker = CrossEncoderRanker(model=str(spread_model_path), token=None, split_long_documents=True)
    ranker.run(query=QUERIES[0], documents=_documents())
    ranker.run(query=QUERIES[0], documents=_documents(), split_long_documents=False)
    ranker.run_batch(queries=QUERIES, documents=[_documents(), _documents()], split_long_documents=False)

    assert len(loads) == 1


@pytest.mark.parametrize("value", [1, "false", 0.0])
def test_a_value_other_than_none_or_a_bool_is_refused(rankers, value):
    with pytest.raises(ValueError, match="split_long_documents must be None, False or True"):
        rankers[0].run(query="q", documents=_documents(), split_long_documents=value)


def test_split_true_in_a_call_of_a_ranker_that_does_not_split_equals_a_splitting_ranker(rankers):
    splitting, truncating = rankers
    split = truncating.run(query=QUERIES[0], documents=_documents(), top_k=9, split_long_documents=True)

    assert _scores(split["documents"]) == _scores(
        splitting.run(query=QUERIES[0], documents=_documents(), top_k=9)["documents"]
    )
    assert _scores(truncating.run(query=QUERIES[0], documents=_documents(), top_k=9)["documents"]) != _scores(
        split["documents"]
    )

"""Passage-level reranking: aggregation of passage scores to parent documents, in both passage modes."""

import pytest
from haystack import Document, Pipeline
from haystack.components.retrievers.in_memory import InMemoryBM25Retriever
from haystack.document_stores.in_memory import InMemoryDocumentStore

from haystack_integrations.components.preprocessors.crossencoder import PassageSplitter
from haystack_integrations.components.rankers.crossencoder import CrossEncoderRanker, aggregate_scores

LONG_TEXT = " ".join(
    f"Sentence number {i} talks about {'communication and stakeholder workshops' if i % 7 == 3 else 'other things'}."
    for i in range(60)
)


@pytest.mark.parametrize(
    ("aggregation", "expected"),
    [
        ("max", 0.9),
        ("mean", (0.2 + 0.9 + 0.4 + 0.5) / 4),
        ("first", 0.2),
        ("sum", 2.0),
        ("top2_mean", (0.9 + 0.5) / 2),
        ("top3_mean", (0.9 + 0.5 + 0.4) / 3),
        ("top10_mean", 0.5),
    ],
)
def test_aggregate_scores_with_known_scores(aggregation, expected):
    assert aggregate_scores([0.2, 0.9, 0.4, 0.5], aggregation) == pytest.approx(expected)


@pytest.mark.parametrize("bad", ["median", "top0_mean", "topx_mean", ""])
def test_unknown_aggregation_is_rejected(spread_model_path, bad):
    with pytest.raises(ValueError, match="aggregation"):
        CrossEncoderRanker(model=str(spread_model_path), aggregation=bad)


def _passages(parent: Document, bounds: list[tuple[int, int]]) -> list[Document]:
    return [
        Document(
            content=parent.content[start:end],
            score=parent.score,
            meta={
                **parent.meta,
                "source_id": parent.id,
                "passage_index": i,
                "passage_count": len(bounds),
                "split_idx_start": start,
                "split_idx_end": end,
            },
        )
        for i, (start, end) in enumerate(bounds)
    ]


PARENT_A = Document(content="Alpha one. Alpha two is longer. Alpha three.", score=0.8, meta={"name": "A"})
PARENT_B = Document(content="Beta first part. Beta second part here.", score=0.6, meta={"name": "B"})
# Like PassageSplitter's, the passages tile the parent (whitespace stays with the passage before it).
PASSAGES = _passages(PARENT_A, [(0, 11), (6, 32), (32, 44)]) + _passages(PARENT_B, [(0, 17), (17, 39)])


@pytest.mark.parametrize("aggregation", ["max", "mean", "first", "sum", "top2_mean"])
def test_passages_are_aggregated_to_their_parents(spread_model_path, aggregation):
    by_passage = CrossEncoderRanker(model=str(spread_model_path), return_passages=True, top_k=100)
    passage_scores = {d.id: d.score for d in by_passage.run(query="alpha", documents=PASSAGES)["documents"]}
    ranker = CrossEncoderRanker(model=str(spread_model_path), aggregation=aggregation)
    parents = ranker.run(query="alpha", documents=PASSAGES)["documents"]

    assert sorted(d.id for d in parents) == sorted([PARENT_A.id, PARENT_B.id])
    for parent, original in ((p, PARENT_A if p.id == PARENT_A.id else PARENT_B) for p in parents):
        own = [p for p in PASSAGES if p.meta["source_id"] == original.id]
        scores = [passage_scores[p.id] for p in own]
        assert parent.score == pytest.approx(aggregate_scores(scores, aggregation))
        assert parent.content == original.content, "the full parent is rebuilt from the passages' offsets"
        assert parent.meta["content_is_complete"] is True
        assert parent.meta["name"] == original.meta["name"]
        assert "source_id" not in parent.meta and "passage_index" not in parent.meta
        best = max(own, key=lambda p: passage_scores[p.id])
        assert parent.meta["best_passage"] == best.content
        assert parent.meta["best_passage_index"] == best.meta["passage_index"]
        start, end = parent.meta["best_passage_start"], parent.meta["best_passage_end"]
        assert original.content[start:end] == best.content
        assert parent.meta["retrieval_score"] == original.score
    assert parents[0].score >= parents[1].score
    # Ranks count parents in retrieval order, not passages.
    assert {d.id: d.meta["retrieval_rank"] for d in parents} == {PARENT_A.id: 1, PARENT_B.id: 2}


def test_top_k_and_threshold_apply_to_parents(spread_model_path):
    ranker = CrossEncoderRanker(model=str(spread_model_path))
    parents = ranker.run(query="alpha", documents=PASSAGES)["documents"]
    assert len(ranker.run(query="alpha", documents=PASSAGES, top_k=1)["documents"]) == 1
    kept = ranker.run(query="alpha", documents=PASSAGES, score_threshold=parents[0].score)["documents"]
    assert [d.id for d in kept] == [parents[0].id]


def test_return_passages_returns_passages(spread_model_path):
    ranker = CrossEncoderRanker(model=str(spread_model_path), return_passages=True, top_k=100)
    result = ranker.run(query="alpha", documents=PASSAGES)["documents"]
    assert sorted(d.id for d in result) == sorted(d.id for d in PASSAGES)
    assert all("source_id" in d.meta for d in result)


def test_missing_passages_mark_the_parent_incomplete(spread_model_path):
    ranker = CrossEncoderRanker(model=str(spread_model_path))
    parent = ranker.run(query="alpha", documents=[PASSAGES[0], PASSAGES[2]])["documents"][0]
    assert parent.meta["content_is_complete"] is False
    assert PASSAGES[0].content in parent.content and PASSAGES[2].content in parent.content


def test_plain_documents_and_passages_mix(spread_model_path):
    plain = Document(content="A plain short document about alpha.", score=0.99)
    ranker = CrossEncoderRanker(model=str(spread_model_path))
    result = ranker.run(query="alpha", documents=[plain, *PASSAGES])["documents"]
    assert sorted(d.id for d in result) == sorted([plain.id, PARENT_A.id, PARENT_B.id])
    ranks = {d.id: d.meta["retrieval_rank"] for d in result}
    assert ranks == {plain.id: 1, PARENT_A.id: 2, PARENT_B.id: 3}


def test_split_long_documents_scores_by_passages_and_returns_the_whole_document(spread_model_path):
    long_doc = Document(content=LONG_TEXT, score=0.5, meta={"name": "long"})
    short_doc = Document(content="Short document.", score=0.4)
    ranker = CrossEncoderRanker(model=str(spread_model_path), split_long_documents=True, max_length=64)
    result = ranker.run(query="communication", documents=[long_doc, short_doc])["documents"]
    by_id = {d.id: d for d in result}
    long_result = by_id[long_doc.id]
    assert long_result.content == LONG_TEXT
    assert long_result.meta["name"] == "long"
    assert long_result.meta["passages_scored"] > 3
    start, end = long_result.meta["best_passage_start"], long_result.meta["best_passage_end"]
    assert LONG_TEXT[start:end] == long_result.meta["best_passage"]
    assert by_id[short_doc.id].meta["passages_scored"] == 1
    assert long_doc.meta == {"name": "long"}, "the caller's document is not changed"

    truncating = CrossEncoderRanker(model=str(spread_model_path), max_length=64)
    first_passage_only = truncating.run(query="communication", documents=[long_doc])["documents"][0].score
    passage_max = long_result.score
    assert passage_max >= first_passage_only - 1e-6


def test_split_long_documents_with_return_passages(spread_model_path):
    long_doc = Document(content=LONG_TEXT)
    ranker = CrossEncoderRanker(
        model=str(spread_model_path), split_long_documents=True, max_length=64, return_passages=True, top_k=100
    )
    passages = ranker.run(query="communication", documents=[long_doc])["documents"]
    assert len(passages) > 3
    for passage in passages:
        assert passage.meta["source_id"] == long_doc.id
        assert LONG_TEXT[passage.meta["split_idx_start"] : passage.meta["split_idx_end"]] == passage.content


def test_yaml_round_trip_of_retriever_splitter_ranker(spread_model_path):
    store = InMemoryDocumentStore()
    store.write_documents(
        [
            Document(content=LONG_TEXT, meta={"name": "long"}),
            Document(content="Communication skills shown in many workshops.", meta={"name": "short"}),
            Document(content="Nothing relevant here at all.", meta={"name": "other"}),
        ]
    )
    pipeline = Pipeline()
    pipeline.add_component("retriever", InMemoryBM25Retriever(document_store=store, top_k=10))
    pipeline.add_component(
        "splitter",
        PassageSplitter(tokenizer=str(spread_model_path), max_length=64, max_query_tokens=16, overlap_tokens=8),
    )
    pipeline.add_component("ranker", CrossEncoderRanker(model=str(spread_model_path), top_k=2, aggregation="top2_mean"))
    pipeline.connect("retriever.documents", "splitter.documents")
    pipeline.connect("splitter.documents", "ranker.documents")

    loaded = Pipeline.loads(pipeline.dumps())
    loaded.get_component("retriever").document_store = store  # the in-memory store's contents are not serialized
    inputs = {"retriever": {"query": "communication workshops"}, "ranker": {"query": "communication workshops"}}
    before = pipeline.run(inputs)["ranker"]["documents"]
    after = loaded.run(inputs)["ranker"]["documents"]
    assert [(d.id, d.score) for d in before] == [(d.id, d.score) for d in after]
    assert len(before) == 2
    assert all("best_passage" in d.meta for d in before)
    assert {d.meta["name"] for d in before} <= {"long", "short", "other"}

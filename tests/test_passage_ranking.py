"""Passage-level reranking: aggregation of passage scores to parent documents, in both passage modes."""

import pytest
from haystack import Document, Pipeline
from haystack.components.retrievers.in_memory import InMemoryBM25Retriever
from haystack.document_stores.in_memory import InMemoryDocumentStore

from haystack_integrations.components.preprocessors.crossencoder import PassageSplitter
from haystack_integrations.components.rankers.crossencoder import CrossEncoderRanker
from haystack_integrations.components.rankers.crossencoder._engine.aggregation import aggregate_scores
from haystack_integrations.components.rankers.crossencoder.fusion import fuse_scores

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
                "passage_splitter": "crossencoder-haystack",
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


# --- issue #13: only this package's passages are aggregated --------------------------------------------------------

ARTICLES = [
    Document(
        content="Berlin is the capital of Germany. It has many museums and a long history. The Spree flows through "
        "the city. Many people visit the Brandenburg Gate every year. The city is known for its culture.",
        score=0.9,
        meta={"name": "berlin"},
    ),
    Document(
        content="Paris is the capital of France. The Seine flows through it. The Eiffel Tower is its landmark.",
        score=0.6,
        meta={"name": "paris"},
    ),
]


def _haystack_chunks() -> list[Document]:
    from haystack.components.preprocessors import DocumentSplitter

    chunks = DocumentSplitter(split_by="period", split_length=1).run(documents=ARTICLES)["documents"]
    return [Document(id=c.id, content=c.content, meta=c.meta, score=0.9 - 0.1 * i) for i, c in enumerate(chunks)]


@pytest.mark.parametrize("split_long_documents", [False, True])
def test_haystack_document_splitter_chunks_are_ranked_like_the_peer_ranks_them(spread_model_path, split_long_documents):
    """DocumentSplitter -> ranker: every chunk has a `source_id`, and must come back as the chunk it is."""
    from haystack_integrations.components.rankers.sentence_transformers import SentenceTransformersSimilarityRanker

    chunks = _haystack_chunks()
    assert len(chunks) == 8 and all(c.meta.get("source_id") for c in chunks)
    peer = SentenceTransformersSimilarityRanker(model=str(spread_model_path), top_k=100)
    peer.warm_up()
    ours = CrossEncoderRanker(model=str(spread_model_path), top_k=100, split_long_documents=split_long_documents)
    expected = peer.run(query="capital of Germany", documents=chunks)["documents"]
    result = ours.run(query="capital of Germany", documents=chunks)["documents"]
    assert [d.id for d in result] == [d.id for d in expected]
    assert [d.score for d in result] == pytest.approx([d.score for d in expected], abs=1e-6)
    assert [d.content for d in result] == [d.content for d in expected]
    assert [d.meta["source_id"] for d in result] == [d.meta["source_id"] for d in expected]
    # With split_long_documents each chunk is its own parent (one passage each), as any short document is.
    assert all(("best_passage" in d.meta) == split_long_documents for d in result)


def test_documents_sharing_a_source_id_without_the_splitters_marker_are_not_merged(spread_model_path):
    docs = [
        Document(content="An unrelated note about alpha.", meta={"source_id": "shared"}),
        Document(content="Another note, about beta.", meta={"source_id": "shared", "passage_index": 1}),
        # Everything a passage has, except the marker: hand-made passages from before the marker existed.
        *[
            Document(content=p.content, meta={k: v for k, v in p.meta.items() if k != "passage_splitter"})
            for p in PASSAGES
        ],
    ]
    ranker = CrossEncoderRanker(model=str(spread_model_path), top_k=100)
    result = ranker.run(query="alpha", documents=docs)["documents"]
    assert sorted(d.id for d in result) == sorted(d.id for d in docs)
    assert all(d.content == next(x.content for x in docs if x.id == d.id) for d in result)


@pytest.mark.parametrize(
    "broken",
    [
        {"passage_splitter": "someone-else"},
        {"source_id": 17},
        {"passage_index": "0"},
        {"split_idx_start": None},
        {"split_idx_end": True},
    ],
)
def test_a_marked_passage_with_broken_meta_is_ranked_as_a_plain_document(spread_model_path, broken):
    passage = PASSAGES[0]
    odd = Document(content=passage.content, meta={**passage.meta, **broken})
    result = CrossEncoderRanker(model=str(spread_model_path)).run(query="alpha", documents=[odd])["documents"]
    assert [d.id for d in result] == [odd.id]
    assert result[0].content == passage.content and "best_passage" not in result[0].meta


def test_passage_splitter_output_is_still_aggregated(spread_model_path):
    splitter = PassageSplitter(tokenizer=str(spread_model_path), max_tokens=16, overlap_tokens=0)
    passages = splitter.run(documents=[Document(content=LONG_TEXT, meta={"name": "long"})])["documents"]
    assert len(passages) > 3 and all(p.meta["passage_splitter"] == "crossencoder-haystack" for p in passages)
    [parent] = CrossEncoderRanker(model=str(spread_model_path)).run(query="communication", documents=passages)[
        "documents"
    ]
    assert parent.content == LONG_TEXT and parent.meta == {**parent.meta, "name": "long"}
    assert "passage_splitter" not in parent.meta and "source_id" not in parent.meta


# --- issue #15: fusion in passage mode ---------------------------------------------------------------------------


@pytest.mark.parametrize("fusion", ["minmax", "zscore", "rrf"])
def test_fusion_of_parents_uses_the_parents_retrieval_score(spread_model_path, fusion):
    plain = Document(content="A plain short document about alpha.")  # no retrieval score: the worst of the list
    documents = [*PASSAGES, plain]
    unfused = CrossEncoderRanker(model=str(spread_model_path)).run(query="alpha", documents=documents)["documents"]
    rerank = {d.id: d.score for d in unfused}
    ranker = CrossEncoderRanker(model=str(spread_model_path), first_stage_weight=0.4, fusion=fusion)
    result = ranker.run(query="alpha", documents=documents)["documents"]
    in_retrieval_order = [PARENT_A, PARENT_B, plain]
    expected = fuse_scores([rerank[d.id] for d in in_retrieval_order], [0.8, 0.6, None], 0.4, fusion)
    assert {d.id: d.score for d in result} == pytest.approx(
        dict(zip([d.id for d in in_retrieval_order], expected, strict=True))
    )
    assert {d.id: d.meta["rerank_score"] for d in result} == rerank
    assert {d.id: d.meta["retrieval_score"] for d in result} == {PARENT_A.id: 0.8, PARENT_B.id: 0.6, plain.id: None}
    assert {d.id: d.meta["best_passage_score"] for d in result if d.id != plain.id} == {
        d.id: d.meta["best_passage_score"] for d in unfused if d.id != plain.id
    }


def test_fusion_weight_one_in_passage_mode_returns_the_parents_in_retrieval_order(spread_model_path):
    ranker = CrossEncoderRanker(model=str(spread_model_path), first_stage_weight=1.0, split_long_documents=True)
    long_doc = Document(content=LONG_TEXT, score=0.3)
    result = ranker.run(query="communication", documents=[long_doc, PARENT_B, PARENT_A])["documents"]
    assert [d.id for d in result] == [PARENT_A.id, PARENT_B.id, long_doc.id]

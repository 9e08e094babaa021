"""Fuzzing CrossEncoderRanker and PassageSplitter with arbitrary documents.

Whatever comes in (content None, empty, huge or made of control characters, duplicated ids, any meta including
`source_id` and the splitter's own keys, scores None, NaN or infinite), the components must not raise anything but
their documented ValueErrors, must leave their inputs as they were, and must account for every input document.
"""

import copy
import math

import pytest
from haystack import Document
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from haystack_integrations.components.preprocessors.crossencoder import PassageSplitter, is_passage
from haystack_integrations.components.rankers.crossencoder import CrossEncoderRanker

FUZZ = settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.too_slow])

HUGE = "Lorem ipsum dolor sit amet, communication workshops. " * 150
SPECIAL_CONTENT = ["", "   ", "\u200b\u200c\x00\n\t", "\ufeff\u00ad", "Berlin is the capital of Germany.", HUGE]
MARKER = {"passage_splitter": "crossencoder-haystack"}
META_KEYS = [
    "source_id",
    "passage_index",
    "passage_count",
    "split_idx_start",
    "split_idx_end",
    "page_number",
    "passage_splitter",
    "retrieval_rank",
    "retrieval_score",
    "title",
]

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-5, 50) | st.floats() | st.text(max_size=8),
    lambda children: st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=4), children, max_size=3),
    max_leaves=4,
)
any_text = st.text(st.characters(exclude_categories=("Cs",)), max_size=80)
contents = st.none() | st.sampled_from(SPECIAL_CONTENT) | any_text
scores = st.none() | st.floats()


@st.composite
def metas(draw):
    meta = draw(st.dictionaries(st.sampled_from(META_KEYS) | st.text(max_size=4), json_values, max_size=5))
    if draw(st.booleans()):  # something that looks like (or is) one of this package's passages
        start = draw(st.integers(0, 40))
        meta.update(
            source_id=draw(st.sampled_from(["parent-a", "parent-b"])),
            passage_index=draw(st.integers(0, 3)),
            split_idx_start=start,
            split_idx_end=start + draw(st.integers(0, 40)),
        )
        if draw(st.booleans()):
            meta.update(MARKER)
    return meta


@st.composite
def documents(draw):
    docs = draw(st.lists(st.builds(Document, content=contents, meta=metas(), score=scores), max_size=8))
    for position, score in draw(st.lists(st.tuples(st.integers(0, 7), scores), max_size=3)) if docs else []:
        original = docs[position % len(docs)]
        docs.append(Document(id=original.id, content=draw(contents), meta=draw(metas()), score=score))
    return draw(st.permutations(docs))


def _snapshot(docs):
    """A deep, comparable picture of the documents (repr keeps NaN equal to itself)."""
    return [repr(doc.to_dict(flatten=False)) for doc in docs]


def _keys(document):
    """The ids an input document can be found under in the output: its own, and its parent's for a passage."""
    return {document.id, document.meta["source_id"]} if is_passage(document) else {document.id}


@pytest.fixture(scope="module")
def rankers(tiny_model_path):
    """Rankers for the init-only options; the run-time ones are drawn per example."""
    model = str(tiny_model_path)
    built = {
        (False, False): CrossEncoderRanker(model=model, meta_fields_to_embed=["title"]),
        (False, True): CrossEncoderRanker(model=model, return_passages=True, aggregation="top2_mean"),
        (True, False): CrossEncoderRanker(model=model, split_long_documents=True, max_length=48, aggregation="mean"),
        (True, True): CrossEncoderRanker(model=model, split_long_documents=True, max_length=48, return_passages=True),
    }
    for ranker in built.values():
        ranker.warm_up()
    return built


@FUZZ
@given(
    docs=documents(),
    query=st.sampled_from(["capital of Germany", "communication", "", "  ", "İstanbul \u200b"]),
    options=st.tuples(st.booleans(), st.booleans()),
    top_k=st.integers(1, 12) | st.sampled_from([0, -1, 1.5, True]),
    score_threshold=st.none() | st.floats(0, 1),
    first_stage_weight=st.none() | st.sampled_from([0.0, 0.5, 1.0]),
    fusion=st.none() | st.sampled_from(["minmax", "zscore", "rrf"]),
    activation=st.sampled_from(["sigmoid", "identity", "tanh"]),
)
def test_ranker_survives_arbitrary_documents(
    rankers, docs, query, options, top_k, score_threshold, first_stage_weight, fusion, activation
):
    ranker = rankers[options]
    before = _snapshot(docs)
    originals = copy.deepcopy(docs)
    arguments = {
        "query": query,
        "documents": docs,
        "top_k": top_k,
        "score_threshold": score_threshold,
        "first_stage_weight": first_stage_weight,
        "fusion": fusion,
        "activation": activation,
    }
    bad_top_k = isinstance(top_k, bool) or not isinstance(top_k, int) or top_k <= 0
    if bad_top_k or not query.strip():
        with pytest.raises(ValueError, match=r"top_k must be a positive int|query must be a non-empty string"):
            ranker.run(**arguments)
        assert _snapshot(docs) == before
        return

    result = ranker.run(**arguments)["documents"]

    assert _snapshot(docs) == before, "the caller's documents must not change"
    assert _snapshot(originals) == before
    assert len(result) <= top_k
    assert all(all(out is not doc for doc in docs) for out in result), "the ranker returns copies"
    scored = [out.score for out in result if out.score is not None]
    assert all(math.isfinite(score) for score in scored)
    assert scored == sorted(scored, reverse=True)
    assert [out.score is None for out in result] == sorted(out.score is None for out in result), "None comes last"
    if score_threshold is not None:
        assert all(out.score is not None and out.score >= score_threshold for out in result)
    assert all(isinstance(out.meta["retrieval_rank"], int) for out in result)
    if len(result) < top_k and score_threshold is None:  # nothing was cut: every input id is in the output
        found = {out.id for out in result} | {out.meta["source_id"] for out in result if is_passage(out)}
        for doc in docs:
            # Of documents sharing an id, one is kept (the best retrieval score), maybe a namesake with other meta.
            namesakes = set().union(*(_keys(other) for other in docs if other.id == doc.id))
            assert namesakes & found, f"document {doc.id} is missing from the output"


@pytest.fixture(scope="module")
def splitter(minilm_path):
    component = PassageSplitter(tokenizer=str(minilm_path), max_tokens=16, overlap_tokens=4)
    component.warm_up()
    return component


@FUZZ
@given(docs=documents())
def test_passage_splitter_survives_arbitrary_documents(splitter, docs):
    before = _snapshot(docs)
    passages = splitter.run(documents=docs)["documents"]
    assert _snapshot(docs) == before, "the caller's documents must not change"
    for doc in docs:
        if doc.content is None:
            assert any(passage is doc for passage in passages), "content=None is passed through"
            continue
        own = [p for p in passages if p.meta.get("source_id") == doc.id and p.meta.get("passage_splitter")]
        assert own and all(is_passage(passage) for passage in own)
        namesakes = [other.content for other in docs if other.id == doc.id and other.content is not None]
        for passage in own:  # duplicated ids: each duplicate is split, so a passage is from one of them
            start, end = passage.meta["split_idx_start"], passage.meta["split_idx_end"]
            assert any(content[start:end] == passage.content for content in namesakes)

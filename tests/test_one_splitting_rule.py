"""The ranker splits with the splitter's rule: one budget function, one overlap name (`overlap_tokens`)."""

import pytest
from haystack import Document

from haystack_integrations.components.preprocessors.crossencoder import PassageSplitter
from haystack_integrations.components.preprocessors.crossencoder.splitting import (
    MIN_QUERY_PASSAGE_TOKENS,
    pair_special_tokens,
    query_passage_overlap_fits,
    query_passage_sizes,
)
from haystack_integrations.components.rankers.crossencoder import CrossEncoderRanker

TEXT = " ".join(f"Sentence number {i} is about {'workshops' if i % 5 == 2 else 'other things'}." for i in range(50))


def test_the_ranker_cuts_the_passages_the_splitter_cuts(spread_model_path, minilm_tokenizer):
    query, max_length, overlap = "workshops", 64, 20
    ranker = CrossEncoderRanker(
        model=str(spread_model_path),
        split_long_documents=True,
        max_length=max_length,
        overlap_tokens=overlap,
        return_passages=True,
        top_k=1000,
    )
    ranked = ranker.run(query=query, documents=[Document(content=TEXT)])["documents"]
    query_tokens = len(minilm_tokenizer(query, add_special_tokens=False).input_ids)
    splitter = PassageSplitter(
        tokenizer=str(spread_model_path),
        max_length=max_length,
        max_query_tokens=query_tokens,
        overlap_tokens=overlap,
    )
    split = splitter.run(documents=[Document(content=TEXT)])["documents"]

    def spans(documents):
        return sorted((d.meta["split_idx_start"], d.meta["split_idx_end"]) for d in documents)

    assert len(split) > 3
    assert spans(ranked) == spans(split)


def test_budget_and_overlap_for_a_query(minilm_tokenizer):
    assert pair_special_tokens(minilm_tokenizer) == 3
    assert query_passage_sizes(minilm_tokenizer, 128, 10, 32) == (115, 32)
    # A query that leaves no room: passages of the floor's size, the overlap capped so that they advance.
    assert query_passage_sizes(minilm_tokenizer, 64, 60, 32) == (
        MIN_QUERY_PASSAGE_TOKENS,
        MIN_QUERY_PASSAGE_TOKENS // 2,
    )


def test_an_overlap_that_fits_no_passage_is_capped_with_a_warning(minilm_tokenizer, spread_model_path, caplog):
    assert not query_passage_overlap_fits(minilm_tokenizer, 64, 61)
    assert query_passage_overlap_fits(minilm_tokenizer, 64, 60)
    assert query_passage_sizes(minilm_tokenizer, 64, 0, 61) == (61, 30)
    ranker = CrossEncoderRanker(
        model=str(spread_model_path), split_long_documents=True, max_length=64, overlap_tokens=61
    )
    ranker.warm_up()
    assert "overlap_tokens=61 does not fit" in caplog.text
    caplog.clear()
    CrossEncoderRanker(model=str(spread_model_path), max_length=64, overlap_tokens=61).warm_up()  # not splitting
    assert "does not fit" not in caplog.text


def test_the_old_overlap_name_is_a_deprecated_alias(spread_model_path):
    with pytest.warns(DeprecationWarning, match="overlap_tokens"):
        ranker = CrossEncoderRanker(model=str(spread_model_path), passage_overlap_tokens=8)
    assert ranker.overlap_tokens == 8
    parameters = ranker.to_dict()["init_parameters"]
    assert parameters["overlap_tokens"] == 8
    assert "passage_overlap_tokens" not in parameters
    with pytest.warns(DeprecationWarning, match="overlap_tokens"):
        assert ranker.passage_overlap_tokens == 8


def test_an_old_yaml_with_the_old_name_still_loads(spread_model_path):
    old = {
        "type": "haystack_integrations.components.rankers.crossencoder.ranker.CrossEncoderRanker",
        "init_parameters": {
            "model": str(spread_model_path),
            "split_long_documents": True,
            "passage_overlap_tokens": 16,
        },
    }
    with pytest.warns(DeprecationWarning):
        ranker = CrossEncoderRanker.from_dict(old)
    assert ranker.overlap_tokens == 16
    assert ranker.to_dict()["init_parameters"]["overlap_tokens"] == 16


def test_a_bad_old_overlap_is_reported_under_its_own_name(spread_model_path):
    with pytest.warns(DeprecationWarning), pytest.raises(ValueError, match="passage_overlap_tokens"):
        CrossEncoderRanker(model=str(spread_model_path), passage_overlap_tokens=-1)

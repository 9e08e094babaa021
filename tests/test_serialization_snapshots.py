"""Exact `to_dict` snapshots of the components users put in YAML pipelines.

The README sells YAML compatibility: a pipeline saved today must load tomorrow, and a config written by hand from
the README must mean what it says. Any change to a component's serialized form (a renamed, added or removed init
parameter, another default, another type path) fails here and must be a deliberate, documented change (CHANGELOG;
old names kept loadable by `from_dict`).
"""

import pytest
from haystack import Pipeline

from haystack_integrations.components.preprocessors.crossencoder import PassageSplitter
from haystack_integrations.components.rankers.crossencoder import CascadeRanker, CrossEncoderRanker, FallbackRanker

RANKER_TYPE = "haystack_integrations.components.rankers.crossencoder.ranker.CrossEncoderRanker"
TOKEN = {"type": "env_var", "env_vars": ["HF_API_TOKEN", "HF_TOKEN"], "strict": False}


def _ranker_parameters(model: str, **changes) -> dict:
    parameters = {
        "model": model,
        "device": {"type": "single", "device": "cpu"},
        "token": TOKEN,
        "top_k": 10,
        "query_prefix": "",
        "query_suffix": "",
        "document_prefix": "",
        "document_suffix": "",
        "meta_fields_to_embed": [],
        "embedding_separator": "\n",
        "activation": None,
        "scale": 1.0,
        "scale_score": None,
        "score_threshold": None,
        "first_stage_weight": None,
        "fusion": None,
        "trust_remote_code": False,
        "model_kwargs": None,
        "tokenizer_kwargs": None,
        "config_kwargs": None,
        "backend": "torch",
        "batch_size": 16,
        "max_length": None,
        "show_progress_bar": False,
        "aggregation": "max",
        "return_passages": False,
        "split_long_documents": False,
        "overlap_tokens": 32,
        "max_tokens_per_batch": None,
        "cache_size": 0,
        "num_threads": None,
        "precision": "auto",
        "truncation": "longest_first",
        "num_streams": None,
    }
    assert set(changes) <= set(parameters)
    return parameters | changes


def test_cross_encoder_ranker_defaults():
    assert CrossEncoderRanker(model="models/my-reranker").to_dict() == {
        "type": RANKER_TYPE,
        "init_parameters": _ranker_parameters("models/my-reranker"),
    }


def test_cross_encoder_ranker_configured():
    ranker = CrossEncoderRanker(
        model="models/my-reranker",
        top_k=5,
        query_prefix="query: ",
        meta_fields_to_embed=["title"],
        activation="identity",
        scale=2.0,
        score_threshold=0.1,
        first_stage_weight=0.3,
        fusion="rrf",
        backend="onnx",
        batch_size=8,
        max_length=256,
        aggregation="top2_mean",
        split_long_documents=True,
        overlap_tokens=16,
        max_tokens_per_batch=4096,
        cache_size=1000,
        num_threads=2,
        precision="fp32",
        truncation="query_window",
    )
    assert ranker.to_dict() == {
        "type": RANKER_TYPE,
        "init_parameters": _ranker_parameters(
            "models/my-reranker",
            top_k=5,
            query_prefix="query: ",
            meta_fields_to_embed=["title"],
            activation="identity",
            scale=2.0,
            score_threshold=0.1,
            first_stage_weight=0.3,
            fusion="rrf",
            backend="onnx",
            batch_size=8,
            max_length=256,
            aggregation="top2_mean",
            split_long_documents=True,
            overlap_tokens=16,
            max_tokens_per_batch=4096,
            cache_size=1000,
            num_threads=2,
            precision="fp32",
            truncation="query_window",
        ),
    }
    assert CrossEncoderRanker.from_dict(ranker.to_dict()).to_dict() == ranker.to_dict()


def test_passage_splitter():
    splitter = PassageSplitter(tokenizer="models/my-reranker", max_length=256, overlap_tokens=16)
    assert splitter.to_dict() == {
        "type": "haystack_integrations.components.preprocessors.crossencoder.passage_splitter.PassageSplitter",
        "init_parameters": {
            "tokenizer": "models/my-reranker",
            "max_tokens": None,
            "overlap_tokens": 16,
            "max_length": 256,
            "max_query_tokens": 64,
            "token": TOKEN,
            "tokenizer_kwargs": None,
        },
    }
    assert PassageSplitter.from_dict(splitter.to_dict()).to_dict() == splitter.to_dict()


def test_fallback_ranker():
    ranker = FallbackRanker(
        primary=CrossEncoderRanker(model="models/primary"),
        fallback=CrossEncoderRanker(model="models/backup"),
        timeout=2.5,
    )
    assert ranker.to_dict() == {
        "type": "haystack_integrations.components.rankers.crossencoder.fallback.FallbackRanker",
        "init_parameters": {
            "primary": {"type": RANKER_TYPE, "init_parameters": _ranker_parameters("models/primary")},
            "fallback": {"type": RANKER_TYPE, "init_parameters": _ranker_parameters("models/backup")},
            "timeout": 2.5,
        },
    }
    assert FallbackRanker.from_dict(ranker.to_dict()).to_dict() == ranker.to_dict()


def test_cascade_ranker():
    ranker = CascadeRanker(
        student=CrossEncoderRanker(model="models/student"),
        teacher=CrossEncoderRanker(model="models/teacher"),
        cascade_keep=30,
        top_k=10,
    )
    assert ranker.to_dict() == {
        "type": "haystack_integrations.components.rankers.crossencoder.cascade.CascadeRanker",
        "init_parameters": {
            "student": {"type": RANKER_TYPE, "init_parameters": _ranker_parameters("models/student")},
            "teacher": {"type": RANKER_TYPE, "init_parameters": _ranker_parameters("models/teacher")},
            "cascade_keep": 30,
            "top_k": 10,
            "score_threshold": None,
            "first_stage_weight": None,
            "fusion": None,
        },
    }
    assert CascadeRanker.from_dict(ranker.to_dict()).to_dict() == ranker.to_dict()


@pytest.mark.parametrize(
    "component",
    [
        CrossEncoderRanker(model="models/my-reranker", split_long_documents=True),
        PassageSplitter(tokenizer="models/my-reranker"),
    ],
    ids=["ranker", "splitter"],
)
def test_a_pipeline_yaml_round_trip_keeps_the_snapshot(component):
    pipeline = Pipeline()
    pipeline.add_component("component", component)
    loaded = Pipeline.loads(pipeline.dumps())
    assert loaded.get_component("component").to_dict() == component.to_dict()


def test_a_yaml_written_with_the_rankers_old_overlap_name_still_loads():
    old = _ranker_parameters("models/my-reranker")
    del old["overlap_tokens"]
    old["passage_overlap_tokens"] = 8
    with pytest.warns(DeprecationWarning, match="overlap_tokens"):
        ranker = CrossEncoderRanker.from_dict({"type": RANKER_TYPE, "init_parameters": old})
    assert ranker.to_dict()["init_parameters"]["overlap_tokens"] == 8

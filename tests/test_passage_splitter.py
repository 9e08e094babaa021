"""The PassageSplitter component: budget, warm-up, run/run_async, None content, serialization, pipelines."""

import asyncio
import copy
import logging
import re
import threading
import time

import pytest
from haystack import Document, Pipeline
from haystack.utils import Secret
from transformers import AutoTokenizer

from haystack_integrations.components.preprocessors.crossencoder import PassageSplitter

TEXT = (
    "Cross-encoders read the query and the passage together. They are slower than bi-encoders but more accurate. "
    "A long document is truncated silently, so its end is never seen by the model. Passage-level reranking fixes "
    "this by splitting documents into passages that fit the model. İstanbul'da ılık bir sabah, şöyle güzel. "
)
TYPE_NAME = "haystack_integrations.components.preprocessors.crossencoder.passage_splitter.PassageSplitter"


@pytest.fixture
def splitter(minilm_path):
    component = PassageSplitter(tokenizer=str(minilm_path), max_tokens=24, overlap_tokens=4)
    component.warm_up()
    return component


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"tokenizer": ""}, "tokenizer"),
        ({"tokenizer": "m", "max_tokens": 0}, "max_tokens"),
        ({"tokenizer": "m", "max_tokens": 16, "overlap_tokens": 16}, "overlap_tokens"),
        ({"tokenizer": "m", "overlap_tokens": -1}, "overlap_tokens"),
        ({"tokenizer": "m", "max_length": 60, "max_query_tokens": 64}, "max_length=60 leaves no room"),
        ({"tokenizer": "m", "max_length": 128, "max_query_tokens": 64, "overlap_tokens": 61}, "overlap_tokens"),
        ({"tokenizer": "m", "max_query_tokens": -5}, "max_query_tokens"),
        ({"tokenizer": "m", "max_tokens": 1.5}, "integer"),
        ({"tokenizer": "m", "tokenizer_kwargs": ["revision"]}, "tokenizer_kwargs"),
    ],
)
def test_init_rejects_bad_arguments_with_clear_errors(kwargs, message):
    with pytest.raises(ValueError, match=message):
        PassageSplitter(**kwargs)


def test_init_is_light():
    splitter = PassageSplitter(tokenizer="/does/not/exist/yet", max_tokens=64)
    assert splitter.passage_budget is None
    assert splitter._tokenizer is None


@pytest.mark.parametrize(
    ("kwargs", "budget"),
    [
        ({"max_tokens": 100}, 100),
        ({"max_tokens": 100, "max_length": 64}, 100),  # max_tokens wins
        ({"max_length": 128, "max_query_tokens": 32}, 93),
        ({}, 512 - 64 - 3),  # the tokenizer's model_max_length
        ({"tokenizer_kwargs": {"model_max_length": int(1e30)}, "max_query_tokens": 0}, 509),  # sentinel -> 512
    ],
)
def test_budget_resolution(minilm_path, kwargs, budget):
    splitter = PassageSplitter(tokenizer=str(minilm_path), **kwargs)
    splitter.warm_up()
    assert splitter.passage_budget == budget


@pytest.fixture
def cross_encoder_like_dir(tmp_path, minilm_tokenizer):
    """Tokenizer files at the top level with model_max_length=128, as a saved CrossEncoder(max_length=128) has."""
    minilm_tokenizer.save_pretrained(tmp_path)
    config = tmp_path / "tokenizer_config.json"
    config.write_text(re.sub(r'"model_max_length": \d+', '"model_max_length": 128', config.read_text()))
    return tmp_path


def test_model_directory_gives_tokenizer_and_max_length(cross_encoder_like_dir):
    splitter = PassageSplitter(tokenizer=str(cross_encoder_like_dir), overlap_tokens=8)
    splitter.warm_up()
    assert splitter.passage_budget == 128 - 64 - 3
    passages = splitter.run(documents=[Document(content=TEXT * 4)])["documents"]
    assert len(passages) > 1


def test_overlap_must_fit_the_budget_known_only_after_warm_up(cross_encoder_like_dir):
    splitter = PassageSplitter(tokenizer=str(cross_encoder_like_dir), overlap_tokens=61)  # budget will be 61
    with pytest.raises(ValueError, match="overlap_tokens"):
        splitter.warm_up()


def test_warm_up_is_idempotent_and_thread_safe(minilm_path, monkeypatch):
    loads = []
    original = AutoTokenizer.from_pretrained

    def slow_load(*args, **kwargs):
        loads.append(kwargs)
        time.sleep(0.2)
        return original(*args, **kwargs)

    monkeypatch.setattr(AutoTokenizer, "from_pretrained", slow_load)
    splitter = PassageSplitter(tokenizer=str(minilm_path), max_tokens=64)
    threads = [threading.Thread(target=splitter.warm_up) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    loaded = splitter._tokenizer
    splitter.warm_up()
    assert len(loads) == 1
    assert splitter._tokenizer is loaded
    assert loads[0]["use_fast"] is True
    assert loads[0]["local_files_only"] is True


def test_slow_tokenizer_is_rejected(minilm_path, monkeypatch):
    class SlowTokenizer:
        is_fast = False

    monkeypatch.setattr(AutoTokenizer, "from_pretrained", lambda *args, **kwargs: SlowTokenizer())
    with pytest.raises(ValueError, match="slow tokenizer"):
        PassageSplitter(tokenizer=str(minilm_path), max_tokens=64).warm_up()


def test_missing_directory_and_unreachable_hub_give_clear_errors():
    with pytest.raises(FileNotFoundError, match="does not exist"):
        PassageSplitter(tokenizer="/no/such/model/dir", max_tokens=64).warm_up()
    with pytest.raises(OSError, match="local directory"):
        PassageSplitter(tokenizer="no-such-org/no-such-model", max_tokens=64, token=None).warm_up()


def test_run_splits_in_order_and_fits_the_budget(splitter, minilm_tokenizer):
    documents = [Document(content=TEXT, meta={"n": 1}), Document(content="Short one."), Document(content=TEXT * 2)]
    passages = splitter.run(documents=documents)["documents"]

    source_order = [passage.meta["source_id"] for passage in passages]
    expected_order = [document.id for document in documents for _ in range(source_order.count(document.id))]
    assert source_order == expected_order
    assert source_order.count(documents[1].id) == 1
    for passage in passages:
        assert passage.meta["passage_splitter"] == "crossencoder-haystack"  # what the ranker aggregates
        assert len(minilm_tokenizer(passage.content, add_special_tokens=False)["input_ids"]) <= 24
        parent = next(document for document in documents if document.id == passage.meta["source_id"])
        assert parent.content[passage.meta["split_idx_start"] : passage.meta["split_idx_end"]] == passage.content


def test_run_does_not_mutate_its_input(splitter):
    documents = [Document(content=TEXT, meta={"tags": ["a"]}, score=1.5), Document(content=None, meta={"k": "v"})]
    snapshot = copy.deepcopy(documents)
    passages = splitter.run(documents=documents)["documents"]
    assert documents == snapshot
    passages[0].meta["tags"].append("b")
    assert documents[0].meta["tags"] == ["a"]


def test_content_none_is_passed_through_with_a_warning(splitter, caplog):
    image = Document(content=None, meta={"kind": "image"})
    with caplog.at_level(logging.WARNING):
        passages = splitter.run(documents=[Document(content=TEXT), image, Document(content="Last.")])["documents"]
    assert image in passages
    assert passages[-2] is image and passages[-1].content == "Last."
    assert any(image.id in record.getMessage() and "content=None" in record.getMessage() for record in caplog.records)


def test_run_rejects_what_is_not_a_list_of_documents(splitter):
    with pytest.raises(TypeError, match="list of haystack Document"):
        splitter.run(documents="just a string")
    with pytest.raises(TypeError, match="list of haystack Document"):
        splitter.run(documents=[Document(content="x"), "y"])


def test_run_warms_up_when_needed(minilm_path):
    splitter = PassageSplitter(tokenizer=str(minilm_path), max_tokens=24, overlap_tokens=0)
    assert len(splitter.run(documents=[Document(content=TEXT)])["documents"]) > 1


async def test_run_async_matches_run(splitter):
    documents = [Document(content=TEXT * 2), Document(content=None), Document(content="One sentence.")]
    expected = splitter.run(documents=documents)["documents"]
    assert (await splitter.run_async(documents=documents))["documents"] == expected


async def test_run_async_keeps_the_event_loop_free(minilm_path):
    splitter = PassageSplitter(tokenizer=str(minilm_path), max_tokens=16, overlap_tokens=2)
    await splitter.warm_up_async()
    ticks = 0

    async def ticker():
        nonlocal ticks
        while True:
            ticks += 1
            await asyncio.sleep(0.001)

    task = asyncio.create_task(ticker())
    await splitter.run_async(documents=[Document(content=TEXT * 20) for _ in range(20)])
    task.cancel()
    assert ticks > 1


def test_to_dict_and_from_dict_round_trip(minilm_path):
    splitter = PassageSplitter(
        tokenizer=str(minilm_path), max_length=256, overlap_tokens=16, tokenizer_kwargs={"revision": "main"}
    )
    data = splitter.to_dict()
    assert data == {
        "type": TYPE_NAME,
        "init_parameters": {
            "tokenizer": str(minilm_path),
            "max_tokens": None,
            "overlap_tokens": 16,
            "max_length": 256,
            "max_query_tokens": 64,
            "token": {"type": "env_var", "env_vars": ["HF_API_TOKEN", "HF_TOKEN"], "strict": False},
            "tokenizer_kwargs": {"revision": "main"},
        },
    }
    restored = PassageSplitter.from_dict(data)
    assert restored.to_dict() == data
    assert isinstance(restored.token, Secret)
    assert PassageSplitter.from_dict(PassageSplitter(tokenizer="m", token=None).to_dict()).token is None


def test_pipeline_yaml_round_trip(minilm_path):
    pipeline = Pipeline()
    pipeline.add_component("splitter", PassageSplitter(tokenizer=str(minilm_path), max_tokens=24, overlap_tokens=4))
    yaml_text = pipeline.dumps()
    assert "PassageSplitter" in yaml_text

    loaded = Pipeline.loads(yaml_text)
    assert loaded.to_dict() == pipeline.to_dict()
    documents = [Document(content=TEXT)]
    passages = loaded.run({"splitter": {"documents": documents}})["splitter"]["documents"]
    assert passages == pipeline.run({"splitter": {"documents": documents}})["splitter"]["documents"]
    assert len(passages) > 1

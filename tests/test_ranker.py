"""CrossEncoderRanker: parameters, scores, ordering, copies, serialization, concurrency and errors."""

import asyncio
import math
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
import torch
from haystack import Document, Pipeline
from haystack.utils import ComponentDevice, Secret
from sentence_transformers import CrossEncoder
from torch.nn import Identity

from haystack_integrations.components.rankers.crossencoder import CrossEncoderRanker, ModelNotAvailableError
from haystack_integrations.components.rankers.crossencoder._engine.activations import apply_activation
from haystack_integrations.components.rankers.crossencoder.fusion import FUSION_FILE, fuse_scores, write_fusion_defaults

DOCS = [
    Document(content="Berlin is the capital of Germany.", score=0.9, meta={"lang": "en", "year": 2020}),
    Document(content="Paris is the capital of France.", score=0.8, meta={"lang": "en", "year": 2021}),
    Document(content="Ankara Türkiye'nin başkentidir.", score=0.7, meta={"lang": "tr", "year": 2022}),
    Document(content="The Rhine flows through Germany and the Netherlands.", score=0.6, meta={"lang": "en"}),
]


@pytest.fixture(scope="module")
def ranker(spread_model_path):
    ranker = CrossEncoderRanker(model=str(spread_model_path), top_k=10)
    ranker.warm_up()
    return ranker


@pytest.fixture(scope="module")
def reference(spread_model_path):
    """Raw logits straight from sentence-transformers, to check what the ranker computes from them."""
    model = CrossEncoder(str(spread_model_path), local_files_only=True)

    def logits(query, texts):
        return model.predict([(query, text) for text in texts], activation_fn=Identity(), convert_to_numpy=True)

    return logits


def _sigmoid(x):
    return 1.0 / (1.0 + math.exp(-x))


def test_scores_are_sigmoid_of_model_logits_by_default(ranker, reference):
    result = ranker.run(query="capital of Germany", documents=DOCS)["documents"]
    logits = reference("capital of Germany", [d.content for d in DOCS])
    expected = {doc.id: _sigmoid(float(logit)) for doc, logit in zip(DOCS, logits, strict=True)}
    assert len(result) == len(DOCS)
    for doc in result:
        assert doc.score == pytest.approx(expected[doc.id], abs=1e-6)
    assert [d.score for d in result] == sorted((d.score for d in result), reverse=True)


@pytest.mark.parametrize(
    ("activation", "scale", "function"),
    [
        ("sigmoid", 1.0, _sigmoid),
        ("sigmoid", 10.0, lambda x: _sigmoid(10 * x)),
        ("identity", 1.0, lambda x: x),
        ("identity", 2.5, lambda x: 2.5 * x),
        ("tanh", 1.0, math.tanh),
        ("tanh", 10.0, lambda x: math.tanh(10 * x)),
    ],
)
def test_activation_and_scale(spread_model_path, reference, activation, scale, function):
    ranker = CrossEncoderRanker(model=str(spread_model_path), activation=activation, scale=scale)
    result = ranker.run(query="capital", documents=DOCS)["documents"]
    logits = dict(zip([d.id for d in DOCS], reference("capital", [d.content for d in DOCS]), strict=True))
    for doc in result:
        assert doc.score == pytest.approx(function(float(logits[doc.id])), rel=1e-5, abs=1e-6)


def test_run_time_activation_and_scale_override_init(ranker, reference):
    result = ranker.run(query="capital", documents=DOCS, activation="identity", scale=3.0)["documents"]
    logits = dict(zip([d.id for d in DOCS], reference("capital", [d.content for d in DOCS]), strict=True))
    for doc in result:
        assert doc.score == pytest.approx(3.0 * float(logits[doc.id]), rel=1e-5)


def test_scale_score_is_compatible_with_the_peer(spread_model_path, reference):
    logits = dict(zip([d.id for d in DOCS], reference("capital", [d.content for d in DOCS]), strict=True))
    raw = CrossEncoderRanker(model=str(spread_model_path), scale_score=False).run(query="capital", documents=DOCS)
    for doc in raw["documents"]:
        assert doc.score == pytest.approx(float(logits[doc.id]), rel=1e-5)
    ranker = CrossEncoderRanker(model=str(spread_model_path))
    for doc in ranker.run(query="capital", documents=DOCS, scale_score=False)["documents"]:
        assert doc.score == pytest.approx(float(logits[doc.id]), rel=1e-5)
    for doc in ranker.run(query="capital", documents=DOCS, scale_score=True)["documents"]:
        assert 0.0 < doc.score < 1.0


def test_activation_declared_by_the_model_is_the_default(tmp_path, spread_model_path, reference):
    model = CrossEncoder(str(spread_model_path), local_files_only=True, activation_fn=Identity())
    model.save(str(tmp_path / "identity_model"))
    ranker = CrossEncoderRanker(model=str(tmp_path / "identity_model"))
    logits = reference("capital", [DOCS[0].content])
    assert ranker.run(query="capital", documents=[DOCS[0]])["documents"][0].score == pytest.approx(
        float(logits[0]), rel=1e-5
    )


def test_invalid_activation_and_scale_are_rejected(spread_model_path, ranker):
    with pytest.raises(ValueError, match="activation"):
        CrossEncoderRanker(model=str(spread_model_path), activation="relu")
    with pytest.raises(ValueError, match="scale"):
        CrossEncoderRanker(model=str(spread_model_path), scale=0)
    with pytest.raises(ValueError, match="scale_score"):
        CrossEncoderRanker(model=str(spread_model_path), activation="tanh", scale_score=True)
    with pytest.raises(ValueError, match="activation"):
        ranker.run(query="q", documents=DOCS, activation="softmax")
    with pytest.raises(ValueError, match="scale"):
        ranker.run(query="q", documents=DOCS, scale=-1.0)


def test_apply_activation_is_stable_for_extreme_logits():
    scores = apply_activation(np.array([-1000.0, 0.0, 1000.0]), "sigmoid")
    assert scores.tolist() == [0.0, 0.5, 1.0]
    assert np.isfinite(scores).all()


def test_top_k_from_init_and_run(spread_model_path, ranker):
    two = CrossEncoderRanker(model=str(spread_model_path), top_k=2)
    assert len(two.run(query="q", documents=DOCS)["documents"]) == 2
    assert len(ranker.run(query="q", documents=DOCS, top_k=1)["documents"]) == 1
    for bad in (0, -3):
        with pytest.raises(ValueError, match="top_k"):
            ranker.run(query="q", documents=DOCS, top_k=bad)
    with pytest.raises(ValueError, match="top_k"):
        CrossEncoderRanker(model=str(spread_model_path), top_k=0)


def test_score_threshold_from_init_and_run_even_when_falsy(spread_model_path, ranker):
    scores = [d.score for d in ranker.run(query="capital", documents=DOCS)["documents"]]
    kept = ranker.run(query="capital", documents=DOCS, score_threshold=scores[1])["documents"]
    assert [d.score for d in kept] == scores[:2]
    strict = CrossEncoderRanker(model=str(spread_model_path), score_threshold=0.999999)
    assert strict.run(query="capital", documents=DOCS)["documents"] == []
    # A run-time 0.0 is a real threshold that overrides the init value, not "unset".
    assert len(strict.run(query="capital", documents=DOCS, score_threshold=0.0)["documents"]) == len(DOCS)


def test_returns_copies_and_keeps_retrieval_score_and_rank(ranker):
    originals = [Document(id=d.id, content=d.content, score=d.score, meta=dict(d.meta)) for d in DOCS]
    result = ranker.run(query="capital", documents=DOCS)["documents"]
    assert DOCS == originals, "the caller's documents must not change"
    by_id = {d.id: d for d in result}
    for rank, doc in enumerate(DOCS, start=1):
        out = by_id[doc.id]
        assert out is not doc
        assert out.meta["retrieval_score"] == doc.score
        assert out.meta["retrieval_rank"] == rank
        assert out.meta["lang"] == doc.meta["lang"]
        assert out.content == doc.content


def test_duplicates_are_removed_keeping_the_best_retrieval_score(ranker):
    low = Document(id="dup", content="same text", score=0.1)
    high = Document(id="dup", content="same text", score=0.5)
    other = Document(id="other", content="other text", score=0.3)
    result = ranker.run(query="q", documents=[low, other, high])["documents"]
    assert sorted(d.id for d in result) == ["dup", "other"]
    dup = next(d for d in result if d.id == "dup")
    assert dup.meta["retrieval_score"] == 0.5
    assert dup.meta["retrieval_rank"] == 1


def test_ties_are_broken_by_retrieval_order(ranker):
    docs = [Document(content="identical text", meta={"n": n}) for n in range(5)]
    assert len({d.id for d in docs}) == 5
    for order in (docs, docs[::-1]):
        result = ranker.run(query="q", documents=order)["documents"]
        assert len({d.score for d in result}) == 1
        assert [d.id for d in result] == [d.id for d in order]


def test_documents_without_text_come_last_or_are_dropped_by_a_threshold(ranker):
    docs = [Document(content=None, meta={"k": 1}), Document(content="   "), *DOCS[:2]]
    result = ranker.run(query="capital", documents=docs)["documents"]
    assert [d.score is None for d in result] == [False, False, True, True]
    assert [d.meta["retrieval_rank"] for d in result[2:]] == [1, 2]
    with_threshold = ranker.run(query="capital", documents=docs, score_threshold=-1e9)["documents"]
    assert len(with_threshold) == 2 and all(d.score is not None for d in with_threshold)


def test_empty_documents_return_empty_without_loading_the_model():
    ranker = CrossEncoderRanker(model="/does/not/exist")
    assert ranker.run(query="q", documents=[]) == {"documents": []}
    assert ranker._scorer is None


@pytest.mark.parametrize("query", ["", "   ", None, 42])
def test_query_must_be_a_non_empty_string(ranker, query):
    with pytest.raises(ValueError, match="query"):
        ranker.run(query=query, documents=DOCS)


def test_documents_must_be_documents(ranker):
    with pytest.raises(TypeError, match="documents"):
        ranker.run(query="q", documents=["plain string"])


def test_prefixes_suffixes_and_meta_fields_build_the_text(spread_model_path, reference):
    ranker = CrossEncoderRanker(
        model=str(spread_model_path),
        activation="identity",
        query_prefix="query: ",
        query_suffix=" ?",
        document_prefix="passage: ",
        document_suffix=" .",
        meta_fields_to_embed=["lang", "year", "missing"],
        embedding_separator=" | ",
    )
    result = {d.id: d.score for d in ranker.run(query="capital", documents=DOCS)["documents"]}
    for doc in DOCS:
        meta = [str(doc.meta[k]) for k in ("lang", "year", "missing") if doc.meta.get(k) is not None]
        text = "passage: " + " | ".join([*meta, doc.content]) + " ."
        assert result[doc.id] == pytest.approx(float(reference("query: capital ?", [text])[0]), rel=1e-5)


def test_meta_only_documents_are_scored(spread_model_path):
    ranker = CrossEncoderRanker(model=str(spread_model_path), meta_fields_to_embed=["title"])
    result = ranker.run(query="q", documents=[Document(content=None, meta={"title": "A title"})])["documents"]
    assert result[0].score is not None


def test_max_length_truncates(spread_model_path):
    short = CrossEncoderRanker(model=str(spread_model_path), max_length=16, activation="identity")
    full = CrossEncoderRanker(model=str(spread_model_path), activation="identity")
    docs = [Document(content="word " * 300), Document(content="word " * 13)]
    truncated, cut_by_hand = (d.score for d in sorted(short.run(query="q", documents=docs)["documents"], key=_length))
    # [CLS] q [SEP] + 13 words + [SEP] = 16 tokens: the input the long text is truncated to.
    assert truncated == pytest.approx(cut_by_hand, abs=1e-6)
    untruncated = {d.content: d.score for d in full.run(query="q", documents=docs)["documents"]}
    assert untruncated["word " * 300] != pytest.approx(truncated, abs=1e-4)
    with pytest.raises(ValueError, match="max_length"):
        CrossEncoderRanker(model=str(spread_model_path), max_length=0)


def _length(document):
    return -len(document.content)


def test_batch_size_does_not_change_scores(spread_model_path, ranker):
    expected = {d.id: d.score for d in ranker.run(query="capital", documents=DOCS)["documents"]}
    small = CrossEncoderRanker(model=str(spread_model_path), batch_size=1)
    for doc in small.run(query="capital", documents=DOCS)["documents"]:
        assert doc.score == pytest.approx(expected[doc.id], abs=1e-6)
    with pytest.raises(ValueError, match="batch_size"):
        CrossEncoderRanker(model=str(spread_model_path), batch_size=0)


def test_show_progress_bar(spread_model_path, capsys):
    ranker = CrossEncoderRanker(model=str(spread_model_path), show_progress_bar=True)
    ranker.run(query="q", documents=DOCS)
    assert "100%" in capsys.readouterr().err


def test_model_loading_arguments_are_passed_through(spread_model_path):
    ranker = CrossEncoderRanker(
        model=str(spread_model_path),
        device=ComponentDevice.from_str("cpu"),
        trust_remote_code=False,
        model_kwargs={"torch_dtype": "float32"},
        tokenizer_kwargs={"model_max_length": 64},
        config_kwargs={"classifier_dropout": 0.0},
    )
    ranker.warm_up()
    assert ranker._scorer.max_length == 64
    scorer = ranker._scorer
    cross_encoder = scorer.forward.cross_encoder if hasattr(scorer, "forward") else scorer.cross_encoder
    assert cross_encoder.config.classifier_dropout == 0.0
    assert ranker.run(query="q", documents=DOCS)["documents"]


def test_warm_up_is_idempotent_and_thread_safe(spread_model_path):
    ranker = CrossEncoderRanker(model=str(spread_model_path))
    with ThreadPoolExecutor(4) as pool:
        list(pool.map(lambda _: ranker.warm_up(), range(8)))
    scorer = ranker._scorer
    ranker.warm_up()
    assert ranker._scorer is scorer


def test_concurrent_runs_from_threads_are_correct(ranker):
    queries = [f"query number {i} about capitals" for i in range(8)]
    expected = {q: [(d.id, d.score) for d in ranker.run(query=q, documents=DOCS)["documents"]] for q in queries}
    errors = []

    def work(query):
        try:
            got = [(d.id, d.score) for d in ranker.run(query=query, documents=DOCS)["documents"]]
            assert got == expected[query]
        except Exception as error:  # collected and asserted below
            errors.append(error)

    threads = [threading.Thread(target=work, args=(q,)) for q in queries * 3]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []


async def test_run_async_matches_run_and_does_not_block_the_loop(ranker):
    expected = [(d.id, d.score) for d in ranker.run(query="capital", documents=DOCS)["documents"]]
    ticks = 0

    async def ticker():
        nonlocal ticks
        while True:
            ticks += 1
            await asyncio.sleep(0)

    task = asyncio.create_task(ticker())
    results = await asyncio.gather(*(ranker.run_async(query="capital", documents=DOCS * 20) for _ in range(3)))
    task.cancel()
    assert ticks > 3
    for result in results:
        assert [(d.id, d.score) for d in result["documents"]] == expected


def test_missing_local_path_gives_one_clear_error():
    ranker = CrossEncoderRanker(model="/no/such/model/dir")
    with pytest.raises(ModelNotAvailableError, match=r"/no/such/model/dir.*local directory"):
        ranker.warm_up()


def test_hub_id_offline_fails_fast_with_a_clear_error(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    ranker = CrossEncoderRanker(model="some-org/not-cached-model")
    start = time.monotonic()
    with pytest.raises(ModelNotAvailableError, match=r"some-org/not-cached-model.*unreachable.*local directory"):
        ranker.warm_up()
    assert time.monotonic() - start < 10


def test_model_with_several_labels_is_rejected(tmp_path, minilm_tokenizer):
    from transformers import BertConfig, BertForSequenceClassification

    config = BertConfig(
        vocab_size=minilm_tokenizer.vocab_size,
        hidden_size=16,
        num_hidden_layers=1,
        num_attention_heads=1,
        intermediate_size=16,
        num_labels=3,
    )
    BertForSequenceClassification(config).save_pretrained(tmp_path)
    minilm_tokenizer.save_pretrained(tmp_path)
    with pytest.raises(ValueError, match="num_labels=1"):
        CrossEncoderRanker(model=str(tmp_path)).warm_up()


def test_to_dict_from_dict_round_trip_gives_identical_scores(spread_model_path):
    ranker = CrossEncoderRanker(
        model=str(spread_model_path),
        device=ComponentDevice.from_str("cpu"),
        token=Secret.from_env_var("MY_HF_TOKEN", strict=False),
        top_k=3,
        query_prefix="q: ",
        document_suffix=" end",
        meta_fields_to_embed=["lang"],
        embedding_separator=" - ",
        activation="tanh",
        scale=4.0,
        score_threshold=-0.99,
        model_kwargs={"torch_dtype": torch.float32},
        tokenizer_kwargs={"model_max_length": 100},
        config_kwargs={"classifier_dropout": 0.0},
        batch_size=2,
        max_length=100,
        show_progress_bar=False,
        aggregation="top2_mean",
        return_passages=True,
        split_long_documents=True,
        passage_overlap_tokens=8,
    )
    data = ranker.to_dict()
    assert data["type"] == "haystack_integrations.components.rankers.crossencoder.ranker.CrossEncoderRanker"
    assert data["init_parameters"]["token"] == {"type": "env_var", "env_vars": ["MY_HF_TOKEN"], "strict": False}
    assert data["init_parameters"]["model_kwargs"] == {"torch_dtype": "torch.float32"}
    restored = CrossEncoderRanker.from_dict(data)
    assert restored.to_dict() == data
    before = [(d.id, d.score) for d in ranker.run(query="capital", documents=DOCS)["documents"]]
    after = [(d.id, d.score) for d in restored.run(query="capital", documents=DOCS)["documents"]]
    assert before == after and len(before) == 3


def test_from_dict_accepts_the_peers_parameters(spread_model_path):
    data = {
        "type": "haystack_integrations.components.rankers.crossencoder.ranker.CrossEncoderRanker",
        "init_parameters": {"model": str(spread_model_path), "scale_score": False, "top_k": 2},
    }
    ranker = CrossEncoderRanker.from_dict(data)
    assert ranker.scale_score is False
    assert len(ranker.run(query="q", documents=DOCS)["documents"]) == 2


def test_yaml_pipeline_round_trip_gives_identical_scores(spread_model_path):
    pipeline = Pipeline()
    pipeline.add_component("ranker", CrossEncoderRanker(model=str(spread_model_path), top_k=3, scale=2.0))
    yaml_text = pipeline.dumps()
    assert "haystack_integrations.components.rankers.crossencoder.ranker.CrossEncoderRanker" in yaml_text
    loaded = Pipeline.loads(yaml_text)
    before = pipeline.run({"ranker": {"query": "capital", "documents": DOCS}})["ranker"]["documents"]
    after = loaded.run({"ranker": {"query": "capital", "documents": DOCS}})["ranker"]["documents"]
    assert [(d.id, d.score) for d in before] == [(d.id, d.score) for d in after]


def test_swapping_the_peer_for_ours_by_changing_only_the_type_line(spread_model_path):
    from haystack_integrations.components.rankers.sentence_transformers import SentenceTransformersSimilarityRanker

    pipeline = Pipeline()
    pipeline.add_component(
        "ranker",
        SentenceTransformersSimilarityRanker(
            model=str(spread_model_path), top_k=3, scale_score=True, meta_fields_to_embed=["lang"], batch_size=2
        ),
    )
    peer_yaml = pipeline.dumps()
    peer_type = "haystack_integrations.components.rankers.sentence_transformers.sentence_transformers_similarity."
    peer_type += "SentenceTransformersSimilarityRanker"
    assert peer_type in peer_yaml
    ours_yaml = peer_yaml.replace(
        peer_type, "haystack_integrations.components.rankers.crossencoder.ranker.CrossEncoderRanker"
    )
    assert sum(a != b for a, b in zip(peer_yaml.splitlines(), ours_yaml.splitlines(), strict=True)) == 1
    peer = pipeline.run({"ranker": {"query": "capital", "documents": DOCS}})["ranker"]["documents"]
    loaded = Pipeline.loads(ours_yaml)
    assert isinstance(loaded.get_component("ranker"), CrossEncoderRanker)
    ours = loaded.run({"ranker": {"query": "capital", "documents": DOCS}})["ranker"]["documents"]
    assert [d.id for d in ours] == [d.id for d in peer]
    assert [d.score for d in ours] == pytest.approx([d.score for d in peer], abs=1e-6)


def test_a_fine_tuned_tiny_model_ranks_the_relevant_document_first(tmp_path, tiny_model_path):
    """Real ranking behaviour, not plumbing: a tiny cross-encoder fine-tuned for a few seconds on a toy task
    (fruit documents are relevant, vehicles are not) puts the relevant document first through the ranker."""
    from crossencoder_haystack.training import train
    from tests.test_training import FAST, write_toy

    data = write_toy(tmp_path / "pairs.jsonl", "pairs", 48, seed=1)
    train(data, tmp_path / "model", base_model=tiny_model_path, max_steps=12, batch_size=16, eval_fraction=0, **FAST)
    documents = [
        Document(content="truck bus tram", score=0.9),
        Document(content="car boat plane", score=0.8),
        Document(content="mango cherry plum", score=0.1),
        Document(content="ship van bike", score=0.7),
    ]
    untrained = CrossEncoderRanker(model=str(tiny_model_path)).run(query="which food is good", documents=documents)
    trained = CrossEncoderRanker(model=str(tmp_path / "model")).run(query="which food is good", documents=documents)
    assert trained["documents"][0].content == "mango cherry plum"
    assert trained["documents"][0].meta["retrieval_rank"] == 3
    spread = trained["documents"][0].score - trained["documents"][1].score
    assert spread > untrained["documents"][0].score - untrained["documents"][1].score


@pytest.mark.parametrize("split_long_documents", [False, True])
def test_run_batch_gives_each_query_what_run_gives_it(spread_model_path, split_long_documents):
    ranker = CrossEncoderRanker(
        model=str(spread_model_path), top_k=3, split_long_documents=split_long_documents, max_length=32
    )
    long_document = Document(content="The Rhine flows north. " * 30 + "Berlin is the capital of Germany.")
    queries = ["capital of Germany", "rivers of Europe", "capital of Germany"]
    documents = [DOCS, [*DOCS[2:], long_document, DOCS[0]], []]
    before = [[doc.to_dict() for doc in docs] for docs in documents]
    batched = ranker.run_batch(queries=queries, documents=documents, activation="identity")["documents"]
    for query, docs, result in zip(queries, documents, batched, strict=True):
        expected = ranker.run(query=query, documents=docs, activation="identity")["documents"]
        assert [d.id for d in result] == [d.id for d in expected]
        assert [d.score for d in result] == pytest.approx([d.score for d in expected], abs=1e-5)
        passage_scores = [d.meta.pop("best_passage_score", None) for d in (*result, *expected)]
        assert passage_scores[: len(result)] == pytest.approx(passage_scores[len(result) :], abs=1e-5)
        assert [d.meta for d in result] == [d.meta for d in expected]
    assert batched[2] == []
    assert [[doc.to_dict() for doc in docs] for docs in documents] == before


def test_run_batch_rejects_mismatched_or_invalid_input(ranker):
    with pytest.raises(ValueError, match="queries has 2 entries but documents has 1"):
        ranker.run_batch(queries=["a", "b"], documents=[DOCS])
    with pytest.raises(TypeError, match="one per query"):
        ranker.run_batch(queries="a", documents=[DOCS])
    with pytest.raises(ValueError, match="query must be a non-empty string"):
        ranker.run_batch(queries=["a", " "], documents=[DOCS, DOCS])
    assert ranker.run_batch(queries=[], documents=[]) == {"documents": []}


# --- issue #13: clear errors for bad parameters and meta, nothing to score in invisible text ---------------------


@pytest.mark.parametrize("bad", [1.5, "3", True, False, 0, -1, None])
def test_top_k_must_be_a_positive_int_in_init(spread_model_path, bad):
    with pytest.raises(ValueError, match="top_k must be a positive int"):
        CrossEncoderRanker(model=str(spread_model_path), top_k=bad)


@pytest.mark.parametrize("bad", [1.5, "3", True, 0, -2])
async def test_top_k_must_be_a_positive_int_in_run_run_batch_and_run_async(ranker, bad):
    with pytest.raises(ValueError, match="top_k must be a positive int"):
        ranker.run(query="q", documents=DOCS, top_k=bad)
    with pytest.raises(ValueError, match="top_k must be a positive int"):
        ranker.run_batch(queries=["q"], documents=[DOCS], top_k=bad)
    with pytest.raises(ValueError, match="top_k must be a positive int"):
        await ranker.run_async(query="q", documents=DOCS, top_k=bad)


def test_top_k_accepts_numpy_integers(ranker):
    assert len(ranker.run(query="q", documents=DOCS, top_k=np.int64(2))["documents"]) == 2


@pytest.mark.parametrize("bad", ["0.5", True, math.nan, [0.5]])
async def test_score_threshold_must_be_a_real_number(spread_model_path, ranker, bad):
    with pytest.raises(ValueError, match="score_threshold must be a real number"):
        CrossEncoderRanker(model=str(spread_model_path), score_threshold=bad)
    with pytest.raises(ValueError, match="score_threshold must be a real number"):
        ranker.run(query="q", documents=DOCS, score_threshold=bad)
    with pytest.raises(ValueError, match="score_threshold must be a real number"):
        await ranker.run_async(query="q", documents=DOCS, score_threshold=bad)


@pytest.mark.parametrize("bad", ["2", True, math.inf, math.nan])
def test_scale_must_be_a_real_number(spread_model_path, ranker, bad):
    with pytest.raises(ValueError, match="scale must be a finite number"):
        CrossEncoderRanker(model=str(spread_model_path), scale=bad)
    with pytest.raises(ValueError, match="scale must be a finite number"):
        ranker.run_batch(queries=["q"], documents=[DOCS], scale=bad)


@pytest.mark.parametrize(
    ("name", "bad"),
    [("batch_size", 2.0), ("max_length", "64"), ("cache_size", -1), ("num_threads", True), ("max_tokens_per_batch", 0)],
)
def test_other_int_parameters_are_checked_with_clear_errors(spread_model_path, name, bad):
    with pytest.raises(ValueError, match=f"{name} must be an int"):
        CrossEncoderRanker(model=str(spread_model_path), **{name: bad})


@pytest.mark.parametrize("bad_rank", ["3", 2.5, None, True, [1]])
def test_a_retrieval_rank_in_meta_that_is_not_an_int_is_ignored(ranker, bad_rank):
    """An int `meta["retrieval_rank"]` from an earlier stage is kept; anything else is replaced by the position."""
    docs = [
        Document(content="identical text", meta={"retrieval_rank": 7}),
        Document(content="identical text", meta={"retrieval_rank": bad_rank, "n": 1}),
        Document(content="identical text", meta={"n": 2}),
    ]
    result = ranker.run(query="q", documents=docs)["documents"]
    assert [d.meta["retrieval_rank"] for d in result] == [2, 3, 7], "ties are broken by the (valid) ranks"
    assert docs[1].meta["retrieval_rank"] == bad_rank, "the caller's document is not changed"


def test_a_retrieval_score_in_meta_that_is_not_a_number_falls_back_to_the_score(spread_model_path):
    ranker = CrossEncoderRanker(model=str(spread_model_path), first_stage_weight=1.0)
    docs = [
        Document(content="first", score=0.1, meta={"retrieval_score": "high"}),
        Document(content="second", score=0.9),
    ]
    result = ranker.run(query="q", documents=docs)["documents"]
    assert [d.content for d in result] == ["second", "first"]
    assert result[1].meta["retrieval_score"] == "high", "the caller's meta is returned as it was"


@pytest.mark.parametrize("content", ["\u200b\u200c\x00\n\t", "\ufeff", "\x00\x01\x7f", "\u2028\u2029\u00a0", "\u00ad"])
def test_content_of_control_and_zero_width_characters_has_nothing_to_score(ranker, content):
    docs = [Document(content=content), *DOCS[:2]]
    result = ranker.run(query="capital", documents=docs)["documents"]
    assert [d.score is None for d in result] == [False, False, True]
    assert result[-1].content == content and result[-1].meta["retrieval_rank"] == 1
    assert len(ranker.run(query="capital", documents=docs, score_threshold=-1e9)["documents"]) == 2


def test_invisible_characters_next_to_text_are_scored(ranker):
    result = ranker.run(query="capital", documents=[Document(content="\u200bBerlin\x00")])["documents"]
    assert result[0].score is not None


def test_meta_of_invisible_characters_has_nothing_to_score(spread_model_path):
    ranker = CrossEncoderRanker(model=str(spread_model_path), meta_fields_to_embed=["title"])
    result = ranker.run(query="q", documents=[Document(content="\u200b", meta={"title": "\u200c\t"})])["documents"]
    assert result[0].score is None


# --- issue #15: fusion with the first stage -------------------------------------------------------------------------

SCORED_DOCS = [  # retrieval order is not input order, so the two cannot be confused
    Document(content="Paris is the capital of France.", score=0.2),
    Document(content="Berlin is the capital of Germany.", score=0.9),
    Document(content="The Rhine flows through Germany and the Netherlands.", score=0.5),
    Document(content="Ankara Türkiye'nin başkentidir.", score=0.7),
]


def _ids_and_scores(documents):
    return [(d.id, d.score) for d in documents]


def test_fusion_weight_zero_is_todays_ranking_exactly(spread_model_path, ranker):
    today = ranker.run(query="capital", documents=SCORED_DOCS)["documents"]
    for fusion in ("minmax", "zscore", "rrf"):
        zero = CrossEncoderRanker(model=str(spread_model_path), first_stage_weight=0.0, fusion=fusion)
        result = zero.run(query="capital", documents=SCORED_DOCS)["documents"]
        assert _ids_and_scores(result) == _ids_and_scores(today)
        assert [d.meta for d in result] == [d.meta for d in today]
        assert all("rerank_score" not in d.meta for d in result)
    fused = CrossEncoderRanker(model=str(spread_model_path), first_stage_weight=0.5)
    assert _ids_and_scores(fused.run(query="capital", documents=SCORED_DOCS, first_stage_weight=0)["documents"]) == (
        _ids_and_scores(today)
    )


@pytest.mark.parametrize("fusion", ["minmax", "zscore", "rrf"])
def test_fusion_weight_one_returns_the_retrieval_order(spread_model_path, fusion):
    ranker = CrossEncoderRanker(model=str(spread_model_path), first_stage_weight=1.0, fusion=fusion)
    result = ranker.run(query="capital", documents=SCORED_DOCS)["documents"]
    assert [d.id for d in result] == [d.id for d in sorted(SCORED_DOCS, key=lambda d: -d.score)]
    unscored = [Document(content=d.content) for d in SCORED_DOCS]
    result = ranker.run(query="capital", documents=unscored)["documents"]
    assert [d.id for d in result] == [d.id for d in unscored], "without retrieval scores the input order decides"


@pytest.mark.parametrize("fusion", ["minmax", "zscore", "rrf"])
def test_fused_score_and_rerank_score(spread_model_path, ranker, fusion):
    rerank = {d.id: d.score for d in ranker.run(query="capital", documents=SCORED_DOCS)["documents"]}
    fused_ranker = CrossEncoderRanker(model=str(spread_model_path), first_stage_weight=0.3, fusion=fusion)
    result = fused_ranker.run(query="capital", documents=SCORED_DOCS)["documents"]
    expected = fuse_scores([rerank[d.id] for d in SCORED_DOCS], [d.score for d in SCORED_DOCS], 0.3, fusion)
    expected_by_id = dict(zip([d.id for d in SCORED_DOCS], expected, strict=True))
    for doc in result:
        assert doc.score == pytest.approx(expected_by_id[doc.id])
        assert doc.meta["rerank_score"] == rerank[doc.id]
        assert doc.meta["retrieval_score"] == next(d.score for d in SCORED_DOCS if d.id == doc.id)
    assert [d.score for d in result] == sorted((d.score for d in result), reverse=True)


def test_fusion_with_documents_without_a_retrieval_score_or_text(spread_model_path):
    docs = [*SCORED_DOCS[:2], Document(content="No retrieval score here."), Document(content="\u200b", score=1.0)]
    ranker = CrossEncoderRanker(model=str(spread_model_path), first_stage_weight=1.0)
    result = ranker.run(query="capital", documents=docs)["documents"]
    assert [d.content for d in result] == [docs[1].content, docs[0].content, docs[2].content, "\u200b"]
    assert result[1].score == result[2].score == 0.0, "no retrieval score counts as the worst of the list"
    assert result[-1].score is None and result[-1].meta["rerank_score"] is None, "nothing to score stays last"
    assert len(ranker.run(query="capital", documents=docs, score_threshold=0.0)["documents"]) == 3


def test_fusion_can_be_set_at_run_time(spread_model_path):
    ranker = CrossEncoderRanker(model=str(spread_model_path))
    fused = CrossEncoderRanker(model=str(spread_model_path), first_stage_weight=0.4, fusion="rrf")
    expected = _ids_and_scores(fused.run(query="capital", documents=SCORED_DOCS)["documents"])
    got = ranker.run(query="capital", documents=SCORED_DOCS, first_stage_weight=0.4, fusion="rrf")["documents"]
    assert _ids_and_scores(got) == expected


async def test_fusion_in_run_batch_and_run_async_is_what_run_gives(spread_model_path):
    ranker = CrossEncoderRanker(model=str(spread_model_path), first_stage_weight=0.5, fusion="zscore")
    queries, documents = ["capital", "river"], [SCORED_DOCS, SCORED_DOCS[1:]]
    batched = ranker.run_batch(queries=queries, documents=documents)["documents"]
    for query, docs, result in zip(queries, documents, batched, strict=True):
        expected = ranker.run(query=query, documents=docs)["documents"]
        assert [d.id for d in result] == [d.id for d in expected]
        # Batches pad differently, which moves the model's scores by ~1e-5; normalising can magnify that a little.
        assert [d.score for d in result] == pytest.approx([d.score for d in expected], abs=1e-3)
        in_async = (await ranker.run_async(query=query, documents=docs))["documents"]
        assert [d.id for d in in_async] == [d.id for d in expected]
    overridden = (await ranker.run_async(query="capital", documents=SCORED_DOCS, first_stage_weight=1.0))["documents"]
    assert [d.id for d in overridden] == [d.id for d in sorted(SCORED_DOCS, key=lambda d: -d.score)]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"first_stage_weight": 1.5}, "first_stage_weight must be a number in"),
        ({"first_stage_weight": -0.1}, "first_stage_weight must be a number in"),
        ({"first_stage_weight": True}, "first_stage_weight must be a number in"),
        ({"first_stage_weight": "0.5"}, "first_stage_weight must be a number in"),
        ({"fusion": "borda"}, "fusion must be one of 'minmax', 'zscore', 'rrf'"),
    ],
)
async def test_fusion_parameters_are_validated(spread_model_path, ranker, kwargs, message):
    with pytest.raises(ValueError, match=message):
        CrossEncoderRanker(model=str(spread_model_path), **kwargs)
    with pytest.raises(ValueError, match=message):
        ranker.run(query="q", documents=DOCS, **kwargs)
    with pytest.raises(ValueError, match=message):
        ranker.run_batch(queries=["q"], documents=[DOCS], **kwargs)
    with pytest.raises(ValueError, match=message):
        await ranker.run_async(query="q", documents=DOCS, **kwargs)


def test_fusion_round_trips_through_yaml(spread_model_path):
    pipeline = Pipeline()
    pipeline.add_component(
        "ranker", CrossEncoderRanker(model=str(spread_model_path), first_stage_weight=0.3, fusion="zscore")
    )
    loaded = Pipeline.loads(pipeline.dumps())
    ranker = loaded.get_component("ranker")
    assert (ranker.first_stage_weight, ranker.fusion) == (0.3, "zscore")
    before = pipeline.run({"ranker": {"query": "capital", "documents": SCORED_DOCS}})["ranker"]["documents"]
    after = loaded.run({"ranker": {"query": "capital", "documents": SCORED_DOCS}})["ranker"]["documents"]
    assert _ids_and_scores(before) == _ids_and_scores(after)
    assert "rerank_score" in after[0].meta
    unset = CrossEncoderRanker(model=str(spread_model_path)).to_dict()["init_parameters"]
    assert unset["first_stage_weight"] is None and unset["fusion"] is None
    written_before_fusion = {
        "type": "haystack_integrations.components.rankers.crossencoder.ranker.CrossEncoderRanker",
        "init_parameters": {"model": str(spread_model_path)},
    }
    assert CrossEncoderRanker.from_dict(written_before_fusion).first_stage_weight is None


@pytest.fixture
def fused_model_dir(tmp_path, spread_model_path):
    """A copy of the spread model whose directory declares first_stage_weight=1 with rrf."""
    import shutil

    directory = tmp_path / "fused_model"
    shutil.copytree(spread_model_path, directory)
    write_fusion_defaults(directory, 1.0, "rrf")
    return directory


def test_the_model_directory_declares_the_fusion(fused_model_dir, ranker):
    declared = CrossEncoderRanker(model=str(fused_model_dir))
    result = declared.run(query="capital", documents=SCORED_DOCS)["documents"]
    assert [d.id for d in result] == [d.id for d in sorted(SCORED_DOCS, key=lambda d: -d.score)]
    assert result[0].score == pytest.approx(1 / 61), "rrf, weight 1: the best retrieval rank"
    assert declared.to_dict()["init_parameters"]["first_stage_weight"] is None, "the user's value is serialized"
    assert declared.to_dict()["init_parameters"]["fusion"] is None
    restored = CrossEncoderRanker.from_dict(declared.to_dict())
    assert _ids_and_scores(restored.run(query="capital", documents=SCORED_DOCS)["documents"]) == (
        _ids_and_scores(result)
    )
    # The user's own value wins over the directory's, at init and at run time.
    own = CrossEncoderRanker(model=str(fused_model_dir), first_stage_weight=0.0)
    today = _ids_and_scores(ranker.run(query="capital", documents=SCORED_DOCS)["documents"])
    assert _ids_and_scores(own.run(query="capital", documents=SCORED_DOCS)["documents"]) == today
    assert _ids_and_scores(declared.run(query="capital", documents=SCORED_DOCS, first_stage_weight=0)["documents"]) == (
        today
    )
    minmax = declared.run(query="capital", documents=SCORED_DOCS, fusion="minmax")["documents"]
    assert minmax[0].score == pytest.approx(1.0), "weight 1 from the directory, fusion from the run"


def test_a_bad_fusion_file_fails_at_warm_up_naming_it(fused_model_dir):
    (fused_model_dir / FUSION_FILE).write_text('{"first_stage_weight": 7}')
    with pytest.raises(ValueError, match=r"first_stage_weight in .*crossencoder_haystack.json"):
        CrossEncoderRanker(model=str(fused_model_dir)).warm_up()
    explicit = CrossEncoderRanker(model=str(fused_model_dir), first_stage_weight=0.2, fusion="minmax")
    explicit.warm_up()  # both values given: the file is not needed and not read

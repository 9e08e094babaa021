"""`rerank export` of a bi-encoder reranker (issue #22) and `--quantize auto` (issue #14).

A tiny random bi-encoder with the MiniLM tokenizer stands in for a model `rerank train` saved from
all-MiniLM-L6-v2: what matters is that the export scores exactly as the torch model (same cosines, same order),
keeps the directory's prefixes and fusion defaults, and runs no code from the model directory.
"""

import json
import random
import shutil

import numpy as np
import pytest
from haystack import Document

from crossencoder_haystack.cli import main
from crossencoder_haystack.export import exporting as export_module
from crossencoder_haystack.export.exporting import auto_quantization_preset, export_cross_encoder
from haystack_integrations.components.rankers.crossencoder import CrossEncoderRanker
from haystack_integrations.components.rankers.crossencoder._engine.bi_encoder_scoring import ExportedSentenceEncoder
from haystack_integrations.components.rankers.crossencoder._engine.manifest import MANIFEST_NAME, read_manifest
from haystack_integrations.components.rankers.crossencoder.fusion import read_fusion_defaults

WORDS = "apple banana cherry grape lemon mango car truck bus train plane boat".split()
QUERY = "fruit salad with mango"
RERANKER_CONFIG = {
    "scorer": "bi-encoder",
    "activation": "identity",
    "query_prefix": "query: ",
    "document_prefix": "passage: ",
    "first_stage_weight": 0.25,
    "fusion": "minmax",
}
VNNI_CPU = frozenset({"avx2", "avx512f", "avx512_vnni"})


def _texts(seed: int, count: int) -> list[str]:
    rng = random.Random(seed)
    return [" ".join(rng.sample(WORDS, rng.randint(1, 12))) for _ in range(count)]


TEXTS = [*_texts(1, 10), "mango " * 100]  # the last one is truncated at max_seq_length


@pytest.fixture(scope="module")
def bi_encoder_path(tmp_path_factory, minilm_tokenizer):
    """A bi-encoder reranker as `rerank train` saves one: Transformer -> Pooling -> Normalize, plus its config."""
    from tests.bi_encoder_fixtures import save_tiny_bi_encoder

    path = save_tiny_bi_encoder(tmp_path_factory.mktemp("bi_export"), minilm_tokenizer, num_layers=2)
    (path / "crossencoder_haystack.json").write_text(json.dumps(RERANKER_CONFIG), encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def onnx_export(tmp_path_factory, bi_encoder_path):
    directory = tmp_path_factory.mktemp("bi_onnx")
    export_cross_encoder(bi_encoder_path, directory, backend="onnx")
    return directory


def _ranked(model, **kwargs) -> list[tuple[str, float]]:
    """(text, raw cosine) of TEXTS, best first; fusion off, so the scores are the reranker's own."""
    ranker = CrossEncoderRanker(model=str(model), top_k=len(TEXTS), first_stage_weight=0.0, **kwargs)
    documents = [Document(content=text) for text in TEXTS]
    return [(doc.content, doc.score) for doc in ranker.run(query=QUERY, documents=documents)["documents"]]


@pytest.fixture(scope="module")
def torch_ranked(bi_encoder_path):
    return _ranked(bi_encoder_path)


def _assert_same_ranking(got, expected, atol):
    assert [text for text, _ in got] == [text for text, _ in expected]
    np.testing.assert_allclose([score for _, score in got], [score for _, score in expected], atol=atol)


class TestOnnxExport:
    def test_the_directory_holds_configs_and_the_graph_but_no_weights(self, onnx_export):
        names = {path.relative_to(onnx_export).as_posix() for path in onnx_export.rglob("*") if path.is_file()}
        assert {"onnx/model.onnx", MANIFEST_NAME, "crossencoder_haystack.json", "modules.json"} <= names
        assert {"tokenizer.json", "config.json", "1_Pooling/config.json"} <= names
        assert not any(name.endswith((".safetensors", ".bin")) for name in names)
        recorded = read_manifest(onnx_export)["onnx"]
        assert (recorded.scorer, recorded.file, recorded.max_length, recorded.activation) == (
            "bi-encoder",
            "onnx/model.onnx",
            64,
            "identity",
        )
        assert (recorded.embedding_dimension, recorded.quantize, recorded.quantize_chosen_by) == (32, None, None)

    def test_the_reranker_config_travels_with_the_export(self, onnx_export, bi_encoder_path):
        config = json.loads((onnx_export / "crossencoder_haystack.json").read_text(encoding="utf-8"))
        assert config == RERANKER_CONFIG
        assert read_fusion_defaults(onnx_export) == read_fusion_defaults(bi_encoder_path) != {}

    def test_onnx_ranks_as_torch_with_the_prefixes(self, tmp_path, onnx_export, torch_ranked, bi_encoder_path):
        _assert_same_ranking(_ranked(onnx_export, backend="onnx"), torch_ranked, atol=1e-5)
        # The prefixes matter: without them the cosines are others.
        plain = tmp_path / "plain"
        shutil.copytree(bi_encoder_path, plain)
        (plain / "crossencoder_haystack.json").write_text(json.dumps({"scorer": "bi-encoder"}), encoding="utf-8")
        unprefixed = dict(_ranked(plain))
        assert not np.allclose([unprefixed[text] for text, _ in torch_ranked], [s for _, s in torch_ranked])

    def test_token_budget_and_cache_keep_the_scores(self, onnx_export, torch_ranked):
        budgeted = _ranked(onnx_export, backend="onnx", max_tokens_per_batch=40, cache_size=32, batch_size=3)
        _assert_same_ranking(budgeted, torch_ranked, atol=1e-5)

    def test_the_export_is_served_as_the_torch_model(self, onnx_export, bi_encoder_path):
        from crossencoder_haystack.serving.served_model import RerankJob, ServedModel

        def served_scores(model, backend):
            ranked = ServedModel(str(model), backend=backend).rank(RerankJob(query=QUERY, texts=TEXTS, raw_scores=True))
            return {item.index: item.score for item in ranked}

        # The long text is split into passages (serving splits, the ranker above truncates) on both backends.
        assert served_scores(onnx_export, "onnx") == pytest.approx(served_scores(bi_encoder_path, "torch"), abs=1e-5)


def test_quantize_auto_on_the_command_line_records_the_preset(tmp_path, bi_encoder_path, torch_ranked, monkeypatch):
    monkeypatch.setattr(export_module, "cpu_flags", lambda: VNNI_CPU)
    output = tmp_path / "int8"
    assert main(["export", str(bi_encoder_path), "--quantize", "auto", "--output", str(output)]) == 0
    recorded = read_manifest(output)["onnx"]
    assert (recorded.file, recorded.quantize) == ("onnx/model_qint8_avx512_vnni.onnx", "avx512_vnni")
    assert recorded.quantize_chosen_by == "auto: the CPU has avx512_vnni"
    int8 = _ranked(output, backend="onnx")
    expected = dict(torch_ranked)
    np.testing.assert_allclose([score for _, score in int8], [expected[text] for text, _ in int8], atol=0.05)
    assert int8[0][0] == torch_ranked[0][0]


def test_static_int8_is_calibrated_on_the_prefixed_queries_and_documents(tmp_path, bi_encoder_path, torch_ranked):
    pairs = [(QUERY, text) for text in TEXTS] * 2
    export_cross_encoder(bi_encoder_path, tmp_path / "static", quantize="int8-static", calibration_pairs=pairs)
    assert read_manifest(tmp_path / "static")["onnx"].file == "onnx/model_qint8_static.onnx"
    static = dict(_ranked(tmp_path / "static", backend="onnx"))
    np.testing.assert_allclose([static[text] for text, _ in torch_ranked], [s for _, s in torch_ranked], atol=0.05)


def test_openvino_ranks_as_torch(tmp_path, bi_encoder_path, torch_ranked):
    export_cross_encoder(bi_encoder_path, tmp_path / "ov", backend="openvino")
    assert read_manifest(tmp_path / "ov")["openvino"].file == "openvino/openvino_model.xml"
    _assert_same_ranking(_ranked(tmp_path / "ov", backend="openvino", precision="fp32"), torch_ranked, atol=1e-5)


def test_a_bi_encoder_naming_foreign_code_is_not_exported(tmp_path, bi_encoder_path):
    directory = tmp_path / "evil"
    shutil.copytree(bi_encoder_path, directory)
    modules = json.loads((directory / "modules.json").read_text(encoding="utf-8"))
    modules[-1]["type"] = "evil_package.Payload"
    (directory / "modules.json").write_text(json.dumps(modules), encoding="utf-8")
    with pytest.raises(ValueError, match="trust_remote_code"):
        export_cross_encoder(directory, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_an_onnx_file_with_token_embeddings_gets_a_clear_error(minilm_tokenizer):
    def token_embeddings(batch):
        return np.zeros((*batch["input_ids"].shape, 4), dtype=np.float32)

    encoder = ExportedSentenceEncoder(token_embeddings, minilm_tokenizer, max_length=16)
    with pytest.raises(ValueError, match="token embeddings without pooling"):
        encoder.encode(["a text"])


@pytest.mark.parametrize(
    ("flags", "preset", "reason"),
    [
        ({"sse4_2", "avx", "avx2", "fma"}, "avx2", "neither AVX-512 (VNNI) nor AMX"),
        ({"avx2", "avx512f", "avx512bw"}, "avx512", "avx512bw, avx512f"),
        (VNNI_CPU, "avx512_vnni", "avx512_vnni"),
        ({"avx2", "avx512f", "avx512_vnni", "amx_tile", "amx_int8", "amx_bf16"}, "avx512_vnni", "amx_int8"),
        ({"fp", "asimd", "asimddp"}, "arm64", "asimd"),
        (set(), "avx2", "could not be read"),
    ],
)
def test_quantize_auto_picks_the_preset_from_the_cpu_flags(flags, preset, reason):
    chosen, why = auto_quantization_preset(frozenset(flags))
    assert chosen == preset
    assert why.startswith("auto: ") and reason in why

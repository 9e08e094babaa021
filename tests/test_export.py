"""Exporting a cross-encoder to ONNX / OpenVINO (`export_cross_encoder`, `rerank export`) and ranking with it."""

import json
import shutil

import numpy as np
import pytest
from haystack import Document

from crossencoder_haystack.cli import main
from crossencoder_haystack.export import default_output_dir, read_calibration_pairs
from crossencoder_haystack.export.exporting import export_cross_encoder, validate_export_options
from haystack_integrations.components.rankers.crossencoder import CrossEncoderRanker, ModelNotAvailableError
from haystack_integrations.components.rankers.crossencoder._engine.manifest import (
    MANIFEST_NAME,
    find_exported_model,
    read_manifest,
)
from haystack_integrations.components.rankers.crossencoder._engine.openvino_backend import (
    OpenVinoForward,
    openvino_config,
)
from haystack_integrations.components.rankers.crossencoder.fusion import read_fusion_defaults, write_fusion_defaults
from tests.test_scoring import build_tiny_pooled_cross_encoder

TEXTS = [
    "p53",
    "Tumour suppressor genes such as p53 regulate apoptosis in cancer cells. " * 20,
    "Protein folding depends on chaperones and the cell's energy state.",
    "Mutations in BRCA1 raise the risk of breast cancer. " * 4,
    "x",
]
QUERY = "do tumour suppressors regulate apoptosis?"
CALIBRATION = [(QUERY, text) for text in TEXTS] * 4


def _scores(model, **kwargs) -> list[float]:
    """Identity scores (raw logits) of TEXTS, in input order."""
    ranker = CrossEncoderRanker(model=model, top_k=len(TEXTS), activation="identity", **kwargs)
    documents = [Document(id=str(i), content=text) for i, text in enumerate(TEXTS)]
    ranked = {doc.id: doc.score for doc in ranker.run(query=QUERY, documents=documents)["documents"]}
    return [ranked[str(i)] for i in range(len(TEXTS))]


@pytest.fixture(scope="module")
def torch_scores(tiny_model_path):
    return _scores(tiny_model_path)


@pytest.fixture(scope="module")
def onnx_dir(tmp_path_factory, tiny_model_path):
    """fp32, then dynamic int8 exported into one directory: the manifest points at the int8 file."""
    directory = tmp_path_factory.mktemp("onnx")
    export_cross_encoder(tiny_model_path, directory, backend="onnx")
    export_cross_encoder(tiny_model_path, directory, backend="onnx", quantize="avx2")
    return directory


@pytest.fixture(scope="module")
def openvino_dir(tmp_path_factory, tiny_model_path):
    directory = tmp_path_factory.mktemp("openvino")
    export_cross_encoder(tiny_model_path, directory, backend="openvino")
    export_cross_encoder(
        tiny_model_path, directory, backend="openvino", quantize="int8-static", calibration_pairs=CALIBRATION
    )
    return directory


class TestOnnx:
    def test_directory_layout_and_manifest(self, onnx_dir):
        names = {path.relative_to(onnx_dir).as_posix() for path in onnx_dir.rglob("*") if path.is_file()}
        assert {"onnx/model.onnx", "onnx/model_qint8_avx2.onnx", MANIFEST_NAME, "config.json"} <= names
        assert {"tokenizer.json", "config_sentence_transformers.json"} <= names
        assert not {"model.safetensors", "pytorch_model.bin"} & names  # no torch weights
        recorded = read_manifest(onnx_dir)["onnx"]
        assert (recorded.file, recorded.quantize, recorded.max_length, recorded.activation) == (
            "onnx/model_qint8_avx2.onnx",
            "avx2",
            128,
            "sigmoid",
        )

    def test_fp32_scores_equal_torch(self, onnx_dir, torch_scores):
        # onnxruntime computes a float32 model in float32 on x86, AMX / AVX512-BF16 CPUs included.
        scores = _scores(onnx_dir, backend="onnx", model_kwargs={"file_name": "onnx/model.onnx"})
        np.testing.assert_allclose(scores, torch_scores, atol=1e-5)

    def test_int8_scores_are_close_to_torch(self, onnx_dir, torch_scores):
        import onnx

        graph = onnx.load(str(onnx_dir / "onnx/model_qint8_avx2.onnx")).graph
        assert "DynamicQuantizeLinear" in {node.op_type for node in graph.node}
        scores = _scores(onnx_dir, backend="onnx")  # the manifest's file: int8
        np.testing.assert_allclose(scores, torch_scores, atol=0.02)
        assert not np.allclose(scores, torch_scores, atol=1e-7)

    def test_file_name_without_folder_and_the_activation_from_the_manifest(self, onnx_dir, torch_scores):
        ranker = CrossEncoderRanker(model=onnx_dir, backend="onnx", model_kwargs={"file_name": "model.onnx"})
        documents = [Document(id=str(i), content=text) for i, text in enumerate(TEXTS)]
        ranked = ranker.run(query=QUERY, documents=documents)["documents"]
        assert all(0.0 < doc.score < 1.0 for doc in ranked)  # sigmoid, as the model declares
        best = max(range(len(TEXTS)), key=lambda i: torch_scores[i])
        assert ranked[0].id == str(best)

    def test_token_budget_and_cache_work_on_onnx(self, onnx_dir):
        fp32 = {"file_name": "onnx/model.onnx"}
        plain = _scores(onnx_dir, backend="onnx", model_kwargs=fp32)
        budgeted = _scores(onnx_dir, backend="onnx", model_kwargs=fp32, max_tokens_per_batch=64, cache_size=16)
        np.testing.assert_allclose(budgeted, plain, atol=1e-5)
        # Dynamic int8 computes activation ranges per batch, so batching moves int8 scores a little.
        np.testing.assert_allclose(
            _scores(onnx_dir, backend="onnx", max_tokens_per_batch=64), _scores(onnx_dir, backend="onnx"), atol=1e-3
        )

    @pytest.mark.parametrize("head", ["dense", "cosine"])
    def test_a_pooled_cross_encoder_exports_with_its_pooling_and_head(self, tmp_path, minilm_tokenizer, head):
        model = build_tiny_pooled_cross_encoder(tmp_path / "pooled", minilm_tokenizer, head=head)
        exported = export_cross_encoder(model, tmp_path / "onnx", backend="onnx")
        assert exported.max_length == 64
        np.testing.assert_allclose(_scores(tmp_path / "onnx", backend="onnx"), _scores(model), atol=1e-4)

    def test_the_fusion_defaults_of_the_model_travel_with_the_export(self, tmp_path, tiny_model_path):
        model = tmp_path / "tuned"
        shutil.copytree(tiny_model_path, model)
        write_fusion_defaults(model, 0.3, "zscore")
        export_cross_encoder(model, tmp_path / "onnx", backend="onnx")
        assert read_fusion_defaults(tmp_path / "onnx") == {"first_stage_weight": 0.3, "fusion": "zscore"}
        assert read_manifest(tmp_path / "onnx")["onnx"].scorer == "cross-encoder"

    def test_a_directory_without_an_export_tells_how_to_make_one(self, tiny_model_path):
        with pytest.raises(ModelNotAvailableError, match="rerank export"):
            CrossEncoderRanker(model=tiny_model_path, backend="onnx").warm_up()
        with pytest.raises(ModelNotAvailableError, match=r"model_O4\.onnx"):
            find_exported_model(tiny_model_path, "onnx", "model_O4.onnx")


class TestOpenVino:
    def test_fp32_scores_equal_torch(self, openvino_dir, torch_scores):
        # On CPUs with AMX / AVX512-BF16 OpenVINO would run this model in bfloat16 unless told otherwise (~1e-4 off).
        scores = _scores(openvino_dir, backend="openvino", model_kwargs={"file_name": "openvino/openvino_model.xml"})
        np.testing.assert_allclose(scores, torch_scores, atol=1e-5)

    def test_the_model_is_compiled_in_float32_on_any_cpu(self, openvino_dir):
        import openvino as ov
        import openvino.properties.hint as hints

        forward = OpenVinoForward(openvino_dir / "openvino/openvino_model.xml", num_threads=1)
        assert forward.compiled.get_property(hints.inference_precision()) == ov.Type.f32

    def test_precision_options(self):
        import openvino as ov
        import openvino.properties.hint as hints

        assert openvino_config()[hints.inference_precision()] == ov.Type.f32
        assert openvino_config("bf16")[hints.inference_precision()] == ov.Type.bf16
        with pytest.raises(ValueError, match="precision must be one of 'fp32', 'bf16', got 'fp16'"):
            openvino_config("fp16")

    def test_int8_static_scores_are_close_to_torch(self, openvino_dir, torch_scores):
        assert read_manifest(openvino_dir)["openvino"].file == "openvino/openvino_model_qint8_static.xml"
        assert "FakeQuantize" in (openvino_dir / "openvino/openvino_model_qint8_static.xml").read_text()
        scores = _scores(openvino_dir, backend="openvino")
        np.testing.assert_allclose(scores, torch_scores, atol=0.02)


class TestBadOptions:
    @pytest.mark.parametrize(
        ("options", "message"),
        [
            ({"backend": "tensorrt"}, "backend must be one of 'onnx', 'openvino'"),
            ({"backend": "onnx", "optimize": "O5"}, "optimize must be None or one of 'O1'"),
            ({"backend": "onnx", "quantize": "int4"}, "quantize must be None or one of 'auto', 'avx2'"),
            ({"backend": "openvino", "optimize": "O2"}, "optimize='O2' applies to backend='onnx' only"),
            ({"backend": "openvino", "quantize": "avx2"}, "quantize='int8-static'"),
            ({"backend": "openvino", "quantize": "auto"}, "quantize='auto' is an onnxruntime dynamic"),
        ],
    )
    def test_clear_errors_name_the_parameter(self, options, message):
        with pytest.raises(ValueError, match=message):
            validate_export_options(options["backend"], options.get("optimize"), options.get("quantize"))

    def test_export_validates_before_loading_anything(self, tmp_path):
        with pytest.raises(ValueError, match="quantize must be"):
            export_cross_encoder(tmp_path / "does-not-exist", tmp_path / "out", quantize="int4")
        assert not (tmp_path / "out").exists()

    def test_static_int8_needs_calibration_pairs(self, tmp_path, tiny_model_path):
        with pytest.raises(ValueError, match="calibration_pairs"):
            export_cross_encoder(tiny_model_path, tmp_path, backend="onnx", quantize="int8-static")

    def test_ranker_rejects_an_unknown_backend(self):
        with pytest.raises(ValueError, match="backend must be"):
            CrossEncoderRanker(model="some/model", backend="tensorrt")


class TestCommand:
    def test_rerank_export_writes_an_optimized_model_that_scores_like_torch(
        self, tmp_path, tiny_model_path, torch_scores, capsys
    ):
        output = tmp_path / "exported"
        assert main(["export", str(tiny_model_path), "--optimize", "O2", "--output", str(output)]) == 0
        assert "CrossEncoderRanker(model=" in capsys.readouterr().out
        assert read_manifest(output)["onnx"].file == "onnx/model_O2.onnx"
        np.testing.assert_allclose(_scores(output, backend="onnx"), torch_scores, atol=1e-4)

    def test_bad_choices_exit_with_usage(self, tiny_model_path):
        with pytest.raises(SystemExit) as exit_info:
            main(["export", str(tiny_model_path), "--quantize", "int4"])
        assert exit_info.value.code == 2

    def test_an_error_is_reported_not_raised(self, tmp_path, capsys):
        code = main(["export", str(tmp_path / "missing"), "--output", str(tmp_path / "out")])
        assert code == 2
        assert "error" in capsys.readouterr().err

    def test_default_output_dir(self):
        assert default_output_dir("/models/scifact-ce/", "onnx", "O2", "avx2").name == "scifact-ce-onnx-O2-avx2"

    def test_calibration_pairs_from_tsv_and_jsonl(self, tmp_path):
        tsv = tmp_path / "pairs.tsv"
        tsv.write_text("q1\tdoc one\n\nq2\tdoc two\n", encoding="utf-8")
        assert read_calibration_pairs(tsv) == [("q1", "doc one"), ("q2", "doc two")]
        jsonl = tmp_path / "pairs.jsonl"
        jsonl.write_text(json.dumps({"query": "q", "text": "t"}) + "\n", encoding="utf-8")
        assert read_calibration_pairs(jsonl) == [("q", "t")]
        bad = tmp_path / "bad.tsv"
        bad.write_text("only a query\n", encoding="utf-8")
        with pytest.raises(ValueError, match=r"bad.tsv:1 is not a \(query, document\) pair"):
            read_calibration_pairs(bad)

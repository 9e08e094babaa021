"""Precision chosen by the hardware (`precision.py`) and the ranker's `precision` and `truncation` parameters."""

import itertools

import numpy as np
import pytest
from haystack import Document, Pipeline

from haystack_integrations.components.rankers.crossencoder import CrossEncoderRanker
from haystack_integrations.components.rankers.crossencoder._engine import precision as precision_module
from haystack_integrations.components.rankers.crossencoder._engine.pair_encoding import TRUNCATIONS
from haystack_integrations.components.rankers.crossencoder._engine.precision import (
    PRECISIONS,
    check_precision,
    resolve_precision,
)
from haystack_integrations.components.rankers.crossencoder._engine.scoring import TokenizedPairScorer, load_pair_scorer

AVX2_ONLY = frozenset({"sse4_2", "avx", "avx2", "fma"})  # e.g. AMD EPYC (Zen 2/3)
AMX = frozenset({"avx2", "avx512f", "amx_tile", "amx_bf16", "amx_int8"})  # Intel Sapphire Rapids and later
AVX512_BF16 = frozenset({"avx2", "avx512f", "avx512_bf16"})  # e.g. AMD Zen 4, Intel Cooper Lake

QUERY = "capital of Germany"
# Texts a real model tells apart: the related ones score well above the rest.
TEXTS = [
    "Berlin is the capital of Germany.",
    "Germany's capital city is Berlin, on the river Spree.",
    "Paris is the capital of France.",
    "The tumour suppressor p53 regulates apoptosis.",
    "Protein folding depends on chaperones.",
    "Cats and dogs are popular pets.",
    "x",
    "The stock market fell sharply on Monday.",
    "Bake the bread at 220 degrees for 30 minutes.",
    "word " * 200,
]
DOCS = [Document(id=str(i), content=text) for i, text in enumerate(TEXTS)]
# Documents whose float32 scores are this far apart must keep their order in bf16 (bf16 moves them by ~3e-3).
CLEAR_GAP = 0.05


def _pretend_cpu(monkeypatch, flags: frozenset[str]) -> None:
    monkeypatch.setattr(precision_module, "cpu_flags", lambda: flags)


def _scores(ranker: CrossEncoderRanker, documents=DOCS, query=QUERY) -> dict[str, float]:
    ranked = ranker.run(query=query, documents=documents, top_k=len(documents))["documents"]
    return {doc.id: doc.score for doc in ranked}


def _order_of_clearly_separated_pairs_agrees(reference: dict[str, float], other: dict[str, float]) -> list[tuple]:
    """The pairs of documents whose reference scores are CLEAR_GAP apart but whose order `other` swaps."""
    swapped = []
    for a, b in itertools.combinations(reference, 2):
        gap = reference[a] - reference[b]
        if abs(gap) > CLEAR_GAP and np.sign(gap) != np.sign(other[a] - other[b]):
            swapped.append((a, b, reference[a], reference[b], other[a], other[b]))
    return swapped


@pytest.fixture(scope="module")
def minilm_cross_encoder_path(tmp_path_factory, minilm_path, minilm_tokenizer):
    """A cross-encoder on the bundled MiniLM's real weights (random head): its logits follow the text, so documents
    are clearly separated by meaning, not by float noise as in a random tiny model."""
    import torch
    from sentence_transformers import CrossEncoder
    from transformers import BertForSequenceClassification

    torch.manual_seed(0)
    directory = tmp_path_factory.mktemp("minilm_cross_encoder")
    classifier = BertForSequenceClassification.from_pretrained(str(minilm_path), num_labels=1)
    with torch.no_grad():
        classifier.classifier.weight.mul_(10.0)
    classifier.save_pretrained(directory / "raw")
    minilm_tokenizer.save_pretrained(directory / "raw")
    CrossEncoder(str(directory / "raw"), local_files_only=True, max_length=128).save(str(directory / "model"))
    return directory / "model"


class TestResolvePrecision:
    @pytest.mark.parametrize(
        ("precision", "device", "flags", "cuda_bf16", "expected"),
        [
            ("auto", "cpu", AVX2_ONLY, None, "fp32"),
            ("auto", "cpu", AMX, None, "bf16"),
            ("auto", "cpu", frozenset({"amx_bf16"}), None, "bf16"),
            ("auto", "cpu", AVX512_BF16, None, "bf16"),
            ("auto", "cpu", frozenset({"avx512f", "avx512_vnni"}), None, "fp32"),  # VNNI is int8, not bf16
            ("auto", "cpu", frozenset(), None, "fp32"),  # no /proc/cpuinfo: nothing assumed
            ("auto", "cuda", AVX2_ONLY, True, "bf16"),
            ("auto", "cuda:1", AMX, False, "fp16"),
            ("auto", "mps", AMX, None, "fp32"),
            ("fp32", "cpu", AMX, None, "fp32"),  # a user can always force fp32
            ("fp32", "cuda:0", AMX, True, "fp32"),
            ("bf16", "cpu", AVX2_ONLY, None, "bf16"),  # forced: works, only slower
            ("fp16", "cuda:0", AVX2_ONLY, True, "fp16"),
            ("int8", "cpu", AVX2_ONLY, None, "int8"),
        ],
    )
    def test_each_combination_of_flags_and_devices(self, precision, device, flags, cuda_bf16, expected):
        assert resolve_precision(precision, device, flags=flags, cuda_bf16=cuda_bf16) == expected

    def test_auto_reads_the_cpu_flags_when_none_are_given(self, monkeypatch):
        _pretend_cpu(monkeypatch, AMX)
        assert resolve_precision("auto", "cpu") == "bf16"
        _pretend_cpu(monkeypatch, AVX2_ONLY)
        assert resolve_precision("auto", "cpu") == "fp32"

    @pytest.mark.parametrize(("variable", "cap"), [("ONEDNN_MAX_CPU_ISA", "AVX2"), ("DNNL_MAX_CPU_ISA", "avx512_core")])
    def test_auto_stays_fp32_when_onednn_is_capped_below_its_bf16_kernels(self, monkeypatch, variable, cap):
        # e.g. ONEDNN_MAX_CPU_ISA=AVX2 on an AMX CPU to reproduce an AVX2-only one: bf16 would be emulated.
        _pretend_cpu(monkeypatch, AMX)
        monkeypatch.setenv(variable, cap)
        assert resolve_precision("auto", "cpu") == "fp32"
        assert "capped at " + cap.upper() in precision_module.precision_reason("auto", "fp32", "cpu")
        assert resolve_precision("auto", "cpu", flags=AMX) == "bf16"  # given flags: a pure function of them

    @pytest.mark.parametrize("cap", ["AVX512_CORE_BF16", "AVX512_CORE_AMX", "ALL", ""])
    def test_a_cap_that_keeps_the_bf16_kernels_keeps_bf16(self, monkeypatch, cap):
        _pretend_cpu(monkeypatch, AMX)
        monkeypatch.setenv("ONEDNN_MAX_CPU_ISA", cap)
        assert resolve_precision("auto", "cpu") == "bf16"

    def test_fp16_on_a_cpu_is_a_clear_error(self):
        with pytest.raises(ValueError, match=r"precision='fp16' runs on a GPU only.*precision='auto'"):
            resolve_precision("fp16", "cpu", flags=AMX)

    @pytest.mark.parametrize("bad", ["fast", "float32", "FP32", None, 16])
    def test_an_unknown_precision_is_a_clear_error_naming_precision(self, bad):
        with pytest.raises(ValueError, match=r"precision must be one of 'auto', 'fp32', 'bf16', 'fp16', 'int8'"):
            resolve_precision(bad, "cpu", flags=AMX)


class TestCheckPrecision:
    def test_int8_on_torch_names_rerank_export(self):
        with pytest.raises(ValueError, match=r"precision='int8' needs an int8-quantized export.*rerank export"):
            check_precision("int8", backend="torch", device="cpu")

    @pytest.mark.parametrize(
        ("precision", "backend", "message"),
        [
            ("bf16", "onnx", r"precision='bf16' is not available with backend='onnx'.*backend='torch' or 'openvino'"),
            ("fp16", "onnx", r"precision='fp16' is not available with backend='onnx'"),
            ("fp16", "openvino", r"fp16 runs on a GPU with backend='torch'"),
        ],
    )
    def test_what_a_backend_cannot_compute_in(self, precision, backend, message):
        with pytest.raises(ValueError, match=message):
            check_precision(precision, backend=backend, device="cpu")

    def test_the_ranker_checks_at_construction(self, spread_model_path):
        with pytest.raises(ValueError, match="runs on a GPU only"):
            CrossEncoderRanker(model=str(spread_model_path), precision="fp16")
        with pytest.raises(ValueError, match=r"rerank export MODEL --backend onnx --quantize"):
            CrossEncoderRanker(model=str(spread_model_path), precision="int8")
        with pytest.raises(ValueError, match="precision must be one of"):
            CrossEncoderRanker(model=str(spread_model_path), precision="half")
        with pytest.raises(ValueError, match=r"truncation must be one of 'longest_first', 'query_window'"):
            CrossEncoderRanker(model=str(spread_model_path), truncation="middle")


class TestTorchPrecision:
    def test_auto_is_fp32_on_an_avx2_cpu_and_bf16_with_amx(self, monkeypatch, spread_model_path):
        _pretend_cpu(monkeypatch, AVX2_ONLY)
        avx2 = CrossEncoderRanker(model=str(spread_model_path))
        avx2.warm_up()
        assert avx2._scorer.forward.precision == "fp32"
        _pretend_cpu(monkeypatch, AMX)
        amx = CrossEncoderRanker(model=str(spread_model_path))
        amx.warm_up()
        assert amx._scorer.forward.precision == "bf16"
        assert isinstance(amx._scorer, TokenizedPairScorer), "the fast-path probe still passes in bf16"

    def test_forced_fp32_equals_todays_scores_on_any_cpu(self, monkeypatch, spread_model_path):
        from sentence_transformers import CrossEncoder
        from torch.nn import Identity

        _pretend_cpu(monkeypatch, AMX)
        forced = _scores(CrossEncoderRanker(model=str(spread_model_path), precision="fp32", activation="identity"))
        model = CrossEncoder(str(spread_model_path), local_files_only=True)
        predicted = model.predict([(QUERY, text) for text in TEXTS], activation_fn=Identity())
        today = load_pair_scorer(  # no precision: the scorer as it was before this parameter existed
            str(spread_model_path),
            backend="torch",
            device="cpu",
            batch_size=16,
            max_length=None,
            token=None,
            trust_remote_code=False,
            model_kwargs=None,
            tokenizer_kwargs=None,
            config_kwargs=None,
        ).logits(QUERY, TEXTS)
        ours = np.array([forced[str(i)] for i in range(len(TEXTS))])
        np.testing.assert_allclose(ours, predicted, atol=1e-5)
        np.testing.assert_allclose(ours, today, atol=1e-5)

    @pytest.mark.integration
    def test_bf16_and_fp32_agree_on_the_order_of_clearly_separated_documents(self, minilm_cross_encoder_path):
        model = str(minilm_cross_encoder_path)
        fp32 = _scores(CrossEncoderRanker(model=model, precision="fp32", activation="identity"))
        bf16_ranker = CrossEncoderRanker(model=model, precision="bf16", activation="identity")
        bf16 = _scores(bf16_ranker)
        assert bf16_ranker._scorer.forward.precision == "bf16"
        assert all(isinstance(score, float) for score in bf16.values())
        assert max(fp32.values()) - min(fp32.values()) > 4 * CLEAR_GAP, "the fixture separates documents"
        assert _order_of_clearly_separated_pairs_agrees(fp32, bf16) == []
        assert max(abs(fp32[key] - bf16[key]) for key in fp32) < CLEAR_GAP / 2

    def test_the_score_head_stays_in_fp32_so_bf16_does_not_tie_close_documents(self, spread_model_path):
        import torch

        # The spread model's logits all lie near 1.17, where bf16 steps by 1/128: a bf16 head would tie most of them.
        ranker = CrossEncoderRanker(model=str(spread_model_path), precision="bf16", activation="identity")
        bf16 = _scores(ranker)
        model = ranker._scorer.forward.cross_encoder
        head = [layer for layer in model.modules() if isinstance(layer, torch.nn.Linear) and layer.out_features == 1]
        assert ranker._scorer.forward.precision == "bf16" and head[-1].weight.dtype == torch.float32
        assert len(set(bf16.values())) == len(TEXTS)
        fp32 = _scores(CrossEncoderRanker(model=str(spread_model_path), precision="fp32", activation="identity"))
        assert max(abs(fp32[key] - bf16[key]) for key in fp32) < 0.01

    @pytest.mark.parametrize("head", ["dense", "cosine"])
    def test_pooled_cross_encoders_keep_the_fast_path_in_bf16(self, tmp_path, minilm_tokenizer, head):
        from tests.test_scoring import build_tiny_pooled_cross_encoder

        path = str(build_tiny_pooled_cross_encoder(tmp_path, minilm_tokenizer, head=head))
        ranker = CrossEncoderRanker(model=path, precision="bf16", activation="identity")
        bf16 = _scores(ranker)
        assert isinstance(ranker._scorer, TokenizedPairScorer)
        fp32 = _scores(CrossEncoderRanker(model=path, precision="fp32", activation="identity"))
        assert max(abs(fp32[key] - bf16[key]) for key in fp32) < CLEAR_GAP

    def test_a_checkpoint_saved_in_bf16_scores_in_fp32_when_forced(self, tmp_path, spread_model_path):
        import torch
        from sentence_transformers import CrossEncoder

        model = CrossEncoder(str(spread_model_path), local_files_only=True)
        model.to(torch.bfloat16)
        model.save(str(tmp_path / "bf16"))
        forced = CrossEncoderRanker(model=str(tmp_path / "bf16"), precision="fp32")
        forced.warm_up()
        assert forced._scorer.forward.precision == "fp32"
        kept = CrossEncoderRanker(model=str(tmp_path / "bf16"), precision="bf16")
        kept.warm_up()
        assert isinstance(kept._scorer, TokenizedPairScorer), "the probe passes in bf16 with bf16's tolerance"

    def test_auto_keeps_a_dtype_given_in_model_kwargs(self, monkeypatch, spread_model_path):
        import torch

        _pretend_cpu(monkeypatch, AMX)
        ranker = CrossEncoderRanker(model=str(spread_model_path), model_kwargs={"torch_dtype": torch.float32})
        ranker.warm_up()
        assert ranker._scorer.forward.precision == "fp32"

    def test_the_score_cache_identity_holds_the_precision(self, spread_model_path):
        identities = {}
        for precision in ("fp32", "bf16"):
            ranker = CrossEncoderRanker(model=str(spread_model_path), precision=precision, cache_size=10)
            ranker.warm_up()
            identities[precision] = ranker._scorer.model_identity
        assert identities["fp32"].endswith("|fp32") and identities["bf16"].endswith("|bf16")

    def test_the_choice_is_logged_once_per_loaded_model(self, monkeypatch, spread_model_path, caplog):
        _pretend_cpu(monkeypatch, AMX)
        ranker = CrossEncoderRanker(model=str(spread_model_path))
        with caplog.at_level("INFO"):
            ranker.warm_up()
            ranker.run(query=QUERY, documents=DOCS[:2])
        lines = [record.getMessage() for record in caplog.records if "Scoring with" in record.getMessage()]
        assert len(lines) == 1 and "in bf16 on cpu (auto: the CPU has amx_bf16)" in lines[0]


class TestBiEncoderPrecision:
    @pytest.mark.integration
    def test_bf16_and_fp32_agree_on_the_order_of_clearly_separated_documents(self, minilm_path):
        fp32 = _scores(CrossEncoderRanker(model=str(minilm_path), precision="fp32"))
        bf16_ranker = CrossEncoderRanker(model=str(minilm_path), precision="bf16", cache_size=10)
        bf16 = _scores(bf16_ranker)
        assert bf16_ranker._scorer.model_identity.startswith("bi-encoder|")
        assert bf16_ranker._scorer.model_identity.endswith("|bf16")
        assert precision_module.module_precision(bf16_ranker._scorer.scorer.model) == "bf16"
        assert _order_of_clearly_separated_pairs_agrees(fp32, bf16) == []
        assert max(abs(fp32[key] - bf16[key]) for key in fp32) < CLEAR_GAP / 2
        assert all(-1.0 <= score <= 1.0 for score in bf16.values()), "cosines of re-normalised embeddings"


class TestParameters:
    def test_precision_and_truncation_round_trip_through_yaml(self, spread_model_path):
        pipeline = Pipeline()
        pipeline.add_component(
            "ranker", CrossEncoderRanker(model=str(spread_model_path), precision="fp32", truncation="query_window")
        )
        text = pipeline.dumps()
        assert "precision: fp32" in text and "truncation: query_window" in text
        ranker = Pipeline.loads(text).get_component("ranker")
        assert (ranker.precision, ranker.truncation) == ("fp32", "query_window")

    def test_defaults_are_serialized_and_old_yaml_gets_them(self, spread_model_path):
        parameters = CrossEncoderRanker(model=str(spread_model_path)).to_dict()["init_parameters"]
        assert (parameters["precision"], parameters["truncation"]) == ("auto", "longest_first")
        old = {k: v for k, v in parameters.items() if k not in ("precision", "truncation", "token")}
        data = {"type": "haystack_integrations.components.rankers.crossencoder.ranker.CrossEncoderRanker"}
        restored = CrossEncoderRanker.from_dict({**data, "init_parameters": old})
        assert (restored.precision, restored.truncation) == ("auto", "longest_first")

    def test_to_dict_keeps_auto_not_what_it_resolved_to(self, monkeypatch, spread_model_path):
        _pretend_cpu(monkeypatch, AMX)
        ranker = CrossEncoderRanker(model=str(spread_model_path))
        ranker.warm_up()
        assert ranker.to_dict()["init_parameters"]["precision"] == "auto"

    def test_truncation_and_precision_reach_the_scorer(self, monkeypatch, spread_model_path):
        from haystack_integrations.components.rankers.crossencoder import ranker as ranker_module

        seen = {}
        real = ranker_module.load_pair_scorer

        def spy(model, **kwargs):
            seen.update(kwargs)
            return real(model, **kwargs)

        monkeypatch.setattr(ranker_module, "load_pair_scorer", spy)
        ranker = CrossEncoderRanker(model=str(spread_model_path), truncation="query_window", precision="fp32")
        ranker.warm_up()
        assert (seen["truncation"], seen["precision"]) == ("query_window", "fp32")
        assert ranker._scorer.encoder.truncation == "query_window"

    def test_query_window_keeps_the_evidence_of_a_long_document(self, spread_model_path):
        long_text = "Unrelated filler about weather and crops. " * 60 + "Berlin is the capital of Germany."
        documents = [Document(id="long", content=long_text), *DOCS[2:4]]
        window = CrossEncoderRanker(
            model=str(spread_model_path), truncation="query_window", precision="fp32", max_length=48
        )
        plain = CrossEncoderRanker(model=str(spread_model_path), precision="fp32", max_length=48)
        for ranker in (window, plain):
            ranker.warm_up()
        texts = [document.content for document in documents]
        seen = {}
        for name, ranker in (("window", window), ("plain", plain)):
            ids = ranker._scorer.encoder.encode(QUERY, texts)[0].input_ids
            sep = ranker._scorer.tokenizer.sep_token_id
            seen[name] = ranker._scorer.tokenizer.decode(ids[ids.index(sep) + 1 :]).lower()
        assert "germany" in seen["window"] and "germany" not in seen["plain"]
        assert _scores(window, documents)["long"] != _scores(plain, documents)["long"]


class TestExportedPrecision:
    @pytest.fixture(scope="class")
    def onnx_dir(self, tmp_path_factory, tiny_model_path):
        from crossencoder_haystack.export.exporting import export_cross_encoder

        directory = tmp_path_factory.mktemp("onnx_precision")
        export_cross_encoder(tiny_model_path, directory, backend="onnx")
        export_cross_encoder(tiny_model_path, directory, backend="onnx", quantize="avx2")  # the manifest's file
        return directory

    def test_onnx_runs_the_export_as_it_is_and_checks_an_explicit_precision(self, onnx_dir):
        fp32_file = {"file_name": "onnx/model.onnx"}
        auto = CrossEncoderRanker(model=str(onnx_dir), backend="onnx", cache_size=10)
        auto.warm_up()
        assert auto._scorer.model_identity.endswith("|int8")
        CrossEncoderRanker(model=str(onnx_dir), backend="onnx", precision="int8").warm_up()
        with pytest.raises(ValueError, match=r"precision='fp32'.*is int8-quantized.*file_name"):
            CrossEncoderRanker(model=str(onnx_dir), backend="onnx", precision="fp32").warm_up()
        with pytest.raises(ValueError, match=r"precision='int8' needs an int8-quantized export.*--quantize"):
            CrossEncoderRanker(model=str(onnx_dir), backend="onnx", precision="int8", model_kwargs=fp32_file).warm_up()
        forced = CrossEncoderRanker(
            model=str(onnx_dir), backend="onnx", precision="fp32", model_kwargs=fp32_file, cache_size=10
        )
        forced.warm_up()
        assert forced._scorer.model_identity.endswith("|fp32")

    def test_openvino_gets_bf16_on_an_amx_cpu_and_fp32_when_forced(self, monkeypatch, tmp_path, tiny_model_path):
        pytest.importorskip("openvino")
        import openvino as ov
        import openvino.properties.hint as hints

        from crossencoder_haystack.export.exporting import export_cross_encoder

        export_cross_encoder(tiny_model_path, tmp_path, backend="openvino")
        _pretend_cpu(monkeypatch, AMX)
        expected = {"auto": ov.Type.bf16, "fp32": ov.Type.f32, "bf16": ov.Type.bf16}
        for precision, dtype in expected.items():
            ranker = CrossEncoderRanker(model=str(tmp_path), backend="openvino", precision=precision, num_threads=1)
            ranker.warm_up()
            assert ranker._scorer.forward.compiled.get_property(hints.inference_precision()) == dtype, precision
        _pretend_cpu(monkeypatch, AVX2_ONLY)
        ranker = CrossEncoderRanker(model=str(tmp_path), backend="openvino", num_threads=1)
        ranker.warm_up()
        assert ranker._scorer.forward.compiled.get_property(hints.inference_precision()) == ov.Type.f32


class TestCommandLine:
    def test_the_flags_offer_exactly_the_rankers_values(self):
        from crossencoder_haystack.serving.command import PRECISION_CHOICES, TRUNCATION_CHOICES

        assert PRECISION_CHOICES == PRECISIONS
        assert TRUNCATION_CHOICES == TRUNCATIONS

    def test_serve_passes_precision_and_truncation_to_the_service(self, monkeypatch):
        from crossencoder_haystack.cli import main
        from crossencoder_haystack.serving import server

        calls = []
        monkeypatch.setattr(server, "serve", lambda model, **kwargs: calls.append(kwargs))
        arguments = ["serve", "--model", "/models/x", "--no-auth"]
        assert main([*arguments, "--precision", "fp32", "--truncation", "query_window"]) == 0
        assert (calls[0]["precision"], calls[0]["truncation"]) == ("fp32", "query_window")
        assert main(arguments) == 0
        assert "precision" not in calls[1] and "truncation" not in calls[1], "left out: the ranker's defaults"

    def test_evaluate_passes_precision_and_truncation_to_the_rankers(self, monkeypatch):
        import crossencoder_haystack.evaluation as evaluation
        from crossencoder_haystack.cli import main

        calls = []
        monkeypatch.setattr(evaluation, "evaluate", lambda dataset, **kwargs: calls.append(kwargs))
        monkeypatch.setattr(evaluation, "print_table", lambda result: None)
        arguments = ["evaluate", "--dataset", "/data/x", "--no-progress"]
        assert main([*arguments, "--precision", "bf16", "--truncation", "query_window"]) == 0
        assert (calls[0]["precision"], calls[0]["truncation"]) == ("bf16", "query_window")
        assert main(arguments) == 0
        assert "precision" not in calls[1] and "truncation" not in calls[1]

    def test_demo_passes_precision(self, monkeypatch):
        import crossencoder_haystack.demo as demo
        from crossencoder_haystack.cli import main

        calls = []
        monkeypatch.setattr(demo, "run_demo", lambda queries, **kwargs: calls.append(kwargs))
        assert main(["demo", "--no-eval", "--precision", "fp32"]) == 0
        assert calls[0]["precision"] == "fp32"

    def test_served_model_passes_them_to_its_ranker(self, tiny_model_path):
        from crossencoder_haystack.serving import ServedModel

        served = ServedModel(tiny_model_path, precision="fp32", truncation="query_window")
        # One ranker scores both splitting and truncating jobs.
        assert (served._ranker.precision, served._ranker.truncation) == ("fp32", "query_window")
        with pytest.raises(ValueError, match="runs on a GPU only"):
            ServedModel(tiny_model_path, precision="fp16")

"""The ranker package exports only what users construct or catch; what it exported before still imports."""

import importlib
import json
import sys

import pytest

import haystack_integrations.components.rankers.crossencoder as package
from haystack_integrations.components.rankers.crossencoder import (
    CalibrationError,
    CascadeRanker,
    CrossEncoderRanker,
    FallbackRanker,
    ModelNotAvailableError,
)

PACKAGE = "haystack_integrations.components.rankers.crossencoder"
OLD_EXPORTS = {
    "ACTIVATIONS": "_engine.activations",
    "AGGREGATIONS": "_engine.aggregation",
    "FUSIONS": "fusion",
    "FUSION_FILE": "fusion",
    "aggregate_scores": "_engine.aggregation",
    "apply_activation": "_engine.activations",
    "fuse_scores": "fusion",
    "hub_is_reachable": "_engine.model_loading",
    "load_cross_encoder": "_engine.model_loading",
    "read_fusion_defaults": "fusion",
    "write_fusion_defaults": "fusion",
}


def test_the_package_exports_the_components_and_their_errors():
    assert sorted(package.__all__) == [
        "CalibrationError",
        "CascadeRanker",
        "CrossEncoderRanker",
        "FallbackRanker",
        "ModelNotAvailableError",
    ]
    assert all(isinstance(cls, type) for cls in (CalibrationError, CascadeRanker, CrossEncoderRanker, FallbackRanker))
    assert issubclass(ModelNotAvailableError, OSError)


@pytest.mark.parametrize(("name", "home"), sorted(OLD_EXPORTS.items()))
def test_names_exported_before_still_import_with_a_warning_naming_their_new_place(name, home):
    with pytest.warns(DeprecationWarning, match=f"{PACKAGE}.{home}"):
        value = getattr(package, name)
    assert value is getattr(importlib.import_module(f"{PACKAGE}.{home}"), name)


def test_an_unknown_name_is_an_attribute_error():
    with pytest.raises(AttributeError, match="no_such_name"):
        package.no_such_name  # noqa: B018


@pytest.mark.parametrize("module", ["scoring", "model_loading", "pair_encoding", "score_cache", "precision"])
def test_old_engine_module_paths_import_the_engine_module_with_a_warning(module):
    sys.modules.pop(f"{PACKAGE}.{module}", None)
    with pytest.warns(DeprecationWarning, match=f"{PACKAGE}._engine.{module}"):
        old = importlib.import_module(f"{PACKAGE}.{module}")
    new = importlib.import_module(f"{PACKAGE}._engine.{module}")
    assert old is new
    assert new.__spec__.name == f"{PACKAGE}._engine.{module}"


def test_the_component_score_cache_has_a_name_of_its_own():
    from haystack_integrations.components.rankers.crossencoder._engine import score_cache

    with pytest.warns(DeprecationWarning, match="PairScoreCache"):
        assert score_cache.ScoreCache is score_cache.PairScoreCache


def test_a_model_saved_with_the_public_head_path_loads(tmp_path, minilm_tokenizer):
    """Models saved before the engine moved name `...crossencoder.score_heads.SegmentCosineScore`; they still load,
    and new saves name the same path."""
    from haystack_integrations.components.rankers.crossencoder._engine.model_loading import load_cross_encoder
    from haystack_integrations.components.rankers.crossencoder.score_heads import SegmentCosineScore
    from tests.test_scoring import build_tiny_pooled_cross_encoder

    directory = build_tiny_pooled_cross_encoder(tmp_path, minilm_tokenizer, head="cosine")
    modules_file = directory / "modules.json"
    modules = json.loads(modules_file.read_text(encoding="utf-8"))
    assert modules[1]["type"] == f"{PACKAGE}.score_heads.SegmentCosineScore"
    modules[1]["type"] = f"{PACKAGE}.score_heads.SegmentCosineScore"  # exactly what today's models record
    modules_file.write_text(json.dumps(modules), encoding="utf-8")

    model = load_cross_encoder(str(directory), device="cpu")

    assert isinstance(model[1], SegmentCosineScore)
    assert model.trust_remote_code is False


def test_the_export_moved_to_the_tooling_and_its_old_module_still_imports():
    import crossencoder_haystack.export as export_package
    from crossencoder_haystack.export import exporting
    from haystack_integrations.components.rankers.crossencoder._engine import manifest

    assert export_package.export_cross_encoder is exporting.export_cross_encoder
    assert export_package.read_manifest is manifest.read_manifest
    old = importlib.import_module(f"{PACKAGE}.export")
    with pytest.warns(DeprecationWarning, match="crossencoder_haystack.export.exporting"):
        assert old.export_cross_encoder is exporting.export_cross_encoder
    with pytest.warns(DeprecationWarning, match=f"{PACKAGE}._engine.manifest"):
        assert old.find_exported_model is manifest.find_exported_model


def test_export_bi_encoder_takes_only_the_export_options(tmp_path):
    from crossencoder_haystack.export import export_bi_encoder

    with pytest.raises(TypeError, match="quantise"):
        export_bi_encoder(tmp_path, tmp_path / "out", quantise="avx2")
    with pytest.raises(ValueError, match="not a local sentence-transformers bi-encoder"):
        export_bi_encoder(tmp_path, tmp_path / "out", backend="onnx")

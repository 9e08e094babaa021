"""A model directory is untrusted input: loading one runs no code it names unless the user passes
`trust_remote_code=True` (issue #13).

Each crafted directory names a payload module that, if it were imported or called, would create a marker file.
The payload lives outside the model directory (on `sys.path`, or named as `other/dir--module.Class`, which
transformers fetches from that other directory), where a check for `.py` files in the model directory misses it.
"""

import json
import shutil
import uuid
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import torch

from haystack_integrations.components.rankers.crossencoder._engine.model_loading import (
    KNOWN_HEADS,
    configured_activation,
    known_head_classes,
    load_cross_encoder,
)
from haystack_integrations.components.rankers.crossencoder.score_heads import SegmentCosineScore
from tests.test_scoring import build_tiny_pooled_cross_encoder

SEGMENT_COSINE = "haystack_integrations.components.rankers.crossencoder.score_heads.SegmentCosineScore"
PAIRS = [
    ("do tumour suppressors regulate apoptosis?", "p53 regulates apoptosis in cancer cells."),
    ("do tumour suppressors regulate apoptosis?", "Protein folding depends on chaperones."),
    ("x", "a much longer document about many different things " * 5),
]

PAYLOAD_CODE = """\
from pathlib import Path

Path({marker!r}).write_text("the payload ran")


class PayloadConfig:
    pass


class PayloadTokenizer:
    pass


class PayloadHead:
    pass


def make_activation(*args, **kwargs):
    Path({marker!r}).write_text("the payload ran")
    import torch

    return torch.nn.Sigmoid()
"""


@dataclass(frozen=True)
class Payload:
    """A module that creates `marker` when it is imported or its `make_activation` is called."""

    directory: Path
    module: str
    marker: Path

    def importable(self, name: str) -> str:
        """A dotted path Python imports from `sys.path`."""
        return f"{self.module}.{name}"

    def in_other_directory(self, name: str) -> str:
        """An `auto_map` reference transformers resolves in another directory (`repo--module.Class`)."""
        return f"{self.directory}--{self.module}.{name}"


@pytest.fixture
def payload(tmp_path, monkeypatch) -> Payload:
    directory = tmp_path / "elsewhere"
    directory.mkdir()
    module = f"payload_{uuid.uuid4().hex}"  # a fresh name per test: an imported module is not imported again
    marker = tmp_path / "marker"
    (directory / f"{module}.py").write_text(PAYLOAD_CODE.format(marker=str(marker)), encoding="utf-8")
    monkeypatch.syspath_prepend(str(directory))
    return Payload(directory=directory, module=module, marker=marker)


@pytest.fixture(scope="module")
def cosine_model_path(tmp_path_factory, minilm_tokenizer) -> Path:
    """A SegmentCosineScore cross-encoder saved as `rerank train` saves one (modules.json names our head)."""
    return build_tiny_pooled_cross_encoder(tmp_path_factory.mktemp("cosine"), minilm_tokenizer, head="cosine")


@pytest.fixture(params=["plain", "cosine-head"])
def model_copy(request, tmp_path, tiny_model_path, cosine_model_path) -> Path:
    """A writable copy of a plain cross-encoder, and of one with our head (the case that used to switch trust on)."""
    source = tiny_model_path if request.param == "plain" else cosine_model_path
    return Path(shutil.copytree(source, tmp_path / "model", ignore=shutil.ignore_patterns("raw")))


def _edit_json(path: Path, **changes) -> None:
    data = json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}
    for key, value in changes.items():
        if value is None:
            data.pop(key, None)
        else:
            data[key] = value
    path.write_text(json.dumps(data, indent=2), encoding="utf-8")


def _load(directory: Path, payload: Payload, **kwargs):
    """`load_cross_encoder`, checking the payload did not run, whether loading succeeds or fails."""
    try:
        return load_cross_encoder(str(directory), device="cpu", **kwargs)
    finally:
        assert not payload.marker.exists(), f"loading {directory} ran code the model names"


def _scores(model) -> np.ndarray:
    return np.asarray(model.predict(PAIRS, activation_fn=torch.nn.Identity()), dtype=np.float64)


class TestModelCodeIsNotRun:
    @pytest.mark.parametrize("where", ["other-directory", "model-directory"])
    def test_tokenizer_auto_map(self, model_copy, payload, where):
        if where == "other-directory":
            reference = payload.in_other_directory("PayloadTokenizer")
        else:
            shutil.copy(payload.directory / f"{payload.module}.py", model_copy)
            reference = payload.importable("PayloadTokenizer")
        _edit_json(model_copy / "tokenizer_config.json", auto_map={"AutoTokenizer": [reference, reference]})

        model = _load(model_copy, payload)

        assert type(model.tokenizer).__module__.startswith("transformers.")  # the tokenizer class transformers ships
        assert np.isfinite(_scores(model)).all()

    @pytest.mark.parametrize(
        ("file_name", "key"),
        [
            ("config_sentence_transformers.json", "activation_fn"),
            ("config.json", "sentence_transformers"),
            ("config.json", "sbert_ce_default_activation_function"),
        ],
    )
    def test_activation_path(self, model_copy, payload, caplog, file_name, key):
        dotted = payload.importable("make_activation")
        _edit_json(model_copy / "config_sentence_transformers.json", activation_fn=None)
        value = {"activation_fn": dotted} if key == "sentence_transformers" else dotted
        _edit_json(model_copy / file_name, **{key: value})

        model = _load(model_copy, payload)

        assert type(model.activation_fn) is torch.nn.Sigmoid  # ignored: the default
        assert model.trust_remote_code is False
        warning = " ".join(record.getMessage() for record in caplog.records)
        assert dotted in warning
        assert file_name in warning

    def test_sub_folder_config_auto_map(self, model_copy, payload):
        """modules.json points the Transformer module at 0_Transformer/, whose config.json has an auto_map."""
        sub_folder = model_copy / "0_Transformer"
        sub_folder.mkdir()
        for name in ("config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json"):
            shutil.copy(model_copy / name, sub_folder / name)
        shutil.move(model_copy / "sentence_bert_config.json", sub_folder / "sentence_bert_config.json")
        modules = json.loads((model_copy / "modules.json").read_text(encoding="utf-8"))
        modules[0]["path"] = "0_Transformer"
        (model_copy / "modules.json").write_text(json.dumps(modules), encoding="utf-8")
        reference = payload.in_other_directory("PayloadConfig")
        auto_map = {"AutoConfig": reference, "AutoModel": reference, "AutoModelForSequenceClassification": reference}
        _edit_json(sub_folder / "config.json", auto_map=auto_map)

        model = _load(model_copy, payload)

        assert type(model.config).__module__.startswith("transformers.")
        assert np.isfinite(_scores(model)).all()

    def test_a_module_class_outside_the_allowlist_is_refused(self, model_copy, payload):
        modules = json.loads((model_copy / "modules.json").read_text(encoding="utf-8"))
        modules.append({"idx": len(modules), "name": "evil", "path": "", "type": payload.importable("PayloadHead")})
        (model_copy / "modules.json").write_text(json.dumps(modules), encoding="utf-8")

        with pytest.raises(ValueError, match="trust_remote_code=True"):
            _load(model_copy, payload)

    def test_the_ranker_and_the_export_load_safely(self, model_copy, payload, tmp_path):
        """`rerank serve` loads through CrossEncoderRanker.warm_up; `rerank export` through export_cross_encoder."""
        from crossencoder_haystack.export.exporting import export_cross_encoder
        from haystack_integrations.components.rankers.crossencoder import CrossEncoderRanker

        activation = payload.importable("make_activation")
        _edit_json(model_copy / "config_sentence_transformers.json", activation_fn=activation)
        reference = payload.in_other_directory("PayloadTokenizer")
        _edit_json(model_copy / "tokenizer_config.json", auto_map={"AutoTokenizer": [reference, reference]})

        try:
            CrossEncoderRanker(model=str(model_copy)).warm_up()
            exported = export_cross_encoder(model_copy, tmp_path / "onnx", backend="onnx")
        finally:
            assert not payload.marker.exists(), f"loading {model_copy} ran code the model names"
        assert exported.activation == "sigmoid"
        # The export does not pass on references to code it did not run.
        assert "auto_map" not in json.loads((tmp_path / "onnx" / "tokenizer_config.json").read_text(encoding="utf-8"))


class TestActivations:
    @pytest.mark.parametrize(
        ("dotted", "expected"),
        [
            ("torch.nn.modules.activation.Sigmoid", torch.nn.Sigmoid),
            ("torch.nn.modules.linear.Identity", torch.nn.Identity),
            ("torch.nn.modules.activation.Tanh", torch.nn.Tanh),
            ("torch.nn.Tanh", torch.nn.Tanh),
            # A torch class, which sentence-transformers would import even without trust_remote_code: not ours.
            ("torch.nn.modules.activation.ReLU", torch.nn.Sigmoid),
        ],
    )
    def test_only_our_activations_are_taken_from_the_model(self, tmp_path, tiny_model_path, dotted, expected):
        model_dir = Path(shutil.copytree(tiny_model_path, tmp_path / "model", ignore=shutil.ignore_patterns("raw")))
        _edit_json(model_dir / "config_sentence_transformers.json", activation_fn=dotted)

        model = load_cross_encoder(str(model_dir), device="cpu")

        assert type(model.activation_fn) is expected

    def test_an_explicit_activation_wins_and_the_configured_one_is_not_read(self, tmp_path, tiny_model_path, payload):
        model_dir = Path(shutil.copytree(tiny_model_path, tmp_path / "model", ignore=shutil.ignore_patterns("raw")))
        _edit_json(model_dir / "config_sentence_transformers.json", activation_fn=payload.importable("make_activation"))

        model = _load(model_dir, payload, activation_fn=torch.nn.Tanh())

        assert type(model.activation_fn) is torch.nn.Tanh

    def test_configured_activation_reads_names_only(self, tmp_path):
        (tmp_path / "config_sentence_transformers.json").write_text('{"activation_fn": "torch.nn.Identity"}')
        assert configured_activation(str(tmp_path)) == "identity"
        (tmp_path / "config_sentence_transformers.json").write_text("not json")
        assert configured_activation(str(tmp_path)) is None

    def test_configured_activation_of_a_cached_hub_model(self, tmp_path, payload):
        snapshot = tmp_path / "cache" / "models--org--reranker" / "snapshots" / ("0" * 40)
        snapshot.mkdir(parents=True)
        (tmp_path / "cache" / "models--org--reranker" / "refs").mkdir()
        (tmp_path / "cache" / "models--org--reranker" / "refs" / "main").write_text("0" * 40)
        hub_kwargs = {"cache_folder": str(tmp_path / "cache"), "local_files_only": True}
        config = snapshot / "config_sentence_transformers.json"

        config.write_text('{"activation_fn": "torch.nn.modules.activation.Tanh"}')
        assert configured_activation("org/reranker", hub_kwargs) == "tanh"
        config.write_text(json.dumps({"activation_fn": payload.importable("make_activation")}))
        assert configured_activation("org/reranker", hub_kwargs) is None
        assert not payload.marker.exists()
        assert configured_activation("org/not-cached", hub_kwargs) is None


class TestModelsWithOurHead:
    def test_known_heads_are_this_packages_classes(self):
        assert known_head_classes() == {SEGMENT_COSINE: SegmentCosineScore}
        assert set(known_head_classes()) == KNOWN_HEADS

    def test_a_saved_cosine_head_model_loads_without_trust_and_scores_as_before(self, cosine_model_path):
        from sentence_transformers import CrossEncoder

        modules = json.loads((cosine_model_path / "modules.json").read_text(encoding="utf-8"))
        assert modules[1]["type"] == SEGMENT_COSINE

        model = load_cross_encoder(str(cosine_model_path), device="cpu")
        # How the previous release loaded it: sentence-transformers with trust_remote_code=True.
        before = CrossEncoder(str(cosine_model_path), device="cpu", local_files_only=True, trust_remote_code=True)

        assert model.trust_remote_code is False
        assert isinstance(model[1], SegmentCosineScore)
        assert type(model.activation_fn) is torch.nn.Sigmoid
        assert model.max_seq_length == before.max_seq_length == 64
        np.testing.assert_array_equal(_scores(model), _scores(before))
        np.testing.assert_array_equal(model.predict(PAIRS), before.predict(PAIRS))

    def test_transformers_gets_trust_remote_code_false(self, cosine_model_path, monkeypatch):
        from sentence_transformers.base.modules.transformer import TRANSFORMER_TASK_TO_AUTO_MODEL
        from transformers import AutoConfig, AutoTokenizer

        calls: list[tuple[str, object]] = []

        def spy(owner, kind):
            original = owner.from_pretrained.__func__

            def recording(cls, *args, **kwargs):
                calls.append((kind, kwargs.get("trust_remote_code", "not passed")))
                return original(cls, *args, **kwargs)

            monkeypatch.setattr(owner, "from_pretrained", classmethod(recording))

        spy(AutoConfig, "config")
        spy(AutoTokenizer, "tokenizer")
        for auto_model in set(TRANSFORMER_TASK_TO_AUTO_MODEL.values()) - {None}:  # AutoModel, AutoModelFor...
            spy(auto_model, "model")

        load_cross_encoder(str(cosine_model_path), device="cpu")

        assert {kind for kind, _ in calls} == {"config", "tokenizer", "model"}
        assert {trust for _, trust in calls} == {False}

    def test_trust_remote_code_true_is_the_users_choice(self, cosine_model_path):
        model = load_cross_encoder(str(cosine_model_path), device="cpu", trust_remote_code=True)
        assert model.trust_remote_code is True
        assert isinstance(model[1], SegmentCosineScore)

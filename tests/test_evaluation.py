"""`rerank evaluate`: metrics, first stages, ranker specs, the score cache, derived K, outputs and the CLI."""

import functools
import json
from pathlib import Path

import pytest
from haystack import Document, Pipeline
from haystack.components.retrievers.in_memory import InMemoryBM25Retriever
from haystack.document_stores.in_memory import InMemoryDocumentStore
from haystack_integrations.components.rankers.sentence_transformers import SentenceTransformersSimilarityRanker

from crossencoder_haystack.cli import main
from crossencoder_haystack.data import load_beir, read_trec_run, write_trec_run
from crossencoder_haystack.evaluation import (
    EvaluationInterrupted,
    LatencyStats,
    RankerUnderTest,
    evaluate,
    load_ranker,
    ranker_from_component,
    ranking_at_k,
    render_table,
)
from crossencoder_haystack.evaluation.first_stage import build_first_stage, corpus_documents
from crossencoder_haystack.evaluation.metrics import compare_rankings, evaluate_rankings
from crossencoder_haystack.evaluation.score_cache import EvaluationScoreStore
from haystack_integrations.components.rankers.crossencoder import CrossEncoderRanker

ST_RANKER = (
    "haystack_integrations.components.rankers.sentence_transformers.sentence_transformers_similarity."
    "SentenceTransformersSimilarityRanker"
)

TOPICS = {
    "d01": "Cats purr when they are content and sleep most of the day.",
    "d02": "Dogs bark at strangers and love long walks in the park.",
    "d03": "Parrots can imitate human speech and live for decades.",
    "d04": "Goldfish live in bowls and need clean water every week.",
    "d05": "Cats hunt mice at night and groom their fur carefully.",
    "d06": "Horses gallop across fields and eat hay and oats.",
    "d07": "Bees make honey and pollinate flowers in spring.",
    "d08": "Dogs fetch sticks and guard the house at night.",
    "d09": "Owls hunt mice at night with silent wings.",
    "d10": "Cows give milk and graze on green grass.",
    "d11": "Snakes shed their skin and hunt mice in the grass.",
    "d12": "Rabbits eat carrots and dig burrows in fields.",
}
QUERIES = {
    "q1": "why do cats purr",
    "q2": "dogs bark at strangers",
    "q3": "who hunts mice at night",
    "q4": "honey from bees",
    "q5": "animals in the fields",
    "q6": "judged but nothing relevant",
}
QRELS = (
    "q1\td01\t2\nq1\td05\t1\nq2\td02\t1\nq2\td08\t1\nq3\td09\t2\nq3\td05\t1\nq3\td11\t1\nq4\td07\t1\n"
    "q5\td06\t1\nq5\td12\t1\nq5\tgone\t1\nq6\td01\t0\n"
)


def _write_collection(root: Path, corpus: dict[str, str], queries: dict[str, str], qrels: str) -> Path:
    (root / "qrels").mkdir(parents=True)
    (root / "corpus.jsonl").write_text(
        "".join(json.dumps({"_id": doc_id, "title": "", "text": text}) + "\n" for doc_id, text in corpus.items()),
        encoding="utf-8",
    )
    (root / "queries.jsonl").write_text(
        "".join(json.dumps({"_id": query_id, "text": text}) + "\n" for query_id, text in queries.items()),
        encoding="utf-8",
    )
    (root / "qrels" / "test.tsv").write_text("query-id\tcorpus-id\tscore\n" + qrels, encoding="utf-8")
    return root


@pytest.fixture
def animals(tmp_path) -> Path:
    """Twelve documents, five judged queries, one query judged only 0, one judged document missing."""
    return _write_collection(tmp_path / "animals", TOPICS, QUERIES, QRELS)


@pytest.fixture
def st_ranker_yaml(tmp_path, tiny_model_path) -> Path:
    path = tmp_path / "st_ranker.yaml"
    path.write_text(
        f"type: {ST_RANKER}\ninit_parameters:\n  model: {tiny_model_path}\n  top_k: 3\n  scale_score: false\n",
        encoding="utf-8",
    )
    return path


# The hand-made collection: five queries, linear-gain nDCG (grade / log2(rank + 1)), as trec_eval and ranx use.
HAND_QRELS = {
    "h1": {"a": 1},
    "h2": {"a": 1},
    "h3": {"a": 2, "b": 1},
    "h4": {"a": 1},
    "h5": {"a": 1, "b": 1},
}
HAND_RANKINGS = {
    "h1": ["a", "b", "c"],  # nDCG 1; RR 1
    "h2": ["b", "a", "c"],  # nDCG 1/log2(3) = 0.630930; RR 1/2
    "h3": ["b", "c", "a"],  # DCG 1/1 + 2/log2(4) = 2; IDCG 2/1 + 1/log2(3) = 2.630930; nDCG 0.760188; RR 1
    "h4": ["b", "c", "d"],  # nDCG 0; RR 0
    "h5": ["c", "d", "e", "f", "g", "h", "i", "j", "k", "a", "b"],  # a at 10: (1/log2(11)) / (1 + 1/log2(3))
}  # h5: nDCG@10 0.289065 / 1.630930 = 0.177239; RR@10 1/10
# nDCG@10 = (1 + 0.630930 + 0.760188 + 0 + 0.177239) / 5 = 0.513671
# MRR@10 = (1 + 0.5 + 1 + 0 + 0.1) / 5 = 0.52
# Recall@2 = (1 + 1 + 1/2 + 0 + 0) / 5 = 0.5
HAND_NDCG_AT_10 = 0.513671
HAND_MRR_AT_10 = 0.52
HAND_RECALL_AT_2 = 0.5


def test_metrics_match_the_hand_computed_collection():
    metrics = evaluate_rankings(HAND_QRELS, list(HAND_QRELS), HAND_RANKINGS, ["ndcg@10", "mrr@10", "recall@2"])

    assert metrics["ndcg@10"] == pytest.approx(HAND_NDCG_AT_10, abs=1e-6)
    assert metrics["mrr@10"] == pytest.approx(HAND_MRR_AT_10, abs=1e-9)
    assert metrics["recall@2"] == pytest.approx(HAND_RECALL_AT_2, abs=1e-9)


def test_run_file_first_stage_reproduces_the_hand_computed_metrics(tmp_path):
    corpus = {doc_id: f"document {doc_id}" for doc_id in "abcdefghijk"}
    judged = {**HAND_QRELS, "h6": {"a": 1}}  # h6 is not in the run file: no candidates, every metric 0
    qrels = "".join(f"{query_id}\t{doc_id}\t{grade}\n" for query_id, j in judged.items() for doc_id, grade in j.items())
    root = _write_collection(tmp_path / "hand", corpus, {query_id: f"query {query_id}" for query_id in judged}, qrels)
    # Equal scores everywhere: the file's rank order must decide, not the scores.
    run_file = write_trec_run(
        {query_id: [(doc_id, 1.0) for doc_id in ranking] for query_id, ranking in HAND_RANKINGS.items()},
        tmp_path / "hand.trec",
    )

    result = evaluate(
        root, first_stage=str(run_file), ks=[11], latency_queries=0, cache_dir=tmp_path / "cache", show_progress=False
    )

    row = result.row("hand")
    assert row.is_first_stage
    assert result.queries["without_candidates"] == 1
    assert row.metrics["ndcg@10"] == pytest.approx(HAND_NDCG_AT_10 * 5 / 6, abs=1e-6)  # h6 adds a 0
    assert row.metrics["mrr@10"] == pytest.approx(HAND_MRR_AT_10 * 5 / 6, abs=1e-9)
    assert row.latency is None  # a run file has no retrieval latency worth reporting


def test_significance_letters_mark_only_significant_improvements():
    qrels = {f"q{i}": {"good": 1} for i in range(12)}
    perfect = {query_id: ["good", "bad"] for query_id in qrels}
    useless = {query_id: ["bad", "good"] for query_id in qrels}

    comparison = compare_rankings(qrels, list(qrels), {"perfect": perfect, "useless": useless, "same": perfect})

    assert comparison.letters == {"perfect": "a", "useless": "b", "same": "c"}
    assert comparison.superscripts["perfect"]["ndcg@10"] == "b"
    assert comparison.superscripts["same"]["mrr@10"] == "b"
    assert comparison.superscripts["useless"]["ndcg@10"] == ""
    assert comparison.p_values["perfect|same"]["ndcg@10"] == pytest.approx(1.0)


def test_ranking_at_k_sorts_by_score_breaks_ties_by_first_stage_rank_and_drops_unreturned():
    candidates = ["d1", "d2", "d3", "d4", "d5"]
    scores = {"d1": 0.2, "d2": 0.9, "d3": 0.2, "d4": None, "d5": 1.0}

    assert ranking_at_k(candidates, scores, 4) == [("d2", 0.9), ("d1", 0.2), ("d3", 0.2)]
    assert ranking_at_k(candidates, scores, 5)[0] == ("d5", 1.0)
    assert ranking_at_k(candidates, {"d1": float("-inf"), "d2": 0.1}, 2) == [("d2", 0.1), ("d1", float("-inf"))]


def test_score_cache_persists_scores_and_dropped_documents(tmp_path):
    path = tmp_path / "cache" / "scores.sqlite3"
    with EvaluationScoreStore(path) as cache:
        cache.put("ranker-a", "cats", {"doc-1": 0.5, "doc-2": None})
        cache.put("ranker-a", "cats", {"doc-1": 0.9})  # the first score stays
    with EvaluationScoreStore(path) as cache:
        assert cache.get("ranker-a", "cats", ["doc-1", "doc-2", "doc-3"]) == {"doc-1": 0.5, "doc-2": None}
        assert cache.get("ranker-b", "cats", ["doc-1"]) == {}
        assert cache.get("ranker-a", "dogs", ["doc-1"]) == {}
        assert len(cache) == 2


def test_the_score_store_s_former_name_still_imports_with_a_deprecation_warning():
    import crossencoder_haystack.evaluation.score_cache as score_cache

    with pytest.warns(DeprecationWarning, match="use EvaluationScoreStore"):
        assert score_cache.ScoreCache is EvaluationScoreStore
    with pytest.warns(DeprecationWarning):
        from crossencoder_haystack.evaluation.score_cache import ScoreCache  # noqa: F401


def test_latency_stats_summarize_per_query_times():
    stats = LatencyStats.from_timings([0.1, 0.2, 0.3, 0.4, 1.0], [50, 50, 50, 50, 50])

    assert stats.queries == 5
    assert stats.p50_ms == pytest.approx(300.0)
    assert stats.p95_ms == pytest.approx(880.0)  # linear interpolation: 400 + 0.8 * (1000 - 400)
    assert stats.docs_per_second == pytest.approx(250 / 2.0)
    assert LatencyStats.from_timings([], []) is None


def test_first_stage_forms(animals, tmp_path):
    dataset = load_beir(animals)
    bm25 = build_first_stage("bm25", dataset)
    documents = bm25.retrieve("q3", QUERIES["q3"], 4)
    assert len(documents) == 4
    assert {document.id for document in documents} >= {"d09"}
    assert documents[0].content == TOPICS[documents[0].id]
    assert [document.score for document in documents] == sorted(
        (document.score for document in documents), reverse=True
    )

    run_file = write_trec_run({"q1": [("d05", 3.0), ("nope", 2.0), ("d01", 1.0)]}, tmp_path / "cands.trec")
    from_file = build_first_stage(str(run_file), dataset)
    assert [(document.id, document.score) for document in from_file.retrieve("q1", "x", 5)] == [
        ("d05", 3.0),
        ("d01", 1.0),
    ]
    assert from_file.retrieve("q2", "x", 5) == []
    assert from_file.describe()["run_documents_missing_from_corpus"] == ["nope"]
    assert from_file.describe()["queries_not_in_run"] == ["q2"]

    with pytest.raises(ValueError, match="first_stage must be one of bm25, embedding or an existing TREC run file"):
        build_first_stage("sparse", dataset)


@pytest.mark.integration
def test_embedding_first_stage_caches_corpus_embeddings(animals, tmp_path, minilm_path):
    dataset = load_beir(animals)
    first = build_first_stage("embedding", dataset, embedding_model=minilm_path, cache_dir=tmp_path / "cache")
    documents = first.retrieve("q4", QUERIES["q4"], 3)
    assert first.describe()["embedding_cache_hit"] is False
    assert documents[0].id == "d07"
    assert documents[0].embedding is None  # candidates do not drag 384 floats through the rankers

    second = build_first_stage("embedding", dataset, embedding_model=minilm_path, cache_dir=tmp_path / "cache")
    assert [document.id for document in second.retrieve("q4", QUERIES["q4"], 3)] == [d.id for d in documents]
    assert second.describe()["embedding_cache_hit"] is True
    assert len(list((tmp_path / "cache" / "embeddings").glob("*.npy"))) == 1


def test_ranker_specs(tmp_path, tiny_model_path, st_ranker_yaml):
    assert load_ranker("none") is None

    model_dir = load_ranker(
        str(tiny_model_path), {"split_long_documents": True, "aggregation": "mean", "batch_size": 4}
    )
    assert isinstance(model_dir.component, CrossEncoderRanker)
    assert model_dir.component.split_long_documents is True
    assert model_dir.component.aggregation == "mean"
    assert model_dir.name == tiny_model_path.name
    # The cache identity follows score-changing settings only.
    assert load_ranker(str(tiny_model_path), {"split_long_documents": True, "aggregation": "mean"}).identity == (
        model_dir.identity
    )
    assert load_ranker(str(tiny_model_path), {"split_long_documents": True}).identity != model_dir.identity

    from_yaml = load_ranker(str(st_ranker_yaml))
    assert isinstance(from_yaml.component, SentenceTransformersSimilarityRanker)
    assert from_yaml.name == "st_ranker"
    assert from_yaml.identity != model_dir.identity
    candidates = [Document(id=name, content=f"{name} purr") for name in ("cats", "dogs", "owls", "bees")]
    scores = from_yaml.score("cats", candidates)
    # Every candidate gets a score although the YAML says top_k: 3.
    assert set(scores) == {"cats", "dogs", "owls", "bees"}
    assert all(isinstance(score, float) for score in scores.values())

    pipeline = Pipeline()
    pipeline.add_component("retriever", InMemoryBM25Retriever(document_store=InMemoryDocumentStore()))
    pipeline.add_component("reranker", SentenceTransformersSimilarityRanker(model=str(tiny_model_path)))
    pipeline.connect("retriever.documents", "reranker.documents")
    pipeline_yaml = tmp_path / "pipeline.yaml"
    pipeline_yaml.write_text(pipeline.dumps(), encoding="utf-8")
    assert isinstance(load_ranker(str(pipeline_yaml)).component, SentenceTransformersSimilarityRanker)

    pipeline.add_component("second", CrossEncoderRanker(model=str(tiny_model_path)))
    two_rankers = tmp_path / "two.yaml"
    two_rankers.write_text(pipeline.dumps(), encoding="utf-8")
    with pytest.raises(ValueError, match=r"found reranker, second.*two.yaml#<component name>"):
        load_ranker(str(two_rankers))
    picked = load_ranker(f"{two_rankers}#second")
    assert isinstance(picked.component, CrossEncoderRanker)
    assert picked.name == "two#second"

    with pytest.raises(ValueError, match="neither 'none', an existing model directory nor a Haystack YAML"):
        load_ranker(str(tmp_path / "no-such-model"))

    # A component built in Python shares the cache with the same ranker given as a model directory.
    built = ranker_from_component(CrossEncoderRanker(model=str(tiny_model_path.resolve()), batch_size=4), "built")
    assert built.identity == load_ranker(str(tiny_model_path)).identity
    with pytest.raises(ValueError, match=r"run\(\) does not take `query` and `documents`"):
        ranker_from_component(InMemoryBM25Retriever(document_store=InMemoryDocumentStore()), "retriever")


def _count_calls(monkeypatch, cls, method: str, counter: dict) -> None:
    original = getattr(cls, method)

    @functools.wraps(original)
    def counted(self, *args, **kwargs):
        counter[f"{cls.__name__}.{method}"] = counter.get(f"{cls.__name__}.{method}", 0) + 1
        return original(self, *args, **kwargs)

    monkeypatch.setattr(cls, method, counted)


def test_two_rankers_end_to_end_then_a_second_run_does_no_model_work(
    animals, tmp_path, tiny_model_path, st_ranker_yaml, monkeypatch
):
    calls: dict[str, int] = {}
    for cls in (CrossEncoderRanker, SentenceTransformersSimilarityRanker):
        _count_calls(monkeypatch, cls, "run", calls)
        _count_calls(monkeypatch, cls, "warm_up", calls)
    arguments = {
        "rankers": [str(tiny_model_path), str(st_ranker_yaml), "none"],
        "ks": [3, 6],
        "cache_dir": tmp_path / "cache",
        "show_progress": False,
    }

    first = evaluate(animals, latency_queries=2, output=tmp_path / "out", **arguments)

    assert [row.run_name for row in first.rows] == [
        "bm25@6",
        f"{tiny_model_path.name}@3",
        f"{tiny_model_path.name}@6",
        "st_ranker@3",
        "st_ranker@6",
    ]
    assert [row.letter for row in first.rows] == ["a", "b", "c", "d", "e"]
    assert first.queries["evaluated"] == 5
    assert first.queries["skipped_without_relevant_judgements"] == 1
    assert first.dataset["judged_documents_missing_from_corpus"] == 1
    assert first.row("st_ranker", 3).latency.queries == 2
    assert first.row("bm25").latency.queries == 5
    # Recall@K is the first stage's: the same for every ranker at that K.
    assert first.row("st_ranker", 3).recall == first.row(tiny_model_path.name, 3).recall
    assert calls["CrossEncoderRanker.run"] > 0 and calls["SentenceTransformersSimilarityRanker.run"] > 0

    from rich.console import Console

    console = Console(width=200, record=True)
    console.print(render_table(first))
    table = console.export_text()
    assert "bm25 (first stage)" in table and "st_ranker" in table and "nDCG@10" in table
    assert "Skipped 1 queries" in table

    out = tmp_path / "out"
    results = json.loads((out / "results.json").read_text(encoding="utf-8"))
    assert results["complete"] is True
    assert len(results["rows"]) == 5
    assert results["rows"][1]["metrics"]["ndcg@10"] == pytest.approx(first.rows[1].metrics["ndcg@10"])
    assert results["environment"]["torch_threads"] >= 1
    assert results["environment"]["versions"]["haystack-ai"]
    assert results["rankers"][0]["backend"] == "torch"
    assert results["significance"]["stat_test"] == "student"
    runs = sorted(path.name for path in (out / "runs").glob("*.trec"))
    assert runs == sorted(f"{row.run_name}.trec" for row in first.rows)
    assert read_trec_run(out / "runs" / "st_ranker@3.trec") == first.row("st_ranker", 3).rankings
    assert (out / "quality_vs_latency.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    calls.clear()
    second = evaluate(animals, latency_queries=0, **arguments)

    assert calls == {}  # neither loaded nor ran a model
    assert [ranker["model_calls"] for ranker in second.rankers] == [0, 0]
    assert [row.metrics for row in second.rows] == [row.metrics for row in first.rows]
    assert [row.rankings for row in second.rows] == [row.rankings for row in first.rows]


def test_smaller_k_derived_from_cached_scores_equals_direct_scoring(animals, tmp_path, tiny_model_path):
    result = evaluate(
        animals,
        rankers=[str(tiny_model_path)],
        ks=[3, 6],
        latency_queries=0,
        batch_size=1,  # one pair per forward pass: no padding, so scores are bit-identical however K batches them
        cache_dir=tmp_path / "cache",
        show_progress=False,
    )

    documents = {document.id: document for document in corpus_documents(load_beir(animals))}
    direct = CrossEncoderRanker(model=str(tiny_model_path), batch_size=1)
    for query_id, candidates in result.row("bm25").rankings.items():
        top3 = [documents[doc_id] for doc_id, _ in candidates[:3]]
        ranked = direct.run(query=QUERIES[query_id], documents=top3, top_k=3)["documents"]
        derived = result.row(tiny_model_path.name, 3).rankings[query_id]
        assert [document.id for document in ranked] == [doc_id for doc_id, _ in derived]
        assert [document.score for document in ranked] == [score for _, score in derived]


def test_ctrl_c_returns_the_partial_result_and_the_cli_prints_it_with_exit_130(
    animals, tmp_path, tiny_model_path, monkeypatch, capsys
):
    original = RankerUnderTest.score
    calls = {"n": 0}

    def interrupted_on_third_query(self, query, documents):
        calls["n"] += 1
        if calls["n"] == 3:
            raise KeyboardInterrupt
        return original(self, query, documents)

    monkeypatch.setattr(RankerUnderTest, "score", interrupted_on_third_query)
    with pytest.raises(EvaluationInterrupted) as caught:
        evaluate(
            animals,
            rankers=[str(tiny_model_path)],
            ks=[3],
            latency_queries=0,
            output=tmp_path / "partial",
            cache_dir=tmp_path / "cache",
            show_progress=False,
        )
    partial = caught.value.partial
    assert partial.complete is False
    assert partial.queries["evaluated"] == 2
    assert json.loads((tmp_path / "partial" / "results.json").read_text(encoding="utf-8"))["complete"] is False

    calls["n"] = 0
    exit_code = main(
        [
            "evaluate",
            "--dataset",
            str(animals),
            "--ranker",
            str(tiny_model_path),
            "--k",
            "3",
            "--latency-queries",
            "0",
            "--cache-dir",
            str(tmp_path / "other-cache"),
            "--no-progress",
        ]
    )
    assert exit_code == 130
    assert "PARTIAL, interrupted after 2 of 5 queries" in capsys.readouterr().out


def test_cli_evaluate_with_first_stage_only_and_seeded_query_sample(animals, tmp_path, capsys):
    arguments = ["evaluate", "--dataset", str(animals), "--ranker", "none", "--k", "2,4", "--max-queries", "3"]
    arguments += ["--latency-queries", "0", "--cache-dir", str(tmp_path / "cache"), "--no-progress"]

    assert main([*arguments, "--output", str(tmp_path / "out")]) == 0
    printed = capsys.readouterr().out
    assert "bm25 (first stage)" in printed and "3 queries" in printed
    results = json.loads((tmp_path / "out" / "results.json").read_text(encoding="utf-8"))
    assert [row["name"] for row in results["rows"]] == ["bm25"]
    assert results["queries"]["evaluated"] == 3
    assert not (tmp_path / "out" / "quality_vs_latency.png").exists()  # nothing was timed

    sample = set(read_trec_run(tmp_path / "out" / "runs" / "bm25@4.trec"))
    assert main([*arguments, "--output", str(tmp_path / "again")]) == 0
    assert set(read_trec_run(tmp_path / "again" / "runs" / "bm25@4.trec")) == sample

    with pytest.raises(SystemExit):
        main(["evaluate", "--dataset", str(animals), "--k", "0,5"])
    assert main(["evaluate", "--dataset", str(animals), "--first-stage", "nope", "--no-progress"]) == 2
    assert "first_stage must be one of" in capsys.readouterr().err


class _NoToDictRanker:
    """A ranker without to_dict that keeps its init parameter under its own name (readable settings)."""

    def __init__(self, boost: float) -> None:
        self.boost = boost

    def _boost(self) -> float:
        return self.boost

    def run(self, query: str, documents: list[Document]) -> dict:
        ranked = [Document(id=doc.id, content=doc.content, score=self._boost() * len(doc.content)) for doc in documents]
        return {"documents": sorted(ranked, key=lambda doc: -doc.score)}


class _HiddenSettingsRanker(_NoToDictRanker):
    """A ranker whose setting cannot be read back (kept under another name)."""

    def __init__(self, boost: float) -> None:
        self._hidden_boost = boost

    def _boost(self) -> float:
        return self._hidden_boost


def test_ranker_identity_differs_when_settings_differ_even_with_token_secrets(tiny_model_path, spread_model_path):
    from haystack.utils import Secret

    def with_token(model, token="hf_secret_1", **settings):
        return ranker_from_component(
            CrossEncoderRanker(model=str(model), token=Secret.from_token(token), **settings), "r"
        )

    plain = with_token(tiny_model_path)
    assert with_token(spread_model_path).identity != plain.identity  # another model
    assert with_token(tiny_model_path, scale_score=False).identity != plain.identity  # another setting
    # The token does not change scores: another token shares the cache; the same settings without a token too.
    assert with_token(tiny_model_path, token="hf_secret_2").identity == plain.identity
    assert ranker_from_component(CrossEncoderRanker(model=str(tiny_model_path)), "r").identity == plain.identity
    settings_text = json.dumps(plain.settings)
    assert "hf_secret_1" not in settings_text and "token" not in plain.settings["init_parameters"]
    with pytest.raises(ValueError, match="Cannot serialize token-based secret"):  # the redaction was temporary
        Secret.from_token("x").to_dict()

    # Without to_dict: the settings are read from the attributes named like the init parameters.
    assert (
        ranker_from_component(_NoToDictRanker(1.0), "a").identity
        != ranker_from_component(_NoToDictRanker(2.0), "b").identity
    )
    assert ranker_from_component(_NoToDictRanker(1.0), "a").settings["init_parameters"] == {"boost": 1.0}


def test_rankers_with_token_secrets_do_not_share_cached_scores(animals, tmp_path, tiny_model_path, spread_model_path):
    from haystack.utils import Secret

    def ranker(model):
        return ranker_from_component(CrossEncoderRanker(model=str(model), token=Secret.from_token("hf_x")), "ranker")

    arguments = {"ks": [6], "latency_queries": 0, "show_progress": False}
    evaluate(animals, rankers=[ranker(tiny_model_path)], cache_dir=tmp_path / "shared", **arguments)
    second = evaluate(animals, rankers=[ranker(spread_model_path)], cache_dir=tmp_path / "shared", **arguments)
    alone = evaluate(animals, rankers=[ranker(spread_model_path)], cache_dir=tmp_path / "fresh", **arguments)

    assert second.rankers[0]["model_calls"] > 0  # scored by its own model, not served the first ranker's scores
    assert second.row("ranker", 6).rankings == alone.row("ranker", 6).rankings


def test_a_ranker_whose_settings_cannot_be_read_is_not_cached(animals, tmp_path, caplog):
    with caplog.at_level("WARNING", logger="crossencoder_haystack.evaluation.rankers"):
        hidden = ranker_from_component(_HiddenSettingsRanker(3.0), "hidden")
    assert hidden.identity is None
    assert "Ranker 'hidden': its settings cannot be read" in caplog.text
    assert "it has no to_dict(); init parameter 'boost' is not kept as attribute self.boost" in caplog.text
    assert "so its scores are not cached" in caplog.text

    result = evaluate(
        animals, rankers=[hidden], ks=[4], latency_queries=0, cache_dir=tmp_path / "cache", show_progress=False
    )
    assert result.rankers[0]["identity"] is None
    with EvaluationScoreStore(tmp_path / "cache" / "scores.sqlite3") as cache:
        assert len(cache) == 0


def test_fusion_weights_0_and_1_reproduce_the_ranker_and_the_first_stage_from_cached_scores(
    animals, tmp_path, spread_model_path
):
    arguments = {"rankers": [str(spread_model_path)], "ks": [6], "cache_dir": tmp_path / "cache"}
    plain = evaluate(animals, latency_queries=1, show_progress=False, **arguments)

    fused = evaluate(
        animals, latency_queries=0, show_progress=False, fusion_weights=[1, 0], output=tmp_path / "out", **arguments
    )

    name = spread_model_path.name
    assert fused.rankers[0]["model_calls"] == 0  # fusion re-sorts the cached scores
    assert [row.run_name for row in fused.rows] == ["bm25@6", f"{name}@6", f"{name}@6-alpha0", f"{name}@6-alpha1"]
    first_stage, ranker = fused.row("bm25"), fused.row(name, 6)
    alpha0, alpha1 = fused.row(name, 6, fusion_weight=0.0), fused.row(name, 6, fusion_weight=1.0)
    assert ranker.metrics == plain.row(name, 6).metrics  # the rows without fusion do not change
    assert alpha0.rankings == ranker.rankings
    assert alpha0.metrics == ranker.metrics
    assert alpha1.metrics == pytest.approx(first_stage.metrics)
    assert {query_id: [doc for doc, _ in ranking] for query_id, ranking in alpha1.rankings.items()} == {
        query_id: [doc for doc, _ in ranking] for query_id, ranking in first_stage.rankings.items()
    }
    assert alpha1.significance == {"ndcg@10": "", "mrr@10": "", "map": ""}  # the same run as the first stage
    assert alpha0.latency == ranker.latency and alpha0.letter == ""
    assert fused.comparison.p_values[f"{alpha1.run_name}|bm25@6"]["ndcg@10"] == pytest.approx(1.0)

    results = json.loads((tmp_path / "out" / "results.json").read_text(encoding="utf-8"))
    assert [row["fusion_weight"] for row in results["rows"]] == [None, None, 0.0, 1.0]
    assert results["settings"]["fusion_weights"] == [0.0, 1.0] and results["settings"]["fusion"] == "minmax"
    assert (tmp_path / "out" / "runs" / f"{name}@6-alpha1.trec").is_file()

    from rich.console import Console

    console = Console(width=200, record=True)
    console.print(render_table(fused))
    table = console.export_text()
    assert "α²" in table and "minmax normalisation" in table
    assert "α" not in _table_text(plain)  # without fusion weights the table is as before


def _table_text(result) -> str:
    from rich.console import Console

    console = Console(width=200, record=True)
    console.print(render_table(result))
    return console.export_text()


def test_cli_fusion_weights_and_their_errors(animals, tmp_path, tiny_model_path, capsys):
    from crossencoder_haystack.evaluation.command import FUSION_CHOICES
    from haystack_integrations.components.rankers.crossencoder.fusion import FUSIONS

    assert FUSION_CHOICES == FUSIONS
    arguments = ["evaluate", "--dataset", str(animals), "--ranker", str(tiny_model_path), "--k", "4"]
    arguments += ["--latency-queries", "0", "--cache-dir", str(tmp_path / "cache"), "--no-progress"]

    assert main([*arguments, "--fusion-weights", "0,0.5,1", "--fusion", "rrf", "--output", str(tmp_path / "o")]) == 0
    assert "rrf normalisation" in capsys.readouterr().out
    rows = json.loads((tmp_path / "o" / "results.json").read_text(encoding="utf-8"))["rows"]
    assert [row["fusion_weight"] for row in rows] == [None, None, 0.0, 0.5, 1.0]

    for bad in ("1.5", "x", ","):
        with pytest.raises(SystemExit):
            main([*arguments, "--fusion-weights", bad])
        assert "--fusion-weights takes comma-separated numbers in [0, 1]" in capsys.readouterr().err
    assert main([*arguments[:3], *arguments[5:], "--fusion-weights", "0.5"]) == 2
    assert "fusion_weights fuse a ranker's scores with the first stage's, but no ranker" in capsys.readouterr().err


def test_fused_ranking_keeps_dropped_documents_out_and_unscored_ones_last():
    from crossencoder_haystack.evaluation import fused_ranking

    candidates = ["a", "b", "c", "d"]
    rerank = {"a": 1.0, "b": None, "c": float("-inf"), "d": 2.0}
    first_stage = {"a": 9.0, "b": 8.0, "c": 7.0, "d": 1.0}

    assert fused_ranking(candidates, rerank, first_stage, 0.0) == [("d", 2.0), ("a", 1.0), ("c", float("-inf"))]
    assert [doc for doc, _ in fused_ranking(candidates, rerank, first_stage, 1.0)] == ["a", "d", "c"]
    # equal fused scores: first-stage order decides
    assert [doc for doc, _ in fused_ranking(["x", "y"], {"x": 0.0, "y": 1.0}, {"x": 1.0, "y": 0.0}, 0.5)] == ["x", "y"]


# Two queries where the ranker and the first stage each get one right (minmax fusion, worked out by hand):
# t1: fused a = 0.95(1-α) + α, b = (1-α) + 0.444α -> a first from α ≈ 0.083 on;
# t2: fused x = 1-α, y = α -> x first below α = 0.5 (at 0.5 the tie goes to the first stage's y).
TUNE_RERANK = {"t1": {"a": 2.9, "b": 3.0, "c": 1.0}, "t2": {"x": 5.0, "y": 0.0}}
TUNE_FIRST_STAGE = {"t1": {"a": 10.0, "b": 5.0, "c": 1.0}, "t2": {"x": 9.0, "y": 10.0}}
TUNE_QRELS = {"t1": {"a": 1}, "t2": {"x": 1}, "unranked": {"z": 1}}
ONE_WRONG = (1 + 1 / 1.584962500721156) / 2  # one query at rank 1, the other at rank 2: nDCG 1 and 1/log2(3)


def test_tune_fusion_weight_on_hand_made_scores():
    from crossencoder_haystack.evaluation import tune_fusion_weight

    best, per_weight = tune_fusion_weight(TUNE_RERANK, TUNE_FIRST_STAGE, TUNE_QRELS)

    assert best == 0.1  # 0.1 .. 0.4 all rank both queries right: the smallest wins
    assert list(per_weight) == [0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0]
    assert per_weight[0.0] == pytest.approx(ONE_WRONG)
    assert [per_weight[weight] for weight in (0.1, 0.2, 0.3, 0.4)] == pytest.approx([1.0] * 4)
    assert [per_weight[weight] for weight in (0.5, 0.7, 1.0)] == pytest.approx([ONE_WRONG] * 3)

    # Reciprocal ranks: each query flips at α = 0.5 the other way, so every weight ties and 0 wins.
    best_rrf, per_weight_rrf = tune_fusion_weight(TUNE_RERANK, TUNE_FIRST_STAGE, TUNE_QRELS, [0.7, 0.2], "rrf")
    assert best_rrf == 0.2 and per_weight_rrf == pytest.approx({0.2: ONE_WRONG, 0.7: ONE_WRONG})
    assert tune_fusion_weight(TUNE_RERANK, TUNE_FIRST_STAGE, TUNE_QRELS, metric="mrr@10")[1][0.0] == pytest.approx(0.75)

    with pytest.raises(ValueError, match="none of the 2 queries in `rerank`"):
        tune_fusion_weight(TUNE_RERANK, TUNE_FIRST_STAGE, {"other": {"a": 1}})
    with pytest.raises(ValueError, match=r"weights must be a number in \[0, 1\]"):
        tune_fusion_weight(TUNE_RERANK, TUNE_FIRST_STAGE, TUNE_QRELS, weights=[0.5, 1.5])
    with pytest.raises(ValueError, match="method must be one of 'minmax', 'zscore', 'rrf'"):
        tune_fusion_weight(TUNE_RERANK, TUNE_FIRST_STAGE, TUNE_QRELS, method="sum")

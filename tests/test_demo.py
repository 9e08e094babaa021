"""`rerank demo`: highlighting, model choice, starter-model data and cache reuse, and the command end to end.

The real starter model is never trained here: the cache logic runs a 2-step build of the tiny model, and the
pipeline runs use the tiny cross-encoder with fake CV embeddings seeded into the embeddings cache.
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
from crossencoder_haystack.demo.index import embeddings_cache_path
from crossencoder_haystack.demo.model_choice import HUB_MODEL, choose_model
from crossencoder_haystack.demo.starter_model import (
    LIST_SIZE,
    STARTER_MANIFEST,
    build_starter_model,
    is_starter_model,
    ranking_settings,
    starter_model_dir,
    starter_training_lists,
)
from crossencoder_haystack.evaluation.metrics import evaluate_rankings


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
    (directory / STARTER_MANIFEST).write_text(json.dumps({"ranking": {"max_length": 160}}), encoding="utf-8")
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


def test_unfinished_starter_build_is_not_a_cache_hit(monkeypatch, tmp_path):
    _hub(monkeypatch, cached=False, reachable=False)
    unfinished = starter_model_dir(tmp_path)
    unfinished.mkdir(parents=True)
    (unfinished / "config.json").write_text("{}", encoding="utf-8")
    assert choose_model(cache_dir=tmp_path).source == "build_starter"


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
    assert choice.model == str(tmp_path / "models" / "hr-starter-v1")
    assert "unreachable" in choice.reason
    assert calls == ["cache", "hub"]


# --- starter model ------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def starter_lists(minilm_tokenizer):
    return starter_training_lists(tokenizer=minilm_tokenizer)


def test_starter_data_learns_from_train_queries_only(starter_lists):
    rows, labelled = starter_lists
    train_queries = {query.text for query in hr_queries("train")}
    test_queries = {query.text for query in hr_queries("test")}
    assert {row["query"] for row in rows[:labelled]} == train_queries
    assert not {row["query"] for row in rows} & test_queries
    assert len(rows) > labelled  # self-supervised lists from the corpus follow the labelled ones


def test_starter_labelled_lists_put_a_relevant_passage_first_with_true_grades(starter_lists, minilm_tokenizer):
    rows, labelled = starter_lists
    train = load_hr_dataset("train")
    query_ids = {text: query_id for query_id, text in train.queries.items()}
    texts = {doc_id: entry["text"] for doc_id, entry in train.corpus.items()}
    graded = sum(1 for judgements in train.qrels.values() for grade in judgements.values() if grade >= 2)
    assert labelled == graded
    for row in rows[:labelled]:
        assert len(row["documents"]) == len(row["labels"]) == LIST_SIZE
        assert row["labels"][0] >= 2 and max(row["labels"][1:]) <= 1
        grades = train.qrels[query_ids[row["query"]]]
        # every passage is a piece of a CV whose grade for this query is the label
        for passage, label in zip(row["documents"], row["labels"], strict=True):
            owners = [doc_id for doc_id, text in texts.items() if passage in text]
            assert any(grades.get(owner, 0) == label for owner in owners)
    for row in rows[labelled:]:
        assert row["labels"] == [1.0] + [0.0] * (LIST_SIZE - 1)


def test_starter_build_is_cached_and_reused(monkeypatch, tmp_path, tiny_model_path, starter_lists):
    output = starter_model_dir(tmp_path)
    build = build_starter_model(
        output, base_model=tiny_model_path, max_steps=2, training_lists=starter_lists, show_progress=False
    )
    assert build.path == output and build.steps == 2
    assert is_starter_model(output)
    assert not output.with_name(f"{output.name}.building").exists()
    assert ".building" not in (output / "README.md").read_text(encoding="utf-8")
    assert ranking_settings(output) == {"max_length": 160, "overlap_tokens": 16}
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
    assert "nDCG@10" not in out


def test_held_out_queries_are_scored_first_stage_vs_reranked(monkeypatch, demo_cache, tiny_model_path):
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
    assert "Held-out test queries (3)" in console.export_text()


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

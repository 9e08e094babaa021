"""`rerank distill` on tiny models: a 4-layer teacher gives a 2-layer student that ranks clearly separated
documents as the teacher does; teacher scores are cached and a second run reuses them without loading the teacher;
bi-encoder teachers, students with their own tokenizer, the model card, the CLI and `rerank evaluate --cascade-keep`."""

import importlib
import json

import pytest
import torch
from haystack import Document

from crossencoder_haystack.cli import main
from crossencoder_haystack.training.agreement import teacher_agreement
from crossencoder_haystack.training.distill import distill, without_dropout
from crossencoder_haystack.training.distill_card import DISTILLATION_FILE, read_distillation_record
from crossencoder_haystack.training.distill_data import draw_pseudo_queries
from crossencoder_haystack.training.student import build_student, layer_indices
from crossencoder_haystack.training.teacher_scores import TeacherScoreCache, score_pairs
from haystack_integrations.components.rankers.crossencoder import CrossEncoderRanker
from tests.bi_encoder_fixtures import save_tiny_bi_encoder

TOPICS = {
    "rivers": "The Danube and the Rhine flow through many European capitals and old towns.",
    "volcanoes": "Volcanoes erupt lava and ash when magma rises through the crust of the earth.",
    "bread": "Bakers knead dough made of flour, water, salt and yeast before baking bread.",
    "chess": "Chess players plan openings, defend their king and trade pieces in the endgame.",
    "whales": "Whales are large marine mammals that sing songs and migrate across oceans.",
    "trains": "High speed trains connect cities and run on dedicated electrified rail tracks.",
    "coffee": "Coffee beans are roasted, ground and brewed into espresso or filter coffee.",
    "glaciers": "Glaciers are slow rivers of ice that carve valleys in high mountains.",
}
QUERIES = ["which rivers flow through capitals", "how do volcanoes erupt", "how to bake bread", "chess endgame plans"]
FAST = {"retriever": "bm25", "top_n": 10, "batch_size": 16, "teacher_backend": "torch", "show_progress": False}


def build_teacher(directory, tokenizer, layers: int = 4, seed: int = 0):
    """
    A random tiny BERT cross-encoder of `layers` layers with the segment-cosine head (10 x the cosine of the query's
    and the document's mean-pooled tokens; identity activation): its scores follow the word overlap of query and
    document, so documents on the query's topic are clearly apart from the others.
    """
    import torch
    from sentence_transformers import CrossEncoder
    from sentence_transformers.base.modules import Transformer
    from transformers import BertConfig, BertModel

    from haystack_integrations.components.rankers.crossencoder.score_heads import SegmentCosineScore

    torch.manual_seed(seed)
    config = BertConfig(
        vocab_size=tokenizer.vocab_size,
        hidden_size=32,
        num_hidden_layers=layers,
        num_attention_heads=2,
        intermediate_size=64,
    )
    BertModel(config).save_pretrained(directory / "raw")
    tokenizer.save_pretrained(directory / "raw")
    transformer = Transformer(str(directory / "raw"), max_seq_length=64)
    transformer.model.config.num_labels = 1
    model = CrossEncoder(modules=[transformer, SegmentCosineScore(scale=10.0, bias=0.0)], device="cpu")
    model.activation_fn = torch.nn.Identity()
    model.save(str(directory))
    return directory


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("distill_data")
    with (root / "corpus.jsonl").open("w", encoding="utf-8") as corpus:
        for topic, text in TOPICS.items():
            for part in range(2):
                record = {"_id": f"{topic}{part}", "title": f"All about {topic} part {part}", "text": text}
                corpus.write(json.dumps(record) + "\n")
    (root / "queries.txt").write_text("\n".join(QUERIES) + "\n", encoding="utf-8")
    return root


@pytest.fixture(scope="module")
def teacher_path(tmp_path_factory, minilm_tokenizer):
    return build_teacher(tmp_path_factory.mktemp("teacher"), minilm_tokenizer)


@pytest.fixture(scope="module")
def distilled(tmp_path_factory, teacher_path, data):
    """One distillation shared by several tests: 2 of the teacher's 4 layers, 80 steps."""
    root = tmp_path_factory.mktemp("distilled")
    result = distill(
        teacher_path,
        data / "queries.txt",
        corpus=data / "corpus.jsonl",
        output=root / "student",
        layers=2,
        pseudo_queries=16,
        max_steps=80,
        learning_rate=1e-3,
        eval_queries=3,
        cache_dir=root / "cache",
        **FAST,
    )
    return result, root


def test_layer_indices_are_evenly_spaced_and_end_with_the_last():
    assert layer_indices(6, 3) == [1, 3, 5]
    assert layer_indices(6, 2) == [2, 5]
    assert layer_indices(6, 4) == [0, 2, 3, 5]
    assert layer_indices(4, 2) == [1, 3]
    with pytest.raises(ValueError, match="layers must be an int from 1 to 5"):
        layer_indices(6, 6)


def test_pseudo_queries_are_titles_and_first_sentences():
    corpus = {
        f"d{i}": {
            "title": f"Title number {i} here",
            "text": f"First sentence of {i} is this. Second one.",
            "metadata": {},
        }
        for i in range(6)
    }
    corpus["short"] = {"title": "Tiny", "text": "No.", "metadata": {}}  # nothing of 3 words: skipped

    drawn = draw_pseudo_queries(corpus, 10, seed=1)

    assert "pseudo:short" not in drawn and len(drawn) == 6
    assert {text.split()[0] for text in drawn.values()} == {"Title", "First"}
    assert all(text.startswith("Title") or text.endswith("is this.") for text in drawn.values())
    assert draw_pseudo_queries(corpus, 10, seed=1) == drawn  # seeded


def test_agreement_is_perfect_for_the_same_order_and_low_for_the_reverse():
    teacher = {"q": {f"d{i}": float(20 - i) for i in range(20)}}
    same = teacher_agreement(teacher, {"q": {f"d{i}": float(-i) for i in range(20)}})
    reverse = teacher_agreement(teacher, {"q": {f"d{i}": float(i) for i in range(20)}})

    assert same.ndcg_at_10 == pytest.approx(1.0) and same.spearman == pytest.approx(1.0)
    assert reverse.ndcg_at_10 < 0.1 and reverse.spearman == pytest.approx(-1.0)
    assert teacher_agreement({}, {}).queries == 0


def test_teacher_score_cache_survives_a_cut_off_line(tmp_path):
    path = tmp_path / "teacher.jsonl"
    cache = TeacherScoreCache(path)
    cache.put_many([("query", "text one", 1.5), ("query", "text two", -0.25)])
    with path.open("a") as file:
        file.write('{"pair": "abc", "log')  # a run killed mid-line

    reopened = TeacherScoreCache(path)

    assert reopened.get("query", "text one") == 1.5 and reopened.get("query", "text two") == -0.25
    assert reopened.get("query", "text three") is None and len(reopened) == 2


def test_scoring_stops_at_the_deadline_without_calling_the_teacher(tmp_path):
    from crossencoder_haystack.training.distill_data import DistillationSet

    class Teacher:
        def run_batch(self, **kwargs):
            raise AssertionError("the deadline has passed: no call")

    dataset = DistillationSet({"d": "text"}, {"query:1": "q"}, {}, "test", candidates={"query:1": ["d"]})
    scoring = score_pairs(Teacher(), dataset, ["query:1"], TeacherScoreCache(tmp_path / "t.jsonl"), deadline=0.0)

    assert scoring.stopped_early and scoring.scored == 0


def test_the_student_has_fewer_layers_and_ranks_separated_documents_like_the_teacher(distilled, teacher_path):
    result, _ = distilled
    config = json.loads((result.output_dir / "config.json").read_text())
    assert config["num_hidden_layers"] == 2
    assert result.steps == 80 and result.pairs_scored == result.pairs > 100 and result.pairs_reused == 0
    assert result.loss_history[-1][1] < result.loss_history[0][1] / 2
    assert result.held_out_queries >= 2 and result.after.ndcg_at_10 > 0.8 and result.after.spearman > 0.5

    teacher = CrossEncoderRanker(model=str(teacher_path), top_k=100, activation="identity")
    student = CrossEncoderRanker(model=str(result.output_dir), top_k=100, activation="identity")
    documents = [Document(id=f"{topic}{part}", content=text) for topic, text in TOPICS.items() for part in (0, 1)]
    for query in QUERIES[:2]:
        by_teacher = teacher.run(query=query, documents=documents)["documents"]
        # three clearly separated documents: the teacher's best, middle and worst
        chosen = [by_teacher[0], by_teacher[len(by_teacher) // 2], by_teacher[-1]]
        assert chosen[0].score - chosen[1].score > 0.05 and chosen[1].score - chosen[2].score > 0.05
        by_student = student.run(query=query, documents=[Document(id=d.id, content=d.content) for d in chosen])
        assert [d.id for d in by_student["documents"]] == [d.id for d in chosen]


def test_the_student_trains_without_dropout_and_is_saved_with_the_teachers_dropout(distilled, teacher_path):
    result, _ = distilled
    saved = json.loads((result.output_dir / "config.json").read_text())
    teacher = json.loads((teacher_path / "config.json").read_text())
    assert saved["hidden_dropout_prob"] == teacher["hidden_dropout_prob"] > 0  # for a later fine-tuning
    assert saved["attention_probs_dropout_prob"] == teacher["attention_probs_dropout_prob"] > 0

    model = build_student(teacher_path, layers=2).model
    without_dropout(model)
    model.train()
    dropouts = [module for module in model.modules() if isinstance(module, torch.nn.Dropout)]
    assert len(dropouts) > 2 and all(module.p == 0 for module in dropouts)  # embeddings, attention, outputs


@pytest.mark.parametrize(
    ("bf16", "cuda", "math_only"), [(True, False, True), (False, False, False), (True, True, False)]
)
def test_training_attention_uses_the_math_kernel_only_on_a_cpu_in_bf16(monkeypatch, bf16, cuda, math_only):
    from crossencoder_haystack.training import precision

    monkeypatch.setattr(precision, "training_uses_bf16", lambda: bf16)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: cuda)
    with precision.training_attention():
        inside = (torch.backends.cuda.flash_sdp_enabled(), torch.backends.cuda.math_sdp_enabled())
    assert inside == ((False, True) if math_only else (True, True))
    assert torch.backends.cuda.flash_sdp_enabled(), "the choice is back to PyTorch's after the steps"


def test_the_card_and_the_record_name_the_teacher_the_data_and_the_agreement(distilled, teacher_path):
    result, _ = distilled
    card = (result.output_dir / "README.md").read_text()
    record = read_distillation_record(result.output_dir)

    assert str(teacher_path.resolve()) in card and "pseudo-queries" in card and "Spearman" in card
    assert record["teacher"] == str(teacher_path.resolve())
    assert record["layers"] == [2, 4] and record["source_layers"] == 4 and record["same_tokenizer"] is True
    assert record["data"]["queries"] == 4 and record["data"]["pseudo_queries"] == result.pseudo_queries >= 8
    assert record["agreement"]["after"]["spearman"] == pytest.approx(result.after.spearman)
    assert record["agreement"]["after"]["ndcg@10_vs_teacher"] == pytest.approx(result.after.ndcg_at_10)


def test_a_second_run_reuses_the_cached_candidates_and_teacher_scores(
    distilled, teacher_path, data, monkeypatch, capsys
):
    _, root = distilled
    cache_files = list((root / "cache").glob("teacher-*.jsonl"))
    lines = cache_files[0].read_text().count("\n")
    distill_module = importlib.import_module("crossencoder_haystack.training.distill")

    def no_teacher(*args, **kwargs):
        raise AssertionError("every score is cached: the teacher must not load")

    def no_first_stage(*args, **kwargs):
        raise AssertionError("the candidates are cached: the first stage must not run")

    monkeypatch.setattr(distill_module, "load_teacher", no_teacher)
    monkeypatch.setattr("crossencoder_haystack.training.mining.retrieve_candidates", no_first_stage)
    arguments = ["distill", "--teacher", str(teacher_path), "--queries", str(data / "queries.txt")]
    arguments += ["--corpus", str(data / "corpus.jsonl"), "--output", str(root / "again"), "--layers", "1"]
    arguments += ["--pseudo-queries", "16", "--retriever", "bm25", "--top-n", "10", "--max-steps", "3"]
    arguments += ["--eval-queries", "3", "--cache-dir", str(root / "cache")]

    assert main(arguments) == 0

    assert len(cache_files) == 1 and cache_files[0].read_text().count("\n") == lines
    record = read_distillation_record(root / "again")
    assert record["layers"] == [4] and record["teacher_backend"] == "its score cache (not loaded)"
    assert "Distillation" in capsys.readouterr().out


def test_a_budget_that_ends_before_the_planned_steps_still_saves_the_student(tmp_path, teacher_path, data, monkeypatch):
    # The probe step ran faster than the real ones (a busy machine later): the time budget stops the training. That
    # must end the run normally (it once asked the trainer, which has no eval dataset, to evaluate: an error).
    distill_module = importlib.import_module("crossencoder_haystack.training.distill")
    monkeypatch.setattr(distill_module, "_probe_step_seconds", lambda *args: 1e-4)
    result = distill(
        teacher_path,
        data / "queries.txt",
        corpus=data / "corpus.jsonl",
        output=tmp_path / "student",
        layers=1,
        pseudo_queries=16,
        epochs=1000.0,
        max_minutes=0.2,
        eval_queries=3,
        cache_dir=tmp_path / "cache",
        **FAST,
    )
    assert 0 < result.steps < 1000 * result.training_pairs / FAST["batch_size"]
    assert read_distillation_record(tmp_path / "student")["steps"] == result.steps


def test_first_stage_candidates_are_cached_per_queries_corpus_and_settings(tmp_path):
    from crossencoder_haystack.training.distill_data import DistillationSet, retrieve_first_stage

    corpus = {f"d{i}": f"document {i} about {topic}" for i, topic in enumerate(["cats", "dogs", "birds", "fish"] * 3)}

    def dataset(**changes):
        texts = {"corpus": corpus, "queries": {"query:1": "cats"}, "pseudo_queries": {"pseudo:d1": "dogs"}}
        return DistillationSet(**{**texts, **changes}, source="test")

    first = dataset()
    assert retrieve_first_stage(first, retriever="bm25", top_n=3, cache_dir=tmp_path) is False
    again = dataset()
    assert retrieve_first_stage(again, retriever="bm25", top_n=3, cache_dir=tmp_path) is True
    assert again.candidates == first.candidates and len(first.candidates["query:1"]) == 3
    assert retrieve_first_stage(dataset(), retriever="bm25", top_n=2, cache_dir=tmp_path) is False
    assert (
        retrieve_first_stage(dataset(queries={"query:1": "fish"}), retriever="bm25", top_n=3, cache_dir=tmp_path)
        is False
    )
    assert (
        retrieve_first_stage(dataset(corpus={**corpus, "d0": "changed"}), retriever="bm25", top_n=3, cache_dir=tmp_path)
        is False
    )

    for cached in tmp_path.glob("first-stage-*.json"):
        cached.write_text("{not json")
    damaged = dataset()
    assert retrieve_first_stage(damaged, retriever="bm25", top_n=3, cache_dir=tmp_path) is False  # read again
    assert damaged.candidates == first.candidates


def test_a_bi_encoder_teacher_gives_a_cross_encoder_student(tmp_path, minilm_tokenizer, data):
    teacher = save_tiny_bi_encoder(tmp_path / "teacher", minilm_tokenizer, num_layers=2)
    settings = {**FAST, "retriever": "hybrid", "embedding_model": teacher}

    result = distill(
        teacher, data / "queries.txt", corpus=data / "corpus.jsonl", output=tmp_path / "student", layers=1,
        pseudo_queries=4, max_steps=3, eval_queries=2, cache_dir=tmp_path / "cache", **settings,
    )  # fmt: skip

    saved = json.loads((result.output_dir / "config_sentence_transformers.json").read_text())
    modules = json.loads((result.output_dir / "modules.json").read_text())
    assert saved["model_type"] == "CrossEncoder" and saved["activation_fn"].endswith("Identity")
    assert modules[-1]["type"].endswith("SegmentCosineScore")
    assert "head: cosine" in result.student
    ranked = CrossEncoderRanker(model=str(result.output_dir)).run(query=QUERIES[0], documents=[Document(content="x")])
    assert len(ranked["documents"]) == 1


def test_a_student_with_its_own_tokenizer_is_supported(tmp_path, teacher_path, data):
    from transformers import BertTokenizerFast

    vocabulary = tmp_path / "vocab.txt"
    words = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *sorted({w for t in TOPICS.values() for w in t.split()})]
    vocabulary.write_text("\n".join(words) + "\n")
    base = build_teacher(tmp_path / "base", BertTokenizerFast(vocab_file=str(vocabulary)), layers=2, seed=3)

    result = distill(
        teacher_path, data / "queries.txt", corpus=data / "corpus.jsonl", output=tmp_path / "student",
        student=base, layers=None, pseudo_queries=4, max_steps=3, eval_queries=2, cache_dir=tmp_path / "cache",
        **FAST,
    )  # fmt: skip

    assert result.same_tokenizer is False
    assert read_distillation_record(result.output_dir)["same_tokenizer"] is False
    assert "its own (not the teacher's)" in (result.output_dir / "README.md").read_text()
    assert CrossEncoderRanker(model=str(result.output_dir)).run(query="bread", documents=[Document(content="x")])


def test_a_cross_encoder_teacher_scores_on_an_openvino_export_as_on_torch(tmp_path, teacher_path):
    from crossencoder_haystack.training.teacher_scores import load_teacher

    pytest.importorskip("openvino")
    exported = load_teacher(teacher_path, backend="auto", precision="fp32", export_dir=tmp_path)
    torch_teacher = load_teacher(teacher_path, backend="torch", precision="fp32")
    documents = [Document(id=topic, content=text) for topic, text in TOPICS.items()]

    assert exported.backend == "openvino" and str(tmp_path) in exported.description
    scores = {
        name: {d.id: d.score for d in loaded.ranker.run(query=QUERIES[0], documents=documents)["documents"]}
        for name, loaded in (("openvino", exported), ("torch", torch_teacher))
    }
    assert scores["openvino"] == pytest.approx(scores["torch"], abs=1e-3)
    again = load_teacher(teacher_path, backend="openvino", precision="fp32", export_dir=tmp_path)
    assert again.description == exported.description  # the export is made once and reused


@pytest.mark.parametrize(
    ("settings", "error", "match"),
    [
        ({"layers": 4}, ValueError, "layers must be an int from 1 to 3"),
        ({"loss": "kl"}, ValueError, "loss must be one of mse, margin_mse"),
        ({"teacher_share": 1.5}, ValueError, "teacher_share"),
        ({"eval_queries": -1}, ValueError, "eval_queries"),
    ],
)
def test_bad_settings_are_rejected_with_the_parameter_named(tmp_path, teacher_path, data, settings, error, match):
    arguments = {**FAST, "corpus": data / "corpus.jsonl", "output": tmp_path / "s", "cache_dir": tmp_path / "c"}
    with pytest.raises(error, match=match):
        distill(teacher_path, data / "queries.txt", **{**arguments, "max_steps": 1, "pseudo_queries": 0, **settings})


def test_a_missing_teacher_is_named(tmp_path):
    with pytest.raises(FileNotFoundError, match="not a model directory"):
        distill(tmp_path / "nothing", output=tmp_path / "s")


def test_evaluate_takes_the_student_and_its_cascades(distilled, tmp_path, data):
    result, _ = distilled
    dataset = tmp_path / "beir"
    (dataset / "qrels").mkdir(parents=True)
    (dataset / "corpus.jsonl").write_text((data / "corpus.jsonl").read_text())
    queries = [{"_id": f"q{i}", "text": text} for i, text in enumerate(QUERIES)]
    (dataset / "queries.jsonl").write_text("".join(json.dumps(q) + "\n" for q in queries))
    topics = list(TOPICS)
    qrels = "".join(f"q{i}\t{topics[i]}0\t1\n" for i in range(len(QUERIES)))
    (dataset / "qrels" / "test.tsv").write_text("query-id\tcorpus-id\tscore\n" + qrels)

    arguments = ["evaluate", "--dataset", str(dataset), "--ranker", str(result.output_dir), "--k", "8"]
    arguments += ["--cascade-keep", "3,8", "--latency-queries", "0", "--no-progress", "--output", str(tmp_path / "o")]
    arguments += ["--cache-dir", str(tmp_path / "cache")]
    assert main(arguments) == 0

    names = {row["name"] for row in json.loads((tmp_path / "o" / "results.json").read_text())["rows"]}
    assert {f"cascade3-{result.output_dir.name}", f"cascade8-{result.output_dir.name}", result.output_dir.name} <= names
    assert (result.output_dir / DISTILLATION_FILE).is_file()

"""CascadeRanker: a tiny student ranks every candidate, a tiny teacher re-ranks the student's head; the result
equals the teacher's when the head covers everything, only `cascade_keep` pairs reach the teacher otherwise, and
the settings survive YAML."""

import copy

import pytest
from haystack import DeserializationError, Document, Pipeline

from haystack_integrations.components.preprocessors.crossencoder import PassageSplitter
from haystack_integrations.components.rankers.crossencoder import CascadeRanker, CrossEncoderRanker
from tests.conftest import build_tiny_cross_encoder

QUERY = "which rivers flow through old european capitals"
WORDS = "river bridge capital city museum tower market harbour castle garden station square".split()


def candidates(count: int = 12) -> list[Document]:
    """Distinct short documents with decreasing retrieval scores (the first stage's order)."""
    return [
        Document(
            id=f"d{i}",
            content=" ".join(WORDS[(i + j) % len(WORDS)] for j in range(3 + i % 4)) + f" number {i}",
            score=float(count - i),
        )
        for i in range(count)
    ]


@pytest.fixture(scope="module")
def student_path(tmp_path_factory, minilm_tokenizer):
    """Another random tiny model (seed 1): it orders documents differently from the teacher."""
    return build_tiny_cross_encoder(tmp_path_factory.mktemp("student"), minilm_tokenizer, seed=1, head_gain=100.0)


@pytest.fixture(scope="module")
def other_tokenizer_student_path(tmp_path_factory):
    """A tiny model whose tokenizer (a 40-word WordPiece vocabulary) is not the teacher's."""
    from transformers import BertTokenizerFast

    directory = tmp_path_factory.mktemp("other_tokenizer")
    vocabulary = directory / "vocab.txt"
    special = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    vocabulary.write_text("\n".join(special + WORDS + list("abcdefghijklmnopqrstuvwxyz0123456789")) + "\n")
    tokenizer = BertTokenizerFast(vocab_file=str(vocabulary))
    return build_tiny_cross_encoder(directory / "model", tokenizer, seed=2, head_gain=100.0)


@pytest.fixture(scope="module")
def teacher(spread_model_path) -> CrossEncoderRanker:
    ranker = CrossEncoderRanker(model=str(spread_model_path), top_k=100, activation="identity")
    ranker.warm_up()
    return ranker


@pytest.fixture(scope="module")
def student(student_path) -> CrossEncoderRanker:
    ranker = CrossEncoderRanker(model=str(student_path), top_k=100, activation="identity")
    ranker.warm_up()
    return ranker


class PairCounter:
    """Counts the (query, text) pairs a warm ranker sends to its model."""

    def __init__(self, ranker: CrossEncoderRanker, monkeypatch) -> None:
        self.texts: list[str] = []
        scorer = ranker._scorer
        original = scorer.logits_many

        def counted(requests, show_progress_bar=False):
            self.texts.extend(text for _, texts in requests for text in texts)
            return original(requests, show_progress_bar=show_progress_bar)

        monkeypatch.setattr(scorer, "logits_many", counted)


def _same(left: list[Document], right: list[Document]) -> None:
    assert [d.id for d in left] == [d.id for d in right]
    assert [d.score for d in left] == [d.score for d in right]
    assert [d.content for d in left] == [d.content for d in right]


@pytest.mark.parametrize("settings", [{}, {"top_k": 5}, {"score_threshold": 0.0}, {"first_stage_weight": 0.4}])
def test_a_head_covering_every_candidate_gives_exactly_the_teachers_result(teacher, student, monkeypatch, settings):
    student_pairs = PairCounter(student, monkeypatch)
    documents = candidates()
    cascade = CascadeRanker(student=student, teacher=teacher, cascade_keep=len(documents))

    result = cascade.run(query=QUERY, documents=documents, **settings)["documents"]

    expected = teacher.run(query=QUERY, documents=documents, **settings)["documents"]
    _same(result, expected)
    assert all(d.meta["cascade_stage"] == "teacher" for d in result)
    assert student_pairs.texts == []  # the student is not even asked


def test_only_cascade_keep_pairs_reach_the_teacher(teacher, student, monkeypatch):
    teacher_pairs = PairCounter(teacher, monkeypatch)
    documents = candidates()
    before = copy.deepcopy(documents)
    cascade = CascadeRanker(student=student, teacher=teacher, cascade_keep=4)

    result = cascade.run(query=QUERY, documents=documents)["documents"]

    student_order = student.run(query=QUERY, documents=documents)["documents"]
    head_ids = [d.id for d in student_order[:4]]
    assert len(teacher_pairs.texts) == 4
    assert sorted(teacher_pairs.texts) == sorted(d.content for d in student_order[:4])
    teacher_head = teacher.run(query=QUERY, documents=[d for d in documents if d.id in head_ids])["documents"]
    assert [d.id for d in result[:4]] == [d.id for d in teacher_head]
    assert [d.score for d in result[:4]] == [d.score for d in teacher_head]
    assert [d.id for d in result[4:]] == [d.id for d in student_order[4:]]
    assert [d.meta["cascade_stage"] for d in result] == ["teacher"] * 4 + ["student"] * 8
    assert documents == before  # the caller's documents are untouched


def test_scores_below_the_cut_are_the_students_shifted_below_the_head(spread_model_path, student_path):
    # The student's raw logits (about +1.2) lie above the teacher's sigmoid scores (about 0.3): the tail must move.
    student = CrossEncoderRanker(model=str(spread_model_path), top_k=100, activation="identity")
    teacher = CrossEncoderRanker(model=str(student_path), top_k=100, activation="sigmoid")
    documents = candidates()
    result = CascadeRanker(student=student, teacher=teacher, cascade_keep=3).run(query=QUERY, documents=documents)
    head, tail = result["documents"][:3], result["documents"][3:]

    assert max(d.score for d in tail) < min(d.score for d in head)
    shifts = {round(d.meta["student_score"] - d.score, 9) for d in tail}
    assert len(shifts) == 1  # one constant: the student's spacing is kept
    assert shifts.pop() > 0
    student_scores = {d.id: d.score for d in student.run(query=QUERY, documents=documents)["documents"]}
    assert all(d.meta["student_score"] == student_scores[d.id] for d in tail)
    scores = [d.score for d in result["documents"]]
    assert scores == sorted(scores, reverse=True)
    retrieval = {d.id: d.score for d in documents}
    assert all(d.meta["retrieval_score"] == retrieval[d.id] for d in result["documents"])
    assert [d.meta["retrieval_rank"] for d in result["documents"]] == [int(d.id[1:]) + 1 for d in result["documents"]]


def test_top_k_threshold_and_fusion_apply_to_the_merged_list(teacher, student):
    documents = candidates()
    cascade = CascadeRanker(student=student, teacher=teacher, cascade_keep=4, top_k=6)
    merged = cascade.run(query=QUERY, documents=documents, top_k=100)["documents"]

    assert [d.id for d in cascade.run(query=QUERY, documents=documents)["documents"]] == [d.id for d in merged[:6]]
    threshold = merged[5].score
    kept = cascade.run(query=QUERY, documents=documents, top_k=100, score_threshold=threshold)["documents"]
    assert [d.id for d in kept] == [d.id for d in merged[:6]]
    first_stage = cascade.run(query=QUERY, documents=documents, first_stage_weight=1.0, top_k=100)["documents"]
    assert [d.id for d in first_stage] == [d.id for d in documents]  # all weight on the retrieval order
    fused = cascade.run(query=QUERY, documents=documents, first_stage_weight=0.3, top_k=100)["documents"]
    rerank = {d.id: d.score for d in merged}
    assert all(d.meta["rerank_score"] == rerank[d.id] for d in fused)


def test_passages_of_the_kept_parents_all_reach_the_teacher(spread_model_path, student_path, monkeypatch):
    long_documents = [
        Document(id=f"long{i}", content=" ".join(WORDS[(i + j) % len(WORDS)] for j in range(60)), score=5.0 - i)
        for i in range(5)
    ]
    passages = PassageSplitter(
        tokenizer=str(spread_model_path), max_length=48, max_query_tokens=16, overlap_tokens=4
    ).run(documents=long_documents)
    passages = passages["documents"]
    teacher = CrossEncoderRanker(model=str(spread_model_path), top_k=10)
    student = CrossEncoderRanker(model=str(student_path), top_k=10)
    teacher.warm_up()
    teacher_pairs = PairCounter(teacher, monkeypatch)

    result = CascadeRanker(student=student, teacher=teacher, cascade_keep=2).run(query=QUERY, documents=passages)

    ranked = result["documents"]
    assert sorted(d.id for d in ranked) == sorted(d.id for d in long_documents)  # parents, not passages
    head = {d.id for d in ranked[:2]}
    head_passages = [p.content for p in passages if p.meta["source_id"] in head]
    assert sorted(teacher_pairs.texts) == sorted(set(head_passages))
    assert all("best_passage" in d.meta for d in ranked)


def test_a_student_with_another_tokenizer_is_supported(teacher, other_tokenizer_student_path):
    from transformers import AutoTokenizer

    assert AutoTokenizer.from_pretrained(str(other_tokenizer_student_path)).vocab_size < 100
    student = CrossEncoderRanker(model=str(other_tokenizer_student_path), top_k=100, activation="identity")
    documents = candidates()

    result = CascadeRanker(student=student, teacher=teacher, cascade_keep=5).run(query=QUERY, documents=documents)

    ranked = result["documents"]
    student_order = student.run(query=QUERY, documents=documents)["documents"]
    head = teacher.run(query=QUERY, documents=[d for d in documents if d.id in {s.id for s in student_order[:5]}])
    assert [d.id for d in ranked[:5]] == [d.id for d in head["documents"]]
    assert [d.id for d in ranked[5:]] == [d.id for d in student_order[5:]]


async def test_run_async_matches_run(teacher, student):
    cascade = CascadeRanker(student=student, teacher=teacher, cascade_keep=3)
    documents = candidates()
    _same(
        (await cascade.run_async(query=QUERY, documents=documents))["documents"],
        cascade.run(query=QUERY, documents=documents)["documents"],
    )


def test_cascade_parameters_round_trip_through_yaml(spread_model_path, student_path):
    cascade = CascadeRanker(
        student=CrossEncoderRanker(model=str(student_path), max_length=64),
        teacher=CrossEncoderRanker(model=str(spread_model_path), top_k=7),
        cascade_keep=30,
        top_k=5,
        score_threshold=0.25,
        first_stage_weight=0.3,
        fusion="rrf",
    )
    pipeline = Pipeline()
    pipeline.add_component("ranker", cascade)

    text = pipeline.dumps()
    loaded = Pipeline.loads(text).get_component("ranker")

    assert isinstance(loaded, CascadeRanker)
    assert (loaded.cascade_keep, loaded.top_k, loaded.score_threshold) == (30, 5, 0.25)
    assert (loaded.first_stage_weight, loaded.fusion) == (0.3, "rrf")
    assert loaded.student.model == str(student_path) and loaded.student.max_length == 64
    assert loaded.teacher.model == str(spread_model_path) and loaded.teacher.top_k == 7
    data = cascade.to_dict()
    snapshot = copy.deepcopy(data)
    assert CascadeRanker.from_dict(data).to_dict() == snapshot
    assert data == snapshot  # from_dict leaves its input alone


def test_nested_rankers_go_through_the_deserialization_allowlist():
    data = CascadeRanker(
        student=CrossEncoderRanker(model="/models/student"), teacher=CrossEncoderRanker(model="/models/teacher")
    ).to_dict()
    data["init_parameters"]["student"]["type"] = "subprocess.Popen"
    with pytest.raises(DeserializationError, match="subprocess"):
        CascadeRanker.from_dict(data)


@pytest.mark.parametrize(
    ("arguments", "error", "match"),
    [
        ({"cascade_keep": 0}, ValueError, "cascade_keep must be a positive int"),
        ({"top_k": -1}, ValueError, "top_k must be a positive int"),
        ({"score_threshold": float("nan")}, ValueError, "score_threshold"),
        ({"first_stage_weight": 2.0}, ValueError, "first_stage_weight"),
        ({"student": "a model"}, TypeError, "student must be a CrossEncoderRanker"),
        ({"teacher": CrossEncoderRanker(return_passages=True)}, ValueError, "return_passages"),
    ],
)
def test_bad_settings_are_rejected_with_the_parameter_named(arguments, error, match):
    settings = {"student": CrossEncoderRanker(model="/models/student"), "teacher": CrossEncoderRanker(), **arguments}
    with pytest.raises(error, match=match):
        CascadeRanker(**settings)


def test_run_time_values_are_checked(teacher, student):
    cascade = CascadeRanker(student=student, teacher=teacher)
    with pytest.raises(ValueError, match="cascade_keep"):
        cascade.run(query=QUERY, documents=candidates(), cascade_keep=0)
    assert cascade.run(query=QUERY, documents=[])["documents"] == []

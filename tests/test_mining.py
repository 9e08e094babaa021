"""Hard-negative mining never returns a known positive as a negative, in every output format."""

import json

import pytest

from crossencoder_haystack.training import load_training_data, mine_hard_negatives
from crossencoder_haystack.training.mining import MiningInput

CORPUS = {
    "d1": "Aspirin reduces the risk of heart attack in adults.",
    "d2": "Aspirin lowers heart attack risk for older adults.",
    "d3": "Heart attack risk and aspirin use in a cohort of adults.",
    "d4": "Statins lower cholesterol.",
    "d5": "Vitamin D and bone density in older women.",
    "d6": "Aspirin and heart attack: a review of risk in adults.",
    "d7": "Exercise improves heart health.",
}
QUERIES = {"q1": "Does aspirin reduce heart attack risk in adults?", "q2": "Do statins lower cholesterol?"}
POSITIVES = {"q1": {"d1", "d2"}, "q2": {"d4"}}


@pytest.fixture()
def beir_dir(tmp_path):
    root = tmp_path / "beir"
    (root / "qrels").mkdir(parents=True)
    (root / "corpus.jsonl").write_text(
        "".join(json.dumps({"_id": i, "title": "", "text": t}) + "\n" for i, t in CORPUS.items())
    )
    (root / "queries.jsonl").write_text("".join(json.dumps({"_id": i, "text": t}) + "\n" for i, t in QUERIES.items()))
    (root / "qrels" / "train.tsv").write_text(
        "query-id\tcorpus-id\tscore\n" + "".join(f"{q}\t{d}\t1\n" for q, ds in POSITIVES.items() for d in sorted(ds))
    )
    return root


def negatives_by_query(rows, output_format):
    found: dict[str, set[str]] = {}
    for row in rows:
        if output_format == "triplets":
            found.setdefault(row["query"], set()).update(row["negatives"])
        elif output_format == "pairs":
            if row["label"] == 0:
                found.setdefault(row["query"], set()).add(row["document"])
        else:
            docs = [d for d, label in zip(row["documents"], row["labels"], strict=True) if label == 0]
            found.setdefault(row["query"], set()).update(docs)
    return found


@pytest.mark.parametrize("output_format", ["triplets", "pairs", "lists"])
def test_bm25_mining_excludes_positives(beir_dir, tmp_path, output_format):
    output = tmp_path / "mined.jsonl"
    rows = mine_hard_negatives(
        beir_dir, output=output, retriever="bm25", top_n=6, num_negatives=3, output_format=output_format
    )
    negatives = negatives_by_query(rows, output_format)
    positive_texts = {QUERIES[q]: {CORPUS[d] for d in ds} for q, ds in POSITIVES.items()}
    for query, texts in negatives.items():
        assert not texts & positive_texts[query]
    # the aspirin query's hardest negatives are the other aspirin documents
    assert {CORPUS["d3"], CORPUS["d6"]} <= negatives[QUERIES["q1"]]
    assert load_training_data(output).shape == output_format


@pytest.mark.integration
def test_embedding_mining_excludes_positives_even_when_duplicated_under_another_id(minilm_path):
    corpus = {**CORPUS, "d1-copy": CORPUS["d1"]}
    data = MiningInput(QUERIES, corpus, POSITIVES)
    rows = mine_hard_negatives(data, retriever="embedding", model=minilm_path, top_n=7, num_negatives=4)
    assert len(rows) == 3  # one triplet per positive
    for row in rows:
        positives = {CORPUS[d] for d in POSITIVES["q1" if "aspirin" in row["query"] else "q2"]}
        assert row["negatives"]
        assert not set(row["negatives"]) & positives


@pytest.mark.integration
def test_margin_skips_candidates_scoring_close_to_the_positive(minilm_path):
    data = MiningInput(QUERIES, CORPUS, POSITIVES)
    plain = {"retriever": "embedding", "sample": "top", "relative_margin": None, "output_format": "lists"}
    without = mine_hard_negatives(data, model=minilm_path, top_n=7, num_negatives=5, **plain)
    with_margin = mine_hard_negatives(data, model=minilm_path, top_n=7, num_negatives=5, margin=0.2, **plain)
    aspirin = next(row for row in without if "aspirin" in row["query"])
    aspirin_margin = next(row for row in with_margin if "aspirin" in row["query"])
    assert len(aspirin_margin["documents"]) < len(aspirin["documents"])
    assert set(aspirin_margin["documents"]) <= set(aspirin["documents"])


def test_mining_from_a_data_file_and_corpus(tmp_path):
    pairs = tmp_path / "pairs.jsonl"
    pairs.write_text(json.dumps({"query": QUERIES["q1"], "document": CORPUS["d1"], "label": 1}) + "\n")
    corpus = tmp_path / "corpus.jsonl"
    corpus.write_text("".join(json.dumps({"id": i, "text": t}) + "\n" for i, t in CORPUS.items()))
    rows = mine_hard_negatives(pairs, corpus, retriever="bm25", top_n=5, num_negatives=2, output_format="pairs")
    assert [row["label"] for row in rows] == [1, 0, 0]
    assert CORPUS["d1"] not in {row["document"] for row in rows if row["label"] == 0}


def test_bad_arguments(beir_dir):
    with pytest.raises(ValueError, match="output_format must be"):
        mine_hard_negatives(beir_dir, output_format="quads")
    with pytest.raises(FileNotFoundError, match="choose the split with --split"):
        mine_hard_negatives(beir_dir, split="dev", retriever="bm25")
    with pytest.raises(ValueError, match="corpus is required"):
        mine_hard_negatives(beir_dir / "corpus.jsonl", retriever="bm25")


def test_the_false_negative_guard_drops_candidates_as_similar_as_the_positive():
    from crossencoder_haystack.training.mining import _guard_false_negatives

    pool = [("near-duplicate", 9.0), ("related", 8.0), ("unrelated", 7.0)]
    similarity = {"positive": 0.80, "near-duplicate": 0.79, "related": 0.70, "unrelated": 0.10}
    kept = _guard_false_negatives(pool, similarity, {"positive"}, relative_margin=0.05)
    assert kept == [("related", 8.0), ("unrelated", 7.0)]  # 0.79 >= 0.95 * 0.80 = 0.76: probably relevant
    assert _guard_false_negatives(pool, similarity, {"unknown-positive"}, 0.05) == pool


def test_mixed_sampling_keeps_the_hardest_half_and_draws_the_rest_from_deeper():
    import random

    from crossencoder_haystack.training.mining import _sample

    pool = [(f"d{rank}", float(-rank)) for rank in range(100)]
    chosen = _sample(pool, 6, "mixed", random.Random(0))
    assert chosen[:3] == pool[:3]
    assert len({doc for doc, _ in chosen}) == 6 and all(int(doc[1:]) >= 3 for doc, _ in chosen[3:])
    assert _sample(pool, 6, "mixed", random.Random(0)) == chosen  # seeded
    assert _sample(pool[:4], 6, "mixed", random.Random(0)) == pool[:4]


def test_hybrid_candidates_are_the_union_ordered_by_reciprocal_rank():
    from crossencoder_haystack.training.mining import _fuse_candidates

    dense = {"q": ([("a", 0.9), ("b", 0.8)], [])}
    bm25 = {"q": ([("b", 12.0), ("c", 7.0)], [])}
    ranked, _ = _fuse_candidates(dense, bm25)["q"]
    assert [doc for doc, _ in ranked] == ["b", "a", "c"]  # b is in both lists


def test_a_bad_corpus_line_is_reported_with_file_and_line(beir_dir, capsys):
    corpus = beir_dir / "corpus.jsonl"
    lines = corpus.read_text().splitlines()
    lines[2] = '{"_id": "d3", "text": "cut off'
    corpus.write_text("\n".join(lines) + "\n")

    with pytest.raises(ValueError, match=r"corpus\.jsonl:3: not valid JSON"):
        mine_hard_negatives(beir_dir, retriever="bm25", top_n=6, num_negatives=3)

    from crossencoder_haystack.cli import main

    assert (
        main(["mine", "--queries", str(beir_dir), "--output", str(beir_dir / "out.jsonl"), "--retriever", "bm25"]) == 2
    )
    assert "corpus.jsonl:3: not valid JSON" in capsys.readouterr().err


def test_a_query_record_without_text_is_reported_with_file_and_line(beir_dir):
    queries = beir_dir / "queries.jsonl"
    queries.write_text(queries.read_text() + json.dumps({"_id": "q3"}) + "\n")

    with pytest.raises(ValueError, match=r"queries\.jsonl:3: query record has no 'text'"):
        mine_hard_negatives(beir_dir, retriever="bm25", top_n=6, num_negatives=3)

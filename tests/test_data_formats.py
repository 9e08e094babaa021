"""Dataset and run-file formats: BEIR directories, judged rows (CSV/JSONL) with a corpus, TREC run files."""

import json
from pathlib import Path

import pytest

from crossencoder_haystack.data import (
    available_splits,
    document_text,
    load_beir,
    load_dataset,
    load_judged_rows,
    read_qrels,
    read_trec_run,
    write_trec_run,
)


def _write_jsonl(path: Path, records: list[dict]) -> None:
    path.write_text("".join(json.dumps(record) + "\n" for record in records), encoding="utf-8")


@pytest.fixture
def beir_dir(tmp_path: Path) -> Path:
    root = tmp_path / "mini-beir"
    (root / "qrels").mkdir(parents=True)
    _write_jsonl(
        root / "corpus.jsonl",
        [
            {"_id": "d1", "title": "Cats", "text": "Cats purr.", "metadata": {"year": 2020}},
            {"_id": "d2", "text": "Dogs bark."},
            {"id": "d3", "title": "Birds", "text": "Birds sing."},
        ],
    )
    _write_jsonl(
        root / "queries.jsonl",
        [
            {"_id": "q1", "text": "what do cats do"},
            {"_id": "q2", "text": "what do dogs do"},
            {"_id": "q3", "text": "only grade zero"},
            {"_id": "q-train", "text": "a training query"},
        ],
    )
    (root / "qrels" / "test.tsv").write_text(
        "query-id\tcorpus-id\tscore\nq1\td1\t2\nq1\td3\t1\nq2\td2\t1\nq2\tgone\t1\nq3\td1\t0\nq-lost\td1\t1\n",
        encoding="utf-8",
    )
    (root / "qrels" / "train.tsv").write_text("query-id\tcorpus-id\tscore\nq-train\td2\t1\n", encoding="utf-8")
    return root


def test_load_beir_reads_corpus_split_queries_and_graded_qrels(beir_dir):
    dataset = load_beir(beir_dir, "test")

    assert dataset.name == "mini-beir"
    assert dataset.corpus["d1"] == {"title": "Cats", "text": "Cats purr.", "metadata": {"year": 2020}}
    assert dataset.corpus["d2"] == {"title": "", "text": "Dogs bark.", "metadata": {}}
    assert "d3" in dataset.corpus  # `id` accepted for `_id`
    assert document_text(dataset.corpus["d1"]) == "Cats Cats purr."
    # Only the split's queries (q-train belongs to train; q-lost has no text).
    assert dataset.queries == {"q1": "what do cats do", "q2": "what do dogs do", "q3": "only grade zero"}
    assert dataset.qrels["q1"] == {"d1": 2, "d3": 1}
    assert dataset.judged_query_ids() == ["q1", "q2"]
    assert dataset.unjudged_query_ids() == ["q3"]
    assert dataset.queries_without_text() == ["q-lost"]
    assert dataset.missing_documents() == {"q2": ["gone"]}
    assert available_splits(beir_dir) == ["test", "train"]
    assert list(load_beir(beir_dir, "train").queries) == ["q-train"]


def test_load_beir_names_the_available_splits_when_one_is_missing(beir_dir):
    with pytest.raises(FileNotFoundError, match=r"qrels/dev.tsv.*\['test', 'train'\]"):
        load_beir(beir_dir, "dev")
    with pytest.raises(FileNotFoundError, match="not a directory"):
        load_beir(beir_dir / "nope", "test")


def test_qrels_errors_name_file_and_line_and_trec_qrels_are_read(tmp_path):
    bad = tmp_path / "bad.tsv"
    bad.write_text("query-id\tcorpus-id\tscore\nq1\td1\tvery\n", encoding="utf-8")
    with pytest.raises(ValueError, match=r"bad.tsv:2: the relevance grade must be an integer"):
        read_qrels(bad)
    trec = tmp_path / "qrels.txt"
    trec.write_text("q1 0 d1 2\nq1 0 d2 0\nq2 0 d3 1\n", encoding="utf-8")
    assert read_qrels(trec) == {"q1": {"d1": 2, "d2": 0}, "q2": {"d3": 1}}


def test_judged_rows_csv_with_csv_corpus(tmp_path):
    rows = tmp_path / "judged.csv"
    rows.write_text(
        'query,document,grade\n"cats, purring",d1,2\n"cats, purring",d2,0\ndogs,d2,1\nbirds,d3,0\n', encoding="utf-8"
    )
    corpus = tmp_path / "corpus.csv"
    corpus.write_text("id,title,text\nd1,Cats,Cats purr.\nd2,,Dogs bark.\nd3,Birds,Birds sing.\n", encoding="utf-8")

    dataset = load_judged_rows(rows, corpus)

    assert dataset.queries == {"q1": "cats, purring", "q2": "dogs", "q3": "birds"}
    assert dataset.qrels == {"q1": {"d1": 2, "d2": 0}, "q2": {"d2": 1}, "q3": {"d3": 0}}
    assert dataset.corpus["d2"] == {"title": "", "text": "Dogs bark.", "metadata": {}}
    assert dataset.judged_query_ids() == ["q1", "q2"]
    assert dataset.unjudged_query_ids() == ["q3"]


def test_judged_rows_jsonl_with_query_ids_and_jsonl_corpus(tmp_path):
    rows = tmp_path / "judged.jsonl"
    _write_jsonl(
        rows,
        [
            {"query_id": "A", "query": "cats", "document": "d1", "grade": 1},
            {"query_id": "A", "query": "cats", "document_id": "d9", "label": 1},
        ],
    )
    corpus = tmp_path / "corpus.jsonl"
    _write_jsonl(corpus, [{"_id": "d1", "title": "Cats", "text": "Cats purr."}])

    dataset = load_dataset(rows, corpus=corpus)

    assert dataset.queries == {"A": "cats"}
    assert dataset.qrels == {"A": {"d1": 1, "d9": 1}}
    assert dataset.missing_documents() == {"A": ["d9"]}


def test_judged_rows_errors_are_clear(tmp_path):
    rows = tmp_path / "judged.csv"
    rows.write_text("query,document,grade\ncats,d1,\n", encoding="utf-8")
    corpus = tmp_path / "corpus.jsonl"
    _write_jsonl(corpus, [{"_id": "d1", "text": "Cats purr."}])
    with pytest.raises(ValueError, match=r"judged.csv:2: each row needs 'query'"):
        load_judged_rows(rows, corpus)
    with pytest.raises(ValueError, match="pass corpus="):
        load_dataset(rows)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_dataset(tmp_path / "missing.csv", corpus=corpus)


def test_trec_run_round_trip_keeps_rank_order_and_exact_scores(tmp_path):
    run = {
        "q1": [("d3", 2.5), ("d1", 2.5), ("d2", -0.1)],  # a tie: the rank column keeps d3 before d1
        "q2": [("d9", 0.1 + 0.2)],
    }
    path = write_trec_run(run, tmp_path / "runs" / "bm25.trec", tag="bm25")

    lines = path.read_text(encoding="utf-8").splitlines()
    assert lines[0] == "q1 Q0 d3 1 2.5 bm25"
    assert lines[2] == "q1 Q0 d2 3 -0.1 bm25"
    assert read_trec_run(path) == run


def test_trec_reader_sorts_by_rank_and_rejects_bad_lines(tmp_path):
    path = tmp_path / "run.txt"
    path.write_text("q1 Q0 b 2 1.0 x\nq1 Q0 a 1 1.0 x\nq2 Q0 c 1 0.5\n", encoding="utf-8")
    assert read_trec_run(path) == {"q1": [("a", 1.0), ("b", 1.0)], "q2": [("c", 0.5)]}

    path.write_text("q1 Q0 a 1 1.0 x\nq1 Q0 a 2 0.5 x\n", encoding="utf-8")
    with pytest.raises(ValueError, match="appears twice"):
        read_trec_run(path)
    path.write_text("q1 Q0 a one 1.0 x\n", encoding="utf-8")
    with pytest.raises(ValueError, match=r"run\.txt:1: rank must be an integer"):
        read_trec_run(path)
    with pytest.raises(ValueError, match="without spaces"):
        write_trec_run({"q1": [("doc with space", 1.0)]}, tmp_path / "x.trec")


def test_files_with_a_byte_order_mark_are_read(tmp_path):
    bom = "utf-8-sig"
    rows = tmp_path / "judged.csv"
    rows.write_bytes("query,document,grade\ncats,d1,1\n".encode(bom))
    corpus = tmp_path / "corpus.csv"
    corpus.write_bytes("id,title,text\nd1,Cats,Cats purr.\n".encode(bom))
    jsonl_corpus = tmp_path / "corpus.jsonl"
    jsonl_corpus.write_bytes((json.dumps({"_id": "d1", "text": "Cats purr."}) + "\n").encode(bom))

    dataset = load_judged_rows(rows, corpus)
    assert dataset.queries == {"q1": "cats"}
    assert dataset.qrels == {"q1": {"d1": 1}}
    assert list(dataset.corpus) == ["d1"]
    assert list(load_judged_rows(rows, jsonl_corpus).corpus) == ["d1"]

    qrels = tmp_path / "qrels.tsv"
    qrels.write_bytes("q1\td1\t1\n".encode(bom))
    assert read_qrels(qrels) == {"q1": {"d1": 1}}
    run = tmp_path / "run.trec"
    run.write_bytes("q1 Q0 d1 1 2.0 bm25\n".encode(bom))
    assert read_trec_run(run) == {"q1": [("d1", 2.0)]}


def test_a_row_with_more_fields_than_the_header_names_file_and_line(tmp_path):
    corpus = tmp_path / "corpus.jsonl"
    _write_jsonl(corpus, [{"_id": "d1", "text": "Cats purr."}])
    rows = tmp_path / "judged.csv"
    rows.write_text('query,document,grade\n"multi\nline",d1,1\nq0,version 2,1,0\n', encoding="utf-8")
    with pytest.raises(ValueError, match=r"judged.csv:4: the row has 4 fields but the header has 3 columns \(extra"):
        load_judged_rows(rows, corpus)

    corpus_csv = tmp_path / "corpus.csv"
    corpus_csv.write_text("id,text\nd1,Cats purr, mostly.\n", encoding="utf-8")
    rows.write_text("query,document,grade\ncats,d1,1\n", encoding="utf-8")
    with pytest.raises(ValueError, match=r"corpus.csv:2: .*\(extra: ' mostly.'\)\. Quote texts that contain a ','"):
        load_dataset(rows, corpus=corpus_csv)

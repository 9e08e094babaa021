"""Training data formats: every shape parsed from CSV, TSV, JSONL and Dataset; malformed rows all reported."""

import json

import pytest

from crossencoder_haystack.training import TrainingDataError, load_training_data
from crossencoder_haystack.training.losses import choose_loss, loss_class_name


def write_jsonl(path, rows):
    path.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    return path


def test_pairs_from_csv_and_tsv(tmp_path):
    csv_file = tmp_path / "pairs.csv"
    csv_file.write_text('query,document,label\nwhat is a cat,"A cat is an animal, small",1\nwhat is a cat,Dogs,0.0\n')
    tsv_file = tmp_path / "pairs.tsv"
    tsv_file.write_text("query\tdocument\tlabel\nq\td, with comma\t0.5\n")

    pairs = load_training_data(csv_file)
    assert pairs.shape == "pairs"
    assert pairs.rows[0] == {"query": "what is a cat", "document": "A cat is an animal, small", "label": 1.0}
    assert pairs.label_counts() == (1, 1)
    assert load_training_data(tsv_file).rows == [{"query": "q", "document": "d, with comma", "label": 0.5}]


def test_triplets_accept_negative_string_list_and_numbered_columns(tmp_path):
    path = write_jsonl(
        tmp_path / "triplets.jsonl",
        [
            {"query": "q1", "positive": "p1", "negative": "n1"},
            {"query": "q2", "positive": "p2", "negatives": ["n2", "n3"]},
            {"query": "q3", "positive": "p3", "negative_1": "n4", "negative_2": "n5"},
        ],
    )
    data = load_training_data(path)
    assert data.shape == "triplets"
    assert [row["negatives"] for row in data.rows] == [["n1"], ["n2", "n3"], ["n4", "n5"]]
    # every training row needs the same columns: as many negatives as the poorest row has
    assert data.to_dataset().column_names == ["query", "positive", "negative_1"]


def test_positives_only_triplets(tmp_path):
    data = load_training_data(write_jsonl(tmp_path / "p.jsonl", [{"query": "q", "positive": "p"}]))
    assert data.shape == "triplets"
    assert data.to_dataset().column_names == ["query", "positive"]


def test_lists_from_jsonl_and_csv(tmp_path):
    jsonl = write_jsonl(tmp_path / "lists.jsonl", [{"query": "q", "documents": ["a", "b", "c"], "labels": [2, 0, 1]}])
    csv_file = tmp_path / "lists.csv"
    csv_file.write_text('query,documents,labels\nq,"[""a"", ""b""]","[1, 0]"\n')

    data = load_training_data(jsonl)
    assert data.shape == "lists"
    assert data.rows[0]["labels"] == [2.0, 0.0, 1.0]
    assert data.evaluation_samples() == [{"query": "q", "positive": ["a", "c"], "negative": ["b"]}]
    assert load_training_data(csv_file).rows == [{"query": "q", "documents": ["a", "b"], "labels": [1.0, 0.0]}]


def test_dataset_input():
    from datasets import Dataset

    data = load_training_data(Dataset.from_dict({"query": ["q", "q"], "document": ["a", "b"], "label": [1, 0]}))
    assert data.shape == "pairs"
    assert data.source == "<Dataset>"
    assert len(data) == 2


def test_every_malformed_row_is_reported_with_file_line_and_reason(tmp_path):
    path = tmp_path / "bad.jsonl"
    path.write_text(
        "\n".join(
            [
                json.dumps({"query": "q", "document": "good", "label": 1}),
                json.dumps({"query": "q", "document": "d"}),  # line 2: no label
                json.dumps({"query": "  ", "document": "d", "label": 0}),  # line 3: empty query
                json.dumps({"query": "q", "document": "d", "label": "yes"}),  # line 4: label not a number
                "{not json",  # line 5
                json.dumps({"query": "q", "document": "d", "label": 0}),
            ]
        )
        + "\n"
    )
    with pytest.raises(TrainingDataError) as raised:
        load_training_data(path)
    problems = {problem.line: problem.reason for problem in raised.value.problems}
    assert set(problems) == {2, 3, 4, 5}
    assert "missing column 'label'" in problems[2]
    assert "empty text in column 'query'" in problems[3]
    assert "label is not a number: 'yes'" in problems[4]
    assert "invalid JSON" in problems[5]
    assert f"{path}:4: label is not a number" in str(raised.value)


def test_malformed_lists_and_csv_line_numbers(tmp_path):
    lists = write_jsonl(
        tmp_path / "lists.jsonl",
        [
            {"query": "q", "documents": ["a", "b"], "labels": [1]},
            {"query": "q", "documents": ["a", ""], "labels": [1, "x"]},
        ],
    )
    with pytest.raises(TrainingDataError) as raised:
        load_training_data(lists)
    message = str(raised.value)
    assert f"{lists}:1: 'documents' has 2 entries but 'labels' has 1" in message
    assert f"{lists}:2: empty or non-text entry in 'documents'" in message
    assert f"{lists}:2: labels[1] is not a number: 'x'" in message

    csv_file = tmp_path / "pairs.csv"
    csv_file.write_text('query,document,label\nq,"multi\nline document",1\nq,,0\n')
    with pytest.raises(TrainingDataError, match=rf"{csv_file}:4: empty text in column 'document'"):
        load_training_data(csv_file)


def test_unknown_shape_and_empty_and_missing_file(tmp_path):
    with pytest.raises(TrainingDataError, match=r"unknown data shape: columns \['answer', 'question'\]"):
        load_training_data(write_jsonl(tmp_path / "x.jsonl", [{"question": "q", "answer": "a"}]))
    empty = tmp_path / "empty.jsonl"
    empty.write_text("")
    with pytest.raises(TrainingDataError, match="empty"):
        load_training_data(empty)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_training_data(tmp_path / "missing.jsonl")
    with pytest.raises(ValueError, match=r"Unsupported training data format '\.txt'"):
        (tmp_path / "data.txt").write_text("x")
        load_training_data(tmp_path / "data.txt")


def test_many_problems_are_truncated_in_the_message(tmp_path):
    path = write_jsonl(tmp_path / "bad.jsonl", [{"query": "q", "document": "d", "label": "?"}] * 30)
    with pytest.raises(TrainingDataError) as raised:
        load_training_data(path)
    assert len(raised.value.problems) == 30
    assert "... and 10 more" in str(raised.value)


def test_split_by_query_keeps_queries_apart(tmp_path):
    rows = [{"query": f"q{i}", "document": f"d{i}{j}", "label": j % 2} for i in range(20) for j in range(3)]
    train, held_out = load_training_data(write_jsonl(tmp_path / "p.jsonl", rows)).split_by_query(0.25, seed=1)
    assert len(held_out.queries) == 5
    assert not set(train.queries) & set(held_out.queries)
    with pytest.raises(ValueError, match="eval_fraction must be between 0 and 1"):
        train.split_by_query(1.5, seed=1)


def test_loss_follows_shape_and_can_be_forced(tmp_path, tiny_model_path):
    from sentence_transformers import CrossEncoder

    assert loss_class_name(None, "pairs") == "BinaryCrossEntropyLoss"
    assert loss_class_name(None, "triplets") == "CachedMultipleNegativesRankingLoss"
    assert loss_class_name(None, "lists") == "LambdaLoss"
    assert loss_class_name("ListNetLoss", "lists") == "ListNetLoss"
    with pytest.raises(ValueError, match="trains on triplets data, but the data is pairs"):
        loss_class_name("cmnrl", "pairs")
    with pytest.raises(ValueError, match="not a sentence-transformers cross-encoder loss"):
        loss_class_name("hinge", "pairs")

    rows = [{"query": "q", "document": f"d{i}", "label": int(i == 0)} for i in range(6)]
    data = load_training_data(write_jsonl(tmp_path / "p.jsonl", rows))
    choice = choose_loss(CrossEncoder(str(tiny_model_path)), data)
    assert choice.name == "BinaryCrossEntropyLoss"
    assert choice.settings["pos_weight"] == 5.0
    assert choice.activation == "sigmoid"


def test_pairs_grades_are_divided_by_the_highest_grade_and_recorded(tmp_path, caplog):
    csv_file = tmp_path / "graded.csv"
    csv_file.write_text("query,document,label\nq1,a,3\nq1,b,0\nq2,c,1\nq2,d,2\n", encoding="utf-8")

    with caplog.at_level("WARNING", logger="crossencoder_haystack.training.data"):
        data = load_training_data(csv_file)

    assert [row["label"] for row in data.rows] == pytest.approx([1.0, 0.0, 1 / 3, 2 / 3])
    assert data.label_rescale == "integer grades 0..3 divided by 3 (grade g -> g/3)"
    assert "integer grades 0..3 divided by 3" in caplog.text and str(csv_file) in caplog.text
    assert data.label_counts() == (3, 1)
    assert all(0.0 <= label <= 1.0 for label in data.to_dataset()["label"])
    train, held_out = data.split_by_query(0.5, seed=0)
    assert train.label_rescale == held_out.label_rescale == data.label_rescale


def test_pairs_labels_minus_one_and_one_become_zero_and_one(tmp_path):
    path = write_jsonl(
        tmp_path / "signs.jsonl",
        [{"query": "q", "document": "a", "label": 1}, {"query": "q", "document": "b", "label": -1}],
    )
    data = load_training_data(path)
    assert [row["label"] for row in data.rows] == [1.0, 0.0]
    assert data.label_rescale == "labels -1/1 mapped to 0/1"
    assert data.label_counts() == (1, 1)


def test_pairs_labels_in_0_1_are_kept_as_given(tmp_path):
    path = write_jsonl(
        tmp_path / "soft.jsonl",
        [{"query": "q", "document": "a", "label": 0.75}, {"query": "q", "document": "b", "label": 0}],
    )
    data = load_training_data(path)
    assert [row["label"] for row in data.rows] == [0.75, 0.0]
    assert data.label_rescale is None


@pytest.mark.parametrize(
    ("labels", "bad_lines", "reason"),
    [
        ([1, 2.5], {3}, "label 2.5 is above 1 and not an integer grade"),
        ([0, -2], {3}, "label -2 is below 0"),
        ([0, 1, -1], {4}, "label -1 is below 0, and -1 can only mean 'not relevant' when every other label is 1"),
        ([0.5, 3], {3}, "label 3 is above 1, but it is no grade since not every label is one (line 2 has 0.5)"),
    ],
)
def test_pairs_labels_outside_0_1_that_are_no_grades_are_rejected_with_file_and_line(
    tmp_path, labels, bad_lines, reason
):
    csv_file = tmp_path / "labels.csv"
    csv_file.write_text(
        "query,document,label\n" + "".join(f"q,d{index},{label}\n" for index, label in enumerate(labels)),
        encoding="utf-8",
    )
    with pytest.raises(TrainingDataError) as raised:
        load_training_data(csv_file)
    assert {problem.line for problem in raised.value.problems} == bad_lines
    assert f"{csv_file}:{min(bad_lines)}: {reason}" in str(raised.value)
    assert "integer grades 0, 1, 2, ... (divided by the highest grade) or -1/1 (mapped to 0/1)" in str(raised.value)


def test_csv_with_a_byte_order_mark_is_read(tmp_path):
    csv_file = tmp_path / "excel.csv"
    csv_file.write_bytes("query,document,label\nq,café,1\nq,b,0\n".encode("utf-8-sig"))
    jsonl = tmp_path / "bom.jsonl"
    jsonl.write_bytes((json.dumps({"query": "q", "positive": "p"}) + "\n").encode("utf-8-sig"))

    assert load_training_data(csv_file).rows[0] == {"query": "q", "document": "café", "label": 1.0}
    assert load_training_data(jsonl).shape == "triplets"


def test_csv_row_with_more_fields_than_the_header_is_reported(tmp_path):
    csv_file = tmp_path / "shifted.csv"
    csv_file.write_text('query,document,label\nq0,ok,1\nq0,version 2,1,0\nq1,"a, b",0\n', encoding="utf-8")
    with pytest.raises(TrainingDataError) as raised:
        load_training_data(csv_file)
    assert [problem.line for problem in raised.value.problems] == [3]
    assert (
        f"{csv_file}:3: the row has 4 fields but the header has 3 columns (extra: '0'); quote texts that contain a ','"
    ) in str(raised.value)

    tsv_file = tmp_path / "shifted.tsv"
    tsv_file.write_text("query\tdocument\tlabel\nq\td\t1\textra\n", encoding="utf-8")
    with pytest.raises(TrainingDataError, match=r"shifted.tsv:2: .*\(extra: 'extra'\); quote texts that contain a tab"):
        load_training_data(tsv_file)

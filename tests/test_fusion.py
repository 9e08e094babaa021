"""Score fusion: the math of `fuse_scores` on hand-made scores, and the model directory's declared defaults."""

import json
import math

import pytest

from haystack_integrations.components.rankers.crossencoder.fusion import (
    FUSION_FILE,
    FUSIONS,
    fuse_scores,
    read_fusion_defaults,
    write_fusion_defaults,
)

Z = math.sqrt(1.5)  # the z-score of 3 in [1, 2, 3] (population std sqrt(2/3))


def test_the_public_api():
    assert FUSIONS == ("minmax", "zscore", "rrf")
    assert FUSION_FILE == "crossencoder_haystack.json"


@pytest.mark.parametrize(
    ("method", "expected"),
    [
        # rerank [3, 1, 2] -> [1, 0, 0.5]; retrieval [10, 30, 20] -> [0, 1, 0.5]
        ("minmax", [0.75 * 1 + 0.25 * 0, 0.75 * 0 + 0.25 * 1, 0.75 * 0.5 + 0.25 * 0.5]),
        # rerank [3, 1, 2] -> [Z, -Z, 0]; retrieval [10, 30, 20] -> [-Z, Z, 0]
        ("zscore", [0.75 * Z - 0.25 * Z, -0.75 * Z + 0.25 * Z, 0.0]),
        # rerank ranks [1, 3, 2]; retrieval ranks [3, 1, 2]
        ("rrf", [0.75 / 61 + 0.25 / 63, 0.75 / 63 + 0.25 / 61, 0.75 / 62 + 0.25 / 62]),
    ],
)
def test_each_method_on_hand_made_scores(method, expected):
    assert fuse_scores([3.0, 1.0, 2.0], [10.0, 30.0, 20.0], 0.25, method) == pytest.approx(expected)


def test_rrf_k_is_the_constant_of_reciprocal_rank_fusion():
    assert fuse_scores([3.0, 1.0], [1.0, 2.0], 0.5, "rrf", rrf_k=0) == pytest.approx([0.5 + 0.25, 0.25 + 0.5])


def test_weight_zero_returns_the_rerank_scores_themselves():
    rerank = [0.3, 0.1, 0.9, 0.1]
    for method in FUSIONS:
        assert fuse_scores(rerank, [5.0, None, 1.0, 2.0], 0.0, method) == rerank


@pytest.mark.parametrize("method", FUSIONS)
def test_weight_one_orders_by_retrieval_alone(method):
    fused = fuse_scores([0.9, 0.5, 0.1, 0.7], [1.0, 4.0, 3.0, 2.0], 1.0, method)
    assert sorted(range(4), key=lambda i: -fused[i]) == [1, 2, 3, 0]


@pytest.mark.parametrize("method", FUSIONS)
def test_ties_stay_tied(method):
    fused = fuse_scores([0.5, 0.5, 0.2, 0.9], [2.0, 2.0, 1.0, 1.0], 0.5, method)
    assert fused[0] == fused[1]
    assert fused[3] > fused[2]


def test_rrf_gives_tied_scores_the_best_rank_of_their_group():
    # retrieval ranks 1, 2, 2, 4 (competition ranking); rerank ranks 1, 2, 3, 4
    fused = fuse_scores([4.0, 3.0, 2.0, 1.0], [9.0, 5.0, 5.0, 1.0], 1.0, "rrf")
    assert fused == pytest.approx([1 / 61, 1 / 62, 1 / 62, 1 / 64])


@pytest.mark.parametrize(("method", "constant"), [("minmax", 0.5), ("zscore", 0.0), ("rrf", 1 / 61)])
def test_a_single_document(method, constant):
    assert fuse_scores([0.123], [42.0], 0.3, method) == pytest.approx([constant])
    assert fuse_scores([0.123], [None], 0.3, method) == pytest.approx([constant])


def test_a_constant_list_normalises_to_the_middle():
    # rerank scores all equal: minmax gives 0.5 each, zscore 0 each; only retrieval decides
    assert fuse_scores([0.7, 0.7, 0.7], [3.0, 1.0, 2.0], 0.5, "minmax") == pytest.approx([0.75, 0.25, 0.5])
    assert fuse_scores([0.7, 0.7, 0.7], [3.0, 1.0, 2.0], 0.5, "zscore") == pytest.approx([0.5 * Z, -0.5 * Z, 0.0])
    assert fuse_scores([0.7, 0.2], [5.0, 5.0], 0.5, "zscore") == pytest.approx([0.5, -0.5])


def test_missing_retrieval_scores_count_as_the_worst_of_the_list():
    # minmax: present [10, 20] -> [0, 1]; the missing one gets 0, the lowest normalised value
    assert fuse_scores([0.2, 0.4, 0.6], [None, 10.0, 20.0], 0.5, "minmax") == pytest.approx([0.0, 0.25, 1.0])
    # zscore: present [1, 3] -> [-1, 1]; the missing one gets -1
    assert fuse_scores([1.0, 2.0, 3.0], [None, 1.0, 3.0], 0.5, "zscore") == pytest.approx(
        [0.5 * -Z + 0.5 * -1, 0.5 * 0 + 0.5 * -1, 0.5 * Z + 0.5 * 1]
    )
    # rrf: present [5, 5] share rank 1; the missing one takes the rank after the last scored one (3)
    assert fuse_scores([0.9, 0.1, 0.5], [None, 5.0, 5.0], 0.5, "rrf") == pytest.approx(
        [0.5 / 61 + 0.5 / 63, 0.5 / 63 + 0.5 / 61, 0.5 / 62 + 0.5 / 61]
    )


@pytest.mark.parametrize("missing", [None, math.nan, math.inf, -math.inf])
def test_none_nan_and_infinities_are_missing(missing):
    expected = fuse_scores([0.2, 0.4, 0.6], [None, 10.0, 20.0], 0.5, "minmax")
    assert fuse_scores([0.2, 0.4, 0.6], [missing, 10.0, 20.0], 0.5, "minmax") == pytest.approx(expected)


@pytest.mark.parametrize("method", FUSIONS)
def test_without_any_retrieval_score_the_input_order_is_the_evidence(method):
    fused = fuse_scores([0.1, 0.2, 0.3, 0.4], [None] * 4, 1.0, method)
    assert fused == sorted(fused, reverse=True) and len(set(fused)) == 4
    assert fuse_scores([0.1, 0.2, 0.3], [None] * 3, 1.0, "minmax") == pytest.approx([1.0, 0.5, 0.0])


def test_huge_scores_do_not_overflow():
    assert fuse_scores([1.0, 0.0, 0.5], [1e308, -1e308, 0.0], 1.0, "minmax") == pytest.approx([1.0, 0.0, 0.5])
    fused = fuse_scores([1.0, 0.0, 0.5], [1e308, -1e308, 0.0], 1.0, "zscore")
    assert all(math.isfinite(value) for value in fused) and fused[0] > fused[2] > fused[1]


def test_empty_lists():
    assert fuse_scores([], [], 0.5, "zscore") == []


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"weight": 1.5}, "weight must be a number in"),
        ({"weight": -0.1}, "weight must be a number in"),
        ({"weight": True}, "weight must be a number in"),
        ({"weight": "0.5"}, "weight must be a number in"),
        ({"weight": math.nan}, "weight must be a number in"),
        ({"method": "sum"}, "method must be one of"),
        ({"rrf_k": -1}, "rrf_k"),
        ({"rerank_scores": [None, 1.0]}, "rerank_scores must be finite"),
        ({"rerank_scores": [math.nan, 1.0]}, "rerank_scores must be finite"),
        ({"retrieval_scores": ["high", 1.0]}, "retrieval_scores must be numbers or None"),
        ({"retrieval_scores": [1.0]}, "rerank_scores has 2 entries but retrieval_scores has 1"),
    ],
)
def test_bad_arguments_are_rejected_with_clear_errors(kwargs, message):
    arguments = {"rerank_scores": [0.1, 0.2], "retrieval_scores": [1.0, 2.0], "weight": 0.5, "method": "minmax"}
    with pytest.raises(ValueError, match=message):
        fuse_scores(**{**arguments, **kwargs})


def test_inputs_are_not_changed():
    rerank, retrieval = [0.3, 0.1], [None, 2.0]
    fuse_scores(rerank, retrieval, 0.5, "zscore")
    assert rerank == [0.3, 0.1] and retrieval == [None, 2.0]


def test_write_then_read_fusion_defaults(tmp_path):
    write_fusion_defaults(tmp_path, 0.3, "zscore")
    assert read_fusion_defaults(tmp_path) == {"first_stage_weight": 0.3, "fusion": "zscore"}
    assert read_fusion_defaults(str(tmp_path)) == {"first_stage_weight": 0.3, "fusion": "zscore"}
    assert json.loads((tmp_path / FUSION_FILE).read_text()) == {"first_stage_weight": 0.3, "fusion": "zscore"}
    assert [path.name for path in tmp_path.iterdir()] == [FUSION_FILE], "no temporary file is left behind"


def test_write_merges_into_the_file_and_keeps_other_keys(tmp_path):
    (tmp_path / FUSION_FILE).write_text(json.dumps({"calibration": {"a": 1}, "fusion": "rrf"}))
    write_fusion_defaults(tmp_path, 1, "minmax")
    assert json.loads((tmp_path / FUSION_FILE).read_text()) == {
        "calibration": {"a": 1},
        "fusion": "minmax",
        "first_stage_weight": 1.0,
    }


def test_write_creates_the_directory_and_validates(tmp_path):
    write_fusion_defaults(tmp_path / "new" / "model", 0.0, "rrf")
    assert read_fusion_defaults(tmp_path / "new" / "model") == {"first_stage_weight": 0.0, "fusion": "rrf"}
    with pytest.raises(ValueError, match="first_stage_weight"):
        write_fusion_defaults(tmp_path, 2.0, "rrf")
    with pytest.raises(ValueError, match="fusion"):
        write_fusion_defaults(tmp_path, 0.5, "borda")
    assert not (tmp_path / FUSION_FILE).exists()


def test_read_returns_what_the_file_declares(tmp_path):
    assert read_fusion_defaults(tmp_path) == {}
    assert read_fusion_defaults(tmp_path / "does-not-exist") == {}
    (tmp_path / FUSION_FILE).write_text(json.dumps({"other": 1}))
    assert read_fusion_defaults(tmp_path) == {}
    (tmp_path / FUSION_FILE).write_text(json.dumps({"first_stage_weight": 0.25}))
    assert read_fusion_defaults(tmp_path) == {"first_stage_weight": 0.25}
    (tmp_path / FUSION_FILE).write_text(json.dumps({"fusion": "rrf", "first_stage_weight": None}))
    assert read_fusion_defaults(tmp_path) == {"fusion": "rrf"}


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("{not json", "is not valid JSON"),
        ("[0.3]", "must hold a JSON object"),
        ('{"first_stage_weight": 1.3}', r"first_stage_weight in .*crossencoder_haystack.json must be a number in"),
        ('{"first_stage_weight": "0.3"}', "first_stage_weight in"),
        ('{"fusion": "max"}', r"fusion in .*crossencoder_haystack.json must be one of"),
    ],
)
def test_read_rejects_bad_files_naming_the_file_and_the_key(tmp_path, content, message):
    (tmp_path / FUSION_FILE).write_text(content)
    with pytest.raises(ValueError, match=message):
        read_fusion_defaults(tmp_path)


@pytest.mark.parametrize("content", ["{not json", "[0.3]"])
def test_write_does_not_overwrite_a_file_it_cannot_merge_into(tmp_path, content):
    (tmp_path / FUSION_FILE).write_text(content)
    with pytest.raises(ValueError, match=r"valid JSON|JSON object"):
        write_fusion_defaults(tmp_path, 0.3, "minmax")
    assert (tmp_path / FUSION_FILE).read_text() == content

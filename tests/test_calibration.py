"""Calibrated scores: fitting (Platt, isotonic), the calibration file, `activation="calibrated"` and the tooling."""

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from haystack import Document, Pipeline

from crossencoder_haystack.calibration import (
    JudgedPairs,
    brier_score,
    calibrate,
    calibration_metrics,
    expected_calibration_error,
    fit_mapping,
    load_judged_pairs,
)
from crossencoder_haystack.calibration.model_calibration import scoring_ranker
from crossencoder_haystack.cli import main
from haystack_integrations.components.rankers.crossencoder import CrossEncoderRanker
from haystack_integrations.components.rankers.crossencoder.calibration import (
    CALIBRATION_FILE,
    Calibration,
    CalibrationError,
    read_calibration,
    write_calibration,
)

WORDS = (
    "cats purr dogs bark parrots speak goldfish swim horses gallop bees honey owls hunt mice night cows milk "
    "snakes grass rabbits carrots fields water"
).split()


def _sigmoid(x):
    return 1.0 / (1.0 + np.exp(-np.asarray(x, dtype=np.float64)))


# --- fitting on synthetic logits with known probabilities -------------------------------------------------------


def test_platt_recovers_a_known_sigmoid():
    rng = np.random.default_rng(0)
    logits = rng.normal(0.0, 2.0, 20_000)
    truth = _sigmoid(1.7 * logits - 0.5)
    labels = (rng.random(len(logits)) < truth).astype(int)

    fitted = fit_mapping(logits, labels, "platt")

    assert fitted.method == "platt"
    assert fitted.parameters["slope"] == pytest.approx(1.7, abs=0.1)
    assert fitted.parameters["intercept"] == pytest.approx(-0.5, abs=0.1)
    grid = np.linspace(-4, 4, 81)
    probabilities = Calibration("platt", fitted.parameters, (), 1.0).probabilities(grid)
    assert np.max(np.abs(probabilities - _sigmoid(1.7 * grid - 0.5))) < 0.02


def test_isotonic_recovers_known_probabilities_that_are_no_sigmoid():
    rng = np.random.default_rng(1)
    logits = rng.uniform(-3.0, 3.0, 20_000)
    truth = np.clip(0.5 + logits / 4, 0.05, 0.95)  # a ramp with flat ends
    labels = (rng.random(len(logits)) < truth).astype(int)

    fitted = fit_mapping(logits, labels, "isotonic")

    grid = np.linspace(-2.8, 2.8, 57)
    probabilities = Calibration("isotonic", fitted.parameters, (), 1.0).probabilities(grid)
    assert np.mean(np.abs(probabilities - np.clip(0.5 + grid / 4, 0.05, 0.95))) < 0.03
    assert np.all(np.diff(fitted.parameters["probabilities"]) >= 0)


def test_auto_picks_isotonic_for_a_step_and_platt_for_a_sigmoid_on_few_pairs():
    rng = np.random.default_rng(2)
    logits = rng.normal(0.0, 2.0, 4000)
    step = np.where(logits > 1.0, 0.9, 0.1)
    labels = (rng.random(len(logits)) < step).astype(int)
    assert fit_mapping(logits, labels, "auto", groups=np.arange(4000) // 40).method == "isotonic"

    few = rng.normal(0.0, 2.0, 150)
    labels = (rng.random(len(few)) < _sigmoid(few)).astype(int)
    fitted = fit_mapping(few, labels, "auto", groups=np.arange(150) // 10)
    assert fitted.method == "platt"
    assert set(fitted.cross_validated_brier) == {"platt", "isotonic"}


@pytest.mark.parametrize("method", ["platt", "isotonic"])
def test_the_mapping_is_strictly_increasing_so_no_two_logits_tie(method):
    rng = np.random.default_rng(3)
    logits = rng.normal(0.0, 1.0, 2000)
    labels = (rng.random(len(logits)) < _sigmoid(3 * logits)).astype(int)
    calibration = Calibration(method, fit_mapping(logits, labels, method).parameters, (), 1.0)

    grid = np.linspace(-50, 50, 20_001)  # far outside the fitted range, where isotonic is flat
    assert np.all(np.diff(calibration.probabilities(grid)) > 0)
    assert np.all((calibration.probabilities(grid) > 0) & (calibration.probabilities(grid) < 1))


def test_fitting_refuses_useless_data():
    with pytest.raises(ValueError, match="both relevant"):
        fit_mapping([0.1, 0.2, 0.3], [1, 1, 1])
    with pytest.raises(ValueError, match="do not rise with relevance"):
        fit_mapping(np.arange(40.0), [1] * 20 + [0] * 20, "platt")
    with pytest.raises(ValueError, match="one label per logit"):
        fit_mapping([0.1, 0.2], [0, 1, 1])
    with pytest.raises(ValueError, match="method must be one of"):
        fit_mapping([0.1, 0.2], [0, 1], "beta")


def test_ece_and_brier_by_hand():
    # Bin [0.9, 1]: 4 predictions of 0.9, half relevant -> |0.5 - 0.9| = 0.4; bin [0.1, 0.2): 0.1, none -> 0.1.
    probabilities = [0.9, 0.9, 0.9, 0.9, 0.1, 0.1, 0.1, 0.1]
    labels = [1, 1, 0, 0, 0, 0, 0, 0]
    assert expected_calibration_error(probabilities, labels) == pytest.approx((4 * 0.4 + 4 * 0.1) / 8)
    assert brier_score(probabilities, labels) == pytest.approx((2 * 0.01 + 2 * 0.81 + 4 * 0.01) / 8)
    metrics = calibration_metrics(probabilities, labels)
    assert (metrics.precision, metrics.recall, metrics.pairs, metrics.relevant) == (0.5, 1.0, 8, 2)
    assert expected_calibration_error([1.0, 0.0], [1, 0]) == 0.0  # p = 1.0 falls in the last bin
    with pytest.raises(ValueError, match="not raw logits"):
        expected_calibration_error([2.5, -1.0], [1, 0])


# --- the calibration file --------------------------------------------------------------------------------------


def _calibration(method="platt", probe=(0.0, 0.0, 0.0, 0.0)):
    parameters = {"slope": 0.5, "intercept": -1.0}
    if method == "isotonic":
        parameters = {"logits": [-1.0, 0.0, 2.0], "probabilities": [0.1, 0.4, 0.8]}
    return Calibration(method, parameters, probe, 0.5, {"fitted_on": {"pairs": 3}})


@pytest.mark.parametrize("method", ["platt", "isotonic"])
def test_the_file_round_trips(tmp_path, method):
    calibration = _calibration(method)
    path = write_calibration(tmp_path, calibration)

    read = read_calibration(tmp_path)

    assert path == tmp_path / CALIBRATION_FILE
    assert read == calibration
    grid = np.linspace(-5, 5, 11)
    np.testing.assert_array_equal(read.probabilities(grid), calibration.probabilities(grid))
    assert read_calibration(tmp_path / "elsewhere") is None


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda data: "{not json", "not valid JSON"),
        (lambda data: [1, 2], "not a calibration file"),
        (lambda data: {**data, "version": 2}, "newer crossencoder-haystack"),
        (lambda data: {**data, "method": "beta"}, "method 'beta'"),
        (lambda data: {**data, "parameters": {"slope": -1.0, "intercept": 0.0}}, "slope > 0"),
        (lambda data: {**data, "probe": {**data["probe"], "logits": [1.0]}}, "probe needs 4 finite logits"),
    ],
)
def test_a_corrupt_file_gets_a_clear_error(tmp_path, change, message):
    write_calibration(tmp_path, _calibration())
    data = json.loads((tmp_path / CALIBRATION_FILE).read_text())
    changed = change(data)
    (tmp_path / CALIBRATION_FILE).write_text(changed if isinstance(changed, str) else json.dumps(changed))

    with pytest.raises(CalibrationError, match=message) as error:
        read_calibration(tmp_path)
    assert str(tmp_path / CALIBRATION_FILE) in str(error.value)


def test_isotonic_knots_must_increase(tmp_path):
    bad = Calibration("isotonic", {"logits": [0.0, 0.0], "probabilities": [0.1, 0.2]}, (0.0,) * 4, 0.5)
    with pytest.raises(CalibrationError, match="strictly increasing"):
        write_calibration(tmp_path, bad)
    assert not (tmp_path / CALIBRATION_FILE).exists()


# --- a calibrated tiny model ------------------------------------------------------------------------------------


def _texts(rng, count):
    return [" ".join(rng.choice(WORDS, size=6)) for _ in range(count)]


def judged_pairs(model: Path, queries: int = 16, per_query: int = 12, seed: int = 0) -> JudgedPairs:
    """Pairs whose labels follow the model's own logits (with noise), so its logits do predict relevance."""
    rng = np.random.default_rng(seed)
    texts = _texts(rng, queries * per_query)
    query_texts = [f"{' '.join(rng.choice(WORDS, size=3))} {index}" for index in range(queries)]
    query_of = [query_texts[i // per_query] for i in range(len(texts))]
    ranker = scoring_ranker(model)
    logits = []
    for query in query_texts:
        documents = [Document(id=str(i), content=t) for i, t in enumerate(texts) if query_of[i] == query]
        scored = {
            d.id: d.score for d in ranker.run(query=query, documents=documents, top_k=len(documents))["documents"]
        }
        logits += [scored[d.id] for d in documents]
    logits = np.asarray(logits)
    centred = (logits - np.median(logits)) / (np.std(logits) + 1e-9)
    labels = (rng.random(len(logits)) < _sigmoid(3 * centred)).astype(np.int64)
    return JudgedPairs(query_of, texts, labels, "synthetic", 1.0)


@pytest.fixture(scope="module")
def calibrated_model(tmp_path_factory, spread_model_path) -> Path:
    directory = tmp_path_factory.mktemp("calibrated") / "model"
    shutil.copytree(spread_model_path, directory)
    calibrate(directory, judged_pairs(directory), method="platt", show_progress=False)
    return directory


def _documents(seed=5, count=10):
    rng = np.random.default_rng(seed)
    return [Document(content=text, score=float(count - i)) for i, text in enumerate(_texts(rng, count))]


def test_the_calibrated_default_returns_the_mapped_logits_in_the_same_order(calibrated_model):
    documents = _documents()
    raw = CrossEncoderRanker(model=str(calibrated_model), activation="identity", top_k=10)
    calibrated = CrossEncoderRanker(model=str(calibrated_model), top_k=10)  # activation=None: calibrated by default

    logits = raw.run(query="cats hunt mice", documents=documents)["documents"]
    probabilities = calibrated.run(query="cats hunt mice", documents=documents)["documents"]

    assert [d.id for d in probabilities] == [d.id for d in logits]
    expected = read_calibration(calibrated_model).probabilities([d.score for d in logits])
    np.testing.assert_allclose([d.score for d in probabilities], expected, rtol=0, atol=1e-12)
    assert calibrated.outputs_probabilities and not raw.outputs_probabilities
    kept = calibrated.run(query="cats hunt mice", documents=documents, score_threshold=0.5)["documents"]
    assert [d.id for d in kept] == [d.id for d in probabilities if d.score >= 0.5]


@pytest.mark.parametrize("aggregation", ["max", "mean"])
def test_passages_calibrate_the_aggregated_parent_logit(calibrated_model, aggregation):
    rng = np.random.default_rng(7)
    documents = [Document(content=" ".join(_texts(rng, 40))) for _ in range(4)]  # ~240 words: several passages
    settings = {"model": str(calibrated_model), "split_long_documents": True, "aggregation": aggregation}
    logits = CrossEncoderRanker(**settings, activation="identity").run(query="owls", documents=documents)
    probabilities = CrossEncoderRanker(**settings, activation="calibrated").run(query="owls", documents=documents)

    logits, probabilities = logits["documents"], probabilities["documents"]
    calibration = read_calibration(calibrated_model)
    assert [d.id for d in probabilities] == [d.id for d in logits]
    assert all(d.meta["passages_scored"] > 1 for d in probabilities)
    np.testing.assert_allclose(
        [d.score for d in probabilities], calibration.probabilities([d.score for d in logits]), atol=1e-12
    )
    np.testing.assert_allclose(
        [d.meta["best_passage_score"] for d in probabilities],
        calibration.probabilities([d.meta["best_passage_score"] for d in logits]),
        atol=1e-12,
    )


def test_rankings_are_identical_with_every_aggregation_and_first_stage_fusion_off(calibrated_model):
    rng = np.random.default_rng(11)
    documents = [Document(content=" ".join(_texts(rng, 25))) for _ in range(6)]
    for aggregation in ("first", "sum", "top2_mean"):
        settings = {"model": str(calibrated_model), "split_long_documents": True, "aggregation": aggregation}
        raw = CrossEncoderRanker(**settings, activation="identity").run(query="bees", documents=documents)
        calibrated = CrossEncoderRanker(**settings).run(query="bees", documents=documents)
        assert [d.id for d in calibrated["documents"]] == [d.id for d in raw["documents"]]
        assert all(0 < d.score < 1 for d in calibrated["documents"])


def test_the_default_round_trips_through_to_dict_and_yaml(calibrated_model):
    documents = _documents(seed=9)
    ranker = CrossEncoderRanker(model=str(calibrated_model), top_k=5)
    expected = [(d.id, d.score) for d in ranker.run(query="dogs bark", documents=documents)["documents"]]

    data = ranker.to_dict()
    assert data["init_parameters"]["activation"] is None  # resolved at warm_up, not frozen into the config
    restored = CrossEncoderRanker.from_dict(data)
    assert [(d.id, d.score) for d in restored.run(query="dogs bark", documents=documents)["documents"]] == expected

    pipeline = Pipeline()
    pipeline.add_component("ranker", CrossEncoderRanker(model=str(calibrated_model), activation="calibrated", top_k=5))
    loaded = Pipeline.loads(pipeline.dumps())
    assert loaded.get_component("ranker").activation == "calibrated"
    result = loaded.run({"ranker": {"query": "dogs bark", "documents": documents}})["ranker"]["documents"]
    assert [(d.id, d.score) for d in result] == expected


def test_calibrated_without_a_calibration_fails_at_warm_up(spread_model_path):
    ranker = CrossEncoderRanker(model=str(spread_model_path), activation="calibrated")
    with pytest.raises(CalibrationError, match="rerank calibrate --model"):
        ranker.warm_up()
    with pytest.raises(ValueError, match=r"scale=2\.0 cannot be combined"):
        CrossEncoderRanker(model=str(spread_model_path), activation="calibrated", scale=2.0)
    with pytest.raises(ValueError, match="'calibrated'"):
        CrossEncoderRanker(model=str(spread_model_path), activation="platt")
    plain = CrossEncoderRanker(model=str(spread_model_path))
    with pytest.raises(CalibrationError, match=r"has no calibration\.json"):
        plain.run(query="cats", documents=_documents(count=2), activation="calibrated")
    assert not plain.outputs_probabilities


def test_a_calibration_copied_to_another_model_is_refused(calibrated_model, tiny_model_path, tmp_path):
    other = tmp_path / "other"
    shutil.copytree(tiny_model_path, other)
    shutil.copyfile(calibrated_model / CALIBRATION_FILE, other / CALIBRATION_FILE)

    with pytest.raises(CalibrationError, match="fitted on another model"):
        CrossEncoderRanker(model=str(other)).warm_up()
    # Asked for another activation, the ranker does not read the file at all.
    CrossEncoderRanker(model=str(other), activation="sigmoid").warm_up()
    (other / CALIBRATION_FILE).write_text("{broken")
    CrossEncoderRanker(model=str(other), scale_score=True).warm_up()


def test_an_explicit_scale_keeps_the_uncalibrated_default(calibrated_model):
    documents = _documents(count=3)
    scaled = CrossEncoderRanker(model=str(calibrated_model), scale=0.5).run(query="cows", documents=documents)
    raw = CrossEncoderRanker(model=str(calibrated_model), activation="identity").run(query="cows", documents=documents)
    np.testing.assert_allclose(
        sorted(d.score for d in scaled["documents"]), sorted(_sigmoid([0.5 * d.score for d in raw["documents"]]))
    )


# --- tooling ----------------------------------------------------------------------------------------------------


def test_judged_pairs_from_every_format_with_a_relevance_cut(tmp_path):
    pairs = tmp_path / "pairs.jsonl"
    rows = [{"query": "q", "document": f"d{grade}", "label": grade} for grade in (0, 1, 2, 3)]
    pairs.write_text("".join(json.dumps(row) + "\n" for row in rows))
    lists = tmp_path / "lists.jsonl"
    lists.write_text(json.dumps({"query": "q", "documents": ["a", "b", "c"], "labels": [0, 1, 2]}) + "\n")
    triplets = tmp_path / "triplets.jsonl"
    triplets.write_text(json.dumps({"query": "q", "positive": "p", "negatives": ["n1", "n2"]}) + "\n")

    assert load_judged_pairs(pairs).labels.tolist() == [0, 1, 1, 1]  # grades 0..3 rescaled on reading, cut >= 1
    assert load_judged_pairs(pairs, relevant_from=2).labels.tolist() == [0, 0, 1, 1]
    assert load_judged_pairs(lists, relevant_from=2).labels.tolist() == [0, 0, 1]
    assert load_judged_pairs(triplets).labels.tolist() == [1, 0, 0]
    with pytest.raises(ValueError, match="--relevant-from"):
        load_judged_pairs(lists, relevant_from=5)


def test_cli_calibrates_a_tiny_model_end_to_end(spread_model_path, tmp_path, capsys):
    model = tmp_path / "model"
    shutil.copytree(spread_model_path, model)
    (model / "README.md").write_text("# My reranker\n\nTrained somewhere.\n")
    pairs = judged_pairs(model, seed=4)
    data = tmp_path / "judged.jsonl"  # graded 0/2: only grade 2 is relevant with --relevant-from 2
    data.write_text(
        "".join(
            json.dumps({"query": q, "document": t, "label": 2 * int(y)}) + "\n"
            for q, t, y in zip(pairs.queries, pairs.texts, pairs.labels, strict=True)
        )
    )

    for _ in range(2):  # calibrating again replaces the card's section
        code = main(["calibrate", "--model", str(model), "--data", str(data), "--relevant-from", "2"])
        assert code == 0
    output = capsys.readouterr().out
    assert "ECE" in output and "raw sigmoid" in output and "calibrated" in output

    calibration = read_calibration(model)
    assert calibration.method in ("platt", "isotonic")
    assert calibration.records["fitted_on"]["relevant"] + calibration.records["held_out"]["relevant"] == sum(
        pairs.labels
    )
    card = (model / "README.md").read_text()
    assert card.startswith("# My reranker") and card.count("## Calibration") == 1
    assert (model / "calibration_reliability.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    assert main(["calibrate", "--model", str(tmp_path / "nowhere"), "--data", str(data)]) == 2
    assert "local model directory" in capsys.readouterr().err


def test_train_calibrate_fits_on_the_held_out_queries(tmp_path, tiny_model_path):
    from crossencoder_haystack.training import train
    from tests.test_training import FAST, write_toy

    data = write_toy(tmp_path / "pairs.jsonl", "pairs", 24, 1)
    eval_data = write_toy(tmp_path / "eval.jsonl", "pairs", 10, 2)
    result = train(
        data, tmp_path / "model", eval_data=eval_data, base_model=tiny_model_path, max_steps=6, batch_size=16,
        calibrate=True, **FAST,
    )  # fmt: skip

    assert result.calibration is not None
    assert result.calibration.held_out["queries"] == 3  # 30% of the 10 held-out training queries
    assert read_calibration(tmp_path / "model") is not None
    assert "## Calibration" in (tmp_path / "model" / "README.md").read_text()
    with pytest.raises(ValueError, match="calibrate=True needs at least 2 held-out queries"):
        train(data, tmp_path / "m2", eval_fraction=0, base_model=tiny_model_path, calibrate=True, **FAST)


def test_evaluate_reports_ece_and_brier_for_a_calibrated_ranker(calibrated_model, tmp_path):
    from rich.console import Console

    from crossencoder_haystack.evaluation import evaluate, render_table
    from tests.test_evaluation import QRELS, QUERIES, TOPICS, _write_collection

    collection = _write_collection(tmp_path / "animals", TOPICS, QUERIES, QRELS)
    result = evaluate(
        collection,
        rankers=[str(calibrated_model), "none"],
        ks=[4, 8],
        latency_queries=0,
        cache_dir=tmp_path / "cache",
        show_progress=False,
    )

    rows = [row for row in result.rows if not row.is_first_stage]
    assert rows and all(0 <= row.metrics["ece"] <= 1 and 0 <= row.metrics["brier"] <= 1 for row in rows)
    assert "ece" not in result.rows[0].metrics
    console = Console(width=220, record=True)
    console.print(render_table(result))
    table = console.export_text()
    assert "ECE³" in table and "Brier³" in table


def test_serve_returns_calibrated_relevance_scores(calibrated_model):
    from crossencoder_haystack.serving.served_model import RerankJob, ServedModel

    texts = [d.content for d in _documents(seed=13, count=5)]
    served = ServedModel(calibrated_model)
    ranked = served.rank(RerankJob(query="rabbits dig", texts=texts))
    raw = served.rank(RerankJob(query="rabbits dig", texts=texts, raw_scores=True))

    assert [item.index for item in ranked] == [item.index for item in raw]
    expected = read_calibration(calibrated_model).probabilities([item.score for item in raw])
    np.testing.assert_allclose([item.score for item in ranked], expected, atol=1e-12)


def test_an_onnx_export_keeps_the_calibration(calibrated_model, tmp_path):
    pytest.importorskip("onnxruntime")
    from crossencoder_haystack.export.exporting import export_cross_encoder

    export_cross_encoder(str(calibrated_model), tmp_path / "onnx")
    documents = _documents(seed=17, count=6)
    torch_scores = CrossEncoderRanker(model=str(calibrated_model)).run(query="snakes", documents=documents)
    onnx_scores = CrossEncoderRanker(model=str(tmp_path / "onnx"), backend="onnx").run(
        query="snakes", documents=documents
    )

    assert (tmp_path / "onnx" / CALIBRATION_FILE).is_file()
    assert [d.id for d in onnx_scores["documents"]] == [d.id for d in torch_scores["documents"]]
    np.testing.assert_allclose(
        [d.score for d in onnx_scores["documents"]], [d.score for d in torch_scores["documents"]], atol=1e-4
    )


def test_the_demo_shows_calibrated_percentages():
    from rich.console import Console

    from crossencoder_haystack.demo.display import results_table

    documents = [
        Document(id="a", content="Python", score=0.8731, meta={"name": "Ada", "role": "dev"}),
        Document(id="b", content="Java", score=0.1, meta={"name": "Bob", "role": "dev", "rerank_score": 0.042}),
    ]
    console = Console(width=200, record=True)
    console.print(results_table("python", documents, probabilities=True))
    text = console.export_text()
    assert "87%" in text and "4%" in text and "relevant" in text
    console = Console(width=200, record=True)
    console.print(results_table("python", documents))
    assert "87%" not in console.export_text()


def test_cli_method_choices_match_the_library():
    from crossencoder_haystack.calibration import FIT_METHODS
    from crossencoder_haystack.calibration.command import METHOD_CHOICES

    assert METHOD_CHOICES == FIT_METHODS


def test_run_time_calibrated_needs_a_ranker_that_loaded_the_calibration(calibrated_model):
    ranker = CrossEncoderRanker(model=str(calibrated_model), activation="identity")
    with pytest.raises(CalibrationError, match="did not load"):
        ranker.run(query="cats", documents=_documents(count=2), activation="calibrated")
    calibrated = CrossEncoderRanker(model=str(calibrated_model), activation="calibrated")
    raw = calibrated.run(query="cats", documents=_documents(count=3), activation="identity")["documents"]
    assert any(document.score > 1 or document.score < 0 for document in raw)  # logits, not probabilities

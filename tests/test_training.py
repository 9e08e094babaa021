"""`train(...)` on a toy task a tiny model learns in seconds: fruit documents are relevant, vehicles are not."""

import argparse
import json
import random

import pytest

from crossencoder_haystack.training import build_cross_encoder, train
from crossencoder_haystack.training.base_model import base_model_kind, head_parameter_names

FRUITS = "apple banana cherry grape lemon mango orange peach pear plum".split()
VEHICLES = "car truck bus train plane boat bike tram ship van".split()
QUERIES = "which food is good for me today".split()

# High learning rates: the tiny random model must move within a handful of steps.
FAST = {"learning_rate": 3e-3, "head_learning_rate": 3e-3, "max_length": 16, "show_progress": False}


def _document(rng, words):
    return " ".join(rng.sample(words, 3))


def toy_rows(shape, count, seed):
    rng = random.Random(seed)
    rows = []
    for index in range(count):
        query = f"{rng.choice(QUERIES)} {index}"
        positive, negatives = _document(rng, FRUITS), [_document(rng, VEHICLES) for _ in range(3)]
        if shape == "pairs":
            rows.append({"query": query, "document": positive, "label": 1})
            rows.extend({"query": query, "document": negative, "label": 0} for negative in negatives)
        elif shape == "triplets":
            rows.append({"query": query, "positive": positive, "negatives": negatives})
        else:
            rows.append({"query": query, "documents": [positive, *negatives], "labels": [1, 0, 0, 0]})
    return rows


def write_toy(path, shape, count, seed):
    path.write_text("".join(json.dumps(row) + "\n" for row in toy_rows(shape, count, seed)))
    return path


@pytest.fixture(scope="module")
def toy_files(tmp_path_factory):
    root = tmp_path_factory.mktemp("toy")
    return {
        shape: (write_toy(root / f"{shape}.jsonl", shape, 48, 1), write_toy(root / f"{shape}-eval.jsonl", shape, 8, 2))
        for shape in ("pairs", "triplets", "lists")
    }


@pytest.mark.parametrize(
    ("shape", "loss", "activation", "batch_size"),
    [
        ("pairs", "BinaryCrossEntropyLoss", "sigmoid", 16),
        ("triplets", "CachedMultipleNegativesRankingLoss", "sigmoid", 8),
        ("lists", "LambdaLoss", "identity", 8),
    ],
)
def test_each_loss_learns_the_toy_task(tmp_path, toy_files, tiny_model_path, shape, loss, activation, batch_size):
    from sentence_transformers import CrossEncoder

    data, eval_data = toy_files[shape]
    result = train(
        data,
        tmp_path / "model",
        eval_data=eval_data,
        base_model=tiny_model_path,
        max_steps=12,
        batch_size=batch_size,
        eval_steps=6,
        **FAST,
    )
    assert result.loss == loss
    assert result.activation == activation
    assert result.after["ndcg@10"] > result.before["ndcg@10"] + 0.1
    assert result.after["ndcg@10"] > 0.9
    model = CrossEncoder(str(tmp_path / "model"))
    assert type(model.activation_fn).__name__ == {"sigmoid": "Sigmoid", "identity": "Identity"}[activation]
    card = (tmp_path / "model" / "README.md").read_text()
    assert loss in card and str(data) in card and f"Activation: **{activation}**" in card
    assert not (tmp_path / "model" / "checkpoints").exists()


def test_saved_model_round_trips_into_the_ranker(tmp_path, toy_files, tiny_model_path):
    import numpy as np
    from haystack import Document
    from sentence_transformers import CrossEncoder

    from haystack_integrations.components.rankers.crossencoder import CrossEncoderRanker

    data, _ = toy_files["pairs"]
    train(data, tmp_path / "model", eval_fraction=0, base_model=tiny_model_path, max_steps=2, batch_size=8, **FAST)
    documents = [Document(content=text) for text in ("apple pear plum", "car bus van", "lemon truck mango")]
    expected = CrossEncoder(str(tmp_path / "model")).predict([("which food", d.content) for d in documents])

    ranker = CrossEncoderRanker(model=str(tmp_path / "model"), top_k=3)
    ranker.warm_up()
    ranked = ranker.run(query="which food", documents=documents)["documents"]
    scores = {document.content: document.score for document in ranked}
    np.testing.assert_allclose([scores[d.content] for d in documents], expected, rtol=1e-4, atol=1e-5)
    assert all(0.0 < score < 1.0 for score in scores.values())  # the saved sigmoid is applied by default


def test_same_seed_gives_the_same_weights(tmp_path, toy_files, tiny_model_path):
    import torch
    from sentence_transformers import CrossEncoder

    data, _ = toy_files["pairs"]
    weights = []
    for run in ("a", "b"):
        train(data, tmp_path / run, eval_fraction=0, base_model=tiny_model_path, max_steps=3, batch_size=8, **FAST)
        weights.append(CrossEncoder(str(tmp_path / run)).state_dict())
    assert weights[0].keys() == weights[1].keys()
    assert all(torch.equal(weights[0][name], weights[1][name]) for name in weights[0])
    start = CrossEncoder(str(tiny_model_path)).state_dict()
    assert not all(torch.equal(start[name], weights[0][name]) for name in start)


def test_ctrl_c_keeps_the_best_checkpoint(tmp_path, toy_files, tiny_model_path):
    from sentence_transformers import CrossEncoder
    from transformers import TrainerCallback

    class CtrlC(TrainerCallback):
        def on_step_end(self, args, state, control, **kwargs):
            if state.global_step == 5:
                raise KeyboardInterrupt

    data, eval_data = toy_files["pairs"]
    result = train(
        data,
        tmp_path / "model",
        eval_data=eval_data,
        base_model=tiny_model_path,
        max_steps=20,
        batch_size=8,
        eval_steps=2,
        callbacks=[CtrlC()],
        **FAST,
    )
    assert result.interrupted
    assert result.best_checkpoint_step in (2, 4)
    assert result.after  # the kept checkpoint was evaluated
    assert len(CrossEncoder(str(tmp_path / "model")).predict([("q", "apple")])) == 1
    assert "interrupted" in (tmp_path / "model" / "README.md").read_text()


@pytest.fixture(scope="module")
def tiny_bi_encoder(tmp_path_factory, minilm_tokenizer):
    """A random 1-layer BERT saved as a mean-pooling sentence-transformers bi-encoder, and the raw encoder."""
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.base.modules import Transformer
    from sentence_transformers.sentence_transformer.modules import Pooling
    from transformers import BertConfig, BertModel

    root = tmp_path_factory.mktemp("bi")
    config = BertConfig(
        vocab_size=minilm_tokenizer.vocab_size,
        hidden_size=32,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=64,
    )
    BertModel(config).save_pretrained(root / "raw")
    minilm_tokenizer.save_pretrained(root / "raw")
    SentenceTransformer(modules=[Transformer(str(root / "raw")), Pooling(32, "mean")]).save(str(root / "bi"))
    return root / "bi", root / "raw"


def test_bi_encoder_base_gets_a_mean_pooled_dense_head(tiny_bi_encoder):
    from sentence_transformers.base.modules import Dense
    from sentence_transformers.sentence_transformer.modules import Pooling

    bi, raw = tiny_bi_encoder
    assert base_model_kind(bi) == "bi-encoder"
    assert base_model_kind(raw) == "encoder"
    base = build_cross_encoder(bi, max_length=32, seed=0, head="dense")
    assert (base.kind, base.head) == ("bi-encoder", "dense")
    modules = list(base.model)
    assert isinstance(modules[1], Pooling) and modules[1].pooling_mode == "mean"
    assert isinstance(modules[2], Dense) and modules[2].module_output_name == "scores"
    assert head_parameter_names(base.model) == {"2.linear.weight", "2.linear.bias"}
    scores = base.model.predict([("q", "apple"), ("q", "car")], activation_fn=None)
    assert abs(float(scores[0])) < 1.0  # a near-zero head: the first scores do not impose a random ranking


def test_bi_encoder_base_gets_a_segment_cosine_head_that_starts_as_the_bi_encoder(tiny_bi_encoder):
    import torch
    from sentence_transformers.base.modules import Transformer

    from haystack_integrations.components.rankers.crossencoder.score_heads import SegmentCosineScore

    bi, _ = tiny_bi_encoder
    base = build_cross_encoder(bi, max_length=32, seed=0)
    assert base.head == "cosine" and base.model.num_labels == 1
    encoder, head = list(base.model)
    assert isinstance(encoder, Transformer) and isinstance(head, SegmentCosineScore)
    assert head_parameter_names(base.model) == {"1.scale", "1.bias"}

    # The score is scale * cosine(mean of [CLS] query [SEP], mean of document [SEP]) + bias, from one forward pass.
    features = base.model.tokenizer([["fresh apple", "apple pie recipe"]], return_tensors="pt")
    with torch.no_grad():
        tokens = encoder.model(**features).last_hidden_state[0]
    segment = features["token_type_ids"][0].bool()
    cosine = torch.nn.functional.cosine_similarity(tokens[~segment].mean(0), tokens[segment].mean(0), dim=0)
    score = base.model.predict([("fresh apple", "apple pie recipe")], activation_fn=torch.nn.Identity())
    assert float(score[0]) == pytest.approx(float(20 * cosine - 10), abs=1e-4)


def test_a_cosine_head_model_loads_in_the_ranker_and_other_heads_are_refused(tmp_path, tiny_bi_encoder):
    from haystack import Document
    from torch.nn import Identity

    from haystack_integrations.components.rankers.crossencoder import CrossEncoderRanker
    from haystack_integrations.components.rankers.crossencoder._engine.model_loading import uses_only_known_heads

    bi, _ = tiny_bi_encoder
    base = build_cross_encoder(bi, max_length=32, seed=0)
    base.model.save(str(tmp_path / "ce"))
    assert uses_only_known_heads(tmp_path / "ce")
    documents = [Document(content="apple pie"), Document(content="a red truck")]
    expected = base.model.predict([("apple", d.content) for d in documents], activation_fn=Identity())
    ranked = CrossEncoderRanker(model=str(tmp_path / "ce"), activation="identity").run(
        query="apple", documents=documents
    )
    assert sorted(d.score for d in ranked["documents"]) == pytest.approx(sorted(expected.tolist()), abs=1e-5)

    (tmp_path / "ce" / "modeling_evil.py").write_text("raise SystemExit('never run')\n")
    assert not uses_only_known_heads(tmp_path / "ce")  # code in the directory: no automatic trust
    with pytest.raises(ValueError, match="head must be one of"):
        build_cross_encoder(bi, head="linear")


def test_bad_arguments_fail_fast_and_name_the_parameter(tmp_path, toy_files, tiny_model_path):
    from haystack_integrations.components.rankers.crossencoder import ModelNotAvailableError

    data, _ = toy_files["pairs"]
    with pytest.raises(ValueError, match="batch_size must be a number > 0"):
        train(data, tmp_path / "m", batch_size=0)
    with pytest.raises(ValueError, match="warmup_ratio must be in"):
        train(data, tmp_path / "m", warmup_ratio=1.5)
    with pytest.raises(ModelNotAvailableError, match="base_model"):
        train(data, tmp_path / "m", base_model=str(tmp_path / "no-such-model"), max_steps=1)
    with pytest.raises(ValueError, match="trains on triplets data"):
        train(data, tmp_path / "m", base_model=tiny_model_path, loss="cmnrl", max_steps=1)


def test_cli_parses_train_and_mine():
    from crossencoder_haystack.training import command

    parser = argparse.ArgumentParser()
    command.register(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["train", "--data", "d.jsonl", "--output", "out", "--loss", "lambda", "--lr", "2e-4"])
    assert args.func is command._train
    assert (args.loss, args.lr, args.head_lr, args.max_length, args.batch_size) == ("lambda", 2e-4, None, 128, 32)
    assert args.head == "auto"
    assert parser.parse_args(["train", "--data", "d", "--output", "o", "--head", "dense"]).head == "dense"
    args = parser.parse_args(["mine", "--queries", "beir", "--output", "o.jsonl", "--retriever", "bm25"])
    assert args.func is command._mine
    assert (args.top_n, args.output_format, args.margin) == (100, "triplets", None)
    args = parser.parse_args(["mine", "--queries", "beir", "--output", "o.jsonl"])
    assert (args.retriever, args.sample, args.relative_margin, args.num_negatives) == ("hybrid", "mixed", 0.05, 6)
    args = parser.parse_args(["train", "--data", "d", "--output", "o", "--max-steps", "0", "--check-data", "cranfield"])
    assert (args.max_steps, args.check_data, args.epochs) == (0, "cranfield", None)


def test_cli_choices_match_the_library_constants():
    from crossencoder_haystack.training import command
    from crossencoder_haystack.training.base_model import HEADS
    from crossencoder_haystack.training.mining import RETRIEVERS, SAMPLES

    parser = argparse.ArgumentParser()
    command.register(parser.add_subparsers(dest="command"))
    subcommands = parser._subparsers._group_actions[0].choices
    choices = {
        action.dest: tuple(action.choices)
        for name in ("train", "mine")
        for action in subcommands[name]._actions
        if action.choices
    }
    assert choices["head"] == HEADS and choices["retriever"] == RETRIEVERS and choices["sample"] == SAMPLES


def test_keyword_arguments_and_a_train_config_give_the_same_run(tmp_path, toy_files, tiny_model_path):
    from crossencoder_haystack.training import TrainConfig

    data, _ = toy_files["pairs"]
    settings = {"eval_fraction": 0, "base_model": tiny_model_path, "max_steps": 2, "batch_size": 8, **FAST}
    by_keywords = train(data, tmp_path / "a", **settings)
    by_config = train(data, tmp_path / "b", config=TrainConfig(**settings))
    assert by_keywords.config == by_config.config == TrainConfig(**settings)
    cards = [(tmp_path / run / "README.md").read_text() for run in ("a", "b")]
    assert cards[0].split("- steps:")[0] == cards[1].split("- steps:")[0]  # same card up to the timing
    hyper_parameters = json.loads(cards[0].split("```json")[1].split("```")[0])
    assert hyper_parameters["max_steps"] == 2 and hyper_parameters["batch_size"] == 8
    assert hyper_parameters["learning_rate"] == FAST["learning_rate"] and hyper_parameters["head"] == "kept"
    assert str(tmp_path) not in cards[0]  # the card names no output path: it stays true when the model moves
    # keywords replace the fields of a given config; an unknown one is refused
    assert TrainConfig(max_steps=5, seed=1).replace(max_steps=2) == TrainConfig(max_steps=2, seed=1)
    with pytest.raises(TypeError, match="max_stepz"):
        train(data, tmp_path / "c", config=TrainConfig(), max_stepz=1)


def test_cli_defaults_and_settings_are_the_train_config():
    from crossencoder_haystack.training import TrainConfig, command

    parser = argparse.ArgumentParser()
    command.register(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["train", "--data", "d.jsonl", "--output", "out"])
    assert command.train_config(args) == TrainConfig()
    args = parser.parse_args(
        ["train", "--data", "d", "--output", "o", "--lr", "2e-4", "--head-lr", "1e-3", "--max-steps", "7",
         "--eval", "e.jsonl", "--calibrate", "--head", "dense"]
    )  # fmt: skip
    expected = TrainConfig(
        learning_rate=2e-4, head_learning_rate=1e-3, max_steps=7, eval_fraction=0.0, calibrate=True, head="dense"
    )
    assert command.train_config(args) == expected


def test_the_training_base_has_its_own_name_and_the_old_one_still_imports():
    from crossencoder_haystack import training
    from crossencoder_haystack.training import TrainingBase, base_model

    with pytest.warns(DeprecationWarning, match="TrainingBase"):
        assert training.BaseModel is TrainingBase
    with pytest.warns(DeprecationWarning, match="pydantic"):
        from crossencoder_haystack.training import BaseModel
    assert BaseModel is TrainingBase
    with pytest.warns(DeprecationWarning):
        assert base_model.BaseModel is TrainingBase
    with pytest.raises(AttributeError):
        training.NoSuchName  # noqa: B018


def _import_graph(root):
    """Module -> the modules of `root` it imports, at module level or inside a function (ast, nothing imported)."""
    import ast

    modules = {}
    for path in root.rglob("*.py"):
        parts = list(path.relative_to(root).with_suffix("").parts)
        modules[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    graph = {}
    for name, path in modules.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        edges = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                edges |= {alias.name for alias in node.names if alias.name in modules}
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    kept = package.split(".")[: len(package.split(".")) - node.level + 1]
                    base = ".".join([*kept, base] if base else kept)
                for alias in node.names:
                    target = f"{base}.{alias.name}"
                    edges.add(target if target in modules else base)
        graph[name] = {edge for edge in edges if edge in modules and edge != name}
    return graph


def _reaches(graph, start, goal):
    seen, todo = set(), [start]
    while todo:
        for following in graph[todo.pop()] - seen:
            if following == goal:
                return True
            seen.add(following)
            todo.append(following)
    return False


def test_training_demo_and_multilingual_modules_import_nothing_that_imports_them_back():
    from pathlib import Path

    import crossencoder_haystack

    graph = _import_graph(Path(crossencoder_haystack.__file__).parent.parent)
    ours = [
        name
        for name in graph
        if name.startswith(tuple(f"crossencoder_haystack.{part}" for part in ("training", "demo", "multilingual")))
    ]
    assert "crossencoder_haystack.training.trainer" in ours
    cycles = sorted(name for name in ours if _reaches(graph, name, name))
    assert cycles == []


def test_a_training_run_shows_one_progress_display_and_no_raw_logs(
    capsys, monkeypatch, tmp_path, toy_files, tiny_model_path
):
    monkeypatch.setenv("COLUMNS", "160")  # captured output is no terminal: rich takes the width from here
    data, eval_data = toy_files["pairs"]
    settings = {"eval_data": eval_data, "base_model": tiny_model_path, "max_steps": 4, "batch_size": 8, "eval_steps": 2}
    result = train(data, tmp_path / "quiet", **settings, **{**FAST, "show_progress": True})
    captured = capsys.readouterr()
    shown = captured.out + captured.err
    assert "{'loss'" not in shown and "'grad_norm'" not in shown  # no raw trainer dicts
    assert "it/s]" not in shown and "Loading weights" not in shown and "Writing model shards" not in shown  # no tqdm
    assert "training steps" in shown and "4/4" in shown  # the one display: steps, loss and the last evaluation
    assert f"loss {result.loss_history[-1][1]:.4f}" in shown and "eval nDCG@10" in shown
    assert "Fine-tuning summary" in shown

    train(data, tmp_path / "verbose", **settings, **{**FAST, "verbose": True})
    assert "{'loss'" in capsys.readouterr().out  # --verbose: the library's raw logs are back


def test_cli_train_and_distill_take_verbose():
    from crossencoder_haystack.training import command

    parser = argparse.ArgumentParser()
    command.register(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["train", "--data", "d", "--output", "o", "--verbose"])
    assert command.train_config(args).verbose is True
    assert command.train_config(parser.parse_args(["train", "--data", "d", "--output", "o"])).verbose is False
    args = parser.parse_args(["distill", "--teacher", "t", "--queries", "q", "--output", "o", "--verbose"])
    assert args.verbose is True

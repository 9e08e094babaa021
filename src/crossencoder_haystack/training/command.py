"""`rerank train` and `rerank mine`: parse arguments and call `train(...)` / `mine_hard_negatives(...)`.

`rerank distill` is registered here too; its arguments live in `distill_command.py`.
"""

import argparse
import dataclasses

from crossencoder_haystack.cli_arguments import add_collection_arguments, add_command, add_verbose_argument, options_of
from crossencoder_haystack.distributed.options import add_engine_arguments, ray_options
from crossencoder_haystack.training.base_model import HEADS
from crossencoder_haystack.training.config import TrainConfig
from crossencoder_haystack.training.distill_command import register_distill
from crossencoder_haystack.training.mining import RETRIEVERS, SAMPLES

_TRAIN_SUMMARY = "Fine-tune a cross-encoder reranker on pairs, triplets or lists (CSV, TSV, JSONL)."
_TRAIN_DESCRIPTION = (
    "Fine-tune a cross-encoder reranker. The loss follows the data's shape: pairs (query, document, label) "
    "-> bce, triplets (query, positive[, negatives]) -> cmnrl, lists (query, documents, labels) -> lambda."
)
_MINE_SUMMARY = "Mine hard negatives for queries with known positives (BEIR dir or data file + corpus)."
_MINE_DESCRIPTION = "Retrieve each query's top candidates, drop known positives, and write training rows (JSONL)."

DEFAULTS = TrainConfig()
# `rerank train` options whose destination is not the `TrainConfig` field of the same name
_OPTION_FIELDS = {"lr": "learning_rate", "head_lr": "head_learning_rate"}
# Passed to mine_hard_negatives(...) as they were parsed.
_MINE_OPTIONS = (
    "output",
    "split",
    "retriever",
    "model",
    "top_n",
    "num_negatives",
    "skip_top",
    "margin",
    "output_format",
    "sample",
    "seed",
)


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the `train`, `mine` and `distill` sub-commands."""
    _register_train(subparsers)
    _register_mine(subparsers)
    register_distill(subparsers)


def _register_train(subparsers: argparse._SubParsersAction) -> None:
    """`rerank train`: its defaults are `TrainConfig`'s."""
    parser = add_command(subparsers, "train", _train, _TRAIN_SUMMARY, _TRAIN_DESCRIPTION)
    parser.add_argument("--data", required=True, help="training data: .csv, .tsv or .jsonl")
    evaluation = parser.add_mutually_exclusive_group()
    evaluation.add_argument("--eval", dest="eval_data", help="evaluation data in any of the training formats")
    evaluation.add_argument(
        "--eval-fraction",
        type=float,
        default=DEFAULTS.eval_fraction,
        help="share of queries held out for evaluation (0 = none)",
    )
    parser.add_argument(
        "--base-model",
        help="cross-encoder, bi-encoder or encoder directory (default: bundled MiniLM); 'multilingual': the "
        "multilingual-e5-small of the multilingual extra (converted on first use, see rerank multilingual-model)",
    )
    parser.add_argument("--output", required=True, help="directory to save the trained CrossEncoder into")
    parser.add_argument("--loss", help="bce, cmnrl, lambda or a sentence-transformers cross-encoder loss class name")
    parser.add_argument(
        "--epochs", type=float, help="passes over the data (default: 1; a bi-encoder base at most 200 steps by default)"
    )
    parser.add_argument(
        "--max-steps", type=int, help="optimizer steps (overrides --epochs); 0 saves the untrained bi-encoder reranker"
    )
    parser.add_argument("--batch-size", type=int, default=DEFAULTS.batch_size)
    parser.add_argument(
        "--head",
        choices=list(HEADS),
        default=DEFAULTS.head,
        help="auto: a bi-encoder base stays a bi-encoder (query and document encoded separately, so the untrained "
        "reranker ranks exactly as the base); an encoder gets the cosine head when its tokenizer marks segments, "
        "else dense. cosine / dense turn a bi-encoder into a cross-encoder; a cross-encoder keeps its own head",
    )
    parser.add_argument("--lr", type=float, help="encoder learning rate (default: the head's recipe)")
    parser.add_argument("--head-lr", type=float, help="scoring-head learning rate (default: the head's recipe)")
    parser.add_argument("--warmup-ratio", type=float, default=DEFAULTS.warmup_ratio)
    parser.add_argument(
        "--max-length", type=int, default=DEFAULTS.max_length, help="max tokens per (query, document) pair"
    )
    parser.add_argument("--max-minutes", type=float, help="stop after this wall-clock budget")
    parser.add_argument("--seed", type=int, default=DEFAULTS.seed)
    parser.add_argument(
        "--check-data",
        help="BEIR folder or judged file outside your domain: keep no model more than 1 point below the start there",
    )
    parser.add_argument("--check-split", default=DEFAULTS.check_split, help="BEIR split of --check-data")
    parser.add_argument("--check-max-queries", type=int, help="score at most this many --check-data queries")
    parser.add_argument(
        "--calibrate",
        action="store_true",
        help="at the end, calibrate the scores on the held-out queries (as rerank calibrate does), so the model "
        "returns P(relevant)",
    )
    add_verbose_argument(parser)


def _register_mine(subparsers: argparse._SubParsersAction) -> None:
    """`rerank mine`."""
    parser = add_command(subparsers, "mine", _mine, _MINE_SUMMARY, _MINE_DESCRIPTION)
    add_collection_arguments(
        parser,
        "--queries",
        help="BEIR directory, or a pairs/triplets/lists data file",
        corpus_help="corpus JSONL (_id/id, title, text); not needed for a BEIR directory",
        split_help="BEIR qrels split",
        split_default="train",
    )
    parser.add_argument("--output", required=True, help="output JSONL")
    parser.add_argument("--format", dest="output_format", choices=["pairs", "triplets", "lists"], default="triplets")
    parser.add_argument(
        "--retriever",
        choices=list(RETRIEVERS),
        default="hybrid",
        help="candidates from BM25 and the embedding model together (hybrid, default), or one of them",
    )
    parser.add_argument(
        "--model",
        help="embedding model directory (default: bundled all-MiniLM-L6-v2); 'multilingual': the multilingual-e5-small "
        "of the multilingual extra, with its query: / passage: prefixes",
    )
    parser.add_argument("--top-n", type=int, default=100, help="candidates retrieved per query (by each retriever)")
    parser.add_argument("--num-negatives", type=int, default=6)
    parser.add_argument("--skip-top", type=int, default=0, help="skip this many top candidates")
    parser.add_argument("--margin", type=float, help="skip candidates scoring within MARGIN of the best positive")
    parser.add_argument(
        "--relative-margin",
        type=float,
        default=0.05,
        help="false-negative guard: skip candidates within this share of the best positive's embedding similarity",
    )
    parser.add_argument("--no-guard", action="store_true", help="turn the false-negative guard off")
    parser.add_argument(
        "--sample",
        choices=list(SAMPLES),
        default="mixed",
        help="mixed: half the hardest, half random from the rest of the list (default); top; random",
    )
    parser.add_argument("--seed", type=int, default=42)
    add_engine_arguments(parser)


def train_config(args: argparse.Namespace) -> TrainConfig:
    """The `TrainConfig` of parsed `rerank train` arguments: each option named like a field, or in `_OPTION_FIELDS`."""
    values = {field: getattr(args, option) for option, field in _OPTION_FIELDS.items()}
    values |= {
        name: getattr(args, name)
        for name in (item.name for item in dataclasses.fields(TrainConfig))
        if hasattr(args, name)
    }
    if args.eval_data:  # --eval replaces the held-out queries
        values["eval_fraction"] = 0.0
    return TrainConfig(**values)


def _train(args: argparse.Namespace) -> int:
    from crossencoder_haystack.training.trainer import train

    result = train(args.data, args.output, train_config(args), eval_data=args.eval_data)
    return 130 if result.interrupted else 0


def _mine(args: argparse.Namespace) -> int:
    from crossencoder_haystack.training.mining import mine_hard_negatives

    engine_options = ray_options(args)
    if args.engine == "ray":  # embedding and BM25 on Ray; the same rows
        from crossencoder_haystack.distributed import mine_hard_negatives
    rows = mine_hard_negatives(
        args.queries,
        args.corpus,
        relative_margin=None if args.no_guard else args.relative_margin,
        **options_of(args, _MINE_OPTIONS),
        **engine_options,
    )
    print(f"Wrote {len(rows)} {args.output_format} rows to {args.output}")
    return 0

"""`rerank distill`: parse arguments and call `distill(...)`."""

import argparse

from crossencoder_haystack.cli_arguments import (
    add_collection_arguments,
    add_command,
    add_scoring_arguments,
    add_verbose_argument,
    options_of,
)
from crossencoder_haystack.training.mining import RETRIEVERS

_DISTILL_SUMMARY = "Train a small, fast student reranker that reproduces a teacher's scores on your own data."
_DISTILL_DESCRIPTION = (
    "Distil a teacher reranker into a student cross-encoder with fewer layers: the teacher scores the "
    "first stage's candidates (BM25 and the embedding model, top 100 each) of your queries and of "
    "pseudo-queries drawn from the corpus (no labels needed); the student learns the teacher's scores "
    "(MSE). Teacher scores are cached on disk, so a second run (another --layers, a longer budget) reuses "
    "them. Use the student alone, or in a CascadeRanker that lets the teacher re-rank its best few."
)

TEACHER_BACKEND_CHOICES: tuple[str, ...] = ("auto", "torch", "onnx", "openvino")  # = teacher_scores.TEACHER_BACKENDS
# Passed to distill(...) as they were parsed.
_DISTILL_OPTIONS = (
    "output",
    "corpus",
    "split",
    "pseudo_queries",
    "retriever",
    "embedding_model",
    "top_n",
    "loss",
    "max_minutes",
    "teacher_share",
    "max_steps",
    "epochs",
    "batch_size",
    "max_length",
    "eval_queries",
    "teacher_backend",
    "teacher_precision",
    "cache_dir",
    "seed",
    "verbose",
)


def register_distill(subparsers: argparse._SubParsersAction) -> None:
    """Add the `distill` sub-command."""
    parser = add_command(subparsers, "distill", _distill, _DISTILL_SUMMARY, _DISTILL_DESCRIPTION)
    parser.add_argument("--teacher", required=True, help="the teacher reranker directory (e.g. from rerank train)")
    add_collection_arguments(
        parser,
        "--queries",
        help="a BEIR directory (its --split queries), a pairs/triplets/lists file, a queries.jsonl or a .txt of "
        "queries, one per line",
        corpus_help="corpus .jsonl (_id, title, text) or .csv; a BEIR directory has its own",
        split_help="BEIR split of --queries (keep test queries out)",
        split_default="train",
    )
    parser.add_argument("--output", required=True, help="directory to save the student into")
    parser.add_argument("--layers", type=int, default=3, help="transformer layers the student keeps (2, 3, 4)")
    parser.add_argument("--student-base", help="start from this model instead of the teacher's layers")
    parser.add_argument(
        "--all-layers", action="store_true", help="with --student-base: keep all its layers (ignore --layers)"
    )
    parser.add_argument("--pseudo-queries", type=int, default=1000, help="pseudo-queries drawn from the corpus")
    parser.add_argument("--retriever", choices=list(RETRIEVERS), default="hybrid", help="the first stage")
    parser.add_argument("--embedding-model", help="the first stage's embedding model (default: bundled MiniLM)")
    parser.add_argument("--top-n", type=int, default=100, help="candidates per query from each retriever")
    parser.add_argument("--loss", choices=["mse", "margin_mse"], default="mse")
    parser.add_argument("--max-minutes", type=float, help="wall-clock budget of the whole command")
    parser.add_argument(
        "--teacher-share", type=float, default=0.5, help="share of --max-minutes the teacher may spend scoring"
    )
    parser.add_argument("--max-steps", type=int, help="optimizer steps (default: one epoch, within the budget)")
    parser.add_argument("--epochs", type=float, default=1.0)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--lr", type=float, default=5e-5, help="learning rate of the student's layers")
    add_scoring_arguments(
        parser, ["max_length"], notes={"max_length": "Tokens per pair for the student (default: the teacher's)"}
    )
    parser.add_argument("--eval-queries", type=int, default=20, help="held-out queries for the agreement")
    parser.add_argument("--teacher-backend", choices=TEACHER_BACKEND_CHOICES, default="auto")
    parser.add_argument(
        "--teacher-precision",
        choices=["auto", "fp32", "bf16"],
        default="auto",
        help="the teacher's precision: auto (bf16 on CPUs with AMX / AVX512-BF16), fp32 for exact targets",
    )
    parser.add_argument("--cache-dir", help="where teacher scores are cached (default: user cache directory)")
    parser.add_argument("--seed", type=int, default=42)
    add_verbose_argument(parser)


def _distill(args: argparse.Namespace) -> int:
    from crossencoder_haystack.training.distill import distill

    result = distill(
        args.teacher,
        args.queries,
        layers=None if args.all_layers else args.layers,
        student=args.student_base,
        learning_rate=args.lr,
        **options_of(args, _DISTILL_OPTIONS),
    )
    return 130 if result.interrupted else 0

"""`rerank calibrate`: parses arguments and calls `crossencoder_haystack.calibration.calibrate(...)`."""

import argparse

from crossencoder_haystack.cli_arguments import add_collection_arguments, add_command, add_scoring_arguments, options_of

_CALIBRATE_SUMMARY = "Fit a mapping from a model's scores to P(relevant) on judged data and store it with the model."
_CALIBRATE_DESCRIPTION = (
    "Score judged pairs with the model, fit a monotonic mapping from its raw logit to the probability of "
    "relevance (Platt or isotonic) on part of the queries, and report ECE, Brier score and a reliability "
    "diagram before and after on the held-out rest. The mapping is written into the model directory "
    "(calibration.json) and its model card; CrossEncoderRanker then returns probabilities by default."
)

# `fitting.FIT_METHODS`, spelled out so that `rerank --help` imports neither numpy nor the ranker (a test keeps them
# equal).
METHOD_CHOICES: tuple[str, ...] = ("auto", "platt", "isotonic")
# Passed to calibrate(...) and as its ranker_options as they were parsed.
_CALIBRATE_OPTIONS = (
    "method",
    "output",
    "corpus",
    "split",
    "relevant_from",
    "held_out_fraction",
    "held_out_data",
    "seed",
)
_RANKER_OPTIONS = ("max_length", "aggregation", "backend", "precision", "truncation", "batch_size")


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the `calibrate` sub-command."""
    parser = add_command(subparsers, "calibrate", _calibrate, _CALIBRATE_SUMMARY, _CALIBRATE_DESCRIPTION)
    parser.add_argument("--model", required=True, help="the model directory (calibration.json is written into it)")
    add_collection_arguments(
        parser,
        "--data",
        help="judged data: a pairs/lists/triplets file (.jsonl, .csv, .tsv), a BEIR directory, or judged rows "
        "(query, document, grade) with --corpus",
        corpus_help="the corpus that judged rows refer to (.jsonl or .csv)",
        split_help="the qrels split of a BEIR directory (default: test)",
        split_default="test",
    )
    parser.add_argument(
        "--relevant-from",
        type=float,
        help="the lowest grade that counts as relevant (default: 1 for integer grades, 0.5 for fractional labels)",
    )
    parser.add_argument(
        "--method",
        choices=METHOD_CHOICES,
        default="auto",
        help="platt (a sigmoid, 2 parameters), isotonic (a monotonic step function, needs more data) or auto (the "
        "lower cross-validated Brier score; default)",
    )
    held_out = parser.add_mutually_exclusive_group()
    held_out.add_argument(
        "--held-out-fraction",
        type=float,
        default=0.3,
        help="share of the queries kept apart to measure on, never fitted on (default 0.3)",
    )
    held_out.add_argument("--held-out-data", help="separate judged data to measure on (then all of --data is fitted)")
    parser.add_argument("--output", help="where the reliability diagram goes (default: the model directory)")
    parser.add_argument("--seed", type=int, default=42, help="seeds the held-out split")
    scoring = parser.add_argument_group("scoring (as the ranker will run)")
    add_scoring_arguments(scoring, ["max_length"])
    scoring.add_argument(
        "--split-long-documents",
        action="store_true",
        help="score long documents by passages: the parent's aggregated logit is calibrated",
    )
    scoring.add_argument("--aggregation", help="passage scores -> document score: max (default), mean, ...")
    notes = {"precision": "What the model computes in (default here: fp32, the reference)"}
    add_scoring_arguments(scoring, ["backend", "precision", "truncation", "batch_size"], notes=notes)


def _calibrate(args: argparse.Namespace) -> int:
    from crossencoder_haystack.calibration import calibrate

    calibrate(
        args.model,
        args.data,
        **options_of(args, _CALIBRATE_OPTIONS),
        ranker_options=options_of(args, _RANKER_OPTIONS) | {"split_long_documents": args.split_long_documents or None},
    )
    return 0

"""`rerank calibrate`: parses arguments and calls `crossencoder_haystack.calibration.calibrate(...)`."""

import argparse

from crossencoder_haystack.serving.command import PRECISION_CHOICES, TRUNCATION_CHOICES

# `fitting.FIT_METHODS`, spelled out so that `rerank --help` imports neither numpy nor the ranker (a test keeps them
# equal).
METHOD_CHOICES: tuple[str, ...] = ("auto", "platt", "isotonic")


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the `calibrate` sub-command."""
    parser = subparsers.add_parser(
        "calibrate",
        help="Fit a mapping from a model's scores to P(relevant) on judged data and store it with the model.",
        description=(
            "Score judged pairs with the model, fit a monotonic mapping from its raw logit to the probability of "
            "relevance (Platt or isotonic) on part of the queries, and report ECE, Brier score and a reliability "
            "diagram before and after on the held-out rest. The mapping is written into the model directory "
            "(calibration.json) and its model card; CrossEncoderRanker then returns probabilities by default."
        ),
    )
    parser.add_argument("--model", required=True, help="the model directory (calibration.json is written into it)")
    parser.add_argument(
        "--data",
        required=True,
        help="judged data: a pairs/lists/triplets file (.jsonl, .csv, .tsv), a BEIR directory, or judged rows "
        "(query, document, grade) with --corpus",
    )
    parser.add_argument("--corpus", help="the corpus that judged rows refer to (.jsonl or .csv)")
    parser.add_argument("--split", default="test", help="the qrels split of a BEIR directory (default: test)")
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
    scoring.add_argument("--max-length", type=int, help="max tokens of query + document")
    scoring.add_argument(
        "--split-long-documents",
        action="store_true",
        help="score long documents by passages: the parent's aggregated logit is calibrated",
    )
    scoring.add_argument("--aggregation", help="passage scores -> document score: max (default), mean, ...")
    scoring.add_argument("--backend", choices=("torch", "onnx", "openvino"))
    scoring.add_argument("--precision", choices=PRECISION_CHOICES, help="default fp32, the reference")
    scoring.add_argument("--truncation", choices=TRUNCATION_CHOICES)
    scoring.add_argument("--batch-size", type=int)
    parser.set_defaults(func=_calibrate)


def _calibrate(args: argparse.Namespace) -> int:
    from crossencoder_haystack.calibration import calibrate

    calibrate(
        args.model,
        args.data,
        method=args.method,
        output=args.output,
        corpus=args.corpus,
        split=args.split,
        relevant_from=args.relevant_from,
        held_out_fraction=args.held_out_fraction,
        held_out_data=args.held_out_data,
        seed=args.seed,
        ranker_options={
            "max_length": args.max_length,
            "split_long_documents": args.split_long_documents or None,
            "aggregation": args.aggregation,
            "backend": args.backend,
            "precision": args.precision,
            "truncation": args.truncation,
            "batch_size": args.batch_size,
        },
    )
    return 0

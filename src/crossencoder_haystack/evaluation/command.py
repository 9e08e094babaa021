"""`rerank evaluate`: parses arguments and calls `crossencoder_haystack.evaluation.evaluate(...)`."""

import argparse
import sys

from crossencoder_haystack.cli_arguments import add_collection_arguments, add_command, add_scoring_arguments
from crossencoder_haystack.distributed.options import add_engine_arguments, ray_options

_EVALUATE_SUMMARY = "Measure quality and latency of retrieve -> rerank for several rankers and K."
_EVALUATE_DESCRIPTION = (
    "Retrieve candidates with a first stage, rerank them with each --ranker at each --k, and report "
    "nDCG@10, MRR@10, MAP, first-stage Recall@K, paired significance and latency per query. Scores are "
    "cached on disk, so a repeated or interrupted run resumes. Ctrl-C prints the table so far."
)

EXIT_INTERRUPTED = 130
# The normalisations of `haystack_integrations.components.rankers.crossencoder.fusion.FUSIONS`, spelled out here
# because importing that package takes seconds and `rerank --help` should not (a test keeps the two equal).
FUSION_CHOICES: tuple[str, ...] = ("minmax", "zscore", "rrf")


def _ks(text: str) -> list[int]:
    try:
        ks = [int(part) for part in text.split(",") if part.strip()]
    except ValueError as error:
        msg = f"--k takes comma-separated positive integers such as 50,100,150, got {text!r}"
        raise argparse.ArgumentTypeError(msg) from error
    if not ks or any(k <= 0 for k in ks):
        msg = f"--k takes comma-separated positive integers such as 50,100,150, got {text!r}"
        raise argparse.ArgumentTypeError(msg)
    return ks


def _fusion_weights(text: str) -> list[float]:
    msg = f"--fusion-weights takes comma-separated numbers in [0, 1] such as 0,0.1,0.2,0.3, got {text!r}"
    try:
        weights = [float(part) for part in text.split(",") if part.strip()]
    except ValueError as error:
        raise argparse.ArgumentTypeError(msg) from error
    if not weights or any(not 0.0 <= weight <= 1.0 for weight in weights):
        raise argparse.ArgumentTypeError(msg)
    return weights


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the `evaluate` sub-command."""
    parser = add_command(subparsers, "evaluate", _evaluate, _EVALUATE_SUMMARY, _EVALUATE_DESCRIPTION)
    _add_data_arguments(parser.add_argument_group("data"))
    stages = parser.add_argument_group("first stage and rankers")
    _add_stage_arguments(stages)
    _add_ranker_options(stages)
    _add_fusion_and_cascade_arguments(stages)
    _add_measurement_arguments(parser.add_argument_group("measurement and output"))
    add_engine_arguments(parser)


def _add_data_arguments(data: argparse._ArgumentGroup) -> None:
    add_collection_arguments(
        data,
        "--dataset",
        help="A BEIR directory (corpus.jsonl, queries.jsonl, qrels/<split>.tsv) or a CSV/JSONL of judged rows "
        "(query, document, grade) together with --corpus.",
        corpus_help="The corpus file (.jsonl or .csv) that judged rows refer to.",
        split_help="The BEIR qrels split (default: test).",
        split_default="test",
    )
    data.add_argument("--max-queries", type=int, help="Evaluate a seeded sample of this many judged queries.")


def _add_stage_arguments(stages: argparse._ArgumentGroup) -> None:
    """The first stage, the rankers and K."""
    stages.add_argument(
        "--first-stage",
        default="bm25",
        help="bm25 (default), embedding, or a TREC run file of candidates (qid Q0 docid rank score tag).",
    )
    stages.add_argument(
        "--embedding-model",
        help="A local sentence-transformers model for --first-stage embedding (default: bundled all-MiniLM-L6-v2).",
    )
    stages.add_argument(
        "--ranker",
        action="append",
        dest="rankers",
        metavar="RANKER",
        help="Repeatable: a cross-encoder model directory, a Haystack YAML file with a ranker component or "
        "pipeline (file.yaml#component to pick one), or none (first stage only). Default: none.",
    )
    stages.add_argument("--k", type=_ks, default=[50, 100, 150], help="Candidates to rerank, e.g. 50,100,150.")


def _add_ranker_options(stages: argparse._ArgumentGroup) -> None:
    """The options of model-directory rankers (`RankerOptions`)."""
    stages.add_argument(
        "--split-long-documents",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="Model-directory rankers: score long documents by passages.",
    )
    stages.add_argument("--aggregation", help="Model-directory rankers: max, mean, first, sum or topN_mean.")
    names = ["batch_size", "max_length", "backend", "num_threads", "precision", "truncation"]
    add_scoring_arguments(stages, names, prefix="Model-directory rankers. ")


def _add_fusion_and_cascade_arguments(stages: argparse._ArgumentGroup) -> None:
    """Extra rows from the same scores: fused with the first stage, or distilled students in cascades."""
    stages.add_argument(
        "--fusion-weights",
        type=_fusion_weights,
        metavar="ALPHAS",
        help="Also report every ranker at every K fused with the first stage's scores, one row per weight α, e.g. "
        "0,0.1,0.2,0.3,0.4,0.5,0.6,0.7,0.8,0.9,1: (1-α)·rerank + α·first stage, after --fusion normalisation. "
        "α=0 is the ranker alone, α=1 the first stage's order. Uses the same scores: no extra model time.",
    )
    stages.add_argument(
        "--fusion",
        choices=FUSION_CHOICES,
        default="minmax",
        help="How scores are normalised per query before fusing: minmax (default), zscore or rrf (reciprocal rank).",
    )
    stages.add_argument(
        "--cascade-keep",
        type=_cascade_keeps,
        metavar="NS",
        help="Also rank with each --ranker made by `rerank distill` in a cascade with its teacher (the student ranks "
        "every candidate, the teacher re-ranks its best N): one row per N, e.g. 10,20,30,50.",
    )
    stages.add_argument("--cascade-teacher", help="The cascades' teacher (default: the one each student records).")


def _add_measurement_arguments(run: argparse._ArgumentGroup) -> None:
    run.add_argument(
        "--latency-queries",
        type=int,
        default=10,
        help="Time each ranker at each K on a seeded sample of this many queries (default 10; 0 = no timing).",
    )
    run.add_argument(
        "--stat-test",
        choices=("student", "fisher"),
        default="student",
        help="Paired significance test: student (two-sided paired t-test, default, reproducible) or fisher "
        "(randomization test; ranx's implementation gives slightly different p-values from run to run).",
    )
    run.add_argument("--max-p", type=float, default=0.05, help="Significance level (default 0.05).")
    run.add_argument("--seed", type=int, default=42, help="Seeds the query samples and the randomization test.")
    run.add_argument("--output", help="Write results.json, TREC run files and quality_vs_latency.png here.")
    run.add_argument("--cache-dir", help="Where scores and corpus embeddings are cached (default: user cache).")
    run.add_argument("--no-progress", action="store_true", help="Do not show the progress bar.")


def _cascade_keeps(text: str) -> list[int]:
    try:
        keeps = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        keeps = []
    if not keeps or any(keep <= 0 for keep in keeps):
        msg = f"--cascade-keep takes comma-separated positive integers such as 10,20,30,50, got {text!r}"
        raise argparse.ArgumentTypeError(msg)
    return keeps


def _rankers_with_cascades(args: argparse.Namespace) -> list:
    """The --ranker values, plus a cascade per distilled student and --cascade-keep value."""
    rankers = list(args.rankers or ["none"])
    if not args.cascade_keep:
        return rankers
    from crossencoder_haystack.evaluation.cascades import cascade_rankers

    names = ("split_long_documents", "aggregation", "batch_size", "max_length", "backend", "num_threads")
    options = {name: getattr(args, name) for name in names} | _ranker_options(args)
    return rankers + cascade_rankers(rankers, args.cascade_keep, options, args.cascade_teacher)


def _ranker_options(args: argparse.Namespace) -> dict[str, str]:
    """`--precision` and `--truncation` when given; left out, the rankers keep their defaults."""
    options = {"precision": args.precision, "truncation": args.truncation}
    return {name: value for name, value in options.items() if value is not None}


def _evaluate(args: argparse.Namespace) -> int:
    from crossencoder_haystack.evaluation import EvaluationInterrupted, evaluate, print_table, write_outputs

    engine_options = ray_options(args)
    if args.engine == "ray":  # the rankers score on Ray; the same numbers and files
        from crossencoder_haystack.distributed import evaluate
    try:
        result = evaluate(
            args.dataset,
            split=args.split,
            corpus=args.corpus,
            first_stage=args.first_stage,
            rankers=_rankers_with_cascades(args),
            ks=args.k,
            max_queries=args.max_queries,
            latency_queries=args.latency_queries,
            cache_dir=args.cache_dir,
            seed=args.seed,
            embedding_model=args.embedding_model,
            split_long_documents=args.split_long_documents,
            aggregation=args.aggregation,
            batch_size=args.batch_size,
            max_length=args.max_length,
            backend=args.backend,
            num_threads=args.num_threads,
            stat_test=args.stat_test,
            max_p=args.max_p,
            show_progress=not args.no_progress,
            fusion_weights=args.fusion_weights,
            fusion=args.fusion,
            **_ranker_options(args),
            **engine_options,
        )
    except EvaluationInterrupted as interrupted:
        if args.output:
            write_outputs(interrupted.partial, args.output)
        print_table(interrupted.partial)
        print("Interrupted: the table covers the queries completed so far.", file=sys.stderr)
        return EXIT_INTERRUPTED
    # Other errors reach `crossencoder_haystack.cli.main`, which prints expected ones as one line (or the
    # traceback with --debug).
    if args.output:
        write_outputs(result, args.output)
    print_table(result)
    if args.output:
        print(f"Wrote results.json, run files and the plot to {args.output} ({result.wall_seconds:.0f} s in all).")
    return 0

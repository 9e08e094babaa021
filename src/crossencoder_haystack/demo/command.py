"""`rerank demo`: parses arguments and calls `crossencoder_haystack.demo.run_demo(...)`."""

import argparse
import sys

from crossencoder_haystack.cli_arguments import add_command, add_scoring_arguments, options_of

_DEMO_SUMMARY = "See reranking at work, offline: recruiter queries over 90 Turkish/English CVs."
_DEMO_DESCRIPTION = (
    "Index the packaged HR candidate-search set (90 fictional CVs, Turkish and English), run recruiter "
    "queries through first-stage retrieval -> passage splitting -> reranking, and show per query the "
    "reranked candidates, their best-matching passage and how far each moved. Without options it runs the "
    "14 held-out queries and ends with nDCG@10 / MRR@10 of BM25 alone, the first stage and the reranked "
    "lists. With the `multilingual` extra it retrieves with multilingual-e5-small fused with BM25, else with "
    "the bundled all-MiniLM-L6-v2. Without a cached or reachable reranker, it fine-tunes a small starter "
    "model once (a few minutes) and caches it."
)

EMBEDDERS = ("auto", "minilm", "multilingual")  # model_choice.EMBEDDERS, kept literal so `rerank --help` stays light


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value <= 0:
        msg = f"expected a positive integer such as 5, got {text!r}"
        raise argparse.ArgumentTypeError(msg)
    return value


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the `demo` sub-command."""
    parser = add_command(subparsers, "demo", _demo, _DEMO_SUMMARY, _DEMO_DESCRIPTION)
    parser.add_argument(
        "--query",
        action="append",
        dest="queries",
        metavar="TEXT",
        help="Run this query instead of the held-out ones (repeatable).",
    )
    parser.add_argument(
        "-i", "--interactive", action="store_true", help="Type queries at a prompt (empty line or 'quit' ends)."
    )
    parser.add_argument(
        "--model",
        metavar="PATH_OR_ID",
        help="The reranker: a local directory or a Hugging Face hub id. Default: the cached starter model, else "
        "(MiniLM retrieval) cross-encoder/ms-marco-MiniLM-L6-v2 if cached or reachable, else a starter model built "
        "once.",
    )
    parser.add_argument(
        "--embedder",
        choices=EMBEDDERS,
        default="auto",
        help="The first stage's embedding model. Default auto: multilingual-e5-small fused with BM25 when the "
        "`multilingual` extra is installed, else the bundled all-MiniLM-L6-v2.",
    )
    parser.add_argument("--top-k", type=_positive_int, default=5, help="Candidates shown per query (default 5).")
    parser.add_argument(
        "--first-stage-k",
        type=_positive_int,
        default=100,
        help="CVs the first stage passes to the reranker (default 100: all 90).",
    )
    parser.add_argument("--no-eval", action="store_true", help="Skip the final nDCG@10 / MRR@10 table.")
    add_scoring_arguments(parser, ["precision"])
    parser.add_argument("--cache-dir", help="Where models and CV embeddings are cached (default: user cache).")


def _ranker_options(args: argparse.Namespace) -> dict[str, str]:
    """`--precision` when given; left out, the ranker's default (auto) applies."""
    return {} if args.precision is None else {"precision": args.precision}


def _demo(args: argparse.Namespace) -> int:
    from crossencoder_haystack.demo import run_demo

    try:
        run_demo(
            args.queries,
            evaluate=not args.no_eval,
            **options_of(args, ("model", "embedder", "interactive", "top_k", "first_stage_k", "cache_dir")),
            **_ranker_options(args),  # type: ignore[arg-type]  # argparse strings, checked by run_demo
        )
    except (ValueError, OSError) as error:  # OSError: a model or tokenizer that cannot be loaded
        print(f"rerank demo: error: {error}", file=sys.stderr)
        return 2
    return 0

"""`rerank label`: judge first-stage candidates in a local web page, or (`--export`) turn the judgements into data."""

import argparse
from pathlib import Path

from crossencoder_haystack.cli_arguments import add_collection_arguments, add_command, add_scoring_arguments, options_of

_LABEL_SUMMARY = (
    "Judge each query's top candidates (0-3) in a local web page; --export turns the log into training data."
)
_LABEL_DESCRIPTION = (
    "Serve a private labelling page on 127.0.0.1 (the printed URL carries an access token): one query at a "
    "time with its first-stage top N, judged 0 not relevant, 1 partly, 2 relevant, 3 highly relevant by "
    "mouse or keyboard. Every judgement is appended to --output (JSONL) and on disk before the page confirms "
    "it; running the command again resumes. With --export, write the judgements as graded lists or pairs "
    "for `rerank train`, or as BEIR qrels for `rerank evaluate`."
)

# The values of `labelling.candidates.RETRIEVERS` and `labelling.export.EXPORT_FORMATS`, spelled out so that
# `rerank --help` imports neither (a test keeps them equal).
RETRIEVER_CHOICES: tuple[str, ...] = ("embedding", "bm25")
EXPORT_CHOICES: tuple[str, ...] = ("lists", "pairs", "qrels")
# Passed to label(...) as they were parsed.
_LABEL_OPTIONS = (
    "output",
    "split",
    "retriever",
    "embedding_model",
    "top_n",
    "model",
    "max_length",
    "host",
    "port",
    "cache_dir",
)


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the `label` sub-command."""
    parser = add_command(subparsers, "label", _label, _LABEL_SUMMARY, _LABEL_DESCRIPTION)
    data = parser.add_argument_group("data")
    add_collection_arguments(
        data,
        "--queries",
        help="A BEIR directory, a queries.jsonl, a CSV/JSONL with a 'query' column (e.g. judged rows or training "
        "data) or a .txt file with one query per line.",
        corpus_help="The corpus (.jsonl with _id, title, text, or .csv); not needed for a BEIR directory.",
        split_help="A BEIR directory's qrels split: label (or export) only its queries.",
        required=False,  # not for --export
    )
    data.add_argument(
        "--output", required=True, help="The labels log (JSONL, append-only); an existing one is resumed."
    )

    labelling = parser.add_argument_group("labelling")
    labelling.add_argument(
        "--retriever",
        choices=RETRIEVER_CHOICES,
        default="embedding",
        help="The first stage: embedding (the bundled all-MiniLM-L6-v2, default) or bm25.",
    )
    labelling.add_argument("--embedding-model", help="A local sentence-transformers model for --retriever embedding.")
    labelling.add_argument(
        "--top-n", type=int, default=20, help="Candidates to judge per query (default: %(default)s)."
    )
    labelling.add_argument(
        "--model",
        help="A reranker directory: marks each candidate's best passage (PassageSplitter + CrossEncoderRanker) and "
        "shows what the model says, in a column the page can hide and as a 'disagreement first' order.",
    )
    add_scoring_arguments(labelling, ["max_length"])
    labelling.add_argument("--host", default="127.0.0.1", help="Interface to listen on (default: %(default)s).")
    labelling.add_argument("--port", type=int, default=0, help="TCP port; 0 (default) picks a free one.")
    labelling.add_argument("--open", action="store_true", help="Open the page in the default browser.")
    labelling.add_argument("--cache-dir", help="Where corpus embeddings are cached (default: the user cache).")

    export = parser.add_argument_group("export")
    export.add_argument(
        "--export",
        choices=EXPORT_CHOICES,
        help="Write the judgements of --output instead of labelling: lists (graded, for LambdaLoss) or pairs for "
        "rerank train, or qrels for rerank evaluate.",
    )
    export.add_argument(
        "--to",
        help="The export's output: a .jsonl for lists and pairs; for qrels a .tsv file, or a directory to get a BEIR "
        "folder (corpus.jsonl, queries.jsonl, qrels/<split>.tsv, split default test).",
    )
    export.add_argument(
        "--unjudged-as-negatives",
        action="store_true",
        help="Also export every candidate shown for a judged query but not judged, as grade 0 (the report's 'the "
        "rest are negatives'); off by default.",
    )


def _label(args: argparse.Namespace) -> int:
    if args.export is not None:
        return _export(args)
    if args.to is not None or args.unjudged_as_negatives:
        msg = "--to and --unjudged-as-negatives only go with --export lists|pairs|qrels."
        raise ValueError(msg)
    if args.queries is None:
        msg = "--queries is required to label (a BEIR directory, a queries file or a .txt with one query per line)."
        raise ValueError(msg)
    from crossencoder_haystack.labelling.server import label

    label(
        args.queries,
        args.corpus,
        open_browser=args.open,
        **options_of(args, _LABEL_OPTIONS),
    )
    return 0


def _export(args: argparse.Namespace) -> int:
    from crossencoder_haystack.labelling.export import export_labels

    if args.to is None:
        msg = "--export needs --to: the file (or, for qrels, a directory) to write."
        raise ValueError(msg)
    corpus = args.corpus
    if corpus is None and args.queries is not None and Path(args.queries).is_dir():
        corpus = Path(args.queries) / "corpus.jsonl"
    summary = export_labels(
        args.output,
        args.to,
        export_format=args.export,
        corpus=corpus,
        unjudged_as_negatives=args.unjudged_as_negatives,
        split=args.split or "test",
    )
    added = f", {summary.negatives_added} unjudged candidates as grade 0" if args.unjudged_as_negatives else ""
    print(
        f"Wrote {summary.rows} {args.export} rows to {summary.path}: {summary.queries} queries, "
        f"{summary.judged} judged pairs{added}."
    )
    if summary.first_stage_path is not None:
        print(f"First-stage candidates for rerank train's fusion tuning: {summary.first_stage_path}")
    return 0

"""What the example scripts share: the start of their command line and the sample documents of documents.jsonl."""

import argparse
import json
from pathlib import Path
from typing import Any

from haystack import Document

from crossencoder_haystack.pipelines import DEFAULT_RANKER_MODEL, build_indexing_pipeline

HERE = Path(__file__).resolve().parent


def argument_parser(
    description: str, *, top_k: int, ranker_model_help: str = "cross-encoder directory or hub id"
) -> argparse.ArgumentParser:
    """A parser for the query, `--ranker-model` and `--top-k`; each script adds its own options."""
    parser = argparse.ArgumentParser(description=description, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("query")
    parser.add_argument("--ranker-model", default=DEFAULT_RANKER_MODEL, help=ranker_model_help)
    parser.add_argument("--top-k", type=int, default=top_k)
    return parser


def index_samples(document_store: Any, *args: Any, **kwargs: Any) -> None:
    """Embeds and writes documents.jsonl with `build_indexing_pipeline(document_store, *args, **kwargs)`."""
    lines = (HERE / "documents.jsonl").read_text(encoding="utf-8").splitlines()
    documents = [Document(content=row["content"], meta={"title": row["title"]}) for row in map(json.loads, lines)]
    build_indexing_pipeline(document_store, *args, **kwargs).run({"embedder": {"documents": documents}})

"""Dataset and run-file formats: the one place that reads retrieval test collections and TREC runs.

- `load_beir(path, split)`: a BEIR directory (corpus.jsonl, queries.jsonl, qrels/<split>.tsv);
- `load_judged_rows(path, corpus)`: a CSV/JSONL of `query, document, grade` rows plus a corpus file;
- `load_dataset(path, split, corpus)`: either of the two, chosen by whether `path` is a directory;
- `write_trec_run` / `read_trec_run`: TREC run files (`qid Q0 docid rank score tag`).

All loaders return a `BeirDataset(corpus, queries, qrels)`.
"""

from pathlib import Path

from crossencoder_haystack.data.beir import (
    BeirDataset,
    CorpusDocument,
    Qrels,
    available_splits,
    document_text,
    load_beir,
    read_corpus,
    read_qrels,
    read_queries,
)
from crossencoder_haystack.data.judged_rows import load_judged_rows, read_corpus_file
from crossencoder_haystack.data.trec import Ranking, TrecRun, read_trec_run, write_trec_run


def load_dataset(path: str | Path, split: str = "test", corpus: str | Path | None = None) -> BeirDataset:
    """
    Load a test collection: a BEIR directory, or a judged-rows file plus its corpus.

    :param path: A BEIR directory, or a `.csv`/`.tsv`/`.jsonl` file of `query, document, grade` rows.
    :param split: The qrels split of a BEIR directory (ignored for judged rows).
    :param corpus: The corpus file that judged rows refer to (required for them, ignored for a directory).
    :raises ValueError: If `path` is a judgements file and no `corpus` is given.
    """
    path = Path(path).expanduser()
    if not path.exists():
        msg = f"dataset {str(path)!r} does not exist. Pass a BEIR directory or a CSV/JSONL of judged rows."
        raise FileNotFoundError(msg)
    if path.is_dir():
        return load_beir(path, split)
    if corpus is None:
        msg = (
            f"{path} is not a BEIR directory, so it is read as judged rows (query, document, grade), which need "
            "a corpus: pass corpus='corpus.jsonl' (or --corpus on the command line)."
        )
        raise ValueError(msg)
    return load_judged_rows(path, corpus)


__all__ = [
    "BeirDataset",
    "CorpusDocument",
    "Qrels",
    "Ranking",
    "TrecRun",
    "available_splits",
    "document_text",
    "load_beir",
    "load_dataset",
    "load_judged_rows",
    "read_corpus",
    "read_corpus_file",
    "read_qrels",
    "read_queries",
    "read_trec_run",
    "write_trec_run",
]

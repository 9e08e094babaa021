"""What `rerank label` labels: queries and the corpus their candidates come from, in the package's data formats.

`--queries` is one of
- a BEIR directory (`queries.jsonl`, `corpus.jsonl`, optional `qrels/`): every query, or with `split` only those
  that `qrels/<split>.tsv` names; its `corpus.jsonl` is the corpus unless `corpus` says otherwise;
- a BEIR `queries.jsonl` (`_id`, `text`);
- a file with a `query` column (`.jsonl`, `.csv`, `.tsv`), such as judged rows or pairs/triplets/lists training
  data: each distinct query once, its id from a `query_id` column or else `q1`, `q2`, ... in order of appearance;
- a `.txt` file: one query per line, ids `q1`, `q2`, ...

`--corpus` is a BEIR `corpus.jsonl` or a `.csv`/`.tsv` with `_id`/`id`, `text` and optional `title` (read by
`crossencoder_haystack.data`).
"""

import csv
from collections.abc import Iterator, Sized
from pathlib import Path
from typing import Any

from crossencoder_haystack.data import BeirDataset, read_corpus_file, read_qrels, read_queries
from crossencoder_haystack.data.beir import read_jsonl

_QUERY_FILE_SUFFIXES = (".jsonl", ".csv", ".tsv", ".txt")


def load_labelling_input(
    queries: str | Path, corpus: str | Path | None = None, split: str | None = None
) -> BeirDataset:
    """
    The queries to label and the corpus, as a `BeirDataset` whose qrels are empty.

    :param queries: A BEIR directory, a `queries.jsonl`, a file with a `query` column, or a `.txt` of queries.
    :param corpus: The corpus file; may be left out for a BEIR directory (its `corpus.jsonl` is used).
    :param split: For a BEIR directory: label only the queries `qrels/<split>.tsv` names; None labels them all.
    :raises FileNotFoundError: If a file is missing.
    :raises ValueError: If a file is malformed (file:line), there are no queries, or the corpus is missing.
    """
    path = Path(queries).expanduser()
    if not path.exists():
        msg = (
            f"queries {str(path)!r} do not exist. Pass a BEIR directory, a queries.jsonl, a CSV/JSONL with a "
            "'query' column or a .txt file."
        )
        raise FileNotFoundError(msg)
    if path.is_dir():
        texts = _beir_queries(path, split)
        corpus = corpus if corpus is not None else path / "corpus.jsonl"
    else:
        if split is not None:
            msg = f"split={split!r} only applies to a BEIR directory; {path} is a file. Leave --split out."
            raise ValueError(msg)
        texts = _file_queries(path)
    _require_some(texts, f"{path} holds no queries to label.")
    if corpus is None:
        msg = f"{path} is a queries file, so the corpus must be given: pass corpus='corpus.jsonl' (--corpus)."
        raise ValueError(msg)
    documents = read_corpus_file(corpus)
    _require_some(documents, f"the corpus {corpus} holds no documents.")
    return BeirDataset(corpus=documents, queries=texts, qrels={}, name=path.stem, source=str(path))


def _require_some(items: Sized, msg: str) -> None:
    if not items:
        raise ValueError(msg)


def _beir_queries(root: Path, split: str | None) -> dict[str, str]:
    if not (root / "queries.jsonl").is_file():
        msg = f"{root} has no queries.jsonl; a BEIR directory holds corpus.jsonl, queries.jsonl and qrels/<split>.tsv."
        raise FileNotFoundError(msg)
    texts = read_queries(root / "queries.jsonl")
    if split is None:
        return texts
    qrels_path = root / "qrels" / f"{split}.tsv"
    if not qrels_path.is_file():
        splits = sorted(file.stem for file in (root / "qrels").glob("*.tsv")) if (root / "qrels").is_dir() else []
        msg = f"{root} has no qrels/{split}.tsv; pass split as one of {splits} or leave it out to label every query."
        raise FileNotFoundError(msg)
    return {query_id: texts[query_id] for query_id in read_qrels(qrels_path) if query_id in texts}


def _file_queries(path: Path) -> dict[str, str]:
    suffix = path.suffix.lower()
    if suffix not in _QUERY_FILE_SUFFIXES:
        msg = f"{path}: queries must be a BEIR directory or a {', '.join(_QUERY_FILE_SUFFIXES)} file."
        raise ValueError(msg)
    if suffix == ".txt":
        lines = path.read_text(encoding="utf-8-sig").splitlines()
        return _numbered(line.strip() for line in lines if line.strip())
    texts: dict[str, str] = {}
    numbered: dict[str, str] = {}
    for number, row in _records(path):
        where = f"{path}:{number}"
        if isinstance(row.get("query"), str):
            text, query_id = row["query"].strip(), row.get("query_id")
        elif isinstance(row.get("text"), str) and row.get("_id", row.get("id")) not in (None, ""):
            text, query_id = row["text"].strip(), row.get("_id", row.get("id"))  # BEIR queries
        else:
            msg = f"{where}: expected a 'query' text (with an optional 'query_id') or BEIR '_id' and 'text'."
            raise ValueError(msg)
        if not text:
            msg = f"{where}: the query text is empty."
            raise ValueError(msg)
        if query_id in (None, ""):
            query_id = numbered.setdefault(text, f"q{len(numbered) + 1}")
        _add(texts, str(query_id), text, where)
    return texts


def _add(texts: dict[str, str], query_id: str, text: str, where: str) -> None:
    if texts.setdefault(query_id, text) != text:
        msg = f"{where}: query id {query_id!r} already names another query ({texts[query_id]!r}); ids must be unique."
        raise ValueError(msg)


def _numbered(texts: Iterator[str]) -> dict[str, str]:
    return {f"q{number}": text for number, text in enumerate(dict.fromkeys(texts), start=1)}


def _records(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    if path.suffix.lower() == ".jsonl":
        yield from read_jsonl(path)
        return
    delimiter = "\t" if path.suffix.lower() == ".tsv" else ","
    with path.open(encoding="utf-8-sig", newline="") as handle:
        reader = csv.DictReader(handle, delimiter=delimiter)
        for row in reader:
            yield reader.line_num, row

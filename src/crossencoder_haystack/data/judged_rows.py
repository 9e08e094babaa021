"""Judged rows: the simple alternative to the BEIR layout, one relevance judgement per row plus a corpus file.

The judgements file is a CSV (with a header row) or a JSONL file whose rows have
- `query`: the query text (rows with the same text belong to one query; an optional `query_id` column names it,
  otherwise queries are numbered `q1`, `q2`, ... in order of first appearance);
- `document`: the id of a document in the corpus file (`document_id` and `doc_id` are accepted too);
- `grade`: an integer relevance grade, 0 = not relevant (binary 0/1 or graded; `label` and `score` are accepted).

The corpus file is a BEIR `corpus.jsonl` (`_id`, `title`, `text`) or a CSV with `_id` (or `id`), `text` and an
optional `title` column.

CSV/TSV files may start with a UTF-8 byte order mark (as Excel writes them). A row with more fields than the header
is an error naming its file and line: an unquoted comma in a text would otherwise shift or drop a value silently.
"""

import csv
from collections.abc import Iterator
from pathlib import Path
from typing import Any, cast

from crossencoder_haystack.data.beir import (
    BeirDataset,
    CorpusDocument,
    Qrels,
    corpus_document,
    parse_grade,
    read_corpus,
    read_jsonl,
)

_DOCUMENT_COLUMNS = ("document", "document_id", "doc_id")
_GRADE_COLUMNS = ("grade", "label", "score")


def _rows(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    if path.suffix.lower() == ".jsonl":
        yield from read_jsonl(path)
        return
    if path.suffix.lower() not in (".csv", ".tsv"):
        msg = f"{path}: judged rows must be a .csv, .tsv or .jsonl file."
        raise ValueError(msg)
    delimiter = "\t" if path.suffix.lower() == ".tsv" else ","
    # utf-8-sig: a byte order mark would otherwise become part of the first column's name.
    with path.open(encoding="utf-8-sig", newline="") as handle:
        reader = csv.DictReader(handle, delimiter=delimiter)
        for row in reader:
            # line_num is the row's last line (a quoted text may span lines).
            # typeshed types the restkey (None) entry as `str`; csv puts the surplus fields there as a list.
            extra = cast("list[str] | None", row.pop(None, None))
            if extra is not None:
                _raise_extra_fields(f"{path}:{reader.line_num}", extra, len(reader.fieldnames or ()), delimiter)
            yield reader.line_num, row


def _raise_extra_fields(where: str, extra: list[str], columns: int, delimiter: str) -> None:
    name = "tab" if delimiter == "\t" else repr(delimiter)
    msg = (
        f"{where}: the row has {columns + len(extra)} fields but the header has {columns} columns (extra: "
        f"{', '.join(map(repr, extra))}). Quote texts that contain a {name}, or remove the extra field."
    )
    raise ValueError(msg)


def _first(row: dict[str, Any], columns: tuple[str, ...]) -> Any:
    return next((row[column] for column in columns if row.get(column) not in (None, "")), None)


def read_corpus_file(path: str | Path) -> dict[str, CorpusDocument]:
    """Read a corpus from a BEIR-style `.jsonl` or a `.csv`/`.tsv` with `_id`/`id`, `text` and optional `title`."""
    path = Path(path).expanduser()
    if not path.is_file():
        msg = f"corpus file {str(path)!r} does not exist. Pass a corpus.jsonl (_id, title, text) or a CSV (id, text)."
        raise FileNotFoundError(msg)
    if path.suffix.lower() == ".jsonl":
        return read_corpus(path)
    corpus: dict[str, CorpusDocument] = {}
    for number, row in _rows(path):
        doc_id = _first(row, ("_id", "id"))
        if doc_id is None:
            msg = f"{path}:{number}: corpus row has no '_id' (or 'id') value."
            raise ValueError(msg)
        corpus[str(doc_id)] = corpus_document(row)
    return corpus


def load_judged_rows(path: str | Path, corpus: str | Path) -> BeirDataset:
    """
    Load a judgements file (`query, document, grade` rows) and the corpus its document ids refer to.

    :param path: The judgements, as `.csv`, `.tsv` or `.jsonl` (see the module docstring for the columns).
    :param corpus: The corpus file, `.jsonl` (BEIR) or `.csv`/`.tsv`.
    :raises FileNotFoundError: If a file does not exist.
    :raises ValueError: If a row lacks a column, has more fields than the header or has a non-integer grade (the
        message gives file and line).
    """
    path = Path(path).expanduser()
    if not path.is_file():
        msg = f"judgements file {str(path)!r} does not exist. Pass a CSV or JSONL with query, document, grade."
        raise FileNotFoundError(msg)
    queries: dict[str, str] = {}
    query_ids_by_text: dict[str, str] = {}
    qrels: Qrels = {}
    for number, row in _rows(path):
        where = f"{path}:{number}"
        text, doc_id, grade = row.get("query"), _first(row, _DOCUMENT_COLUMNS), _first(row, _GRADE_COLUMNS)
        if not isinstance(text, str) or not text.strip() or doc_id is None or grade is None:
            msg = f"{where}: each row needs 'query' (text), 'document' (a corpus id) and 'grade' (an integer)."
            raise ValueError(msg)
        query_id = row.get("query_id")
        if query_id in (None, ""):
            query_id = query_ids_by_text.setdefault(text, f"q{len(query_ids_by_text) + 1}")
        query_id = str(query_id)
        queries.setdefault(query_id, text)
        qrels.setdefault(query_id, {})[str(doc_id)] = parse_grade(str(grade), where)
    return BeirDataset(
        corpus=read_corpus_file(corpus),
        queries=queries,
        qrels=qrels,
        name=path.stem,
        source=str(path),
    )

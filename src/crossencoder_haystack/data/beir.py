"""BEIR-layout retrieval datasets: a corpus, the queries of one split and their graded relevance judgements.

Expects a directory holding
- `corpus.jsonl`: one JSON object per line, `{"_id": str, "title": str, "text": str, "metadata": {...}}`
  (`title` and `metadata` may be missing; `id` is accepted for `_id`);
- `queries.jsonl`: `{"_id": str, "text": str}` per line;
- `qrels/<split>.tsv`: `query-id<TAB>corpus-id<TAB>score` per line after an optional header, the score an integer
  grade (binary 0/1 or graded 0..n). TREC qrels lines (`query-id 0 corpus-id grade`) are read as well.

As BEIR's own loader does, a split's queries are those its qrels judge; `queries.jsonl` usually holds the queries
of every split.
"""

import json
import math
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypedDict


class CorpusDocument(TypedDict):
    """One corpus entry: its title (may be empty), its text and any other fields it came with."""

    title: str
    text: str
    metadata: dict[str, Any]


Qrels = dict[str, dict[str, int]]
"""Relevance judgements: query id -> {document id: grade}; a grade > 0 means relevant."""


@dataclass(frozen=True)
class BeirDataset:
    """
    A retrieval test collection: documents, queries and graded judgements.

    :param corpus: Document id -> `{"title", "text", "metadata"}`.
    :param queries: Query id -> query text (the split's queries).
    :param qrels: Query id -> {document id: grade}.
    :param name: A short name for reports (the directory or file name).
    """

    corpus: dict[str, CorpusDocument]
    queries: dict[str, str]
    qrels: Qrels
    name: str = ""
    source: str = field(default="", compare=False)

    def judged_query_ids(self) -> list[str]:
        """Ids of queries that have a text and at least one relevant (grade > 0) judgement, in qrels order."""
        return [
            query_id
            for query_id, judgements in self.qrels.items()
            if query_id in self.queries and any(grade > 0 for grade in judgements.values())
        ]

    def unjudged_query_ids(self) -> list[str]:
        """Ids of queries with a text but no relevant judgement (only grade-0 rows); evaluation skips them."""
        judged = set(self.judged_query_ids())
        return [query_id for query_id in self.queries if query_id not in judged]

    def queries_without_text(self) -> list[str]:
        """Ids that the qrels judge but that have no query text."""
        return [query_id for query_id in self.qrels if query_id not in self.queries]

    def missing_documents(self) -> dict[str, list[str]]:
        """Judged documents that are not in the corpus, per query id (they can never be retrieved)."""
        missing = {
            query_id: [doc_id for doc_id in judgements if doc_id not in self.corpus]
            for query_id, judgements in self.qrels.items()
        }
        return {query_id: doc_ids for query_id, doc_ids in missing.items() if doc_ids}


def document_text(document: CorpusDocument) -> str:
    """The text a retriever or ranker sees: title and text joined by a space (as the training data builds it)."""
    return f"{document['title']} {document['text']}".strip()


def jsonl_values(path: str | Path) -> Iterator[tuple[int, Any, json.JSONDecodeError | None]]:
    """
    Yield (line number, parsed value, None) for each non-blank line, or (line number, None, error) for a line that
    is not valid JSON: the one JSONL reader, for callers that raise on the first bad line and callers that collect
    every bad line (the training data).
    """
    with Path(path).open(encoding="utf-8-sig") as lines:
        for number, line in enumerate(lines, start=1):
            if not line.strip():
                continue
            try:
                value = json.loads(line)
            except json.JSONDecodeError as error:
                yield number, None, error
                continue
            yield number, value, None


def read_jsonl(path: str | Path) -> Iterator[tuple[int, dict[str, Any]]]:
    """Yield (line number, object) for each non-blank line; a line that is not a JSON object raises ValueError."""
    for number, record, error in jsonl_values(path):
        if error is not None:
            msg = f"{path}:{number}: not valid JSON ({error.msg})."
            raise ValueError(msg) from error
        if not isinstance(record, dict):
            msg = f"{path}:{number}: expected a JSON object, got {type(record).__name__}."
            raise ValueError(msg)
        yield number, record


def _record_id(record: dict[str, Any], path: str | Path, number: int, kind: str) -> str:
    record_id = record.get("_id", record.get("id"))
    if record_id is None or str(record_id) == "":
        msg = f"{path}:{number}: {kind} record has no '_id' (or 'id') field."
        raise ValueError(msg)
    return str(record_id)


def corpus_document(record: dict[str, Any]) -> CorpusDocument:
    """A corpus entry from a BEIR-style record (`title`, `text`, `metadata`; `content` is accepted for `text`)."""
    text = record.get("text", record.get("content"))
    metadata = record.get("metadata")
    return CorpusDocument(
        title=str(record.get("title") or ""),
        text="" if text is None else str(text),
        metadata=dict(metadata) if isinstance(metadata, dict) else {},
    )


def read_corpus(path: str | Path) -> dict[str, CorpusDocument]:
    """Read a BEIR `corpus.jsonl` into {document id: {"title", "text", "metadata"}}."""
    corpus: dict[str, CorpusDocument] = {}
    for number, record in read_jsonl(path):
        corpus[_record_id(record, path, number, "corpus")] = corpus_document(record)
    return corpus


def read_queries(path: str | Path) -> dict[str, str]:
    """Read a BEIR `queries.jsonl` into {query id: text}."""
    queries: dict[str, str] = {}
    for number, record in read_jsonl(path):
        text = record.get("text")
        if not isinstance(text, str):
            msg = f"{path}:{number}: query record has no 'text' string."
            raise ValueError(msg)
        queries[_record_id(record, path, number, "query")] = text
    return queries


def parse_grade(value: str, where: str) -> int:
    """An integer relevance grade from a qrels cell ("1", "2", "1.0"); anything else raises ValueError."""
    try:
        grade = float(value)
    except ValueError:
        grade = math.nan
    if not math.isfinite(grade) or grade != int(grade):
        msg = f"{where}: the relevance grade must be an integer (0 = not relevant), got {value!r}."
        raise ValueError(msg)
    return int(grade)


def read_qrels(path: str | Path) -> Qrels:
    """
    Read BEIR qrels (`query-id<TAB>corpus-id<TAB>score`, optional header) or TREC qrels (`qid 0 docid grade`).

    :returns: {query id: {document id: grade}} in file order.
    """
    qrels: Qrels = {}
    with Path(path).open(encoding="utf-8-sig") as lines:
        for number, line in enumerate(lines, start=1):
            fields = line.split("\t") if "\t" in line else line.split()
            fields = [cell.strip() for cell in fields]
            if not any(fields):
                continue
            if len(fields) == 4:
                query_id, _, doc_id, grade = fields
            elif len(fields) == 3:
                query_id, doc_id, grade = fields
            else:
                msg = f"{path}:{number}: expected 'query-id, corpus-id, score' (or TREC 'qid 0 docid grade')."
                raise ValueError(msg)
            if number == 1 and not _is_number(grade):
                continue  # header
            qrels.setdefault(query_id, {})[doc_id] = parse_grade(grade, f"{path}:{number}")
    return qrels


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def available_splits(path: str | Path) -> list[str]:
    """The splits a BEIR directory has qrels for (file names in `qrels/` without `.tsv`)."""
    qrels_dir = Path(path) / "qrels"
    return sorted(file.stem for file in qrels_dir.glob("*.tsv")) if qrels_dir.is_dir() else []


def load_beir(path: str | Path, split: str = "test") -> BeirDataset:
    """
    Load a BEIR-layout directory: the corpus, the queries that `qrels/<split>.tsv` judges, and those judgements.

    :param path: The dataset directory (holding `corpus.jsonl`, `queries.jsonl` and `qrels/`).
    :param split: Which qrels file to use, e.g. `"test"`, `"dev"` or `"train"`.
    :raises FileNotFoundError: If a file of the layout is missing (the message lists the splits that exist).
    :raises ValueError: If a line is malformed (the message gives file and line).
    """
    root = Path(path).expanduser()
    if not root.is_dir():
        msg = f"dataset {str(root)!r} is not a directory. Pass a BEIR directory (corpus.jsonl, queries.jsonl, qrels/)."
        raise FileNotFoundError(msg)
    for required in ("corpus.jsonl", "queries.jsonl"):
        if not (root / required).is_file():
            msg = f"{root} has no {required}; a BEIR directory holds corpus.jsonl, queries.jsonl and qrels/<split>.tsv."
            raise FileNotFoundError(msg)
    qrels_path = root / "qrels" / f"{split}.tsv"
    if not qrels_path.is_file():
        splits = available_splits(root)
        msg = f"{root} has no qrels/{split}.tsv; pass split as one of {splits or 'the splits in qrels/'}."
        raise FileNotFoundError(msg)
    qrels = read_qrels(qrels_path)
    all_queries = read_queries(root / "queries.jsonl")
    queries = {query_id: all_queries[query_id] for query_id in qrels if query_id in all_queries}
    return BeirDataset(
        corpus=read_corpus(root / "corpus.jsonl"),
        queries=queries,
        qrels=qrels,
        name=root.name,
        source=str(root),
    )

"""`export_labels(...)`: the labels log as training data for `rerank train` or as BEIR qrels for `rerank evaluate`.

Formats (each pair's grade is its last judgement in the log; taken-back pairs are left out):
- `lists`: one JSONL row per query, `{"query", "documents": [texts], "labels": [grades 0..3]}` (LambdaLoss reads
  graded lists), documents in first-stage order; plus `query_id` and `document_ids`;
- `pairs`: one JSONL row per judged pair, `{"query", "document", "label": grade / 3}`, so the labels keep the
  0..3 scale whatever grades occur (0, 0.333, 0.667, 1); plus `query_id`, `document_id` and `grade`;
- `qrels`: BEIR qrels `query-id<TAB>corpus-id<TAB>score`. To a `.tsv` path: that file alone; to a directory: a BEIR
  folder (`corpus.jsonl`, `queries.jsonl`, `qrels/<split>.tsv`) that `rerank evaluate --dataset DIR` reads.

`unjudged_as_negatives=True` adds, for each query with at least one judgement, every first-stage candidate it
showed but nobody judged with grade 0: the report's "treat the rest as negatives". It is off by default, because an
unjudged candidate may just not have been read yet.

For `lists` and `pairs` the queries' first-stage candidates and scores go next to the output
(`<output>.first_stage.json`, as `rerank mine` writes), so `rerank train` tunes the reranker's fusion with the
first stage on them.
"""

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from crossencoder_haystack.data import CorpusDocument, document_text, read_corpus_file
from crossencoder_haystack.labelling.log import GRADES, LogState, read_log

EXPORT_FORMATS: tuple[str, ...] = ("lists", "pairs", "qrels")
_TOP_GRADE = max(GRADES)


@dataclass(frozen=True)
class ExportSummary:
    """What an export wrote: rows, queries, judged pairs, candidates added as negatives, and the files."""

    path: Path
    rows: int
    queries: int
    judged: int
    negatives_added: int
    first_stage_path: Path | None = None


def labelled_queries(state: LogState, unjudged_as_negatives: bool) -> dict[str, dict[str, int]]:
    """
    The grade of every pair to export, per query, in first-stage order (then other judged documents).

    :param state: The log's state.
    :param unjudged_as_negatives: Add each judged query's unjudged candidates with grade 0.
    :returns: {query id: {document id: grade}} for the queries with at least one judgement, in log order.
    """
    by_query: dict[str, dict[str, int]] = {}
    for (query_id, doc_id), grade in state.grades.items():
        by_query.setdefault(query_id, {})[doc_id] = grade
    order = [query_id for query_id in state.candidates if query_id in by_query]
    order += [query_id for query_id in by_query if query_id not in state.candidates]
    labelled = {}
    for query_id in order:
        judged = by_query[query_id]
        logged = state.candidates.get(query_id)
        ranked = [doc_id for doc_id, _, _ in logged.documents] if logged is not None else []
        grades = {doc_id: judged[doc_id] for doc_id in ranked if doc_id in judged}
        grades.update(judged)
        if unjudged_as_negatives:
            grades.update({doc_id: 0 for doc_id in ranked if doc_id not in grades})
        labelled[query_id] = grades
    return labelled


def _texts(corpus: dict[str, CorpusDocument], labelled: dict[str, dict[str, int]]) -> dict[str, str]:
    missing = sorted({doc_id for grades in labelled.values() for doc_id in grades if doc_id not in corpus})
    if missing:
        shown = ", ".join(missing[:5]) + (f" and {len(missing) - 5} more" if len(missing) > 5 else "")
        msg = f"{len(missing)} judged document(s) are not in the corpus ({shown}): pass the corpus of the labels."
        raise ValueError(msg)
    return {doc_id: document_text(corpus[doc_id]) for grades in labelled.values() for doc_id in grades}


def _rows(state: LogState, labelled: dict[str, dict[str, int]], texts: dict[str, str], shape: str) -> list[dict]:
    rows: list[dict[str, Any]] = []
    for query_id, grades in labelled.items():
        query = _query_text(state, query_id)
        if shape == "lists":
            rows.append(
                {
                    "query_id": query_id,
                    "query": query,
                    "documents": [texts[doc_id] for doc_id in grades],
                    "labels": list(grades.values()),
                    "document_ids": list(grades),
                }
            )
            continue
        rows.extend(
            {
                "query_id": query_id,
                "query": query,
                "document_id": doc_id,
                "document": texts[doc_id],
                "label": grade / _TOP_GRADE,
                "grade": grade,
            }
            for doc_id, grade in grades.items()
        )
    return rows


def _query_text(state: LogState, query_id: str) -> str:
    logged = state.candidates.get(query_id)
    if logged is None:
        msg = f"the log judges query {query_id!r} but has no candidates line with its text; it cannot be exported."
        raise ValueError(msg)
    return logged.query


def _write_jsonl(rows: list[dict[str, Any]], path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8") as handle:
        for row in rows:
            handle.write(json.dumps(row, ensure_ascii=False) + "\n")


def _write_first_stage(
    state: LogState, labelled: dict[str, dict[str, int]], documents: dict[str, CorpusDocument], to: Path
) -> Path | None:
    """The first stage's runs of the exported queries beside `to`, for `rerank train`'s fusion tuning."""
    from crossencoder_haystack.training.mining import Candidates, MiningInput, write_first_stage

    logged = [state.candidates[query_id] for query_id in labelled if query_id in state.candidates]
    logged = [item for item in logged if all(score is not None for _, _, score in item.documents)]
    if not logged:
        return None
    corpus = {
        doc_id: document_text(documents[doc_id])
        for item in logged
        for doc_id, _, _ in item.documents
        if doc_id in documents
    }
    # `score is not None` holds for every logged document kept above; it is repeated for the type checker.
    run: Candidates = {
        item.query_id: (
            [(doc_id, score) for doc_id, _, score in item.documents if doc_id in corpus and score is not None],
            [],
        )
        for item in logged
    }
    data = MiningInput(queries={item.query_id: item.query for item in logged}, corpus=corpus)
    return write_first_stage(to, data, run, logged[0].retriever)


def _write_qrels(labelled: dict[str, dict[str, int]], path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = ["query-id\tcorpus-id\tscore\n"]
    for query_id, grades in labelled.items():
        for doc_id, grade in grades.items():
            for value, what in ((query_id, "query id"), (doc_id, "document id")):
                if any(character in value for character in "\t\n\r"):
                    msg = f"the {what} {value!r} holds a tab or a line break, which BEIR qrels cannot store."
                    raise ValueError(msg)
            lines.append(f"{query_id}\t{doc_id}\t{grade}\n")
    path.write_text("".join(lines), encoding="utf-8")


def _write_beir_folder(
    state: LogState, labelled: dict[str, dict[str, int]], corpus: dict[str, CorpusDocument], to: Path, split: str
) -> Path:
    _write_qrels(labelled, to / "qrels" / f"{split}.tsv")
    queries = [{"_id": query_id, "text": _query_text(state, query_id)} for query_id in labelled]
    _write_jsonl(queries, to / "queries.jsonl")
    documents = [
        {"_id": doc_id, "title": entry["title"], "text": entry["text"], "metadata": entry["metadata"]}
        for doc_id, entry in corpus.items()
    ]
    _write_jsonl(documents, to / "corpus.jsonl")
    return to / "qrels" / f"{split}.tsv"


def export_labels(
    log: str | Path,
    to: str | Path,
    *,
    export_format: str,
    corpus: str | Path | None = None,
    unjudged_as_negatives: bool = False,
    split: str = "test",
) -> ExportSummary:
    """
    Turn a labels log into `rerank train` data (graded lists or pairs) or BEIR qrels for `rerank evaluate`.

    ```python
    from crossencoder_haystack.labelling import export_labels

    export_labels("labels.jsonl", "train.jsonl", export_format="lists", corpus="corpus.jsonl")
    export_labels("labels.jsonl", "labelled-beir/", export_format="qrels", corpus="corpus.jsonl")
    ```

    :param log: The labels log `rerank label` wrote.
    :param to: The output: a `.jsonl` file for lists and pairs; for qrels a `.tsv` file or a directory (a BEIR folder).
    :param export_format: `"lists"`, `"pairs"` or `"qrels"`.
    :param corpus: The corpus the labels were made on; needed for lists, pairs and a qrels directory.
    :param unjudged_as_negatives: Also export the unjudged candidates of every judged query, with grade 0.
    :param split: The qrels split name of a BEIR folder (`qrels/<split>.tsv`).
    :raises FileNotFoundError: If the log or the corpus does not exist.
    :raises ValueError: If the format is unknown, the log is corrupt or holds no judgements, the corpus is missing
        or lacks judged documents.
    """
    if export_format not in EXPORT_FORMATS:
        msg = f"export_format must be one of {', '.join(EXPORT_FORMATS)}, got {export_format!r}."
        raise ValueError(msg)
    log, to = Path(log).expanduser(), Path(to).expanduser()
    if not log.is_file():
        msg = f"the labels log {str(log)!r} does not exist. Pass the --output file of `rerank label`."
        raise FileNotFoundError(msg)
    state = read_log(log)
    labelled = labelled_queries(state, unjudged_as_negatives)
    if not labelled:
        msg = f"{log} holds no judgements yet: judge some candidates with `rerank label` first."
        raise ValueError(msg)
    judged = sum(1 for _ in state.grades)
    added = sum(len(grades) for grades in labelled.values()) - judged
    if export_format == "qrels" and to.suffix.lower() == ".tsv":
        _write_qrels(labelled, to)
        return ExportSummary(to, judged + added, len(labelled), judged, added)
    if corpus is None:
        msg = f"exporting {export_format} needs the corpus the labels were made on: pass corpus= (--corpus)."
        raise ValueError(msg)
    documents = read_corpus_file(corpus)
    texts = _texts(documents, labelled)
    if export_format == "qrels":
        path = _write_beir_folder(state, labelled, documents, to, split)
        return ExportSummary(path, judged + added, len(labelled), judged, added)
    rows = _rows(state, labelled, texts, export_format)
    _write_jsonl(rows, to)
    first_stage = _write_first_stage(state, labelled, documents, to)
    return ExportSummary(to, len(rows), len(labelled), judged, added, first_stage)

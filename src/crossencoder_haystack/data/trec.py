"""TREC run files: one ranked candidate per line, `qid Q0 docid rank score tag`, whitespace-separated.

A run maps a query id to its ranking, best first, as `(document id, score)` pairs. The writer numbers ranks from
1 in the order given; the reader returns each query's ranking in rank order. (trec_eval re-sorts by score and
ignores the rank column; keeping the rank order here preserves tie-breaking between equal scores.)
"""

from collections.abc import Mapping, Sequence
from pathlib import Path

Ranking = list[tuple[str, float]]
"""A query's ranked candidates, best first: (document id, score)."""

TrecRun = dict[str, Ranking]
"""Query id -> ranking."""


def _check_token(value: str, what: str) -> str:
    if not value or any(character.isspace() for character in value):
        msg = f"TREC run files are whitespace-separated, so a {what} must be non-empty without spaces, got {value!r}."
        raise ValueError(msg)
    return value


def write_trec_run(run: Mapping[str, Sequence[tuple[str, float]]], path: str | Path, tag: str = "run") -> Path:
    """
    Write `run` as a TREC run file, ranks 1..n per query in the given order.

    :param run: Query id -> [(document id, score), ...], best first.
    :param path: The file to write (parent directories are created).
    :param tag: The run tag (last column), e.g. the ranker's name; no whitespace.
    :returns: The path written.
    :raises ValueError: If an id or the tag contains whitespace, or a score is not a number.
    """
    _check_token(tag, "tag")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = []
    for query_id, ranking in run.items():
        _check_token(str(query_id), "query id")
        for rank, (doc_id, score) in enumerate(ranking, start=1):
            _check_token(str(doc_id), "document id")
            lines.append(f"{query_id} Q0 {doc_id} {rank} {float(score)!r} {tag}\n")
    path.write_text("".join(lines), encoding="utf-8")
    return path


def read_trec_run(path: str | Path) -> TrecRun:
    """
    Read a TREC run file.

    :param path: The run file (`qid Q0 docid rank score tag` per line; the tag may be missing).
    :returns: Query id -> [(document id, score), ...] in rank order (file order among equal ranks), queries in
        order of first appearance.
    :raises ValueError: If a line is malformed or a document appears twice for one query.
    """
    path = Path(path).expanduser()
    if not path.is_file():
        msg = f"run file {str(path)!r} does not exist. Pass a TREC run file: 'qid Q0 docid rank score tag' lines."
        raise FileNotFoundError(msg)
    entries: dict[str, list[tuple[int, int, str, float]]] = {}
    seen: set[tuple[str, str]] = set()
    with path.open(encoding="utf-8-sig") as lines:
        for number, line in enumerate(lines, start=1):
            fields = line.split()
            if not fields:
                continue
            if len(fields) not in (5, 6):
                msg = f"{path}:{number}: expected 'qid Q0 docid rank score tag', got {line.strip()!r}."
                raise ValueError(msg)
            query_id, _, doc_id, rank, score = fields[:5]
            try:
                parsed_rank, parsed_score = int(rank), float(score)
            except ValueError as error:
                msg = f"{path}:{number}: rank must be an integer and score a number, got {rank!r} and {score!r}."
                raise ValueError(msg) from error
            if (query_id, doc_id) in seen:
                msg = f"{path}:{number}: document {doc_id!r} appears twice for query {query_id!r}."
                raise ValueError(msg)
            seen.add((query_id, doc_id))
            entries.setdefault(query_id, []).append((parsed_rank, number, doc_id, parsed_score))
    return {
        query_id: [(doc_id, score) for _, _, doc_id, score in sorted(ranked)] for query_id, ranked in entries.items()
    }

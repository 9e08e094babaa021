"""The labels log: every judgement an expert makes, appended to a JSONL file and on disk before the page confirms it.

One JSON object per line, never rewritten:

- `{"event": "session", ...}`: one per `rerank label` start (what it labelled with; informational);
- `{"event": "candidates", "query_id", "query", "retriever", "top_n", "documents": [{"id", "rank", "score"}]}`:
  a query's first-stage candidates, written the first time the query is shown, so that a restart shows the same
  list and `rerank label --export` knows which candidates were never judged;
- `{"event": "judgement", "query_id", "document_id", "grade", "previous", "client", "time"}`: a grade 0..3 (0 not
  relevant, 1 partly, 2 relevant, 3 highly relevant), or `null` when the judgement was taken back (undo).

The current grade of a pair is its last `judgement` line (last write wins; every earlier line stays). A line is
written, flushed and `os.fsync`-ed before `append` returns. A write cut short by a crash leaves a last line without
its newline, which was never confirmed: opening the log moves it to `<log>.torn` and carries on. Any other line
that is not a valid record stops `rerank label` with its file and line number, before anything is written.
"""

import json
import os
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

from haystack import logging

GRADES: tuple[int, ...] = (0, 1, 2, 3)
GRADE_NAMES: dict[int, str] = {0: "not relevant", 1: "partly relevant", 2: "relevant", 3: "highly relevant"}
EVENTS: tuple[str, ...] = ("session", "candidates", "judgement")
TORN_SUFFIX = ".torn"

logger = logging.getLogger(__name__)


class LabelLogError(ValueError):
    """The labels log cannot be used as it is; the message names the file, the line and the fix."""


@dataclass(frozen=True)
class LoggedCandidates:
    """
    A query's first-stage candidates as the log recorded them.

    :param query_id: The query's id.
    :param query: The query text when the candidates were retrieved.
    :param retriever: The first stage that retrieved them (e.g. `"bm25"`, `"embedding"`).
    :param top_n: How many candidates were asked for.
    :param documents: `(document id, first-stage rank, first-stage score)`, best first.
    """

    query_id: str
    query: str
    retriever: str
    top_n: int
    documents: tuple[tuple[str, int, float | None], ...]


@dataclass
class LogState:
    """
    What a labels log holds now.

    :param candidates: Each query's latest candidates record, in order of first appearance.
    :param grades: The current grade of each judged `(query id, document id)` pair; taken-back pairs are absent.
    :param judgement_lines: How many judgement lines the log has (every write, also overwritten ones).
    :param last_query_id: The query of the last judgement line, where a restart resumes.
    :param torn_tail: The bytes of an unfinished last line that was ignored (b"" if none).
    """

    candidates: dict[str, LoggedCandidates] = field(default_factory=dict)
    grades: dict[tuple[str, str], int] = field(default_factory=dict)
    judgement_lines: int = 0
    last_query_id: str | None = None
    torn_tail: bytes = b""

    def apply(self, record: dict[str, Any]) -> None:
        """Update the state with one valid record (as `read_log` does for each line)."""
        if record["event"] == "candidates":
            self.candidates[record["query_id"]] = LoggedCandidates(
                query_id=record["query_id"],
                query=record["query"],
                retriever=str(record.get("retriever", "")),
                top_n=int(record.get("top_n", len(record["documents"]))),
                documents=tuple((item["id"], item["rank"], item.get("score")) for item in record["documents"]),
            )
        elif record["event"] == "judgement":
            pair = (record["query_id"], record["document_id"])
            if record["grade"] is None:
                self.grades.pop(pair, None)
            else:
                self.grades[pair] = record["grade"]
            self.judgement_lines += 1
            self.last_query_id = record["query_id"]


def check_grade(grade: Any, name: str = "grade") -> int | None:
    """`grade` if it is one of 0, 1, 2, 3 or None (taken back); otherwise a ValueError that says what is allowed."""
    if grade is None or (isinstance(grade, int) and not isinstance(grade, bool) and grade in GRADES):
        return grade
    scale = ", ".join(f"{value} {label}" for value, label in GRADE_NAMES.items())
    msg = f"{name} must be one of 0, 1, 2, 3 ({scale}) or null to take a judgement back, got {grade!r}."
    raise ValueError(msg)


def _check_text(record: dict[str, Any], key: str) -> None:
    value = record.get(key)
    if not isinstance(value, str) or not value:
        msg = f"'{key}' must be a non-empty string, got {value!r}"
        raise ValueError(msg)


def _check_documents(documents: Any) -> None:
    if not isinstance(documents, list):
        msg = "'documents' must be a list of {'id', 'rank', 'score'} objects"
        raise ValueError(msg)
    for item in documents:
        rank, score = (item.get("rank"), item.get("score")) if isinstance(item, dict) else (None, None)
        ok = isinstance(item, dict) and isinstance(item.get("id"), str) and item["id"]
        if not ok or not isinstance(rank, int) or isinstance(rank, bool) or rank < 1:
            msg = f"each candidate needs an 'id' string and a 'rank' >= 1, got {item!r}"
            raise ValueError(msg)
        if score is not None and (isinstance(score, bool) or not isinstance(score, int | float)):
            msg = f"a candidate's 'score' must be a number or null, got {score!r}"
            raise ValueError(msg)


def check_record(record: Any) -> dict[str, Any]:
    """
    `record` if it is a valid log record.

    :raises ValueError: Saying what is wrong with it.
    """
    if not isinstance(record, dict):
        msg = f"expected a JSON object, got {type(record).__name__}"
        raise ValueError(msg)
    event = record.get("event")
    if event not in EVENTS:
        msg = f"'event' must be one of {', '.join(EVENTS)}, got {event!r}"
        raise ValueError(msg)
    if event == "judgement":
        _check_text(record, "query_id")
        _check_text(record, "document_id")
        if "grade" not in record:
            msg = "a judgement needs a 'grade' (0..3, or null when taken back)"
            raise ValueError(msg)
        check_grade(record["grade"])
    elif event == "candidates":
        _check_text(record, "query_id")
        if not isinstance(record.get("query"), str):
            msg = f"'query' must be the query text, got {record.get('query')!r}"
            raise ValueError(msg)
        _check_documents(record.get("documents"))
    return record


def _corrupt_line(path: Path, number: int, reason: str) -> LabelLogError:
    msg = (
        f"{path}:{number}: {reason}. The labels log is append-only and this line was not written by `rerank label` "
        "(edited by hand or by another program?). Fix or delete that line and start again: every other line is "
        "kept, and nothing has been written."
    )
    return LabelLogError(msg)


def split_torn_tail(data: bytes) -> tuple[bytes, bytes]:
    """`data` cut after its last newline: (complete lines, an unfinished last line or b"")."""
    end = data.rfind(b"\n") + 1
    return data[:end], data[end:]


def read_log(path: str | Path) -> LogState:
    """
    Read a labels log into its current state (a log that does not exist is empty).

    :param path: The JSONL log.
    :returns: The state; `torn_tail` holds an unfinished last line, which is otherwise ignored.
    :raises LabelLogError: If a complete line is not a valid record (the message gives file and line).
    """
    path = Path(path).expanduser()
    state = LogState()
    if not path.exists():
        return state
    if not path.is_file():
        msg = f"the labels log {str(path)!r} is not a file. Pass a .jsonl file path with --output."
        raise LabelLogError(msg)
    complete, state.torn_tail = split_torn_tail(path.read_bytes())
    for number, line in enumerate(complete.split(b"\n")[:-1], start=1):
        if not line.strip():
            continue
        try:
            record = check_record(json.loads(line.decode("utf-8")))
        except UnicodeDecodeError as error:
            raise _corrupt_line(path, number, f"not UTF-8 text ({error.reason})") from None
        except json.JSONDecodeError as error:
            raise _corrupt_line(path, number, f"not valid JSON ({error.msg})") from None
        except ValueError as error:
            raise _corrupt_line(path, number, str(error)) from None
        state.apply(record)
    return state


class JudgementLog:
    """
    The labels log opened for appending by one `rerank label` process.

    ```python
    from crossencoder_haystack.labelling.log import JudgementLog

    log = JudgementLog("labels.jsonl")
    state = log.open()  # the judgements so far
    log.append({"event": "judgement", "query_id": "q1", "document_id": "d7", "grade": 2, "previous": None})
    log.close()
    ```

    :param path: The JSONL file; created (with its directory) if missing.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path).expanduser()
        self._lock = threading.Lock()
        self._handle: BinaryIO | None = None

    def open(self) -> LogState:
        """
        Lock the log against a second `rerank label` process, set an unfinished last line aside, read the state.

        :raises LabelLogError: If a line is corrupt, or another process holds the log.
        """
        state = read_log(self.path)  # before anything is written: a corrupt log is left as it is
        self.path.parent.mkdir(parents=True, exist_ok=True)
        created = not self.path.exists()
        handle = self.path.open("ab")
        try:
            _lock_exclusively(handle, self.path)
        except BaseException:
            handle.close()
            raise
        if state.torn_tail:
            self._set_torn_tail_aside(handle, state.torn_tail)
        if created:
            _sync_directory(self.path.parent)
        self._handle = handle
        return state

    def _set_torn_tail_aside(self, handle: BinaryIO, tail: bytes) -> None:
        torn = self.path.with_name(self.path.name + TORN_SUFFIX)
        with torn.open("ab") as aside:
            aside.write(tail + b"\n")
            aside.flush()
            os.fsync(aside.fileno())
        handle.truncate(self.path.stat().st_size - len(tail))
        os.fsync(handle.fileno())
        logger.warning(
            "{path} ended in an unfinished line (a write cut short, never confirmed to the page); moved it to {torn}.",
            path=self.path,
            torn=torn,
        )

    def append(self, record: dict[str, Any]) -> None:
        """Write `record` as one line and make it durable (flush + fsync) before returning."""
        line = (json.dumps(check_record(record), ensure_ascii=False) + "\n").encode("utf-8")
        with self._lock:
            if self._handle is None:
                msg = f"the labels log {self.path} is not open; call open() first."
                raise RuntimeError(msg)
            self._handle.write(line)
            self._handle.flush()
            os.fsync(self._handle.fileno())

    def close(self) -> None:
        """Close the file (and release the lock); idempotent."""
        with self._lock:
            if self._handle is not None:
                self._handle.close()
                self._handle = None


def _lock_exclusively(handle: BinaryIO, path: Path) -> None:
    try:
        import fcntl
    except ImportError:  # Windows: no advisory lock; one `rerank label` per log is then the user's care
        return
    try:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        msg = (
            f"{path} is open in another `rerank label` process. Use that one (two browser tabs may share it), or "
            "stop it first: two processes appending to one log would not see each other's judgements."
        )
        raise LabelLogError(msg) from None


def _sync_directory(directory: Path) -> None:
    """Make a newly created file's directory entry durable (POSIX); a no-op where directories cannot be opened."""
    try:
        descriptor = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(descriptor)
    except OSError:
        pass
    finally:
        os.close(descriptor)

"""The output directory of a distributed rerank: JSONL parts written whole, so a crashed job resumes.

Each result block becomes one file, `part-000001.jsonl`, `part-000002.jsonl`, ...: written under a temporary name and
renamed when complete, so a part is either all there or not there at all. The query ids in the parts are the
finished ones; a re-run skips them, and a query id is never written twice (the first result kept).
"""

import json
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

PART_PREFIX = "part-"
PART_SUFFIX = ".jsonl"
_TEMPORARY_SUFFIX = ".tmp"


def part_files(output: Path) -> list[Path]:
    """The complete parts in `output`, in the order they were written."""
    return sorted(path for path in output.glob(f"{PART_PREFIX}*{PART_SUFFIX}") if _part_number(path) is not None)


def read_rows(output: str | Path) -> list[dict[str, Any]]:
    """Every row of every part in `output`, in the order written."""
    rows: list[dict[str, Any]] = []
    for path in part_files(Path(output).expanduser()):
        with path.open(encoding="utf-8") as lines:
            rows.extend(json.loads(line) for line in lines if line.strip())
    return rows


def _part_number(path: Path) -> int | None:
    number = path.name[len(PART_PREFIX) : -len(PART_SUFFIX)]
    return int(number) if number.isdigit() else None


class PartWriter:
    """
    Writes result rows into `output` one part per block, and knows which query ids are finished.

    ```python
    writer = PartWriter("/data/reranked")
    writer.finished  # query ids of earlier runs
    writer.write([{"query_id": "q1", "ranked": [...]}])  # part-000001.jsonl, unless q1 was finished
    ```
    """

    def __init__(self, output: str | Path) -> None:
        """
        :param output: The directory (created if missing). Leftover temporary files of a crashed run are removed.
        :raises NotADirectoryError: If `output` is a file.
        """
        self.output = Path(output).expanduser()
        if self.output.exists() and not self.output.is_dir():
            msg = f"output {self.output} is a file; pass a directory for the JSONL parts."
            raise NotADirectoryError(msg)
        self.output.mkdir(parents=True, exist_ok=True)
        for leftover in self.output.glob(f".{PART_PREFIX}*{_TEMPORARY_SUFFIX}"):
            leftover.unlink()
        parts = part_files(self.output)
        self.finished: set[str] = {str(row["query_id"]) for row in read_rows(self.output)}
        self._next_number = max((_part_number(path) or 0 for path in parts), default=0) + 1
        self.written = 0
        self.duplicates = 0

    def write(self, rows: Iterable[dict[str, Any]]) -> Path | None:
        """
        Write the rows whose query ids are not finished yet as one new part.

        :returns: The part written, or None if every row was finished already.
        """
        fresh = []
        for row in rows:
            query_id = str(row["query_id"])
            if query_id in self.finished:
                self.duplicates += 1
                continue
            self.finished.add(query_id)
            fresh.append(row)
        if not fresh:
            return None
        path = self.output / f"{PART_PREFIX}{self._next_number:06d}{PART_SUFFIX}"
        temporary = self.output / f".{path.name}{_TEMPORARY_SUFFIX}"
        with temporary.open("w", encoding="utf-8") as file:
            file.writelines(json.dumps(row, ensure_ascii=False) + "\n" for row in fresh)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, path)
        self._next_number += 1
        self.written += len(fresh)
        return path

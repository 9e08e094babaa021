"""Calibration pairs for static int8 quantization, read from a file.

Expects one (query, document) pair per line: a `.jsonl` file with `{"query": ..., "document": ...}` objects
(`"text"` or `"passage"` also name the document), or any other file as `query<TAB>document` lines.
"""

import json
from pathlib import Path

_DOCUMENT_KEYS = ("document", "text", "passage")


def read_calibration_pairs(path: str | Path, limit: int | None = 256) -> list[tuple[str, str]]:
    """
    Read (query, document) pairs from `path` (JSONL or TSV), at most `limit` of them.

    :raises ValueError: If a line is not a pair, naming the file and line.
    """
    source = Path(path)
    pairs: list[tuple[str, str]] = []
    with source.open(encoding="utf-8") as lines:
        for number, line in enumerate(lines, start=1):
            if not line.strip():
                continue
            if source.suffix == ".jsonl":
                record = json.loads(line)
                document = next((record[key] for key in _DOCUMENT_KEYS if key in record), None)
                query = record.get("query")
            else:
                query, _, document = line.rstrip("\n").partition("\t")
            if not isinstance(query, str) or not isinstance(document, str) or not query or not document:
                msg = (
                    f"{source}:{number} is not a (query, document) pair; write `query<TAB>document` lines or "
                    'JSONL objects with "query" and "document".'
                )
                raise ValueError(msg)
            pairs.append((query, document))
            if limit is not None and len(pairs) >= limit:
                break
    if not pairs:
        msg = f"{source} holds no calibration pairs."
        raise ValueError(msg)
    return pairs

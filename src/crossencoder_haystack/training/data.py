"""Training data for cross-encoders: three shapes, read from CSV, TSV, JSONL or a `datasets.Dataset`.

- pairs: `query, document, label` (label 0..1, an integer grade 0, 1, 2, ... or -1/1; see below);
- triplets: `query, positive[, negative...]` (JSONL: `negative` as a string or `negatives` as a list;
  CSV/TSV: `negative`, `negative_1`, `negative_2`, ... columns; positives only is fine);
- lists: `query, documents, labels` (lists of equal length, graded labels; CSV/TSV cells hold JSON arrays).

Every malformed row is collected with its file, line number and reason, and reported in one `TrainingDataError`
before any training starts. CSV/TSV files may start with a UTF-8 byte order mark; a row with more fields than the
header is an error (an unquoted delimiter in a text would otherwise shift or drop a value silently).

Pairs train with binary cross-entropy, whose targets are 0..1. Labels outside 0..1 are rescaled when their meaning
is unambiguous, and `TrainingData.label_rescale` says how (None = labels used as given):
- all labels non-negative integers (grades 0..n): divided by the highest grade n;
- all labels -1 or 1: -1 becomes 0.
Any other label outside 0..1 (a negative label among grades, 2.5, a grade next to fractional labels) is an error.
"""

import csv
import json
import logging
import math
import random
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, cast

from crossencoder_haystack.data.beir import jsonl_values

DataShape = Literal["pairs", "triplets", "lists"]
SHAPES: tuple[str, ...] = ("pairs", "triplets", "lists")

_MAX_PROBLEMS_SHOWN = 20
_PAIR_LABELS_HELP = "pairs labels are 0..1, integer grades 0, 1, 2, ... (divided by the highest grade) or -1/1"

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class DataProblem:
    """One malformed row: where it is and what is wrong with it."""

    source: str
    line: int
    reason: str

    def __str__(self) -> str:
        return f"{self.source}:{self.line}: {self.reason}"


class TrainingDataError(ValueError):
    """Training data that cannot be used; `problems` lists every malformed row found."""

    def __init__(self, problems: list[DataProblem], summary: str | None = None):
        self.problems = problems
        shown = "\n".join(f"  {problem}" for problem in problems[:_MAX_PROBLEMS_SHOWN])
        more = len(problems) - _MAX_PROBLEMS_SHOWN
        if more > 0:
            shown += f"\n  ... and {more} more"
        head = summary or f"{len(problems)} malformed row(s) in the training data; fix them and run again"
        super().__init__(f"{head}:\n{shown}")


@dataclass
class TrainingData:
    """Validated rows of one shape, in the normalized form the losses expect.

    Rows are dicts: pairs `{"query", "document", "label"}`, triplets `{"query", "positive", "negatives"}`,
    lists `{"query", "documents", "labels"}`.

    :param label_rescale: How pairs labels outside 0..1 were mapped onto 0..1 for binary cross-entropy, e.g.
        "integer grades 0..3 divided by 3"; None when the labels are used as given. Model cards record it.
    """

    rows: list[dict[str, Any]]
    shape: DataShape
    source: str
    label_rescale: str | None = None

    def __len__(self) -> int:
        return len(self.rows)

    @property
    def queries(self) -> list[str]:
        return list(dict.fromkeys(row["query"] for row in self.rows))

    def label_counts(self) -> tuple[int, int]:
        """(positives, negatives) over all labelled documents; a label > 0 counts as positive."""
        if self.shape == "pairs":
            positives = sum(1 for row in self.rows if row["label"] > 0)
            return positives, len(self.rows) - positives
        if self.shape == "lists":
            labels = [label for row in self.rows for label in row["labels"]]
            positives = sum(1 for label in labels if label > 0)
            return positives, len(labels) - positives
        return len(self.rows), sum(len(row["negatives"]) for row in self.rows)

    def to_dataset(self) -> Any:
        """A `datasets.Dataset` with the columns the sentence-transformers loss for this shape reads, in order."""
        from datasets import Dataset

        if self.shape == "pairs":
            return Dataset.from_dict(
                {
                    "query": [row["query"] for row in self.rows],
                    "document": [row["document"] for row in self.rows],
                    "label": [float(row["label"]) for row in self.rows],
                }
            )
        if self.shape == "lists":
            return Dataset.from_dict(
                {
                    "query": [row["query"] for row in self.rows],
                    "documents": [row["documents"] for row in self.rows],
                    "labels": [[float(label) for label in row["labels"]] for row in self.rows],
                }
            )
        # In-batch-negative losses need the same number of columns in every row: keep as many hard negatives
        # as the row with the fewest has.
        count = self.negatives_per_row()
        columns: dict[str, list[str]] = {
            "query": [row["query"] for row in self.rows],
            "positive": [row["positive"] for row in self.rows],
        }
        for index in range(count):
            columns[f"negative_{index + 1}"] = [row["negatives"][index] for row in self.rows]
        return Dataset.from_dict(columns)

    def negatives_per_row(self) -> int:
        """Hard negatives per triplet row used for training (the minimum over rows)."""
        return min((len(row["negatives"]) for row in self.rows), default=0)

    def evaluation_samples(self) -> list[dict[str, Any]]:
        """Samples for `CrossEncoderRerankingEvaluator`: one per query, `{"query", "positive", "negative"}`."""
        grouped: dict[str, dict[str, list[str]]] = {}
        for row in self.rows:
            sample = grouped.setdefault(row["query"], {"positive": [], "negative": []})
            if self.shape == "pairs":
                sample["positive" if row["label"] > 0 else "negative"].append(row["document"])
            elif self.shape == "lists":
                for document, label in zip(row["documents"], row["labels"], strict=True):
                    sample["positive" if label > 0 else "negative"].append(document)
            else:
                sample["positive"].append(row["positive"])
                sample["negative"].extend(row["negatives"])
        samples = []
        for query, sample in grouped.items():
            positives = list(dict.fromkeys(sample["positive"]))
            negatives = [document for document in dict.fromkeys(sample["negative"]) if document not in positives]
            if positives and negatives:
                samples.append({"query": query, "positive": positives, "negative": negatives})
        return samples

    def split_by_query(self, eval_fraction: float, seed: int) -> tuple["TrainingData", "TrainingData"]:
        """Split into (train, eval) so that no query is in both; `eval_fraction` of the queries go to eval."""
        if not 0.0 < eval_fraction < 1.0:
            msg = f"eval_fraction must be between 0 and 1 (e.g. 0.1), got {eval_fraction!r}."
            raise ValueError(msg)
        queries = self.queries
        if len(queries) < 2:
            msg = "eval_fraction needs at least 2 distinct queries in the data; pass separate eval data instead."
            raise ValueError(msg)
        random.Random(seed).shuffle(queries)
        held_out = set(queries[: max(1, round(len(queries) * eval_fraction))])
        train_rows = [row for row in self.rows if row["query"] not in held_out]
        eval_rows = [row for row in self.rows if row["query"] in held_out]
        return (
            TrainingData(train_rows, self.shape, self.source, self.label_rescale),
            TrainingData(
                eval_rows, self.shape, f"{self.source} (held-out {eval_fraction:.0%} of queries)", self.label_rescale
            ),
        )


def load_training_data(source: Any, shape: DataShape | None = None) -> TrainingData:
    """
    Read and validate training data from a file or a `datasets.Dataset`.

    :param source: A `.csv`, `.tsv`, `.jsonl` (or `.json` lines) path, or a `datasets.Dataset`.
    :param shape: `"pairs"`, `"triplets"` or `"lists"`; None detects it from the columns.
    :returns: The validated rows.
    :raises TrainingDataError: Listing every malformed row (file:line: reason), or an unknown shape.
    :raises FileNotFoundError: If the path does not exist.
    """
    if shape is not None and shape not in SHAPES:
        msg = f"shape must be one of {', '.join(map(repr, SHAPES))} or None to detect it, got {shape!r}."
        raise ValueError(msg)
    name, records = _read_records(source)
    records = list(records)
    problems: list[DataProblem] = []
    if not records:
        raise TrainingDataError([DataProblem(name, 0, "no rows")], f"The training data {name} is empty")
    if shape is None:
        shape = _detect_shape(records[0][1])
        if shape is None:
            line, first = records[0]
            reason = (
                f"unknown data shape: columns {sorted(first)}; expected pairs (query, document, label), "
                "triplets (query, positive[, negative...]) or lists (query, documents, labels)"
            )
            raise TrainingDataError([DataProblem(name, line, reason)], f"Cannot tell the shape of {name}")
    rows, lines = [], []
    for line, record in records:
        row, reasons = _normalize(record, shape)
        problems.extend(DataProblem(name, line, reason) for reason in reasons)
        if row is not None:
            rows.append(row)
            lines.append(line)
    label_rescale = None
    if shape == "pairs" and not problems:
        label_rescale, label_problems = _rescale_pair_labels(rows, lines, name)
        problems.extend(label_problems)
    if problems:
        raise TrainingDataError(problems, f"{len(problems)} problem(s) in the {shape} data {name}; fix them and retry")
    if label_rescale is not None:
        logger.warning("Training data %s: %s, as binary cross-entropy needs targets in 0..1.", name, label_rescale)
    return TrainingData(rows, shape, name, label_rescale)


def _rescale_pair_labels(rows: list[dict[str, Any]], lines: list[int], source: str) -> tuple[str | None, list]:
    """
    Map pairs labels onto 0..1 in place when they are grades 0..n or -1/1 (see the module docstring).

    :param rows: Normalized pairs rows (every label a finite float).
    :param lines: Each row's line in `source`, for problems.
    :param source: The data's name, for problems.
    :returns: (a description of the rescaling or None if the labels stay as they are, problems for labels that
        cannot be mapped onto 0..1).
    """
    labels = [row["label"] for row in rows]
    if all(0.0 <= label <= 1.0 for label in labels):
        return None, []
    if set(labels) <= {-1.0, 1.0}:
        for row in rows:
            row["label"] = 1.0 if row["label"] > 0 else 0.0
        return "labels -1/1 mapped to 0/1", []
    if all(_is_grade(label) for label in labels):
        top = max(labels)
        for row in rows:
            row["label"] /= top
        return f"integer grades 0..{top:g} divided by {top:g} (grade g -> g/{top:g})", []
    first_non_grade = next((line, label) for line, label in zip(lines, labels, strict=True) if not _is_grade(label))
    return None, [
        DataProblem(source, line, f"{_label_problem(label, first_non_grade)}; {_PAIR_LABELS_HELP} (mapped to 0/1)")
        for line, label in zip(lines, labels, strict=True)
        if not 0.0 <= label <= 1.0
    ]


def _is_grade(label: float) -> bool:
    return label >= 0.0 and float(label).is_integer()


def _label_problem(label: float, first_non_grade: tuple[int, float]) -> str:
    if label == -1.0:
        return "label -1 is below 0, and -1 can only mean 'not relevant' when every other label is 1"
    if label < 0.0:
        return f"label {label:g} is below 0"
    if not _is_grade(label):
        return f"label {label:g} is above 1 and not an integer grade"
    line, other = first_non_grade
    return f"label {label:g} is above 1, but it is no grade since not every label is one (line {line} has {other:g})"


def _read_records(source: Any) -> tuple[str, Iterable[tuple[int, dict[str, Any]]]]:
    if hasattr(source, "to_list") and hasattr(source, "column_names"):
        return "<Dataset>", ((index + 1, dict(record)) for index, record in enumerate(source.to_list()))
    path = Path(source).expanduser()
    if not path.is_file():
        msg = f"Training data file {path} does not exist (expected a .csv, .tsv or .jsonl file)."
        raise FileNotFoundError(msg)
    suffix = path.suffix.lower()
    if suffix in {".jsonl", ".json", ".ndjson"}:
        return str(path), _read_jsonl(path)
    if suffix in {".csv", ".tsv"}:
        return str(path), _read_delimited(path, "\t" if suffix == ".tsv" else ",")
    msg = f"Unsupported training data format {suffix!r} for {path}: use .csv, .tsv or .jsonl."
    raise ValueError(msg)


def _read_jsonl(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    for number, record, error in jsonl_values(path):
        if error is not None:
            record = {"__problem__": f"invalid JSON ({error.msg})"}
        elif not isinstance(record, dict):
            record = {"__problem__": "a JSON object is expected on each line"}
        yield number, record


def _read_delimited(path: Path, delimiter: str) -> Iterator[tuple[int, dict[str, Any]]]:
    # utf-8-sig: a byte order mark (as Excel writes) would otherwise become part of the first column's name.
    with path.open(encoding="utf-8-sig", newline="") as handle:
        reader = csv.DictReader(handle, delimiter=delimiter)
        for record in reader:
            # typeshed types the restkey (None) entry as `str`; csv puts the surplus fields there as a list.
            extra = cast("list[str] | None", record.pop(None, None))
            if extra is not None:
                record["__problem__"] = _extra_fields_problem(extra, len(reader.fieldnames or ()), delimiter)
            for key in ("documents", "labels", "negatives"):
                if isinstance(record.get(key), str) and record[key].strip().startswith("["):
                    try:
                        record[key] = json.loads(record[key])
                    except json.JSONDecodeError:
                        record.setdefault("__problem__", f"column {key!r} is not a JSON array")
            yield reader.line_num, record


def _extra_fields_problem(extra: list[str], columns: int, delimiter: str) -> str:
    name = "tab" if delimiter == "\t" else repr(delimiter)
    return (
        f"the row has {columns + len(extra)} fields but the header has {columns} columns (extra: "
        f"{', '.join(map(repr, extra))}); quote texts that contain a {name}"
    )


def _detect_shape(record: dict[str, Any]) -> DataShape | None:
    if "documents" in record or "labels" in record:
        return "lists"
    if "positive" in record:
        return "triplets"
    if "document" in record or "label" in record:
        return "pairs"
    return None


def _text(record: dict[str, Any], column: str, reasons: list[str]) -> str | None:
    if column not in record or record[column] is None:
        reasons.append(f"missing column {column!r}")
        return None
    value = record[column]
    if not isinstance(value, str):
        reasons.append(f"column {column!r} must be text, got {type(value).__name__}")
        return None
    if not value.strip():
        reasons.append(f"empty text in column {column!r}")
        return None
    return value


def _number(value: Any, what: str, reasons: list[str]) -> float | None:
    if isinstance(value, bool):
        return float(value)
    try:
        number = float(value)
    except (TypeError, ValueError):
        reasons.append(f"{what} is not a number: {value!r}")
        return None
    if not math.isfinite(number):
        reasons.append(f"{what} is not a finite number: {value!r}")
        return None
    return number


def _negatives(record: dict[str, Any], reasons: list[str]) -> list[str]:
    values: list[Any] = []
    if "negatives" in record and record["negatives"] not in (None, ""):
        if not isinstance(record["negatives"], list):
            reasons.append("column 'negatives' must be a list of texts")
        else:
            values.extend(record["negatives"])
    keys = [key for key in record if key == "negative" or (key.startswith("negative_") and key[9:].isdigit())]
    for key in sorted(keys, key=lambda key: (len(key), key)):
        value = record[key]
        if isinstance(value, list):
            values.extend(value)
        elif value not in (None, ""):
            values.append(value)
    negatives = []
    for value in values:
        if not isinstance(value, str) or not value.strip():
            reasons.append(f"negative {value!r} is not a non-empty text")
        else:
            negatives.append(value)
    return negatives


def _normalize(record: dict[str, Any], shape: DataShape) -> tuple[dict[str, Any] | None, list[str]]:
    reasons: list[str] = []
    if "__problem__" in record:
        return None, [record["__problem__"]]
    row: dict[str, Any]
    query = _text(record, "query", reasons)
    if shape == "pairs":
        document = _text(record, "document", reasons)
        label = None
        if record.get("label") in (None, ""):
            reasons.append("missing column 'label'")
        else:
            label = _number(record["label"], "label", reasons)
        row = {"query": query, "document": document, "label": label}
    elif shape == "triplets":
        positive = _text(record, "positive", reasons)
        row = {"query": query, "positive": positive, "negatives": _negatives(record, reasons)}
    else:
        documents, labels = record.get("documents"), record.get("labels")
        if not isinstance(documents, list) or not documents:
            reasons.append("column 'documents' must be a non-empty list of texts")
            documents = None
        elif any(not isinstance(document, str) or not document.strip() for document in documents):
            reasons.append("empty or non-text entry in 'documents'")
        if not isinstance(labels, list):
            reasons.append("column 'labels' must be a list of numbers")
            labels = None
        else:
            labels = [_number(label, f"labels[{index}]", reasons) for index, label in enumerate(labels)]
        if documents is not None and labels is not None and len(documents) != len(labels):
            reasons.append(f"'documents' has {len(documents)} entries but 'labels' has {len(labels)}")
        row = {"query": query, "documents": documents, "labels": labels}
    return (None, reasons) if reasons else (row, [])


def write_jsonl(rows: Iterable[dict[str, Any]], path: str | Path) -> Path:
    """Write rows as JSON lines (UTF-8), creating parent directories."""
    path = Path(path).expanduser()
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8") as handle:
        for row in rows:
            handle.write(json.dumps(row, ensure_ascii=False) + "\n")
    return path

"""Judged pairs for calibration: (query, document text, relevant or not), read with the package's own readers.

Accepted data (the formats of `rerank train` and `rerank evaluate`):

- a training data file (`.jsonl`, `.csv`, `.tsv`; `training.data`): pairs (`query, document, label`), lists
  (`query, documents, labels`) or triplets (`query, positive, negatives`: the positive counts as grade 1, the
  negatives as grade 0);
- a BEIR directory (`data.load_beir`, one qrels split) or a judged-rows file with its corpus
  (`data.load_judged_rows`: `query, document, grade` rows whose `document` is a corpus id): every judged
  (query, document) pair with its grade. Unjudged documents are not used, so the judgements need non-relevant
  (grade 0) rows; a first stage's unjudged candidates are the benchmark's business (`benchmarks/calibration.py`).

A pair is relevant when its grade is >= `relevant_from`. By default that is 1 for integer grades (any grade above
0) and 0.5 when some label is a fraction in 0..1. Pairs labels that the training reader rescaled onto 0..1 (grades
0..n divided by n, or -1/1) are cut on their original grades.
"""

import math
import random
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

_RESCALED_GRADES = re.compile(r"integer grades 0\.\.(\S+) divided by")


@dataclass(frozen=True)
class JudgedPairs:
    """Judged (query, text) pairs: `labels[i]` is 1 when `texts[i]` is relevant to `queries[i]`, else 0."""

    queries: list[str]
    texts: list[str]
    labels: np.ndarray
    source: str
    relevant_from: float

    def __len__(self) -> int:
        return len(self.texts)

    @property
    def query_count(self) -> int:
        return len(set(self.queries))

    def subset(self, keep: set[str], source: str) -> "JudgedPairs":
        """The pairs of the queries in `keep`."""
        index = [i for i, query in enumerate(self.queries) if query in keep]
        return JudgedPairs(
            [self.queries[i] for i in index],
            [self.texts[i] for i in index],
            self.labels[index],
            source,
            self.relevant_from,
        )

    def split_by_query(self, held_out_fraction: float, seed: int) -> tuple["JudgedPairs", "JudgedPairs"]:
        """(fitting pairs, held-out pairs): `held_out_fraction` of the queries, seeded, and none in both."""
        if not 0.0 < held_out_fraction < 1.0:
            msg = f"held_out_fraction must be between 0 and 1 (e.g. 0.3), got {held_out_fraction!r}."
            raise ValueError(msg)
        queries = list(dict.fromkeys(self.queries))
        if len(queries) < 2:
            msg = "Calibration needs at least 2 distinct queries: one set to fit on and one held out to measure on."
            raise ValueError(msg)
        random.Random(seed).shuffle(queries)
        count = min(len(queries) - 1, max(1, round(len(queries) * held_out_fraction)))
        held_out = set(queries[:count])
        return (
            self.subset(set(queries[count:]), self.source),
            self.subset(held_out, f"{self.source} (held-out {count} of {len(queries)} queries)"),
        )


def load_judged_pairs(
    data: str | Path,
    *,
    corpus: str | Path | None = None,
    split: str = "test",
    relevant_from: float | None = None,
) -> JudgedPairs:
    """
    Read judged pairs from any of the formats in the module docstring.

    :param data: A training data file, a BEIR directory or (with `corpus`) a judged-rows file.
    :param corpus: The corpus a judged-rows file refers to; its presence says `data` is judged rows.
    :param split: The qrels split of a BEIR directory.
    :param relevant_from: The lowest grade that counts as relevant; None: 1 for integer grades, 0.5 for fractions.
    :raises ValueError: If the data cannot be read or a grade cut leaves no relevant or no non-relevant pair.
    """
    path = Path(data).expanduser()
    if path.is_dir() or corpus is not None:
        from crossencoder_haystack.data import document_text, load_dataset

        dataset = load_dataset(path, split, corpus)
        rows = [
            (dataset.queries[query_id], document_text(dataset.corpus[doc_id]), float(grade))
            for query_id, judgements in dataset.qrels.items()
            if query_id in dataset.queries
            for doc_id, grade in judgements.items()
            if doc_id in dataset.corpus
        ]
        source = dataset.source or str(path)
    else:
        rows, source = _training_rows(path)
    return _judged_pairs(rows, source, relevant_from)


def _judged_pairs(rows: list[tuple[str, str, float]], source: str, relevant_from: float | None) -> JudgedPairs:
    """The rows as pairs labelled by the relevance cut (see the module docstring)."""
    if not rows:
        msg = f"{source} holds no judged pairs to calibrate on."
        raise ValueError(msg)
    grades = np.array([grade for _, _, grade in rows])
    cut = _default_cut(grades) if relevant_from is None else float(relevant_from)
    labels = (grades >= cut).astype(np.int64)
    if labels.min() == labels.max():
        kind = "relevant" if labels.min() else "non-relevant"
        msg = (
            f"Every pair of {source} is {kind} with the relevance cut grade >= {cut:g}; calibration needs both. Pass "
            "judged non-relevant documents too, or another cut (--relevant-from)."
        )
        raise ValueError(msg)
    return JudgedPairs([q for q, _, _ in rows], [t for _, t, _ in rows], labels, source, cut)


def pairs_from_training_data(data: Any, relevant_from: float | None = None) -> JudgedPairs:
    """Judged pairs from loaded `TrainingData` (e.g. `rerank train`'s held-out queries); see `load_judged_pairs`."""
    return _judged_pairs(*_training_rows(data), relevant_from)


def _training_rows(data: Any) -> tuple[list[tuple[str, str, float]], str]:
    """(query, text, grade) rows of `TrainingData`, or of the training data file it is read from."""
    if not hasattr(data, "shape"):
        from crossencoder_haystack.training.data import load_training_data

        data = load_training_data(data)
    rows: list[tuple[str, str, float]] = []
    if data.shape == "pairs":
        scale = _original_grade_scale(data.label_rescale)
        rows = [(row["query"], row["document"], _grade(row["label"] * scale)) for row in data.rows]
    elif data.shape == "lists":
        for row in data.rows:
            labelled = zip(row["documents"], row["labels"], strict=True)
            rows += [(row["query"], text, float(label)) for text, label in labelled]
    else:
        for row in data.rows:
            rows.append((row["query"], row["positive"], 1.0))
            rows += [(row["query"], negative, 0.0) for negative in row["negatives"]]
    return rows, data.source


def _original_grade_scale(label_rescale: str | None) -> float:
    """What the training reader divided pairs labels by (its `label_rescale` note says); 1 when it did not."""
    match = _RESCALED_GRADES.match(label_rescale or "")
    return float(match.group(1)) if match else 1.0


def _grade(value: float) -> float:
    """A rescaled grade back on its integer scale (undoing float rounding of g / n * n)."""
    nearest = round(value)
    return float(nearest) if math.isclose(value, nearest, abs_tol=1e-9) else value


def _default_cut(grades: np.ndarray) -> float:
    fractional = np.any((grades > 0) & (grades < 1))
    return 0.5 if fractional else 1.0


def describe(pairs: JudgedPairs) -> dict[str, Any]:
    """What to record about the pairs a mapping was fitted or measured on."""
    return {
        "source": pairs.source,
        "pairs": len(pairs),
        "queries": pairs.query_count,
        "relevant": int(pairs.labels.sum()),
        "relevant_from_grade": pairs.relevant_from,
    }

"""The HR candidate-search set shipped with the package (`hr_candidate_search/`, BEIR layout; see its README.md).

90 fictional CVs in Turkish and English, 32 recruiter queries with graded judgements, split into 18 `train`
queries (the starter model learns from them) and 14 held-out `test` queries (the demo shows and scores them).
"""

from dataclasses import dataclass
from pathlib import Path

from haystack import Document

from crossencoder_haystack.data import BeirDataset, load_beir
from crossencoder_haystack.data.beir import read_jsonl

HR_DATASET_DIRECTORY = "hr_candidate_search"
CV_META_FIELDS = ("name", "role", "language")


def hr_dataset_path() -> Path:
    """The directory of the packaged HR set (corpus.jsonl, queries.jsonl, qrels/{train,test}.tsv)."""
    return Path(__file__).with_name(HR_DATASET_DIRECTORY)


def load_hr_dataset(split: str = "test") -> BeirDataset:
    """
    The HR set with the queries and judgements of one split.

    :param split: `"test"` (the 14 held-out queries the demo shows) or `"train"` (the 18 the starter model uses).
    """
    return load_beir(hr_dataset_path(), split)


@dataclass(frozen=True)
class DemoQuery:
    """A query of the HR set: its id, text and language (`"tr"` or `"en"`)."""

    query_id: str
    text: str
    language: str


def hr_queries(split: str = "test") -> list[DemoQuery]:
    """The queries of one split, in file order, with their language."""
    queries = []
    for _, record in read_jsonl(hr_dataset_path() / "queries.jsonl"):
        metadata = record.get("metadata") or {}
        if metadata.get("split") == split:
            queries.append(DemoQuery(str(record["_id"]), record["text"], str(metadata.get("language", ""))))
    return queries


def cv_documents(dataset: BeirDataset) -> list[Document]:
    """
    The CVs as Haystack Documents: `id` the corpus id, `content` the CV text, meta `title` ("name — role"),
    `name`, `role` and `language`. The indexing pipeline embeds title and text; the ranker reads the text, whose
    first lines repeat name and role.
    """
    documents = []
    for doc_id, entry in dataset.corpus.items():
        meta = {"title": entry["title"]}
        meta.update({key: entry["metadata"][key] for key in CV_META_FIELDS if key in entry["metadata"]})
        documents.append(Document(id=doc_id, content=entry["text"], meta=meta))
    return documents

"""What a student learns from: queries, pseudo-queries drawn from the corpus, and each one's first-stage candidates.

Distillation needs no labels, only (query, document) pairs the teacher scores. They come from

- the user's queries: a BEIR directory (the queries of `split`, never another split's), a pairs/triplets/lists
  training file, a BEIR `queries.jsonl` (`_id`, `text`) or a `.txt` file with one query per line;
- pseudo-queries drawn from the corpus itself: a seeded sample of documents, each giving its title or its first
  sentence (alternately, where a document has both) as a query, so a corpus of a few thousand documents yields
  tens of thousands of pairs even with a handful of judged queries;
- for every query, the first stage's candidates: BM25's and the embedding model's top 100 together (the whole
  list a reranker sees at K = 100, not only its head), by `mining.retrieve_candidates`.

Query ids are namespaced (`query:<id>`, `pseudo:<document id>`) so the two kinds never collide.
"""

import json
import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from crossencoder_haystack.data import CorpusDocument, document_text, load_beir, read_corpus_file, read_queries

if TYPE_CHECKING:
    from crossencoder_haystack.training.mining import Retriever

QUERY_PREFIX = "query:"
PSEUDO_PREFIX = "pseudo:"
_MIN_PSEUDO_WORDS = 3
_MAX_PSEUDO_WORDS = 32


@dataclass
class DistillationSet:
    """
    The texts of a distillation run.

    :param corpus: Document id -> the text the rankers see (title and text joined by a space).
    :param queries: `query:<id>` -> the user's query text.
    :param pseudo_queries: `pseudo:<document id>` -> a title or first sentence of that document.
    :param source: Where the queries came from, for the model card.
    :param candidates: Query id (of either kind) -> its first-stage candidate document ids, best first.
    """

    corpus: dict[str, str]
    queries: dict[str, str]
    pseudo_queries: dict[str, str]
    source: str
    candidates: dict[str, list[str]] = field(default_factory=dict)

    def all_queries(self) -> dict[str, str]:
        """Every query id and text: the user's queries first, then the pseudo-queries."""
        return {**self.queries, **self.pseudo_queries}

    def pairs(self, query_ids: list[str]) -> int:
        """How many (query, candidate) pairs the given queries have."""
        return sum(len(self.candidates.get(query_id, ())) for query_id in query_ids)


def load_distillation_set(
    queries: str | Path | None,
    corpus: str | Path | None = None,
    *,
    split: str = "train",
    pseudo_queries: int = 1000,
    seed: int = 42,
) -> DistillationSet:
    """
    Read the queries and the corpus, and draw `pseudo_queries` pseudo-queries from the corpus.

    :param queries: A BEIR directory, a training data file, a `queries.jsonl`, a `.txt` (one query per line), or
        None for pseudo-queries only.
    :param corpus: The corpus (`.jsonl` with `_id`, `title`, `text`, or `.csv`); a BEIR directory brings its own.
    :param split: The qrels split of a BEIR directory whose queries are used (`train`: never the test queries).
    :param pseudo_queries: How many pseudo-queries to draw from the corpus (0: none).
    :param seed: Seeds the choice of documents for pseudo-queries.
    :raises ValueError: If there is no corpus, no query at all, or `pseudo_queries` is negative.
    """
    if isinstance(pseudo_queries, bool) or not isinstance(pseudo_queries, int) or pseudo_queries < 0:
        msg = f"pseudo_queries must be an int >= 0 (0: only your own queries), got {pseudo_queries!r}."
        raise ValueError(msg)
    documents, texts, source = _read_queries_and_corpus(queries, corpus, split)
    drawn = draw_pseudo_queries(documents, pseudo_queries, seed, exclude=set(texts.values()))
    if not texts and not drawn:
        msg = (
            f"No query to distil on: {source} holds none and no pseudo-query could be drawn from the corpus. "
            "Pass queries, or a corpus whose documents have titles or sentences of at least 3 words."
        )
        raise ValueError(msg)
    return DistillationSet(
        corpus={doc_id: document_text(document) for doc_id, document in documents.items()},
        queries={f"{QUERY_PREFIX}{query_id}": text for query_id, text in texts.items()},
        pseudo_queries=drawn,
        source=source,
    )


def _read_queries_and_corpus(
    queries: str | Path | None, corpus: str | Path | None, split: str
) -> tuple[dict[str, CorpusDocument], dict[str, str], str]:
    path = None if queries is None else Path(queries).expanduser()
    if path is not None and not path.exists():
        msg = f"queries {str(path)!r} does not exist. Pass a BEIR directory, a training data file or a queries file."
        raise FileNotFoundError(msg)
    if path is not None and path.is_dir():
        dataset = load_beir(path, split)
        texts = {query_id: dataset.queries[query_id] for query_id in dataset.judged_query_ids()}
        documents = dataset.corpus if corpus is None else _read_corpus(corpus)
        return documents, texts, f"{path} ({split} split, {len(texts)} queries)"
    if corpus is None:
        msg = (
            "corpus is required unless queries is a BEIR directory: pass a corpus .jsonl (_id, title, text) or .csv "
            "(--corpus on the command line)."
        )
        raise ValueError(msg)
    documents = _read_corpus(corpus)
    if path is None:
        return documents, {}, f"pseudo-queries from {corpus}"
    return documents, _read_query_file(path), str(path)


def _read_corpus(corpus: str | Path) -> dict[str, CorpusDocument]:
    path = Path(corpus).expanduser()
    return read_corpus_file(path / "corpus.jsonl" if path.is_dir() else path)


def _read_query_file(path: Path) -> dict[str, str]:
    """A `.txt` (one query per line), a BEIR `queries.jsonl`, or the queries of a pairs/triplets/lists file."""
    if path.suffix.lower() == ".txt":
        lines = [line.strip() for line in path.read_text(encoding="utf-8-sig").splitlines()]
        return {str(number): line for number, line in enumerate(lines, start=1) if line}
    if path.suffix.lower() == ".jsonl" and _looks_like_beir_queries(path):
        return read_queries(path)
    from crossencoder_haystack.training.data import load_training_data

    data = load_training_data(path)
    return {str(number): query for number, query in enumerate(data.queries, start=1)}


def _looks_like_beir_queries(path: Path) -> bool:
    import json

    with path.open(encoding="utf-8-sig") as lines:
        for line in lines:
            if line.strip():
                record: Any = json.loads(line)
                return isinstance(record, dict) and "text" in record and "query" not in record
    return False


def draw_pseudo_queries(
    corpus: dict[str, CorpusDocument], count: int, seed: int = 42, exclude: set[str] | None = None
) -> dict[str, str]:
    """
    Up to `count` pseudo-queries from a seeded sample of documents: every other document gives its title, the
    others their first sentence (each falls back to the other when it is missing or shorter than 3 words);
    long ones are cut at 32 words. A text drawn before (or in `exclude`) is not drawn again.

    :returns: `pseudo:<document id>` -> query text.
    """
    doc_ids = sorted(corpus)
    random.Random(seed).shuffle(doc_ids)
    drawn: dict[str, str] = {}
    seen = set(exclude or ())
    for position, doc_id in enumerate(doc_ids):
        if len(drawn) >= count:
            break
        document = corpus[doc_id]
        choices = [document["title"], first_sentence(document["text"])]
        if position % 2:
            choices.reverse()
        text = next((choice for choice in choices if len(choice.split()) >= _MIN_PSEUDO_WORDS), None)
        if text is not None and (query := " ".join(text.split()[:_MAX_PSEUDO_WORDS])) not in seen:
            seen.add(query)
            drawn[f"{PSEUDO_PREFIX}{doc_id}"] = query
    return drawn


def first_sentence(text: str) -> str:
    """The first sentence of `text` (the package's sentence splitter), stripped; `""` for an empty text."""
    from haystack_integrations.components.preprocessors.crossencoder import split_sentences

    spans = split_sentences(text.strip())
    return text.strip()[slice(*spans[0])].strip() if spans else ""


def retrieve_first_stage(
    dataset: DistillationSet,
    *,
    retriever: "Retriever" = "hybrid",
    embedding_model: str | Path | None = None,
    top_n: int = 100,
    show_progress: bool = False,
    cache_dir: str | Path | None = None,
) -> bool:
    """
    Fill `dataset.candidates`: each query's first-stage candidates (see `mining.retrieve_candidates`).

    :param dataset: The queries and corpus.
    :param retriever: `"hybrid"` (BM25 and the embedding model, default), `"bm25"` or `"embedding"`.
    :param embedding_model: The embedding model directory; None uses the bundled all-MiniLM-L6-v2.
    :param top_n: Candidates per query from each retriever.
    :param show_progress: Show the embedding progress bar.
    :param cache_dir: Keep the candidates in a file here, keyed by the queries, the corpus, the retriever, the
        embedding model and `top_n`: a second run on the same data (another `--layers`, a longer budget) skips the
        first stage (embedding a 5,000-document corpus and 2,000 queries took ~6 minutes on 2 cores).
    :returns: Whether the candidates came from the cache.
    """
    from crossencoder_haystack.training.mining import MiningInput, retrieve_candidates

    path = _first_stage_path(dataset, retriever, embedding_model, top_n, cache_dir) if cache_dir else None
    cached = _read_candidates(path) if path else None
    if cached is not None:
        dataset.candidates = cached
        return True
    data = MiningInput(queries=dataset.all_queries(), corpus=dataset.corpus, positives={})
    dataset.candidates = retrieve_candidates(
        data, retriever=retriever, model=embedding_model, top_n=top_n, show_progress=show_progress
    )
    if path:
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_suffix(".partial")
        partial.write_text(json.dumps(dataset.candidates), encoding="utf-8")
        partial.replace(path)  # whole or absent: a run cut off mid-write leaves no half file
    return False


def _first_stage_path(
    dataset: DistillationSet, retriever: str, embedding_model: str | Path | None, top_n: int, cache_dir: str | Path
) -> Path:
    from crossencoder_haystack.evaluation.fingerprints import json_fingerprint, model_fingerprint

    identity = {
        "queries": dataset.all_queries(),
        "corpus": json_fingerprint(dataset.corpus),
        "retriever": retriever,
        "embedding_model": model_fingerprint(embedding_model) if embedding_model is not None else "bundled",
        "top_n": top_n,
    }
    return Path(cache_dir).expanduser() / f"first-stage-{json_fingerprint(identity)[:16]}.json"


def _read_candidates(path: Path) -> dict[str, list[str]] | None:
    try:
        value = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    valid = isinstance(value, dict) and all(isinstance(ids, list) for ids in value.values())
    return value if valid else None

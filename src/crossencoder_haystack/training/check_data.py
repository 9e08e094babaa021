"""Out-of-domain checks during fine-tuning: does the model still rank well where its training data did not go?

`rerank train --check-data PATH` takes a BEIR folder (BM25's top 100 of its queries are reranked, as in
`rerank evaluate`) or a judged data file (pairs, triplets or lists: each query's own documents are reranked). The
starting model and each candidate are scored there; `train` keeps no candidate more than a point below the start.
"""

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from crossencoder_haystack.data import Qrels

CHECK_DEPTH = 100


@dataclass
class CheckSet:
    """A check collection ready to score a model on: each query's candidates and the judgements."""

    name: str
    queries: dict[str, str]
    candidates: dict[str, list[tuple[str, str]]]  # query id -> [(document id, text)]
    qrels: Qrels

    def ndcg_at_10(self, model: Any) -> float:
        """Mean nDCG@10 of a `SentenceTransformer` ranking the candidates by cosine; each text is encoded once."""
        from crossencoder_haystack.evaluation.metrics import evaluate_rankings
        from crossencoder_haystack.training.bi_encoder import encode_normalized

        texts = list(dict.fromkeys(text for candidates in self.candidates.values() for _, text in candidates))
        documents = dict(zip(texts, encode_normalized(model, texts), strict=True))
        queries = encode_normalized(model, list(self.queries.values()))
        rankings = {}
        for query_embedding, (query_id, candidates) in zip(queries, self.candidates.items(), strict=True):
            scores = [float(documents[text] @ query_embedding) for _, text in candidates]
            order = sorted(range(len(candidates)), key=lambda i: (-scores[i], i))
            rankings[query_id] = [candidates[i][0] for i in order]
        return round(evaluate_rankings(self.qrels, list(self.queries), rankings, ["ndcg@10"])["ndcg@10"], 4)


def load_check_set(path: str | Path, split: str = "test", max_queries: int | None = None) -> CheckSet:
    """
    A BEIR folder (BM25's top 100 per judged query of `split`, or the only split there is) or a judged data file.

    :raises FileNotFoundError: If the path does not exist.
    """
    source = Path(path).expanduser()
    if not source.exists():
        msg = f"check_data {str(path)!r} does not exist; pass a BEIR folder or a judged pairs/lists file."
        raise FileNotFoundError(msg)
    if source.is_dir():
        return _beir_check_set(source, split, max_queries)
    return _file_check_set(source, max_queries)


def _beir_check_set(directory: Path, split: str, max_queries: int | None) -> CheckSet:
    from crossencoder_haystack.data import available_splits, document_text, load_beir
    from crossencoder_haystack.evaluation.first_stage import BM25FirstStage, corpus_documents

    splits = available_splits(directory)
    dataset = load_beir(directory, split if split in splits or len(splits) != 1 else splits[0])
    query_ids = dataset.judged_query_ids()[:max_queries]
    first_stage = BM25FirstStage(corpus_documents(dataset))
    candidates = {}
    for query_id in query_ids:
        hits = first_stage.retrieve(query_id, dataset.queries[query_id], CHECK_DEPTH)
        candidates[query_id] = [(hit.id, document_text(dataset.corpus[hit.id])) for hit in hits]
    return CheckSet(
        directory.name,
        {query_id: dataset.queries[query_id] for query_id in query_ids},
        candidates,
        {query_id: dataset.qrels[query_id] for query_id in query_ids},
    )


def _file_check_set(path: Path, max_queries: int | None) -> CheckSet:
    from crossencoder_haystack.training.data import load_training_data

    samples = load_training_data(path).evaluation_samples()[:max_queries]
    queries, candidates, qrels = {}, {}, {}
    for number, sample in enumerate(samples):
        query_id = f"q{number}"
        queries[query_id] = sample["query"]
        documents = [(f"p{i}", text) for i, text in enumerate(sample["positive"])]
        documents += [(f"n{i}", text) for i, text in enumerate(sample["negative"])]
        candidates[query_id] = documents
        qrels[query_id] = {doc_id: 1 for doc_id, _ in documents if doc_id.startswith("p")}
    return CheckSet(path.name, queries, candidates, qrels)

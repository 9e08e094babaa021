"""The demo's first stage: the CVs most similar to a query by embedding, fused with BM25 when that measured better.

Both retrievers read the same in-memory store (`index.indexed_store`). With `bm25_weight` > 0 the two lists are
joined and scored `(1 - w) * minmax(embedding) + w * minmax(BM25)` per query (the ranker's own `fuse_scores`); a CV
that one retriever did not return counts as that retriever's worst. BM25 alone is kept at hand for the summary.

The weights were chosen on the HR set's 18 train queries, never on the 14 held-out ones the demo scores:
multilingual-e5-small fused with BM25 at w = 0.5 (on the train queries the fused list beat either retriever
alone); the bundled all-MiniLM-L6-v2 is used alone, as the demo always did, to show what a reranker adds to it.
"""

from dataclasses import dataclass, replace
from typing import Any

from haystack import Document

MULTILINGUAL_BM25_WEIGHT = 0.5


@dataclass
class FirstStage:
    """
    Retrieves CVs for a query, best first, each with its first-stage `score`.

    :param store: The `InMemoryDocumentStore` with the CVs and their embeddings.
    :param text_embedder: A warmed-up Haystack text embedder of the model the CVs were embedded with.
    :param top_k: How many CVs the first stage passes on.
    :param bm25_weight: BM25's share of the fused score; 0 retrieves by embedding alone.
    :param name: How the summary table names this first stage.
    """

    store: Any
    text_embedder: Any
    top_k: int
    bm25_weight: float
    name: str

    def run(self, query: str) -> list[Document]:
        """The first stage's CVs for `query`, best first, with their (fused) scores."""
        from haystack.components.retrievers.in_memory import InMemoryEmbeddingRetriever

        embedding = self.text_embedder.run(text=query)["embedding"]
        retriever = InMemoryEmbeddingRetriever(document_store=self.store, top_k=self.top_k)
        dense = retriever.run(query_embedding=embedding)["documents"]
        if not self.bm25_weight:
            return dense
        return fuse_first_stages(dense, self.bm25(query), self.bm25_weight)[: self.top_k]

    def bm25(self, query: str) -> list[Document]:
        """BM25 (Haystack's in-memory BM25L) over the CV texts alone, best first."""
        from haystack.components.retrievers.in_memory import InMemoryBM25Retriever

        return InMemoryBM25Retriever(document_store=self.store, top_k=self.top_k).run(query=query)["documents"]


def fuse_first_stages(dense: list[Document], bm25: list[Document], bm25_weight: float) -> list[Document]:
    """
    The union of both lists ordered by `(1 - w) * minmax(dense) + w * minmax(bm25)`, ties in dense order.

    :param dense: The embedding retriever's documents, best first, with scores.
    :param bm25: The BM25 retriever's documents, best first, with scores.
    :param bm25_weight: BM25's share, in [0, 1].
    """
    from haystack_integrations.components.rankers.crossencoder.fusion import fuse_scores

    documents = {document.id: document for document in [*dense, *bm25]}
    dense_scores = {document.id: document.score for document in dense}
    bm25_scores = {document.id: document.score for document in bm25}
    worst_dense = min((score for score in dense_scores.values() if score is not None), default=0.0)
    ids = list(documents)
    fused = fuse_scores(
        [score if (score := dense_scores.get(doc_id)) is not None else worst_dense for doc_id in ids],
        [bm25_scores.get(doc_id) for doc_id in ids],
        bm25_weight,
        "minmax",
    )
    order = sorted(range(len(ids)), key=lambda position: -fused[position])
    return [replace(documents[ids[position]], score=fused[position]) for position in order]

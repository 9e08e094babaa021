"""A Hayhooks pipeline whose reranking stage is the self-hosted `rerank serve` service.

BM25 retrieves candidates from a small in-memory store; Haystack's `CohereRanker`, pointed at the service with
`api_base_url`, reranks them. Hayhooks exposes `run_api` as `POST /rerank_pipeline/run`.

Environment:
- `RERANK_URL`: the service's base URL (default `http://127.0.0.1:8080`).
- `RERANK_API_KEY`: the key the service was started with (any value if it runs without one).
"""

import os

from hayhooks import BasePipelineWrapper
from haystack import Document, Pipeline
from haystack.components.retrievers.in_memory import InMemoryBM25Retriever
from haystack.document_stores.in_memory import InMemoryDocumentStore
from haystack.utils import Secret
from haystack_integrations.components.rankers.cohere import CohereRanker

DOCUMENTS = [
    "Berlin is the capital and largest city of Germany.",
    "Paris is the capital of France and sits on the Seine.",
    "The Spree flows through the centre of Berlin.",
    "Munich is the capital of Bavaria, in the south of Germany.",
    "Lyon is a French city at the confluence of the Rhône and the Saône.",
    "Hamburg, on the Elbe, is Germany's largest port.",
]


class PipelineWrapper(BasePipelineWrapper):
    def setup(self) -> None:
        store = InMemoryDocumentStore()
        store.write_documents([Document(content=text) for text in DOCUMENTS])
        self.pipeline = Pipeline()
        self.pipeline.add_component("retriever", InMemoryBM25Retriever(document_store=store, top_k=5))
        self.pipeline.add_component(
            "ranker",
            CohereRanker(
                model="served-cross-encoder",  # the service answers with its one model whatever this says
                api_key=Secret.from_env_var("RERANK_API_KEY"),
                api_base_url=os.environ.get("RERANK_URL", "http://127.0.0.1:8080"),
            ),
        )
        self.pipeline.connect("retriever.documents", "ranker.documents")

    def run_api(self, query: str, top_k: int = 3) -> list[dict]:
        """
        Retrieve candidates with BM25 and rerank them with the self-hosted cross-encoder.

        :param query: The question.
        :param top_k: How many documents to return.
        :returns: The best documents, each with its `content` and reranking `score`.
        """
        result = self.pipeline.run({"retriever": {"query": query}, "ranker": {"query": query, "top_k": top_k}})
        return [{"content": document.content, "score": document.score} for document in result["ranker"]["documents"]]

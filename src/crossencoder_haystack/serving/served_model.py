"""The model behind the rerank service: one cross-encoder, answering rerank jobs with `CrossEncoderRanker`.

A job's scores are exactly what `CrossEncoderRanker(activation="sigmoid", split_long_documents=True,
aggregation="max")` returns for the same query and texts: long texts are scored passage by passage and ranked by
their best passage. A job that asks for truncation goes to a second ranker over the same model directory with
`split_long_documents=False`, which lets the model cut each (query, text) pair at `max_length` tokens; that ranker
loads its own copy of the weights on the first such job.
"""

import threading
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from haystack import Document
from haystack.utils import ComponentDevice

from haystack_integrations.components.rankers.crossencoder import CrossEncoderRanker

LongTexts = Literal["split", "truncate"]


@dataclass(frozen=True)
class RerankJob:
    """
    One request's work for the model.

    :param query: The query.
    :param texts: The texts to rank, in request order.
    :param long_texts: `"split"` scores a long text by its best passage, `"truncate"` by its beginning.
    :param max_tokens_per_text: Cut every text to this many tokens first (Cohere `max_tokens_per_doc`).
    :param raw_scores: Return raw logits instead of sigmoid scores.
    """

    query: str
    texts: Sequence[str]
    long_texts: LongTexts = "split"
    max_tokens_per_text: int | None = None
    raw_scores: bool = False

    @property
    def size(self) -> int:
        return len(self.texts)


@dataclass(frozen=True)
class BestPassage:
    """Where in a text its score came from: characters `[start, end)` and that passage's score."""

    start: int
    end: int
    score: float


@dataclass(frozen=True)
class RankedText:
    """One text of a job, ranked: its position in the request and its score (0.0 for a blank text)."""

    index: int
    score: float
    best_passage: BestPassage | None = None


class ServedModel:
    """
    A cross-encoder ready to answer `RerankJob`s; `rank` is called from one worker thread at a time.

    ```python
    model = ServedModel("/models/my-cross-encoder", max_length=256)
    model.warm_up()
    model.rank(RerankJob(query="capital of Germany", texts=["Paris is in France", "Berlin is in Germany"]))
    # [RankedText(index=1, score=0.97, ...), RankedText(index=0, score=0.02, ...)]
    ```
    """

    def __init__(
        self,
        model: str | Path,
        *,
        backend: Literal["torch", "onnx", "openvino"] = "torch",
        device: ComponentDevice | None = None,
        max_length: int | None = None,
        batch_size: int = 16,
        num_threads: int | None = None,
        model_name: str | None = None,
    ) -> None:
        """
        :param model: A local cross-encoder directory (or a cached Hugging Face hub id).
        :param backend: `"torch"`, `"onnx"` or `"openvino"`.
        :param device: The device to run on; `None` picks the default.
        :param max_length: Tokens of query plus passage the model sees; `None` uses the model's limit.
        :param batch_size: Pairs per forward pass.
        :param num_threads: CPU threads for the model; `None` keeps the library default.
        :param model_name: The name `GET /info` reports; defaults to the model directory's name.
        """
        self.model = str(model)
        self.model_name = model_name or Path(self.model).name or self.model
        self.backend = backend
        self._ranker_parameters: dict[str, Any] = {
            "model": self.model,
            "backend": backend,
            "device": device,
            "token": None,
            "activation": "sigmoid",
            "aggregation": "max",
            "max_length": max_length,
            "batch_size": batch_size,
            "num_threads": num_threads,
        }
        self._splitting = CrossEncoderRanker(**self._ranker_parameters, split_long_documents=True)
        self._truncating: CrossEncoderRanker | None = None
        self._tokenizer: Any = None
        self._lock = threading.Lock()

    def warm_up(self) -> None:
        """Loads the model and its tokenizer. Idempotent."""
        with self._lock:
            if self._tokenizer is not None:
                return
            from transformers import AutoTokenizer

            self._splitting.warm_up()
            self._tokenizer = AutoTokenizer.from_pretrained(self.model)

    @property
    def max_length(self) -> int:
        """Tokens of query plus passage the model sees (the tokenizer's limit unless `max_length` was given)."""
        self.warm_up()
        configured = self._ranker_parameters["max_length"]
        return int(configured if configured is not None else self._tokenizer.model_max_length)

    def rank(self, job: RerankJob) -> list[RankedText]:
        """
        The job's texts, best first (ties in request order).

        :param job: The query and texts to rank.
        :returns: One `RankedText` per text.
        """
        return self.rank_many([job])[0]

    def rank_many(self, jobs: Sequence[RerankJob]) -> list[list[RankedText]]:
        """
        Ranks several jobs with shared model batches (jobs alike in `long_texts` and `raw_scores` are scored in
        one model call); each job's result is what `rank` returns for it.

        :param jobs: The jobs.
        :returns: One list of `RankedText` per job, in the order of `jobs`.
        """
        self.warm_up()
        results: list[list[RankedText]] = [[] for _ in jobs]
        groups: dict[tuple[LongTexts, bool], list[int]] = {}
        for position, job in enumerate(jobs):
            groups.setdefault((job.long_texts, job.raw_scores), []).append(position)
        for (long_texts, raw_scores), positions in groups.items():
            ranker = self._splitting if long_texts == "split" else self._truncating_ranker()
            documents = [self._documents(jobs[position]) for position in positions]
            ranked = ranker.run_batch(
                queries=[jobs[position].query for position in positions],
                documents=documents,
                top_k=max(1, *(len(docs) for docs in documents)),
                activation="identity" if raw_scores else "sigmoid",
            )["documents"]
            for position, ranked_documents in zip(positions, ranked, strict=True):
                results[position] = [_ranked_text(document) for document in ranked_documents]
        return results

    def rank_batch(self, jobs: Iterable[RerankJob]) -> Iterator[list[RankedText] | Exception]:
        """
        The `score_batch` of the service's `DynamicBatcher`: takes every job of the batch, scores them together
        with `rank_many` and yields one result per job. If the shared call fails, each job is retried alone, so a
        job that fails yields its exception without failing the others.
        """
        taken = list(jobs)
        if not taken:
            return
        try:
            results: list[list[RankedText] | Exception] = list(self.rank_many(taken))
        except Exception:
            results = []
            for job in taken:
                try:
                    results.append(self.rank(job))
                except Exception as error:
                    results.append(error)
        yield from results

    def _documents(self, job: RerankJob) -> list[Document]:
        texts = list(job.texts)
        if job.max_tokens_per_text is not None:
            texts = truncate_to_tokens(texts, self._tokenizer, job.max_tokens_per_text)
        return [Document(id=str(index), content=text) for index, text in enumerate(texts)]

    def _truncating_ranker(self) -> CrossEncoderRanker:
        with self._lock:
            if self._truncating is None:
                self._truncating = CrossEncoderRanker(**self._ranker_parameters, split_long_documents=False)
        self._truncating.warm_up()
        return self._truncating


def _ranked_text(document: Document) -> RankedText:
    best_passage = None
    if document.meta.get("best_passage_start") is not None and document.meta.get("best_passage_score") is not None:
        best_passage = BestPassage(
            start=int(document.meta["best_passage_start"]),
            end=int(document.meta["best_passage_end"]),
            score=float(document.meta["best_passage_score"]),
        )
    score = 0.0 if document.score is None else float(document.score)
    return RankedText(index=int(document.id), score=score, best_passage=best_passage)


def truncate_to_tokens(texts: Sequence[str], tokenizer: Any, max_tokens: int) -> list[str]:
    """
    Cut each text after its first `max_tokens` tokens (without special tokens), at the end of the last kept token.

    :param texts: The texts.
    :param tokenizer: A Hugging Face fast tokenizer (it must return offsets).
    :param max_tokens: Tokens to keep per text; must be >= 1.
    :returns: The texts, each a prefix of the original.
    """
    # A token covers at least one byte, and a SentencePiece word marker at most one more per byte: texts of up to
    # max_tokens / 2 bytes cannot be too long and skip the tokenizer.
    long_positions = [i for i, text in enumerate(texts) if 2 * len(text.encode("utf-8")) > max_tokens]
    truncated = list(texts)
    if not long_positions:
        return truncated
    encoded = tokenizer(
        [texts[i] for i in long_positions], add_special_tokens=False, return_offsets_mapping=True, verbose=False
    )
    for position, offsets in zip(long_positions, encoded["offset_mapping"], strict=True):
        if len(offsets) > max_tokens:
            truncated[position] = texts[position][: offsets[max_tokens - 1][1]]
    return truncated

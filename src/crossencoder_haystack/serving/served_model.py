"""The model behind the rerank service: one cross-encoder, answering rerank jobs with `CrossEncoderRanker`.

A job's scores are exactly what `CrossEncoderRanker(activation="sigmoid", split_long_documents=True,
aggregation="max")` returns for the same query and texts (with `activation="calibrated"`, P(relevant), when the
model directory carries a `calibration.json` from `rerank calibrate`): long texts are scored passage by passage and
ranked by their best passage. A job that asks for truncation is scored by the same ranker with
`split_long_documents=False` for that call, which lets the model cut each (query, text) pair at `max_length` tokens.

A batch of jobs is scored in chunks of about `chunk_documents` documents (texts of several jobs share a chunk, and
so the model's padded batches; a long job spans several chunks). Between chunks the model checks each job: one that
was cancelled (its request timed out or its client left) or whose deadline has passed is not scored further, so an
abandoned heavy request costs at most the chunk in progress and does not hold up the requests behind it. (A job
scored in several chunks, or with other jobs, gets its scores up to float rounding: its texts are padded alongside
different neighbours.)
"""

import threading
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from haystack import Document
from haystack.utils import ComponentDevice

from haystack_integrations.components.rankers.crossencoder import CrossEncoderRanker
from haystack_integrations.components.rankers.crossencoder.calibration import has_calibration

LongTexts = Literal["split", "truncate"]
_Group = tuple[LongTexts, bool]  # (long_texts, raw_scores): jobs alike in both can share a model call

# Model batches (of `batch_size` pairs) per chunk by default, and the characters a chunk may hold per document
# (about one 256-token passage), so a chunk of long texts does not grow into a long model call.
_BATCHES_PER_CHUNK = 4
_CHARS_PER_CHUNK_DOCUMENT = 1_000


class JobCancelledError(Exception):
    """The job was cancelled, or its deadline passed, before the model finished it; the rest was not scored."""


@dataclass(frozen=True)
class RerankJob:
    """
    One request's work for the model.

    :param query: The query.
    :param texts: The texts to rank, in request order.
    :param long_texts: `"split"` scores a long text by its best passage, `"truncate"` by its beginning.
    :param max_tokens_per_text: Cut every text to this many tokens first (Cohere `max_tokens_per_doc`).
    :param raw_scores: Return raw logits instead of sigmoid scores.
    :param deadline: A `time.monotonic()` time after which the model stops scoring the job; `None` for no deadline.
    :param cancelled: Set it (or call `cancel()`) to stop scoring the job at the next chunk.
    """

    query: str
    texts: Sequence[str]
    long_texts: LongTexts = "split"
    max_tokens_per_text: int | None = None
    raw_scores: bool = False
    deadline: float | None = None
    cancelled: threading.Event = field(default_factory=threading.Event, compare=False, repr=False)

    @property
    def size(self) -> int:
        return len(self.texts)

    def cancel(self) -> None:
        """Stop scoring this job at the next chunk (its result becomes a `JobCancelledError`)."""
        self.cancelled.set()

    @property
    def stopped(self) -> bool:
        """Whether the job was cancelled or its deadline has passed."""
        return self.cancelled.is_set() or (self.deadline is not None and time.monotonic() >= self.deadline)


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
        chunk_documents: int | None = None,
        precision: Literal["auto", "fp32", "bf16", "fp16", "int8"] = "auto",
        truncation: Literal["longest_first", "query_window"] = "longest_first",
    ) -> None:
        """
        :param model: A local cross-encoder directory (or a cached Hugging Face hub id).
        :param backend: `"torch"`, `"onnx"` or `"openvino"`.
        :param device: The device to run on; `None` picks the default.
        :param max_length: Tokens of query plus passage the model sees; `None` uses the model's limit.
        :param batch_size: Pairs per forward pass.
        :param num_threads: CPU threads for the model; `None` keeps the library default.
        :param model_name: The name `GET /info` reports; defaults to the model directory's name.
        :param chunk_documents: Documents per model call; cancelled jobs and deadlines are checked between calls.
            `None` is 4 x `batch_size`.
        :param precision: What the model computes in (`CrossEncoderRanker`'s `precision`): `"auto"` is bf16 on CPUs
            with AMX or AVX512-BF16, fp32 elsewhere; `"fp32"` forces float32.
        :param truncation: How a job that asks for truncation cuts a long pair: `"longest_first"` (its first
            tokens) or `"query_window"` (its opening and the window that matches the query best).
        :raises ValueError: If `chunk_documents` is not a positive integer, or `precision` or `truncation` is not
            one of its values.
        """
        if chunk_documents is not None and (isinstance(chunk_documents, bool) or chunk_documents <= 0):
            msg = f"chunk_documents must be a positive integer or None, got {chunk_documents!r}."
            raise ValueError(msg)
        self.model = str(model)
        self.model_id = public_model_id(self.model)
        self.model_name = model_name or Path(self.model).name or self.model
        self.chunk_documents = chunk_documents or _BATCHES_PER_CHUNK * batch_size
        self.backend = backend
        self._ranker = CrossEncoderRanker(
            model=self.model,
            backend=backend,
            device=device,
            token=None,
            activation="calibrated" if has_calibration(self.model) else "sigmoid",
            aggregation="max",
            max_length=max_length,
            batch_size=batch_size,
            num_threads=num_threads,
            precision=precision,
            truncation=truncation,
            split_long_documents=True,  # a job that asks for truncation turns it off for its call
            first_stage_weight=0.0,  # the Cohere and TEI APIs return the model's own scores, never fused
        )

    def warm_up(self) -> None:
        """Loads the model and its tokenizer (once). Idempotent and thread-safe."""
        self._ranker.warm_up()

    @property
    def _scorer(self) -> Any:
        # The ranker's own scorer: the tokenizer and the max_length that the model's truncation uses.
        self.warm_up()
        return self._ranker._scorer

    @property
    def max_length(self) -> int:
        """Tokens of query plus passage the model sees: the limit its scorer truncates each pair to."""
        return int(self._scorer.max_length)

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
        shared model calls); each job's result is what `rank` returns for it.

        :param jobs: The jobs.
        :returns: One list of `RankedText` per job, in the order of `jobs`.
        :raises Exception: The first job's error, if a job fails (or was cancelled: `JobCancelledError`).
        """
        results = list(self.rank_batch(jobs))
        for result in results:
            if isinstance(result, Exception):
                raise result
        return results  # type: ignore[return-value]

    def rank_batch(self, jobs: Iterable[RerankJob]) -> Iterator[list[RankedText] | Exception]:
        """
        The `score_batch` of the service's `DynamicBatcher`: takes every job of the batch, scores them together in
        chunks and yields one result per job, in order, as soon as the job and those before it are done.

        Before each chunk, a job that was cancelled or is past its deadline is dropped: it yields a
        `JobCancelledError`. If a chunk's shared model call fails, each job in it is retried alone, so a job that
        fails yields its exception without failing the others.
        """
        taken = list(jobs)
        if not taken:
            return
        self.warm_up()
        chunks, errors = self._chunks(taken)
        progress = _Progress(taken, chunks, errors)
        for group, chunk in chunks:
            live = [piece for piece in chunk if progress.wants(piece.position)]
            if live:
                for piece, scored in zip(live, self._score_chunk(group, live), strict=True):
                    progress.record(piece.position, scored)
            yield from progress.finished()
        yield from progress.finished()

    def _chunks(self, jobs: Sequence[RerankJob]) -> tuple[list[tuple[_Group, list["_Piece"]]], dict[int, Exception]]:
        """The jobs' documents cut into chunks (by group), and the errors of jobs whose documents failed."""
        groups: dict[_Group, list[tuple[int, str, Document]]] = {}
        errors: dict[int, Exception] = {}
        for position, job in enumerate(jobs):
            try:
                documents = self._documents(job)
            except Exception as error:
                errors[position] = error
                continue
            group = groups.setdefault((job.long_texts, job.raw_scores), [])
            group += [(position, job.query, document) for document in documents]
        chunks = [
            (group, chunk) for group, documents in groups.items() for chunk in _pack(documents, self.chunk_documents)
        ]
        return chunks, errors

    def _score_chunk(self, group: _Group, pieces: list["_Piece"]) -> list[list[Document] | Exception]:
        try:
            return list(self._run_ranker(group, pieces))
        except Exception:
            results: list[list[Document] | Exception] = []
            for piece in pieces:
                try:
                    results += self._run_ranker(group, [piece])
                except Exception as error:
                    results.append(error)
            return results

    def _run_ranker(self, group: _Group, pieces: list["_Piece"]) -> list[list[Document]]:
        long_texts, raw_scores = group
        return self._ranker.run_batch(
            queries=[piece.query for piece in pieces],
            documents=[piece.documents for piece in pieces],
            top_k=max(len(piece.documents) for piece in pieces),
            activation="identity" if raw_scores else self._ranker.activation,
            split_long_documents=None if long_texts == "split" else False,
        )["documents"]

    def _documents(self, job: RerankJob) -> list[Document]:
        texts = list(job.texts)
        if job.max_tokens_per_text is not None:
            texts = truncate_to_tokens(texts, self._scorer.tokenizer, job.max_tokens_per_text)
        return [Document(id=str(index), content=text) for index, text in enumerate(texts)]


@dataclass(frozen=True)
class _Piece:
    """A job's consecutive documents within one chunk."""

    position: int
    query: str
    documents: list[Document]


def _pack(documents: Iterable[tuple[int, str, Document]], max_documents: int) -> list[list[_Piece]]:
    """Cuts (job position, query, document) into chunks of at most `max_documents` documents and as many
    characters as `max_documents` average documents (a longer document makes a chunk of its own)."""
    max_chars = max_documents * _CHARS_PER_CHUNK_DOCUMENT
    chunks: list[list[_Piece]] = []
    count = chars = 0
    for position, query, document in documents:
        size = len(document.content or "")
        if not chunks or count >= max_documents or (count and chars + size > max_chars):
            chunks.append([])
            count = chars = 0
        chunk = chunks[-1]
        if not chunk or chunk[-1].position != position:
            chunk.append(_Piece(position, query, []))
        chunk[-1].documents.append(document)
        count += 1
        chars += size
    return chunks


class _Progress:
    """The jobs of one batch while their chunks are scored: documents scored so far, pieces left, errors."""

    def __init__(
        self, jobs: Sequence[RerankJob], chunks: Iterable[tuple[Any, list[_Piece]]], errors: dict[int, Exception]
    ) -> None:
        self._jobs = jobs
        self._pieces_left = [0] * len(jobs)
        for _, chunk in chunks:
            for piece in chunk:
                self._pieces_left[piece.position] += 1
        self._scored: list[list[Document]] = [[] for _ in jobs]
        self._errors = dict(errors)
        self._next = 0

    def wants(self, position: int) -> bool:
        """Whether the job's next piece should be scored; a stopped job gets its `JobCancelledError` here."""
        if position not in self._errors and self._jobs[position].stopped:
            self._errors[position] = JobCancelledError(
                "The request was cancelled or timed out; the model stopped scoring it."
            )
        return position not in self._errors

    def record(self, position: int, scored: list[Document] | Exception) -> None:
        """One piece of the job scored (its documents), or failed (the job fails)."""
        self._pieces_left[position] -= 1
        if isinstance(scored, Exception):
            self._errors.setdefault(position, scored)
        else:
            self._scored[position] += scored

    def finished(self) -> Iterator[list[RankedText] | Exception]:
        """The results of the jobs, in order, that are done and follow only jobs already done."""
        while self._next < len(self._jobs) and (self._pieces_left[self._next] == 0 or not self.wants(self._next)):
            position = self._next
            self._next += 1
            error = self._errors.get(position)
            yield error if error is not None else _ranked(self._scored[position])


def _ranked(documents: list[Document]) -> list[RankedText]:
    # CrossEncoderRanker's order, across chunks: by score (no score last), ties in request order.
    documents = sorted(documents, key=lambda d: (d.score is None, -(d.score or 0.0), int(d.id)))
    return [_ranked_text(document) for document in documents]


def public_model_id(model: str) -> str:
    """
    What the service tells clients about its model: a local directory's name (never its path on the server), or
    the Hugging Face hub id as given.
    """
    path = Path(model).expanduser()
    is_local = path.is_absolute() or path.exists() or model.startswith((".", "~")) or "\\" in model
    if not is_local:
        return model
    return path.resolve().name or model


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

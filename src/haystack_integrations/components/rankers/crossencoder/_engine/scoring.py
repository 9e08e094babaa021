"""The model side of the ranker: (query, texts) -> raw logits, thread-safe, for every backend.

The component only deals with documents; everything about running the model (backend, batching, threads, the
score cache) lives here behind one small interface, `PairScorer`. Every backend runs the same CPU fast path:

1. the query is tokenized once per request and each text once (`PairEncoder`), not every pair as a whole;
2. pairs are sorted by token length and batched by count or by a token budget, padded per batch (`batching`);
3. one forward pass per batch on torch, onnxruntime or OpenVINO, on a CPU in bf16 several batches at once
   (`streams`); logits go back to the input order;
4. optionally, an LRU cache of logits skips pairs already scored (`score_cache`).

The precision the model computes in (`precision.py`) is chosen at load: on torch the weights are cast (bf16 on
CPUs with AMX or AVX512-BF16 when the ranker asks for `"auto"`), logits always come back as float32; onnx runs an
export as it is (float32, or int8 when it is quantized); OpenVINO gets an inference-precision hint.
"""

import copy
import json
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
from haystack import logging

from haystack_integrations.components.rankers.crossencoder._engine.activations import (
    ACTIVATIONS,
    activation_from_torch_module,
)
from haystack_integrations.components.rankers.crossencoder._engine.batching import BatchedForward, pad_batch
from haystack_integrations.components.rankers.crossencoder._engine.checks import check_choice
from haystack_integrations.components.rankers.crossencoder._engine.manifest import find_exported_model, read_manifest
from haystack_integrations.components.rankers.crossencoder._engine.model_loading import (
    ModelNotAvailableError,
    is_cached_on_hub,
    load_cross_encoder,
)
from haystack_integrations.components.rankers.crossencoder._engine.pair_encoding import (
    TRUNCATIONS,
    EncodedPair,
    PairEncoder,
)
from haystack_integrations.components.rankers.crossencoder._engine.pair_scorer import ManyRequestScorer, PairScorer
from haystack_integrations.components.rankers.crossencoder._engine.precision import (
    cast_module,
    check_precision,
    device_type,
    dtype_in_kwargs,
    module_precision,
    precision_reason,
    resolve_precision,
)
from haystack_integrations.components.rankers.crossencoder._engine.score_cache import CachingPairScorer, PairScoreCache
from haystack_integrations.components.rankers.crossencoder._engine.streams import (
    BatchStreams,
    auto_stream_count,
    available_cores,
)

logger = logging.getLogger(__name__)

Backend = Literal["torch", "onnx", "openvino"]  # the ranker's `backend` argument
BACKENDS: tuple[str, ...] = ("torch", "onnx", "openvino")

# A model's forward pass: padded `input_ids`, `attention_mask`, `token_type_ids` -> logits (batch, num_labels).
Forward = Callable[[dict[str, np.ndarray]], np.ndarray]


class TokenizedPairScorer(ManyRequestScorer, BatchedForward):
    """
    Scores (query, text) pairs with any backend's forward pass: query tokenized once, length-sorted batches.

    Calls are serialized with a lock: Hugging Face fast tokenizers raise "Already borrowed" when one tokenizer is
    used from several threads at once. Within a call the batches may run several at once (`streams`, set by the
    loader: see `streams.py`), each on its share of the cores.

    :param forward: The backend's forward pass.
    :param tokenizer: The model's Hugging Face fast tokenizer.
    :param max_length: Tokens per pair (query, text and special tokens); longer pairs are truncated
        `longest_first`, as sentence-transformers' `CrossEncoder` does.
    :param declared_activation: The activation the model's configuration declares, if any.
    :param batch_size: Pairs per batch when `max_tokens_per_batch` is None.
    :param max_tokens_per_batch: A token budget per batch (padding included); overrides `batch_size`.
    :param truncation: `"longest_first"` or `"query_window"` (a long text keeps its opening and the window that
        matches the query best; see `PairEncoder`).
    """

    def __init__(
        self,
        forward: Forward,
        tokenizer: Any,
        max_length: int,
        declared_activation: str | None,
        batch_size: int = 16,
        max_tokens_per_batch: int | None = None,
        truncation: str = "longest_first",
    ) -> None:
        super().__init__(forward, tokenizer, max_tokens_per_batch)
        self.max_length = int(max_length)
        self.declared_activation = declared_activation
        self.batch_size = batch_size
        self.encoder = PairEncoder(tokenizer, self.max_length, truncation=truncation)
        self._lock = threading.Lock()
        self._worker_encoders = threading.local()  # one tokenizer copy per stream worker (see `_encode`)

    def logits_many(
        self, requests: Sequence[tuple[str, Sequence[str]]], show_progress_bar: bool = False
    ) -> list[np.ndarray]:
        """
        Raw logits for several (query, texts) requests; one array per request, in the order of its texts.

        The pairs of all requests are length-sorted and batched together, so small requests fill each other's
        batches and pad less than they would one by one.
        """
        sizes = [len(texts) for _, texts in requests]
        result = np.zeros(sum(sizes), dtype=np.float32)
        if len(result):
            self._score_into(result, requests, show_progress_bar)
        return np.split(result, np.cumsum(sizes)[:-1]) if requests else []

    def _score_into(
        self, result: np.ndarray, requests: Sequence[tuple[str, Sequence[str]]], show_progress_bar: bool
    ) -> None:
        with self._lock:
            pairs = self._encode(requests)
            outputs = self.forward_batches(pairs, self.batch_size, desc="Scoring", show_progress_bar=show_progress_bar)
            for batch, output in outputs:
                if output.ndim != 2 or output.shape[1] != 1:
                    msg = (
                        f"The model returns {tuple(output.shape)[1:]} outputs per pair; a reranker needs a "
                        "cross-encoder with exactly one relevance logit (num_labels=1)."
                    )
                    raise ValueError(msg)
                result[batch] = output[:, 0]

    def _encode(self, requests: Sequence[tuple[str, Sequence[str]]]) -> list[EncodedPair]:
        """
        The pairs of all requests, in order. With several streams the texts are tokenized in the stream workers,
        a share each, each worker with its own copy of the tokenizer (one tokenizer must not be used by two
        threads at once); the tokenizer releases the GIL, so the shares run side by side.
        """
        shards = split_requests(requests, self.streams.streams, _MIN_TEXTS_PER_TOKENIZER_SHARD)
        if len(shards) <= 1:
            return [pair for query, texts in requests if texts for pair in self.encoder.encode(query, texts)]
        encoded = self.streams.map(self._encode_in_worker, shards)
        return [pair for shard in encoded for pair in shard]

    def _encode_in_worker(self, shard: list[tuple[str, Sequence[str]]]) -> list[EncodedPair]:
        encoder = getattr(self._worker_encoders, "encoder", None)
        if encoder is None:
            encoder = copy.copy(self.encoder)
            encoder.tokenizer = copy.deepcopy(self.encoder.tokenizer)
            self._worker_encoders.encoder = encoder
        return [pair for query, texts in shard for pair in encoder.encode(query, texts)]


_MIN_TEXTS_PER_TOKENIZER_SHARD = 16  # below this, handing texts to the workers costs more than it saves


def split_requests(
    requests: Sequence[tuple[str, Sequence[str]]], shards: int, min_texts: int
) -> list[list[tuple[str, Sequence[str]]]]:
    """
    Cut (query, texts) requests into at most `shards` shards of nearly equal numbers of texts, in order (a request
    may be cut between shards); fewer shards when a shard would get fewer than `min_texts` texts. Requests without
    texts are dropped.
    """
    jobs = [(query, list(texts)) for query, texts in requests if texts]
    total = sum(len(texts) for _, texts in jobs)
    count = max(1, min(shards, total // max(1, min_texts)))
    size = -(-total // count) if total else 0
    result: list[list[tuple[str, Sequence[str]]]] = [[]]
    room = size
    for query, texts in jobs:
        start = 0
        while start < len(texts):
            if room == 0:
                result.append([])
                room = size
            piece = texts[start : start + room]
            result[-1].append((query, piece))
            start += len(piece)
            room -= len(piece)
    return [shard for shard in result if shard]


class TorchForward:
    """
    A sentence-transformers CrossEncoder's forward pass on torch, without gradients: token arrays in, the
    model's `scores` (its logits, before the activation) out. Works for any module stack, e.g. a
    sequence-classification head, or a transformer followed by pooling and a dense layer.
    """

    def __init__(self, cross_encoder: Any, device: str) -> None:
        import inspect

        # Weights may be float32, bfloat16 or float16 (cast at load, see `precision.py`); logits leave as float32.
        self.cross_encoder = cross_encoder.eval()
        self.device = device
        accepted = set(inspect.signature(cross_encoder.transformers_model.forward).parameters)
        self.input_names = [name for name in ("input_ids", "attention_mask", "token_type_ids") if name in accepted]

    def __call__(self, batch: dict[str, np.ndarray]) -> np.ndarray:
        import torch

        with torch.inference_mode():
            features = {name: torch.from_numpy(batch[name]).to(self.device) for name in self.input_names}
            scores = self.cross_encoder(features)["scores"]
            return scores.float().reshape(len(batch["input_ids"]), -1).cpu().numpy()

    @property
    def precision(self) -> str:
        """What the model computes in: `"fp32"`, `"bf16"` or `"fp16"` (the dtype of its weights)."""
        return module_precision(self.cross_encoder)


class PredictPairScorer(ManyRequestScorer):
    """
    Scores pairs with `CrossEncoder.predict`: for cross-encoders the fast path does not cover (e.g. ones with
    prompts or a non-classification architecture). Calls are serialized with a lock, like `TokenizedPairScorer`.
    """

    def __init__(self, cross_encoder: Any, batch_size: int) -> None:
        self.cross_encoder = cross_encoder
        self.batch_size = batch_size
        self.tokenizer = cross_encoder.tokenizer
        self.max_length = int(cross_encoder.max_seq_length)
        self.declared_activation = activation_from_torch_module(cross_encoder.activation_fn)
        self._lock = threading.Lock()

    def logits_many(
        self, requests: Sequence[tuple[str, Sequence[str]]], show_progress_bar: bool = False
    ) -> list[np.ndarray]:
        """Raw logits for several (query, texts) requests, predicted together; one array per request."""
        pairs = [(query, text) for query, texts in requests for text in texts]
        sizes = [len(texts) for _, texts in requests]
        if not pairs:
            return [np.zeros(0, dtype=np.float32) for _ in requests]
        from torch.nn import Identity

        with self._lock:
            scores = self.cross_encoder.predict(
                pairs,
                batch_size=self.batch_size,
                activation_fn=Identity(),
                show_progress_bar=show_progress_bar,
                convert_to_numpy=True,
            )
        return np.split(np.asarray(scores, dtype=np.float32).reshape(len(pairs)), np.cumsum(sizes)[:-1])


@dataclass(frozen=True)
class ScorerSettings:
    """How `load_pair_scorer` loads a model and scores with it (its arguments but the model, backend and cache)."""

    device: str
    batch_size: int
    max_length: int | None
    token: str | None
    trust_remote_code: bool
    model_kwargs: dict[str, Any] | None
    tokenizer_kwargs: dict[str, Any] | None
    config_kwargs: dict[str, Any] | None
    max_tokens_per_batch: int | None
    num_threads: int | None
    truncation: str
    precision: str | None
    num_streams: int | None = None


def load_pair_scorer(
    model: str,
    *,
    backend: str,
    device: str,
    batch_size: int,
    max_length: int | None,
    token: str | None,
    trust_remote_code: bool,
    model_kwargs: dict[str, Any] | None,
    tokenizer_kwargs: dict[str, Any] | None,
    config_kwargs: dict[str, Any] | None,
    max_tokens_per_batch: int | None = None,
    cache_size: int = 0,
    num_threads: int | None = None,
    truncation: str = "longest_first",
    precision: str | None = None,
    num_streams: int | None = None,
) -> PairScorer:
    """
    Load `model` for `backend` and return a scorer.

    `backend="torch"` loads a sentence-transformers CrossEncoder. `"onnx"` and `"openvino"` load a directory
    written by `export_cross_encoder` / `rerank export` (the file its manifest names, or
    `model_kwargs["file_name"]`); a directory without such a file raises an error that gives the export command.
    A local bi-encoder directory (and its export) is scored by the cosine of separately encoded query and texts.

    `truncation="query_window"` lets a long text keep its opening and the window that matches the query best
    instead of only its first tokens (see `PairEncoder`); it applies to every backend but the `CrossEncoder.predict`
    fallback.

    `num_threads` on torch calls `torch.set_num_threads`, which is process-global: it changes the thread count of
    every torch model in the process. onnxruntime and OpenVINO set it per loaded model.

    `precision` is what the model computes in (see `precision.py`): `"auto"`, `"fp32"`, `"bf16"`, `"fp16"` (GPU) or
    `"int8"` (an int8-quantized onnx or openvino export). `None` (the default here; `CrossEncoderRanker` passes
    `"auto"`) runs the model as it was before precisions existed: torch in the dtype its weights load in, onnx as
    exported, OpenVINO in float32. The precision used is logged once and is part of the score-cache identity.

    `num_streams` (torch on a CPU): how many batches run at once, each on its share of the threads (see
    `streams.py`); `None` chooses by the precision: one stream per thread (up to 4) in bf16, one in float32.

    :raises ModelNotAvailableError: If the model (or its exported file) cannot be had.
    :raises ValueError: If `backend` is unknown, `precision` does not fit the backend, device or export, or the
        model has more than one output logit.
    """
    _check_scorer_arguments(backend, truncation, precision, device)
    settings = ScorerSettings(
        device=device,
        batch_size=batch_size,
        max_length=max_length,
        token=token,
        trust_remote_code=trust_remote_code,
        model_kwargs=model_kwargs,
        tokenizer_kwargs=tokenizer_kwargs,
        config_kwargs=config_kwargs,
        max_tokens_per_batch=max_tokens_per_batch,
        num_threads=num_threads,
        truncation=truncation,
        precision=precision,
        num_streams=num_streams,
    )
    if backend != "torch":
        scorer, identity = _load_exported_scorer(model, backend, settings)
    elif _is_local_bi_encoder(model):
        scorer, identity = _load_bi_encoder_scorer(model, settings)
    else:
        scorer, identity = _load_torch_scorer(model, settings)
    if cache_size > 0:
        return CachingPairScorer(scorer, PairScoreCache(cache_size), identity)
    return scorer


def _check_scorer_arguments(backend: str, truncation: str, precision: str | None, device: str) -> None:
    check_choice("backend", backend, BACKENDS)
    check_choice("truncation", truncation, TRUNCATIONS)
    if precision is not None:
        check_precision(precision, backend=backend, device=device)


def _is_local_bi_encoder(model: str) -> bool:
    from haystack_integrations.components.rankers.crossencoder._engine.bi_encoder_scoring import is_bi_encoder_directory

    path = Path(model).expanduser()
    return path.is_dir() and is_bi_encoder_directory(path)


def _load_bi_encoder_scorer(model: str, settings: ScorerSettings) -> tuple[PairScorer, str]:
    """A sentence-transformers bi-encoder directory: query and documents encoded separately, cosine as the logit."""
    from haystack_integrations.components.rankers.crossencoder._engine.bi_encoder_scoring import (
        BiEncoderPairScorer,
        declared_activation,
        declared_prefixes,
        load_bi_encoder,
    )

    encoder = load_bi_encoder(
        Path(model).expanduser(),
        tokenizer_kwargs=settings.tokenizer_kwargs,
        precision=_torch_target_precision(settings.precision, settings.device, settings.model_kwargs),
        **_torch_loader_arguments(settings),
    )
    used = _log_torch_precision(model, encoder, settings)
    directory = Path(model).expanduser()
    scorer = BiEncoderPairScorer(
        encoder,
        batch_size=settings.batch_size,
        declared_activation=declared_activation(directory),
        **declared_prefixes(directory),
    )
    return scorer, f"bi-encoder|{_model_identity_path(model)}|{scorer.max_length}|{used}"


def _load_torch_scorer(model: str, settings: ScorerSettings) -> tuple[PairScorer, str]:
    target = _torch_target_precision(settings.precision, settings.device, settings.model_kwargs)
    cross_encoder = load_cross_encoder(
        model,
        token=settings.token,
        processor_kwargs=settings.tokenizer_kwargs,
        **_torch_loader_arguments(settings),
    )
    if cross_encoder.num_labels != 1:
        msg = (
            f"The model has {cross_encoder.num_labels} outputs per pair; a reranker needs a cross-encoder "
            "with exactly one relevance logit (num_labels=1)."
        )
        raise ValueError(msg)
    if target == "fp32":
        cast_module(cross_encoder, "fp32")  # before the probe: it then compares float32 with float32
    scorer = TokenizedPairScorer(
        TorchForward(cross_encoder, settings.device),
        cross_encoder.tokenizer,
        max_length=int(cross_encoder.max_seq_length),
        declared_activation=activation_from_torch_module(cross_encoder.activation_fn),
        batch_size=settings.batch_size,
        max_tokens_per_batch=settings.max_tokens_per_batch,
        truncation=settings.truncation,
    )
    fast_path = _fast_path_reproduces_predict(scorer, cross_encoder)
    if target is not None:
        cast_module(cross_encoder, target)  # after the probe, which checks the input layout, not the precision
    used = _log_torch_precision(model, cross_encoder, settings)
    scorer.streams = _torch_streams(settings, used)
    identity = f"torch|{_model_identity_path(model)}|{cross_encoder.max_seq_length}|{settings.truncation}|{used}"
    if not fast_path:
        logger.warning(
            "The model {model} prepares its inputs in a way the fast path does not reproduce (e.g. prompts or a "
            "chat template); scoring with CrossEncoder.predict, without truncation={truncation} and token budgets.",
            model=model,
            truncation=settings.truncation,
        )
        return PredictPairScorer(cross_encoder, batch_size=settings.batch_size), identity
    return scorer, identity


def _torch_loader_arguments(settings: ScorerSettings) -> dict[str, Any]:
    """
    The arguments both torch loaders (`load_cross_encoder`, `load_bi_encoder`) take from the settings as they are.
    Sets the settings' thread count first, if any (`torch.set_num_threads`: process-global).
    """
    if settings.num_threads is not None:
        import torch

        torch.set_num_threads(settings.num_threads)
    return {
        "device": settings.device,
        "max_length": settings.max_length,
        "trust_remote_code": settings.trust_remote_code,
        "model_kwargs": settings.model_kwargs,
        "config_kwargs": settings.config_kwargs,
    }


def _torch_streams(settings: ScorerSettings, used: str) -> BatchStreams:
    """The worker threads of a torch scorer: how many batches at once, and each one's torch threads."""
    import torch

    threads = settings.num_threads or torch.get_num_threads()
    streams = auto_stream_count(settings.num_streams, used, device_type(settings.device), threads)
    if streams > 1:
        logger.info("Scoring {streams} batches at once, {per} thread(s) each.", streams=streams, per=threads // streams)
    return BatchStreams(streams, threads // streams)


def _torch_target_precision(precision: str | None, device: str, model_kwargs: dict[str, Any] | None) -> str | None:
    """
    The precision to cast a loaded torch model to; None keeps the dtype its weights load in: when no precision is
    given, or with `"auto"` when the user chose a dtype in `model_kwargs` (`torch_dtype`/`dtype`).
    """
    if precision is None or (precision == "auto" and dtype_in_kwargs(model_kwargs)):
        return None
    return resolve_precision(precision, device)


def _log_torch_precision(model: str, module: Any, settings: ScorerSettings) -> str:
    """Logs what a loaded torch model computes in, and why; returns it (`"fp32"`, `"bf16"` or `"fp16"`)."""
    used = module_precision(module)
    reason = _kept_dtype_reason(settings.precision, settings.model_kwargs)
    _log_precision(model, settings.precision, used, settings.device, reason=reason)
    return used


def _kept_dtype_reason(precision: str | None, model_kwargs: dict[str, Any] | None) -> str | None:
    """The log's reason when `"auto"` keeps the dtype the user chose in `model_kwargs`; else None."""
    if precision == "auto" and dtype_in_kwargs(model_kwargs):
        return "auto: the dtype given in model_kwargs"
    return None


def _log_precision(model: str, precision: str | None, used: str, device: str, reason: str | None = None) -> None:
    """One log line per loaded model: what it computes in, and why."""
    if reason is None:
        reason = "as loaded" if precision is None else precision_reason(precision, used, device)
    logger.info(
        "Scoring with {model} in {precision} on {device} ({reason}).",
        model=model,
        precision=used,
        device=device,
        reason=reason,
    )


# Probe pairs: a long text (truncated), a short one, and texts of different lengths in one batch (padding).
_PROBE_QUERY = "Does the p53 protein regulate apoptosis in tumour cells?"
_PROBE_TEXTS = ("p53", "The tumour suppressor p53 induces apoptosis after DNA damage. " * 80, "Cells divide.")
# bf16 keeps 8 bits of mantissa: padding a pair in a batch of 3 instead of 1 moves its logit by up to ~1%.
_HALF_PRECISION_PROBE_TOLERANCE = 5e-2


def _fast_path_reproduces_predict(scorer: TokenizedPairScorer, cross_encoder: Any) -> bool:
    """
    Whether our encoding gives the scores `CrossEncoder.predict` gives, checked once at load on probe pairs.

    The fast path tokenizes pairs itself; a model whose sentence-transformers preprocessing adds prompts, chat
    templates or other modalities would be scored wrongly, so such a model falls back to `predict`.

    The probe runs in float32 unless the weights were loaded in a half precision and stay in it (then the
    tolerance is that of bf16/fp16 arithmetic): a prompt or a different pair layout moves scores far more.
    """
    if not getattr(cross_encoder.tokenizer, "is_fast", False) or scorer.encoder.template is None:
        return False
    if getattr(cross_encoder, "prompts", None) or getattr(cross_encoder, "default_prompt_name", None):
        return False
    try:
        ours = PairEncoder(scorer.tokenizer, scorer.max_length).encode(_PROBE_QUERY, _PROBE_TEXTS)
        fast = np.concatenate([scorer.forward(pad_batch([pair], scorer.pad_token_id))[:, 0] for pair in ours])
        reference = PredictPairScorer(cross_encoder, batch_size=len(_PROBE_TEXTS)).logits(_PROBE_QUERY, _PROBE_TEXTS)
    except Exception as error:  # any failure of the fast path means: use predict
        logger.debug("Fast path probe failed: {error}", error=error)
        return False
    # Loose enough for GPU kernels (TF32), tight enough to catch a prompt or a different pair layout.
    tolerance = 1e-3 if module_precision(cross_encoder) == "fp32" else _HALF_PRECISION_PROBE_TOLERANCE
    return bool(np.allclose(fast, reference, atol=tolerance, rtol=tolerance))


def _load_exported_scorer(model: str, backend: str, settings: ScorerSettings) -> tuple[PairScorer, str]:
    from transformers import AutoTokenizer

    if not settings.device.startswith("cpu"):
        logger.warning(
            "backend={backend} runs on the CPU; device {device} is not used.", backend=backend, device=settings.device
        )
    directory = _local_model_directory(model)
    model_file = find_exported_model(directory, backend, (settings.model_kwargs or {}).get("file_name"))
    recorded = read_manifest(directory).get(backend)
    int8 = _is_int8_export(directory, model_file, recorded)
    used = _exported_precision(settings.precision, backend, model_file, int8)
    streams = 1  # onnxruntime runs one batch at a time with all its threads
    if backend == "onnx":
        from haystack_integrations.components.rankers.crossencoder._engine.onnx_backend import OnnxForward

        forward: Forward = OnnxForward(model_file, num_threads=settings.num_threads)
    else:
        from haystack_integrations.components.rankers.crossencoder._engine.openvino_backend import OpenVinoForward

        hint = _openvino_hint(settings.precision, used)
        # The exported bi-encoder encodes one batch at a time: its requests keep every thread.
        streams = 1 if _is_local_bi_encoder(str(directory)) else _openvino_streams(settings, "int8" if int8 else hint)
        forward = OpenVinoForward(model_file, num_threads=settings.num_threads, precision=hint, streams=streams)
        if int8:
            used = f"int8 ({hint} between the int8 layers)"
    reason = "the export is int8-quantized" if int8 else None
    _log_precision(model, settings.precision, used, "cpu", reason=reason)
    tokenizer = AutoTokenizer.from_pretrained(
        str(directory), **{"trust_remote_code": False, **(settings.tokenizer_kwargs or {})}
    )
    resolved_max_length = settings.max_length or (
        recorded.max_length if recorded else _configured_max_length(directory, tokenizer)
    )
    if _is_local_bi_encoder(str(directory)):
        bi_encoder = _exported_bi_encoder_scorer(
            forward,
            tokenizer,
            directory,
            max_length=resolved_max_length,
            dimension=recorded.embedding_dimension if recorded else None,
            batch_size=settings.batch_size,
            max_tokens_per_batch=settings.max_tokens_per_batch,
        )
        return bi_encoder, f"bi-encoder-{backend}|{model_file.resolve()}|{resolved_max_length}|{used}"
    declared_activation = recorded.activation if recorded else _configured_activation(directory)
    scorer = TokenizedPairScorer(
        forward,
        tokenizer,
        max_length=resolved_max_length,
        declared_activation=declared_activation,
        batch_size=settings.batch_size,
        max_tokens_per_batch=settings.max_tokens_per_batch,
        truncation=settings.truncation,
    )
    scorer.streams = BatchStreams(streams, 1)
    identity = f"{backend}|{model_file.resolve()}|{resolved_max_length}|{settings.truncation}|{used}"
    return scorer, identity


def _openvino_streams(settings: ScorerSettings, precision: str) -> int:
    """How many batches an OpenVINO model runs at once (its `NUM_STREAMS`): as for torch, by the precision."""
    threads = settings.num_threads or available_cores()
    return auto_stream_count(settings.num_streams, precision, "cpu", threads)


def _exported_bi_encoder_scorer(
    forward: Forward,
    tokenizer: Any,
    directory: Path,
    *,
    max_length: int,
    dimension: int | None,
    batch_size: int,
    max_tokens_per_batch: int | None,
) -> PairScorer:
    """An exported bi-encoder (one text -> its embedding): scored by cosine, with the directory's prefixes."""
    from haystack_integrations.components.rankers.crossencoder._engine.bi_encoder_scoring import (
        BiEncoderPairScorer,
        ExportedSentenceEncoder,
        declared_activation,
        declared_prefixes,
    )

    encoder = ExportedSentenceEncoder(
        forward, tokenizer, max_length, dimension=dimension, max_tokens_per_batch=max_tokens_per_batch
    )
    return BiEncoderPairScorer(
        encoder,
        batch_size=batch_size,
        declared_activation=declared_activation(directory),
        **declared_prefixes(directory),
    )


def _is_int8_export(directory: Path, model_file: Path, recorded: Any) -> bool:
    """Whether an exported file is int8-quantized: as the manifest records it, else by its name (`*int8*`)."""
    if recorded is not None and (directory / recorded.file).resolve() == model_file.resolve():
        return recorded.quantize is not None
    name = model_file.name.lower()
    return "int8" in name or "quantized" in name


def _exported_precision(precision: str | None, backend: str, model_file: Path, int8: bool) -> str:
    """
    What an exported model computes in: `"int8"` for a quantized export; else `"fp32"` on onnx and, on OpenVINO,
    the precision asked for (`"auto"`: bf16 on CPUs with AMX or AVX512-BF16). An explicit precision the file
    cannot give is an error rather than a silent switch.
    """
    if precision == "int8" and not int8:
        msg = (
            f"precision='int8' needs an int8-quantized export, but {model_file} is a float32 one. Export one with "
            f"`rerank export MODEL --backend {backend} --quantize "
            f"{'avx512_vnni' if backend == 'onnx' else 'int8-static --calibration PAIRS'} --output DIR`, "
            "or pass precision='auto'."
        )
        raise ValueError(msg)
    if int8 and precision in ("fp32", "bf16"):
        msg = (
            f"precision={precision!r} asks for float computation, but {model_file} is int8-quantized. Pass "
            "precision='auto' (or 'int8') to run it, or load a float32 export with model_kwargs={'file_name': "
            f"'{'onnx/model.onnx' if backend == 'onnx' else 'openvino/openvino_model.xml'}'}}."
        )
        raise ValueError(msg)
    if int8:
        return "int8"
    if backend == "onnx" or precision is None:
        return "fp32"
    return resolve_precision(precision, "cpu")


def _openvino_hint(precision: str | None, used: str) -> str:
    """OpenVINO's inference precision: float32 when no precision is given, else fp32 or bf16 as resolved."""
    if used in ("fp32", "bf16"):
        return used
    return "fp32" if precision is None else resolve_precision("auto", "cpu")


def _local_model_directory(model: str) -> Path:
    path = Path(model).expanduser()
    if path.is_dir():
        return path
    if not path.exists() and is_cached_on_hub(model):
        from huggingface_hub import snapshot_download

        return Path(snapshot_download(model, local_files_only=True))
    msg = (
        f"Could not load the exported cross-encoder {model!r}: the onnx and openvino backends load a local "
        "directory written by `rerank export MODEL --backend onnx --output DIR`; pass that DIR as the model."
    )
    raise ModelNotAvailableError(msg)


def _configured_max_length(directory: Path, tokenizer: Any) -> int:
    """The max_length sentence-transformers would use for a model directory that has no export manifest."""
    limits = []
    sentence_bert_config = directory / "sentence_bert_config.json"
    if sentence_bert_config.is_file():
        limits.append(json.loads(sentence_bert_config.read_text(encoding="utf-8")).get("max_seq_length"))
    limits.append(getattr(tokenizer, "model_max_length", None))
    config = directory / "config.json"
    if config.is_file():
        limits.append(json.loads(config.read_text(encoding="utf-8")).get("max_position_embeddings"))
    usable = [int(limit) for limit in limits if isinstance(limit, int) and 0 < limit < 1_000_000]
    return usable[0] if usable else 512


def _configured_activation(directory: Path) -> str | None:
    """The activation named in config_sentence_transformers.json (e.g. `torch.nn.modules.activation.Sigmoid`)."""
    config = directory / "config_sentence_transformers.json"
    if not config.is_file():
        return None
    dotted = json.loads(config.read_text(encoding="utf-8")).get("activation_fn") or ""
    name = dotted.rsplit(".", 1)[-1].lower()
    return name if name in ACTIVATIONS else None


def _model_identity_path(model: str) -> str:
    path = Path(model).expanduser()
    return str(path.resolve()) if path.exists() else model

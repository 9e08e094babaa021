import asyncio
import copy
import numbers
import threading
import unicodedata
import warnings
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Literal

from haystack import Document, component, default_from_dict, default_to_dict, logging
from haystack.utils import ComponentDevice, Secret
from haystack.utils.hf import deserialize_hf_model_kwargs, serialize_hf_model_kwargs

from haystack_integrations.components.preprocessors.crossencoder import PASSAGE_META_KEYS, is_passage, split_document
from haystack_integrations.components.preprocessors.crossencoder.splitting import (
    query_passage_overlap_fits,
    query_passage_sizes,
)
from haystack_integrations.components.rankers.crossencoder._engine.activations import apply_activation, validate_scale
from haystack_integrations.components.rankers.crossencoder._engine.aggregation import (
    aggregate_scores,
    validate_aggregation,
)
from haystack_integrations.components.rankers.crossencoder._engine.checks import (
    check_choice,
    check_positive_int,
    check_score_threshold,
)
from haystack_integrations.components.rankers.crossencoder._engine.pair_encoding import TRUNCATIONS
from haystack_integrations.components.rankers.crossencoder._engine.precision import check_precision
from haystack_integrations.components.rankers.crossencoder._engine.scoring import PairScorer, load_pair_scorer
from haystack_integrations.components.rankers.crossencoder.calibration import (
    CALIBRATED,
    PROBE_QUERY,
    PROBE_TEXTS,
    Calibration,
    check_calibrated_scale,
    check_probe,
    missing_calibration_error,
    read_calibration,
    uses_calibration,
    validate_ranker_activation,
)
from haystack_integrations.components.rankers.crossencoder.fusion import (
    check_same_length,
    fuse_scores,
    read_fusion_defaults,
    validate_first_stage_weight,
    validate_fusion,
)

logger = logging.getLogger(__name__)

DEFAULT_MODEL = "cross-encoder/ms-marco-MiniLM-L6-v2"
_DEFAULT_FUSION = "minmax"
# Characters that carry no text for the model: controls, format characters (zero-width space/joiners, BOM, soft
# hyphen), separators and surrogates. Content made only of these (and whitespace) has nothing to score.
_INVISIBLE_CATEGORIES = frozenset({"Cc", "Cf", "Cs", "Zs", "Zl", "Zp"})


@dataclass
class _Candidate:
    """One deduplicated input document, in retrieval order."""

    document: Document
    retrieval_rank: int
    retrieval_score: float | None


@dataclass
class _Scored:
    document: Document
    score: float | None
    retrieval_rank: int
    retrieval_score: float | None
    fused: bool = False  # True when `score` is fused with the retrieval score
    rerank_score: float | None = None  # then: the model's own score (after activation and aggregation)


@dataclass(frozen=True)
class _RunParameters:
    """One call's settings, after run-time values override the init values (and, once warm, the model's)."""

    top_k: int
    score_threshold: float | None
    activation: str | None
    scale: float
    first_stage_weight: float | None
    fusion: str | None
    split_long_documents: bool


@component
class CrossEncoderRanker:
    """
    Ranks documents by relevance to a query with a cross-encoder (query and document in one forward pass).

    A drop-in superset of `SentenceTransformersSimilarityRanker`: every parameter of the peer works here, plus
    score activations with a scale, passage-level scoring of long documents, retrieval scores kept in meta,
    deterministic tie-breaking, thread safety and `run_async`.

    Returned documents are copies: `score` holds the new score, `meta["retrieval_score"]` the score the document
    came in with and `meta["retrieval_rank"]` its 1-based position in the input (after deduplication by id).
    Only the order of scores is reliable; their range depends on `activation`.

    ### Usage example

    ```python
    from haystack import Document
    from haystack_integrations.components.rankers.crossencoder import CrossEncoderRanker

    ranker = CrossEncoderRanker(model="cross-encoder/ms-marco-MiniLM-L6-v2", top_k=2)
    docs = [Document(content="Paris is in France"), Document(content="Berlin is in Germany")]
    result = ranker.run(query="City in Germany", documents=docs)
    print(result["documents"][0].content)  # Berlin is in Germany
    ```

    Documents that have no text to score (content `None`, blank or made only of control and zero-width characters,
    and no meta field to embed) are not sent to the model: they come back after the scored documents with
    `score=None`, or are dropped when a `score_threshold` is set (a missing score cannot pass a threshold).

    Passages are aggregated into their parent only when this package's splitter made them (`PassageSplitter`,
    `split_document` or `split_long_documents=True`; they carry `meta["passage_splitter"]`). Chunks of other
    splitters, such as Haystack's `DocumentSplitter`, are ranked as they are (as `SentenceTransformersSimilarityRanker`
    ranks them), even though they have a `source_id`.

    With `first_stage_weight` > 0 the returned `score` fuses the model's score with the retrieval score (see
    `fusion.py`); `meta["rerank_score"]` then holds the model's own score next to `meta["retrieval_score"]`.

    The model computes in the precision the hardware runs fastest (`precision="auto"`): bfloat16 on CPUs with AMX
    or AVX512-BF16 and on recent GPUs (faster than fp32 with nearly the same scores: clearly different documents
    keep their order; see README, Performance), float32 elsewhere. `precision="fp32"` gives the scores of
    `SentenceTransformersSimilarityRanker` exactly, on any machine.
    """

    # Longer than 80 lines: the docstring documents each of the 34 parameters (Haystack's convention); the body is
    # three calls that check them and the attribute assignments.
    def __init__(
        self,
        *,
        model: str | Path = DEFAULT_MODEL,
        device: ComponentDevice | None = None,
        token: Secret | None = Secret.from_env_var(["HF_API_TOKEN", "HF_TOKEN"], strict=False),
        top_k: int = 10,
        query_prefix: str = "",
        query_suffix: str = "",
        document_prefix: str = "",
        document_suffix: str = "",
        meta_fields_to_embed: list[str] | None = None,
        embedding_separator: str = "\n",
        activation: Literal["sigmoid", "identity", "tanh", "calibrated"] | None = None,
        scale: float = 1.0,
        scale_score: bool | None = None,
        score_threshold: float | None = None,
        first_stage_weight: float | None = None,
        fusion: Literal["minmax", "zscore", "rrf"] | None = None,
        trust_remote_code: bool = False,
        model_kwargs: dict[str, Any] | None = None,
        tokenizer_kwargs: dict[str, Any] | None = None,
        config_kwargs: dict[str, Any] | None = None,
        backend: Literal["torch", "onnx", "openvino"] = "torch",
        batch_size: int = 16,
        max_length: int | None = None,
        show_progress_bar: bool = False,
        aggregation: str = "max",
        return_passages: bool = False,
        split_long_documents: bool = False,
        overlap_tokens: int = 32,
        max_tokens_per_batch: int | None = None,
        cache_size: int = 0,
        num_threads: int | None = None,
        precision: Literal["auto", "fp32", "bf16", "fp16", "int8"] = "auto",
        truncation: Literal["longest_first", "query_window"] = "longest_first",
        passage_overlap_tokens: int | None = None,
        num_streams: int | None = None,
    ) -> None:
        """
        Creates an instance of CrossEncoderRanker.

        :param model:
            A local directory or a Hugging Face hub id of a cross-encoder (a sentence-transformers `CrossEncoder`
            or a sequence-classification model with one output logit). Offline, pass a local directory.
        :param device:
            The device to load the model on. If `None`, the default device is selected.
        :param token:
            The token to download private models from Hugging Face.
        :param top_k:
            The maximum number of documents to return. Must be a positive int.
        :param query_prefix:
            A string put before the query (e.g. an instruction some rerankers expect).
        :param query_suffix:
            A string put after the query.
        :param document_prefix:
            A string put before each document's text.
        :param document_suffix:
            A string put after each document's text.
        :param meta_fields_to_embed:
            Meta fields whose values are put before the document's content, joined by `embedding_separator`.
        :param embedding_separator:
            The separator between meta values and the content.
        :param activation:
            How a logit becomes a score: `"sigmoid"` (0..1), `"identity"` (the raw logit), `"tanh"` (-1..1) or
            `"calibrated"` (P(relevant), from the model directory's `calibration.json` written by `rerank calibrate`;
            in passage mode the parent's aggregated logit is calibrated). `None` uses `"calibrated"` when the model
            directory carries a calibration (and `scale` is 1), else the activation the model's own configuration
            declares (sigmoid if it declares none); it is resolved at `warm_up` and serialized as `None`.
        :param scale:
            The logit is multiplied by `scale` before the activation; with sigmoid or tanh a scale > 1 spreads
            scores apart. Must be > 0.
        :param scale_score:
            For drop-in compatibility with `SentenceTransformersSimilarityRanker`: `True` means
            `activation="sigmoid"`, `False` means `activation="identity"`. Leave `None` and use `activation`.
        :param score_threshold:
            Only documents whose score is >= this value are returned (the fused score when fusion is on).
        :param first_stage_weight:
            The first stage's share of the returned score, in [0, 1]:
            `score = (1 - w) * norm(rerank score) + w * norm(retrieval score)`, normalised per query. 0 returns the
            model's scores untouched (no fusion), 1 the retrieval order. `None` uses the value the model directory
            declares in `crossencoder_haystack.json` (see `write_fusion_defaults`), else 0. A document without a
            retrieval score counts as the worst of the list; when none has one, the input order is the evidence.
        :param fusion:
            How scores are normalised before they are combined: `"minmax"` (0..1), `"zscore"` or `"rrf"`
            (reciprocal ranks, `1 / (60 + rank)`). `None` uses the model directory's declared value, else
            `"minmax"`. Used only when `first_stage_weight` > 0.
        :param trust_remote_code:
            Whether to allow models with custom code from the hub.
        :param model_kwargs:
            Keyword arguments for `AutoModelForSequenceClassification.from_pretrained`.
        :param tokenizer_kwargs:
            Keyword arguments for the tokenizer (passed as `processor_kwargs` to sentence-transformers).
        :param config_kwargs:
            Keyword arguments for `AutoConfig.from_pretrained`.
        :param backend:
            The inference backend: `"torch"`, `"onnx"` or `"openvino"`.
        :param batch_size:
            How many (query, document) pairs go through the model at once. Must be > 0.
        :param max_length:
            The maximum number of tokens of query plus document; longer inputs are truncated. `None` uses the
            model's limit.
        :param show_progress_bar:
            Whether to show a progress bar while scoring.
        :param aggregation:
            How passage scores become a document score when the input documents are passages of this package
            (made by `PassageSplitter`: they carry `meta["passage_splitter"]` and `meta["source_id"]`) or
            `split_long_documents` is on: `"max"`, `"mean"`, `"first"`, `"sum"` or `"topN_mean"` (e.g.
            `"top2_mean"`). Chunks of other splitters (e.g. Haystack's `DocumentSplitter`) are never aggregated.
        :param return_passages:
            If `True`, passages are ranked and returned as they are. If `False` (default), one result per parent
            document is returned, with the full parent content, the aggregated score and the best passage in meta
            (`best_passage`, `best_passage_index`, `best_passage_start`, `best_passage_end`, `best_passage_score`).
        :param split_long_documents:
            If `True`, the ranker splits each document into passages that fit `max_length` together with the
            query (the same splitting as `PassageSplitter`) and scores documents by their passages.
        :param overlap_tokens:
            Tokens shared by neighbouring passages when `split_long_documents` is on, as in `PassageSplitter`.
            Where the query leaves no room for it in a passage, it is capped at half the passage (see
            `query_passage_sizes`; `warm_up` warns if that holds for every query).
        :param max_tokens_per_batch:
            A token budget per batch: pairs are sorted by token length and packed into batches of at most this many
            tokens (padding included), so short documents go in large batches and long ones in small. `None` uses
            fixed batches of `batch_size`.
        :param cache_size:
            How many (model, query, document) scores to keep in an in-memory LRU cache; a repeated query over the
            same candidates then costs no model work. 0 (default) disables the cache.
        :param num_threads:
            The number of CPU threads the model may use. `None` keeps the library default.
        :param precision:
            What the model computes in, chosen when it loads: `"auto"` (default) picks by the hardware: bf16 on
            CPUs with AMX or AVX512-BF16 and on CUDA GPUs that multiply bf16 natively, fp16 on other CUDA GPUs, fp32
            elsewhere (logged once per loaded model). `"fp32"` gives the same scores on every machine,
            `"bf16"` forces bfloat16, `"fp16"` is for GPUs only. `"int8"` asks for an int8-quantized export
            (`rerank export MODEL --backend onnx --quantize avx512_vnni`) with `backend="onnx"` or `"openvino"`;
            torch has no int8 path. On `backend="onnx"` the export decides (float32 or int8) and `precision` only
            checks it; OpenVINO takes `"fp32"` or `"bf16"` as its inference precision. With `"auto"` a dtype given
            in `model_kwargs` (`torch_dtype`) is kept.
        :param truncation:
            How a (query, document) pair longer than `max_length` tokens is cut: `"longest_first"` (default, as
            sentence-transformers does: the document keeps its first tokens) or `"query_window"` (the document
            keeps its opening and the window of its text that matches the query best).
        :param num_streams:
            How many batches the torch backend scores at once on a CPU, each on its share of the threads
            (`num_threads`, or torch's count): small models leave cores idle when one batch is split over all of
            them. `None` (default) chooses: one stream per thread (up to 4) when the model computes in bf16, one in
            fp32 and on GPUs. Scores do not depend on it; 1 runs one batch at a time.
        :param passage_overlap_tokens:
            Deprecated: the old name of `overlap_tokens`; still accepted (with a `DeprecationWarning`) and mapped.
        :raises ValueError:
            If a parameter is out of range.
        """
        top_k = _check_top_k(top_k)
        batch_size, max_length, overlap_tokens, max_tokens_per_batch, cache_size, num_threads = _checked_sizes(
            batch_size,
            max_length,
            overlap_tokens,
            passage_overlap_tokens,
            max_tokens_per_batch,
            cache_size,
            num_threads,
        )
        num_streams = _check_int("num_streams", num_streams, minimum=1, none="None (chosen by the precision)")
        first_stage_weight = _checked_ranking_options(score_threshold, first_stage_weight, fusion, backend, truncation)
        _check_activation_options(activation, scale, scale_score)

        self.model = str(model)
        self.device = ComponentDevice.resolve_device(device)
        first_device = self.device.first_device or self.device
        self.precision = check_precision(precision, backend=backend, device=first_device.to_torch_str())
        self.truncation = truncation
        self.token = token
        self.top_k = top_k
        self.query_prefix = query_prefix
        self.query_suffix = query_suffix
        self.document_prefix = document_prefix
        self.document_suffix = document_suffix
        self.meta_fields_to_embed = list(meta_fields_to_embed or [])
        self.embedding_separator = embedding_separator
        self.activation = activation
        self.scale = validate_scale(scale)
        self.scale_score = scale_score
        self.score_threshold = score_threshold
        self.first_stage_weight = first_stage_weight
        self.fusion = fusion
        self.trust_remote_code = trust_remote_code
        self.model_kwargs = model_kwargs
        self.tokenizer_kwargs = tokenizer_kwargs
        self.config_kwargs = config_kwargs
        self.backend = backend
        self.batch_size = batch_size
        self.max_length = max_length
        self.show_progress_bar = show_progress_bar
        self.aggregation = validate_aggregation(aggregation)
        self.return_passages = return_passages
        self.split_long_documents = split_long_documents
        self.overlap_tokens = overlap_tokens
        self.max_tokens_per_batch = max_tokens_per_batch
        self.cache_size = cache_size
        self.num_threads = num_threads
        self.num_streams = num_streams

        self._scorer: PairScorer | None = None
        self._model_activation: str | None = None
        self._calibration: Calibration | None = None
        self._model_fusion: dict[str, Any] = {}
        self._warm_up_lock = threading.Lock()

    @property
    def passage_overlap_tokens(self) -> int:
        """Deprecated: the old name of `overlap_tokens`."""
        warnings.warn(
            "CrossEncoderRanker.passage_overlap_tokens is deprecated; use overlap_tokens.",
            DeprecationWarning,
            stacklevel=2,
        )
        return self.overlap_tokens

    def _get_telemetry_data(self) -> dict[str, Any]:
        return {"model": self.model, "backend": self.backend}

    def warm_up(self) -> None:
        """
        Loads the model, and the fusion defaults a local model directory declares. Idempotent and thread-safe.

        :raises ValueError: If the model directory's `crossencoder_haystack.json` declares an invalid fusion.
        """
        if self._scorer is not None:
            return
        with self._warm_up_lock:
            if self._scorer is not None:
                return
            model_fusion = self._read_model_fusion()
            calibration = self._read_model_calibration()
            scorer = load_pair_scorer(
                self.model,
                backend=self.backend,
                device=self.device.to_torch_str(),
                batch_size=self.batch_size,
                max_length=self.max_length,
                token=self.token.resolve_value() if self.token else None,
                trust_remote_code=self.trust_remote_code,
                model_kwargs=self.model_kwargs,
                tokenizer_kwargs=self.tokenizer_kwargs,
                config_kwargs=self.config_kwargs,
                max_tokens_per_batch=self.max_tokens_per_batch,
                cache_size=self.cache_size,
                num_threads=self.num_threads,
                truncation=self.truncation,
                precision=self.precision,
                num_streams=self.num_streams,
            )
            if self.split_long_documents:
                self._warn_if_the_overlap_does_not_fit(scorer)
            if calibration is not None:
                check_probe(calibration, scorer.logits(PROBE_QUERY, list(PROBE_TEXTS)), self.model)
            self._model_activation = scorer.declared_activation or "sigmoid"
            self._calibration = calibration
            self._model_fusion = model_fusion
            self._scorer = scorer

    def _warn_if_the_overlap_does_not_fit(self, scorer: PairScorer) -> None:
        if not query_passage_overlap_fits(scorer.tokenizer, scorer.max_length, self.overlap_tokens):
            logger.warning(
                "overlap_tokens={overlap} does not fit the passages of max_length={max_length}; the overlap is "
                "capped at half a passage. Lower overlap_tokens.",
                overlap=self.overlap_tokens,
                max_length=scorer.max_length,
            )

    def _read_model_fusion(self) -> dict[str, Any]:
        """The fusion defaults of a local model directory, needed only for the values the user did not pass."""
        if self.first_stage_weight is not None and self.fusion is not None:
            return {}
        directory = Path(self.model).expanduser()
        return read_fusion_defaults(directory) if directory.is_dir() else {}

    def _read_model_calibration(self) -> Calibration | None:
        """The model directory's calibration when this ranker scores with it (see `uses_calibration`), else None."""
        if not uses_calibration(self.model, self.activation, self.scale, self.scale_score):
            return None
        directory = Path(self.model).expanduser()
        calibration = read_calibration(directory) if directory.is_dir() else None
        if calibration is None:
            raise missing_calibration_error(self.model)
        return calibration

    @property
    def outputs_probabilities(self) -> bool:
        """Whether `run` returns calibrated probabilities by default (known without loading the model)."""
        if not uses_calibration(self.model, self.activation, self.scale, self.scale_score):
            return False
        weight = self.first_stage_weight
        if weight is None:
            weight = self._read_model_fusion().get("first_stage_weight", 0.0)
        return not weight

    def to_dict(self) -> dict[str, Any]:
        """
        Serializes the component to a dictionary.

        :returns:
            Dictionary with serialized data.
        """
        data = default_to_dict(
            self,
            model=self.model,
            device=self.device,
            token=self.token,
            top_k=self.top_k,
            query_prefix=self.query_prefix,
            query_suffix=self.query_suffix,
            document_prefix=self.document_prefix,
            document_suffix=self.document_suffix,
            meta_fields_to_embed=self.meta_fields_to_embed,
            embedding_separator=self.embedding_separator,
            activation=self.activation,
            scale=self.scale,
            scale_score=self.scale_score,
            score_threshold=self.score_threshold,
            first_stage_weight=self.first_stage_weight,
            fusion=self.fusion,
            trust_remote_code=self.trust_remote_code,
            model_kwargs=self.model_kwargs,
            tokenizer_kwargs=self.tokenizer_kwargs,
            config_kwargs=self.config_kwargs,
            backend=self.backend,
            batch_size=self.batch_size,
            max_length=self.max_length,
            show_progress_bar=self.show_progress_bar,
            aggregation=self.aggregation,
            return_passages=self.return_passages,
            split_long_documents=self.split_long_documents,
            overlap_tokens=self.overlap_tokens,
            max_tokens_per_batch=self.max_tokens_per_batch,
            cache_size=self.cache_size,
            num_threads=self.num_threads,
            precision=self.precision,
            truncation=self.truncation,
            num_streams=self.num_streams,
        )
        if data["init_parameters"].get("model_kwargs") is not None:
            data["init_parameters"]["model_kwargs"] = dict(data["init_parameters"]["model_kwargs"])
            serialize_hf_model_kwargs(data["init_parameters"]["model_kwargs"])
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "CrossEncoderRanker":
        """
        Deserializes the component from a dictionary.

        :param data:
            Dictionary to deserialize from.
        :returns:
            Deserialized component.
        """
        data = copy.deepcopy(data)  # deserialization works in place; the caller's dict stays as it was
        init_parameters = data.get("init_parameters", {})
        if init_parameters.get("model_kwargs") is not None:
            deserialize_hf_model_kwargs(init_parameters["model_kwargs"])
        return default_from_dict(cls, data)

    @component.output_types(documents=list[Document])
    def run(
        self,
        *,
        query: str,
        documents: list[Document],
        top_k: int | None = None,
        score_threshold: float | None = None,
        activation: Literal["sigmoid", "identity", "tanh", "calibrated"] | None = None,
        scale: float | None = None,
        scale_score: bool | None = None,
        first_stage_weight: float | None = None,
        fusion: Literal["minmax", "zscore", "rrf"] | None = None,
        split_long_documents: bool | None = None,
    ) -> dict[str, list[Document]]:
        """
        Returns the documents sorted by relevance to the query, best first.

        Documents are deduplicated by id first (the duplicate with the best retrieval score is kept).
        Ties are broken by retrieval order, so results are deterministic. A document's retrieval rank is its
        1-based input position, or `meta["retrieval_rank"]` when an earlier stage set it to an int (any other
        value there is ignored and replaced by the position in the output).

        :param query:
            The query. Must be a non-empty string.
        :param documents:
            The documents to rank (e.g. a retriever's output, or passages from `PassageSplitter`).
        :param top_k:
            The maximum number of documents to return; overrides the init value. Must be a positive int.
        :param score_threshold:
            Only documents with a score >= this value are returned; overrides the init value (also when 0.0).
        :param activation:
            `"sigmoid"`, `"identity"`, `"tanh"` or `"calibrated"`; overrides the init value.
        :param scale:
            The factor applied to logits before the activation; overrides the init value.
        :param scale_score:
            Compatibility with `SentenceTransformersSimilarityRanker`: `True` = sigmoid, `False` = identity.
        :param first_stage_weight:
            The first stage's share of the score, in [0, 1]; overrides the init value (also when 0.0).
        :param fusion:
            `"minmax"`, `"zscore"` or `"rrf"`; overrides the init value.
        :param split_long_documents:
            `False` lets the model truncate long documents in this call instead of splitting them, `True` splits
            them into passages in this call (with this ranker's `aggregation` and `overlap_tokens`); `None`
            (default) keeps the init value.
        :returns:
            A dictionary with `documents`: copies of the input documents with `score` set, best first.
        :raises ValueError:
            If `query` is empty or a run-time parameter is out of range.
        """
        _check_query_and_documents(query, documents)
        parameters = self._resolve_run_parameters(
            top_k, score_threshold, activation, scale, scale_score, first_stage_weight, fusion, split_long_documents
        )
        return {"documents": self._rank_queries([query], [documents], parameters)[0]}

    def run_batch(
        self,
        *,
        queries: list[str],
        documents: list[list[Document]],
        top_k: int | None = None,
        score_threshold: float | None = None,
        activation: Literal["sigmoid", "identity", "tanh", "calibrated"] | None = None,
        scale: float | None = None,
        scale_score: bool | None = None,
        first_stage_weight: float | None = None,
        fusion: Literal["minmax", "zscore", "rrf"] | None = None,
        split_long_documents: bool | None = None,
    ) -> dict[str, list[list[Document]]]:
        """
        Ranks several queries' documents at once: the pairs of all queries share the model's batches, which pads
        less and runs faster than one `run` per query (e.g. a service collecting concurrent requests, or an
        evaluation over many queries). Each query's result is exactly what `run` returns for it.

        ```python
        results = ranker.run_batch(queries=["q1", "q2"], documents=[docs_for_q1, docs_for_q2], top_k=5)
        results["documents"][1]  # the ranked documents of "q2"
        ```

        :param queries:
            The queries; each must be a non-empty string.
        :param documents:
            One list of documents per query, in the same order as `queries`.
        :param top_k:
            The maximum number of documents to return per query; overrides the init value. Must be a positive int.
        :param score_threshold:
            Only documents with a score >= this value are returned; overrides the init value.
        :param activation:
            `"sigmoid"`, `"identity"`, `"tanh"` or `"calibrated"`; overrides the init value.
        :param scale:
            The factor applied to logits before the activation; overrides the init value.
        :param scale_score:
            Compatibility with `SentenceTransformersSimilarityRanker`: `True` = sigmoid, `False` = identity.
        :param first_stage_weight:
            The first stage's share of the score, in [0, 1]; overrides the init value. Fusion is per query.
        :param fusion:
            `"minmax"`, `"zscore"` or `"rrf"`; overrides the init value.
        :param split_long_documents:
            `False` lets the model truncate long documents in this call instead of splitting them, `True` splits
            them into passages in this call (with this ranker's `aggregation` and `overlap_tokens`); `None`
            (default) keeps the init value.
        :returns:
            A dictionary with `documents`: one list of ranked document copies per query, best first.
        :raises ValueError:
            If a query is empty, the two lists differ in length, or a run-time parameter is out of range.
        """
        _check_queries_and_document_lists(queries, documents)
        parameters = self._resolve_run_parameters(
            top_k, score_threshold, activation, scale, scale_score, first_stage_weight, fusion, split_long_documents
        )
        return {"documents": self._rank_queries(queries, documents, parameters)}

    @component.output_types(documents=list[Document])
    async def run_async(
        self,
        *,
        query: str,
        documents: list[Document],
        top_k: int | None = None,
        score_threshold: float | None = None,
        activation: Literal["sigmoid", "identity", "tanh", "calibrated"] | None = None,
        scale: float | None = None,
        scale_score: bool | None = None,
        first_stage_weight: float | None = None,
        fusion: Literal["minmax", "zscore", "rrf"] | None = None,
        split_long_documents: bool | None = None,
    ) -> dict[str, list[Document]]:
        """
        Asynchronously returns the documents sorted by relevance to the query; the model runs in a worker thread
        so the event loop is never blocked. Parameters and result are those of `run`.

        :param query:
            The query. Must be a non-empty string.
        :param documents:
            The documents to rank.
        :param top_k:
            The maximum number of documents to return; overrides the init value. Must be a positive int.
        :param score_threshold:
            Only documents with a score >= this value are returned; overrides the init value.
        :param activation:
            `"sigmoid"`, `"identity"`, `"tanh"` or `"calibrated"`; overrides the init value.
        :param scale:
            The factor applied to logits before the activation; overrides the init value.
        :param scale_score:
            Compatibility with `SentenceTransformersSimilarityRanker`: `True` = sigmoid, `False` = identity.
        :param first_stage_weight:
            The first stage's share of the score, in [0, 1]; overrides the init value.
        :param fusion:
            `"minmax"`, `"zscore"` or `"rrf"`; overrides the init value.
        :param split_long_documents:
            `False` lets the model truncate long documents in this call instead of splitting them, `True` splits
            them into passages in this call (with this ranker's `aggregation` and `overlap_tokens`); `None`
            (default) keeps the init value.
        :returns:
            A dictionary with `documents`: copies of the input documents with `score` set, best first.
        :raises ValueError:
            If `query` is empty or a run-time parameter is out of range.
        """
        # Checked here, so that a bad argument fails in the caller's task; only the model work goes to a thread.
        parameters = self._resolve_run_parameters(
            top_k, score_threshold, activation, scale, scale_score, first_stage_weight, fusion, split_long_documents
        )
        _check_query_and_documents(query, documents)
        loop = asyncio.get_running_loop()
        ranked = await loop.run_in_executor(None, self._rank_queries, [query], [documents], parameters)
        return {"documents": ranked[0]}

    def _resolve_run_parameters(
        self,
        top_k: int | None,
        score_threshold: float | None,
        activation: str | None,
        scale: float | None,
        scale_score: bool | None,
        first_stage_weight: float | None,
        fusion: str | None,
        split_long_documents: bool | None,
    ) -> _RunParameters:
        """Checks the run-time values of `run`, `run_batch` and `run_async` and lets them override the init values."""
        if top_k is not None:
            top_k = _check_top_k(top_k)
        _check_score_threshold(score_threshold)
        if activation is not None:
            validate_ranker_activation(activation)
        if scale_score is not None:
            if activation is not None and activation != _activation_of(scale_score):
                msg = f"scale_score={scale_score} contradicts activation={activation!r}; pass only one of them."
                raise ValueError(msg)
            activation = _activation_of(scale_score)
        elif self.activation is None and self.scale_score is not None:
            activation = activation or _activation_of(self.scale_score)
        if first_stage_weight is not None:
            first_stage_weight = validate_first_stage_weight(first_stage_weight)
        if fusion is not None:
            validate_fusion(fusion)
        if not any(split_long_documents is value for value in (None, False, True)):
            msg = f"split_long_documents must be None, False or True, got {split_long_documents!r}."
            raise ValueError(msg)
        return _RunParameters(
            top_k=self.top_k if top_k is None else top_k,
            score_threshold=self.score_threshold if score_threshold is None else score_threshold,
            activation=activation,
            scale=self.scale if scale is None else validate_scale(scale),
            first_stage_weight=self.first_stage_weight if first_stage_weight is None else first_stage_weight,
            fusion=self.fusion if fusion is None else fusion,
            split_long_documents=self.split_long_documents if split_long_documents is None else split_long_documents,
        )

    def _rank_queries(
        self, queries: list[str], documents: list[list[Document]], parameters: _RunParameters
    ) -> list[list[Document]]:
        """Each query's ranked documents, the pairs of all queries scored in shared batches (arguments checked)."""
        if not queries:
            return []
        if any(documents):
            self.warm_up()
        parameters = self._complete_run_parameters(parameters)
        assert parameters.activation is not None  # completed above

        split = parameters.split_long_documents
        prepared = [
            self._scoring_units(query, _deduplicate(docs)) if docs and split else (_deduplicate(docs), None)
            for query, docs in zip(queries, documents, strict=True)
        ]
        scored_per_query = self._score_units(
            [(query, units) for query, (units, _) in zip(queries, prepared, strict=True)],
            parameters.activation,
            parameters.scale,
        )
        return [
            self._rank(scored, units, parents, parameters)
            for scored, (units, parents) in zip(scored_per_query, prepared, strict=True)
        ]

    def _complete_run_parameters(self, parameters: _RunParameters) -> _RunParameters:
        """Fills what the caller left open with what the model declares (known after `warm_up`), else defaults."""
        weight = parameters.first_stage_weight
        if weight is None:
            weight = self._model_fusion.get("first_stage_weight", 0.0)
        activation = parameters.activation or self.activation
        if activation is None:
            default = self._calibration is not None and self.scale_score is None and parameters.scale == 1.0
            activation = CALIBRATED if default else self._model_activation or "sigmoid"
        if activation == CALIBRATED:
            if self._calibration is None:
                raise missing_calibration_error(self.model)
            check_calibrated_scale(parameters.scale)
        return replace(
            parameters,
            activation=activation,
            first_stage_weight=weight,
            fusion=parameters.fusion or self._model_fusion.get("fusion", _DEFAULT_FUSION),
        )

    def _rank(
        self,
        scored: list[_Scored],
        units: list[_Candidate],
        parents: dict[str, _Candidate] | None,
        parameters: _RunParameters,
    ) -> list[Document]:
        """One query's result: aggregate passages, fuse with the first stage, sort, threshold and cut."""
        aggregate = not self.return_passages and (parents is not None or any(is_passage(u.document) for u in units))
        if aggregate:
            scored = _aggregate_to_parents(scored, parents or {}, self.aggregation)
        if parameters.activation == CALIBRATED:
            assert self._calibration is not None  # checked in `_complete_run_parameters`
            scored = _calibrated(scored, self._calibration, aggregated=aggregate)
        if parameters.first_stage_weight:
            scored = _fuse(scored, parameters.first_stage_weight, parameters.fusion or _DEFAULT_FUSION)
        scored.sort(key=lambda item: (item.score is None, -(item.score or 0.0), item.retrieval_rank))
        threshold = parameters.score_threshold
        if threshold is not None:
            scored = [item for item in scored if item.score is not None and item.score >= threshold]
        return [_with_scores(item) for item in scored[: parameters.top_k]]

    def _document_text(self, document: Document) -> str | None:
        """The text the model sees for a document, or None if there is nothing to score."""
        meta_values = [
            str(document.meta[key])
            for key in self.meta_fields_to_embed
            if key in document.meta and document.meta[key] is not None
        ]
        content = document.content or ""
        if not _has_text(content) and not any(_has_text(value) for value in meta_values):
            return None
        return self.document_prefix + self.embedding_separator.join([*meta_values, content]) + self.document_suffix

    def _scoring_units(
        self, query: str, candidates: list[_Candidate]
    ) -> tuple[list[_Candidate], dict[str, _Candidate] | None]:
        """What the model scores: the passages of the candidates (the caller decided to split them here)."""
        assert self._scorer is not None
        tokenizer = self._scorer.tokenizer
        query_tokens = len(tokenizer(self.query_prefix + query + self.query_suffix, add_special_tokens=False).input_ids)
        max_tokens, overlap = query_passage_sizes(tokenizer, self._scorer.max_length, query_tokens, self.overlap_tokens)
        units: list[_Candidate] = []
        parents: dict[str, _Candidate] = {}
        for candidate in candidates:
            document = candidate.document
            if document.content is None or is_passage(document):
                units.append(candidate)
                continue
            parents[document.id] = candidate
            for passage in split_document(document, tokenizer, max_tokens=max_tokens, overlap_tokens=overlap):
                units.append(_Candidate(passage, candidate.retrieval_rank, candidate.retrieval_score))
        return units, parents

    def _score_units(
        self, requests: list[tuple[str, list[_Candidate]]], activation: str, scale: float
    ) -> list[list[_Scored]]:
        """Scores every query's units in one model call."""
        texts = [[self._document_text(unit.document) for unit in units] for _, units in requests]
        # Each distinct text of a query is scored once: duplicates cost nothing and always tie exactly.
        distinct = [list(dict.fromkeys(text for text in query_texts if text is not None)) for query_texts in texts]
        logits: list[Any] = [[] for _ in requests]
        if any(distinct):
            assert self._scorer is not None
            logits = self._scorer.logits_many(
                [
                    (self.query_prefix + query + self.query_suffix, query_distinct)
                    for (query, _), query_distinct in zip(requests, distinct, strict=True)
                ],
                show_progress_bar=self.show_progress_bar,
            )
        scored = []
        for (_, units), query_texts, query_distinct, query_logits in zip(
            requests, texts, distinct, logits, strict=True
        ):
            # Calibrated scores are computed from the (aggregated) logits in `_rank`.
            plain = "identity" if activation == CALIBRATED else activation
            activated = apply_activation(query_logits, plain, scale).tolist() if query_distinct else []
            score_of = dict(zip(query_distinct, activated, strict=True))
            scored.append(
                [
                    _Scored(
                        unit.document,
                        None if text is None else score_of[text],
                        unit.retrieval_rank,
                        unit.retrieval_score,
                    )
                    for unit, text in zip(units, query_texts, strict=True)
                ]
            )
        return scored


def _check_queries_and_document_lists(queries: Any, documents: Any) -> None:
    if not isinstance(queries, list) or not isinstance(documents, list):
        msg = "queries must be a list of strings and documents a list of document lists (one per query)."
        raise TypeError(msg)
    check_same_length("queries", queries, "documents", documents, "one list of documents per query")
    for query, docs in zip(queries, documents, strict=True):
        _check_query_and_documents(query, docs)


def _check_query_and_documents(query: Any, documents: Any) -> None:
    if not isinstance(query, str) or not query.strip():
        msg = f"query must be a non-empty string, got {query!r}."
        raise ValueError(msg)
    if not isinstance(documents, list) or not all(isinstance(doc, Document) for doc in documents):
        msg = "documents must be a list of haystack Document objects."
        raise TypeError(msg)


def _check_truncation(truncation: Any) -> None:
    hint = "Pass 'query_window' to keep the part of a long document that matches the query."
    check_choice("truncation", truncation, TRUNCATIONS, hint=hint)


def _activation_of(scale_score: bool) -> str:
    return "sigmoid" if scale_score else "identity"


def _check_top_k(top_k: Any) -> int:
    return check_positive_int("top_k", top_k, "Pass the number of documents to return, e.g. top_k=10.")


def _check_int(name: str, value: Any, minimum: int, none: str | None = None, hint: str = "") -> Any:
    """`value` as an int if it is an int >= minimum (or None when `none` says what None means), else a ValueError."""
    if value is None and none is not None:
        return None
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < minimum:
        alternative = f" or {none}" if none is not None else ""
        msg = f"{name} must be an int >= {minimum}{hint}{alternative}, got {value!r}."
        raise ValueError(msg)
    return int(value)


def _checked_sizes(
    batch_size: Any,
    max_length: Any,
    overlap_tokens: Any,
    passage_overlap_tokens: Any,
    max_tokens_per_batch: Any,
    cache_size: Any,
    num_threads: Any,
) -> tuple[int, int | None, int, int | None, int, int | None]:
    """The init's counts as ints, each checked (a ValueError names the first one out of range)."""
    return (
        _check_int("batch_size", batch_size, minimum=1),
        _check_int("max_length", max_length, minimum=1, none="None (the model's limit)"),
        _overlap_tokens(overlap_tokens, passage_overlap_tokens),
        _check_int("max_tokens_per_batch", max_tokens_per_batch, minimum=1, none="None (fixed batches of batch_size)"),
        _check_int("cache_size", cache_size, minimum=0, hint=" (0 disables the cache)"),
        _check_int("num_threads", num_threads, minimum=1, none="None (the library default)"),
    )


def _checked_ranking_options(
    score_threshold: Any, first_stage_weight: Any, fusion: Any, backend: Any, truncation: Any
) -> float | None:
    """Checks the init's ranking options; returns `first_stage_weight` as a float (or None)."""
    _check_score_threshold(score_threshold)
    if first_stage_weight is not None:
        first_stage_weight = validate_first_stage_weight(first_stage_weight)
    if fusion is not None:
        validate_fusion(fusion)
    if backend not in ("torch", "onnx", "openvino"):
        msg = f"backend must be 'torch', 'onnx' or 'openvino', got {backend!r}."
        raise ValueError(msg)
    _check_truncation(truncation)
    return first_stage_weight


def _check_activation_options(activation: Any, scale: Any, scale_score: Any) -> None:
    if activation is not None:
        validate_ranker_activation(activation)
    if activation == CALIBRATED:
        check_calibrated_scale(validate_scale(scale))
    if scale_score is not None and activation is not None and activation != _activation_of(scale_score):
        msg = (
            f"scale_score={scale_score} contradicts activation={activation!r}. "
            "Pass only `activation`; scale_score is there for SentenceTransformersSimilarityRanker users."
        )
        raise ValueError(msg)


def _overlap_tokens(overlap_tokens: Any, passage_overlap_tokens: Any) -> int:
    """`overlap_tokens`, checked; the deprecated `passage_overlap_tokens` replaces it when given."""
    if passage_overlap_tokens is not None:
        warnings.warn(
            "CrossEncoderRanker(passage_overlap_tokens=...) is deprecated; pass overlap_tokens, the name "
            "PassageSplitter uses for the same setting.",
            DeprecationWarning,
            stacklevel=3,
        )
        return _check_int("passage_overlap_tokens", passage_overlap_tokens, minimum=0)
    return _check_int("overlap_tokens", overlap_tokens, minimum=0)


def _check_score_threshold(score_threshold: Any) -> None:
    check_score_threshold(score_threshold, hint="Pass e.g. score_threshold=0.5 with the sigmoid activation.")


def _has_text(text: str) -> bool:
    """Whether `text` has a character the model can read: not only whitespace, controls or zero-width characters."""
    return any(not char.isspace() and unicodedata.category(char) not in _INVISIBLE_CATEGORIES for char in text)


def _real_number(value: Any) -> float | None:
    """`value` as a float if it is a real number (bools are not), else None."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        return None
    return float(value)


def _retrieval_rank(document: Document, position: int) -> int:
    """An int `meta["retrieval_rank"]` set by an earlier stage, else the position; other values are ignored."""
    rank = document.meta.get("retrieval_rank")
    if isinstance(rank, bool) or not isinstance(rank, numbers.Integral):
        return position
    return int(rank)


def _retrieval_score(document: Document) -> float | None:
    """The first real number among `meta["retrieval_score"]` (set by an earlier stage) and `score`, else None."""
    from_meta = _real_number(document.meta.get("retrieval_score"))
    return from_meta if from_meta is not None else _real_number(document.score)


def _deduplicate(documents: list[Document]) -> list[_Candidate]:
    """Keep one document per id (the one with the best retrieval score), in order of first appearance."""
    best: dict[str, Document] = {}
    for document in documents:
        kept = best.get(document.id)
        score = _real_number(document.score)
        if kept is None or (score is not None and (_real_number(kept.score) is None or score > kept.score)):  # type: ignore[operator]
            best[document.id] = document
    return [
        _Candidate(document, _retrieval_rank(document, rank), _retrieval_score(document))
        for rank, document in enumerate(best.values(), start=1)
    ]


def _fuse(scored: list[_Scored], weight: float, method: str) -> list[_Scored]:
    """
    Fuse each item's score with its retrieval score (`fusion.fuse_scores`), in retrieval order so that the input
    order is the evidence when no item has a retrieval score. Items without a score are left out and stay None.
    """
    with_scores = sorted((item for item in scored if item.score is not None), key=lambda item: item.retrieval_rank)
    fused = fuse_scores(
        [item.score for item in with_scores],  # type: ignore[misc]
        [item.retrieval_score for item in with_scores],
        weight,
        method,
    )
    fused_score = {id(item): value for item, value in zip(with_scores, fused, strict=True)}
    return [replace(item, score=fused_score.get(id(item)), fused=True, rerank_score=item.score) for item in scored]


def _aggregate_to_parents(scored: list[_Scored], parents: dict[str, _Candidate], aggregation: str) -> list[_Scored]:
    """
    Group this package's passages by `source_id` and give each parent the aggregate of its passages' scores.
    Other documents (chunks of other splitters included, whatever their `source_id`) stay as they are.
    """
    groups: dict[str, list[_Scored]] = {}
    results: list[_Scored | str] = []  # a str marks where a parent group first appeared
    for item in scored:
        if not is_passage(item.document):
            results.append(item)
            continue
        source_id = item.document.meta["source_id"]
        if source_id not in groups:
            groups[source_id] = []
            results.append(source_id)
        groups[source_id].append(item)

    aggregated: list[_Scored] = []
    # A parent's retrieval rank is its place among the parents in retrieval order, not a passage's position,
    # unless an earlier stage already recorded one in meta.
    for position, entry in enumerate(results, start=1):
        if isinstance(entry, _Scored):
            rank = _retrieval_rank(entry.document, position)
            aggregated.append(_Scored(entry.document, entry.score, rank, entry.retrieval_score))
            continue
        passages = sorted(groups[entry], key=lambda p: p.document.meta["passage_index"])
        with_scores = [p for p in passages if p.score is not None]
        parent = parents.get(entry)
        parent_document = parent.document if parent is not None else _rebuild_parent(entry, passages)
        if not with_scores:
            rank = _retrieval_rank(passages[0].document, position)
            aggregated.append(_Scored(parent_document, None, rank, passages[0].retrieval_score))
            continue
        best = max(with_scores, key=lambda p: p.score)  # type: ignore[arg-type, return-value]
        score = aggregate_scores([p.score for p in with_scores], aggregation)  # type: ignore[misc]
        meta = {
            **parent_document.meta,
            "best_passage": best.document.content,
            "best_passage_index": best.document.meta.get("passage_index"),
            "best_passage_start": best.document.meta.get("split_idx_start"),
            "best_passage_end": best.document.meta.get("split_idx_end"),
            "best_passage_score": best.score,
            "passages_scored": len(with_scores),
        }
        retrieval_scores = [p.retrieval_score for p in passages if p.retrieval_score is not None]
        aggregated.append(
            _Scored(
                replace(parent_document, meta=meta),
                score,
                _retrieval_rank(passages[0].document, position),
                max(retrieval_scores) if retrieval_scores else None,
            )
        )
    return aggregated


def _calibrated(scored: list[_Scored], calibration: Calibration, aggregated: bool) -> list[_Scored]:
    """
    Logits mapped to P(relevant). An aggregated parent's logit (e.g. its best passage's, with `max`) is mapped as
    one, and so is its `best_passage_score`.
    """
    logits = [item.score for item in scored if item.score is not None]
    probability = dict(zip(logits, calibration.probabilities(logits).tolist(), strict=True))
    calibrated = []
    for item in scored:
        document, meta = item.document, item.document.meta
        if aggregated and "passages_scored" in meta and isinstance(meta.get("best_passage_score"), float):
            best = calibration.probabilities(meta["best_passage_score"]).item()
            document = replace(document, meta={**meta, "best_passage_score": best})
        score = None if item.score is None else probability[item.score]
        calibrated.append(replace(item, document=document, score=score))
    return calibrated


def _rebuild_parent(source_id: str, passages: list[_Scored]) -> Document:
    """
    The parent document of passages that came from a PassageSplitter: content stitched back together from the
    passages' character offsets (exact when all passages are present), meta without the passage keys.
    """
    first = passages[0].document
    meta = {key: value for key, value in first.meta.items() if key not in PASSAGE_META_KEYS}
    pieces: list[str] = []
    position = 0
    complete = first.meta.get("passage_count") in (None, len(passages))
    for item in passages:
        start = item.document.meta.get("split_idx_start")
        end = item.document.meta.get("split_idx_end")
        text = item.document.content or ""
        if start is None or end is None or start > position:
            complete = False
            pieces.append(" … " + text if pieces else text)
            continue
        pieces.append(text[position - start :])
        position = max(position, end)
    meta["content_is_complete"] = complete
    return Document(id=source_id, content="".join(pieces), meta=meta)


def _with_scores(item: _Scored) -> Document:
    meta = {**item.document.meta, "retrieval_rank": item.retrieval_rank}
    meta.setdefault("retrieval_score", item.retrieval_score)
    if item.fused:
        meta["rerank_score"] = item.rerank_score
    return replace(item.document, score=item.score, meta=meta)

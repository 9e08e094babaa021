"""Scoring with a sentence-transformers bi-encoder: query and document encoded separately, cosine as the logit.

A reranker fine-tuned from a bi-encoder such as the bundled all-MiniLM-L6-v2 is saved as a plain
sentence-transformers `SentenceTransformer` directory (`Transformer -> Pooling -> Normalize`). Scored this way it
ranks exactly as the bi-encoder it is: untrained, it is the bundled model; fine-tuned, it starts from that model's
quality instead of below it (a joint forward pass is not what a bi-encoder learned). Document embeddings do not
depend on the query, so a small LRU cache lets documents retrieved again (across queries, in `rerank serve`, in
evaluation) skip the model.

The weights may be cast to bfloat16 or float16 at load (`load_bi_encoder(precision=...)`, chosen by the
ranker's `precision`); embeddings are then re-normalised in float32, so cosines stay within [-1, 1].

An export of such a directory (`rerank export`: one text's token ids -> its embedding, as ONNX or OpenVINO) is
run by `ExportedSentenceEncoder`, which stands in for the `SentenceTransformer`: the same scorer, prefixes and
cache, no torch.

A directory says how the ranker should use it in `crossencoder_haystack.json` (`RERANKER_CONFIG_FILE`):
`"scorer": "bi-encoder"`, `query_prefix` / `document_prefix`, an `activation`, fusion defaults (`fusion.py`).

Only sentence-transformers' own module classes are loaded and transformers never gets `trust_remote_code=True`
unless the user asks for it: a model directory is untrusted input.
"""

import json
import threading
from collections import OrderedDict
from collections.abc import Sequence
from pathlib import Path
from typing import Any, TypedDict

import numpy as np

from haystack_integrations.components.rankers.crossencoder._engine.activations import ACTIVATIONS
from haystack_integrations.components.rankers.crossencoder._engine.batching import BatchedForward
from haystack_integrations.components.rankers.crossencoder._engine.pair_encoding import EncodedPair
from haystack_integrations.components.rankers.crossencoder._engine.pair_scorer import ManyRequestScorer
from haystack_integrations.components.rankers.crossencoder._engine.precision import cast_module, module_precision

RERANKER_CONFIG_FILE = "crossencoder_haystack.json"
_SAFE_MODULE_PREFIX = "sentence_transformers."
_DEFAULT_EMBEDDING_CACHE = 8192


def is_bi_encoder_directory(path: str | Path) -> bool:
    """
    Whether a local directory holds a sentence-transformers bi-encoder (a `SentenceTransformer` with pooling).

    A cross-encoder directory (its config says `CrossEncoder`, or the model is a sequence classifier) is not one.
    """
    directory = Path(path).expanduser()
    modules = _read_json(directory / "modules.json")
    if not isinstance(modules, list) or not (directory / "modules.json").is_file():
        return False
    if _read_json(directory / "config_sentence_transformers.json").get("model_type") == "CrossEncoder":
        return False
    architectures = _read_json(directory / "config.json").get("architectures") or []
    if any(str(name).endswith("ForSequenceClassification") for name in architectures):
        return False
    types = [str(module.get("type", "")) for module in modules if isinstance(module, dict)]
    return any(name.rsplit(".", 1)[-1] == "Pooling" for name in types)


def foreign_module_types(path: str | Path) -> list[str]:
    """Module classes named in a bi-encoder's modules.json that are not sentence-transformers' own."""
    modules = _read_json(Path(path).expanduser() / "modules.json")
    types = [str(module.get("type", "")) for module in modules if isinstance(module, dict)]
    return [name for name in types if not name.startswith(_SAFE_MODULE_PREFIX)]


class DeclaredPrefixes(TypedDict, total=False):
    """The prefixes a bi-encoder directory declares: keyword arguments of `BiEncoderPairScorer`."""

    query_prefix: str
    document_prefix: str


def declared_prefixes(path: str | Path) -> DeclaredPrefixes:
    """The `query_prefix` / `document_prefix` a bi-encoder directory declares in `crossencoder_haystack.json`."""
    config = _read_json(Path(path).expanduser() / RERANKER_CONFIG_FILE)
    prefixes: DeclaredPrefixes = {}
    if not isinstance(config, dict):
        return prefixes
    if isinstance(config.get("query_prefix"), str):
        prefixes["query_prefix"] = config["query_prefix"]
    if isinstance(config.get("document_prefix"), str):
        prefixes["document_prefix"] = config["document_prefix"]
    return prefixes


def declared_activation(path: str | Path) -> str:
    """A bi-encoder's logit is a cosine: used as it is (`"identity"`) unless `crossencoder_haystack.json` says."""
    config = _read_json(Path(path).expanduser() / RERANKER_CONFIG_FILE)
    declared = config.get("activation") if isinstance(config, dict) else None
    return declared if declared in ACTIVATIONS else "identity"


class BiEncoderPairScorer(ManyRequestScorer):
    """
    Scores (query, text) pairs by the cosine of their separately computed embeddings (the `PairScorer` interface).

    Usage example:
    ```python
    from sentence_transformers import SentenceTransformer

    scorer = BiEncoderPairScorer(SentenceTransformer("path/to/all-MiniLM-L6-v2"))
    print(scorer.logits("capital of Germany", ["Berlin is the capital.", "Paris is in France."]))
    ```

    :param model: A loaded `SentenceTransformer`.
    :param batch_size: Texts per forward pass.
    :param embedding_cache_size: Document embeddings kept (LRU, by text); 0 disables the cache.
    :param declared_activation: The activation the model directory declares; the logit is a cosine in [-1, 1].
    :param query_prefix: Text put before every query (e5: `"query: "`).
    :param document_prefix: Text put before every document (e5: `"passage: "`); the cache stays keyed by the text.
    """

    def __init__(
        self,
        model: Any,
        batch_size: int = 16,
        embedding_cache_size: int = _DEFAULT_EMBEDDING_CACHE,
        declared_activation: str | None = "identity",
        query_prefix: str = "",
        document_prefix: str = "",
    ) -> None:
        self.model = model
        self.query_prefix = query_prefix
        self.document_prefix = document_prefix
        self.batch_size = batch_size
        self.tokenizer = model.tokenizer
        self.max_length = int(model.max_seq_length)
        self.declared_activation = declared_activation
        # Half-precision weights normalise in half precision (norms off by ~1e-3): normalised again in float32.
        self._renormalize = callable(getattr(model, "parameters", None)) and module_precision(model) != "fp32"
        self._cache: OrderedDict[str, np.ndarray] = OrderedDict()
        self._cache_size = embedding_cache_size
        self._lock = threading.Lock()

    def logits_many(
        self, requests: Sequence[tuple[str, Sequence[str]]], show_progress_bar: bool = False
    ) -> list[np.ndarray]:
        """Cosine similarities for several (query, texts) requests; every distinct text is encoded once."""
        if not requests:
            return []
        with self._lock:
            queries = self._encode([self.query_prefix + query for query, _ in requests], show_progress_bar)
            documents = self._document_embeddings([text for _, texts in requests for text in texts], show_progress_bar)
        results, start = [], 0
        for index, (_, texts) in enumerate(requests):
            block = documents[start : start + len(texts)]
            start += len(texts)
            results.append((block @ queries[index]).astype(np.float32) if len(texts) else np.zeros(0, np.float32))
        return results

    def _document_embeddings(self, texts: list[str], show_progress_bar: bool) -> np.ndarray:
        missing = list(dict.fromkeys(text for text in texts if text not in self._cache))
        prefixed = [self.document_prefix + text for text in missing]
        fresh = dict(zip(missing, self._encode(prefixed, show_progress_bar), strict=True)) if missing else {}
        rows = []
        for text in texts:
            embedding = fresh.get(text)
            if embedding is None:
                embedding = self._cache[text]
                self._cache.move_to_end(text)
            rows.append(embedding)
        for text, embedding in fresh.items():
            self._remember(text, embedding)
        dimension = self.model.get_embedding_dimension() or 0
        return np.stack(rows) if rows else np.zeros((0, dimension), np.float32)

    def _remember(self, text: str, embedding: np.ndarray) -> None:
        if self._cache_size <= 0:
            return
        self._cache[text] = embedding
        while len(self._cache) > self._cache_size:
            self._cache.popitem(last=False)

    def _encode(self, texts: list[str], show_progress_bar: bool) -> np.ndarray:
        embeddings = np.asarray(
            self.model.encode(
                texts,
                batch_size=self.batch_size,
                convert_to_numpy=True,
                normalize_embeddings=True,
                show_progress_bar=show_progress_bar,
            ),
            dtype=np.float32,
        )
        if self._renormalize and embeddings.size:
            norms = np.linalg.norm(embeddings, axis=-1, keepdims=True)
            embeddings = (embeddings / np.where(norms > 0, norms, 1.0)).astype(np.float32, copy=False)
        return embeddings


class ExportedSentenceEncoder(BatchedForward):
    """
    A bi-encoder exported by `rerank export` (onnxruntime or OpenVINO): texts in, unit-length embeddings out.

    It offers what `BiEncoderPairScorer` uses of a `SentenceTransformer` (`tokenizer`, `max_seq_length`, `encode`,
    `get_embedding_dimension`), so an export is scored, prefixed and cached as the torch model is. Each text is
    tokenized alone and truncated to `max_length` tokens, as sentence-transformers does; texts are sorted by
    length and padded per batch.

    Usage example:
    ```python
    from transformers import AutoTokenizer

    from haystack_integrations.components.rankers.crossencoder._engine.onnx_backend import OnnxForward

    encoder = ExportedSentenceEncoder(OnnxForward("DIR/onnx/model.onnx"), AutoTokenizer.from_pretrained("DIR"), 256)
    scorer = BiEncoderPairScorer(encoder)
    ```

    :param forward: The backend's forward pass: padded `input_ids`, `attention_mask`, `token_type_ids` in,
        embeddings of shape (batch, dimension) out.
    :param tokenizer: The model's Hugging Face tokenizer.
    :param max_length: Tokens per text, special tokens included.
    :param dimension: The embedding size (as the export's manifest records it); None if unknown.
    :param max_tokens_per_batch: A token budget per batch (padding included); overrides `batch_size`.
    """

    def __init__(
        self,
        forward: Any,
        tokenizer: Any,
        max_length: int,
        dimension: int | None = None,
        max_tokens_per_batch: int | None = None,
    ) -> None:
        super().__init__(forward, tokenizer, max_tokens_per_batch)
        self.max_seq_length = int(max_length)
        self.dimension = dimension

    def get_embedding_dimension(self) -> int | None:
        """The embedding size, if known."""
        return self.dimension

    def encode(
        self,
        texts: Sequence[str],
        batch_size: int = 32,
        convert_to_numpy: bool = True,
        normalize_embeddings: bool = True,
        show_progress_bar: bool = False,
    ) -> np.ndarray:
        """
        Embeddings of `texts`, one row per text in their order, float32 (always numpy: `convert_to_numpy` is
        there for `SentenceTransformer.encode`'s signature).

        :raises ValueError: If the model file outputs token embeddings (a sentence-transformers ONNX export without
            pooling) instead of one embedding per text.
        """
        if not texts:
            return np.zeros((0, self.dimension or 0), dtype=np.float32)
        encoded = self.tokenizer(list(texts), truncation=True, max_length=self.max_seq_length)
        types = encoded.get("token_type_ids") or [[0] * len(ids) for ids in encoded["input_ids"]]
        inputs = [EncodedPair(list(ids), list(kinds)) for ids, kinds in zip(encoded["input_ids"], types, strict=True)]
        order: list[int] = []
        outputs: list[np.ndarray] = []
        for batch, output in self.forward_batches(
            inputs, batch_size, desc="Encoding", show_progress_bar=show_progress_bar
        ):
            if output.ndim != 2:  # (batch, dimension)
                msg = (
                    f"The exported model returns outputs of shape {tuple(output.shape)}, not one embedding per text "
                    "(token embeddings without pooling?). Export the bi-encoder directory with `rerank export DIR "
                    "--output EXPORTED`, which puts pooling and normalization into the graph."
                )
                raise ValueError(msg)
            order.extend(batch)
            outputs.append(output)
        stacked = np.concatenate(outputs).astype(np.float32, copy=False)
        embeddings = np.empty_like(stacked)
        embeddings[order] = stacked
        if normalize_embeddings:
            norms = np.linalg.norm(embeddings, axis=-1, keepdims=True)
            embeddings = (embeddings / np.where(norms > 0, norms, 1.0)).astype(np.float32, copy=False)
        return embeddings


def load_bi_encoder(
    directory: str | Path,
    *,
    device: str,
    max_length: int | None,
    trust_remote_code: bool,
    model_kwargs: dict[str, Any] | None = None,
    tokenizer_kwargs: dict[str, Any] | None = None,
    config_kwargs: dict[str, Any] | None = None,
    precision: str | None = None,
) -> Any:
    """
    Load a local bi-encoder directory as a `SentenceTransformer`, refusing code from the directory.

    :param precision: `"fp32"`, `"bf16"` or `"fp16"` casts the weights to that dtype (bf16 is faster than
        fp32 on CPUs with AMX, see README, Performance); `None` keeps the dtype they load in. `"auto"` is resolved
        by the caller (`precision.resolve_precision`).
    :raises ValueError: If modules.json names module classes other than sentence-transformers' own and
        `trust_remote_code` is False.
    """
    from sentence_transformers import SentenceTransformer

    foreign = foreign_module_types(directory)
    if foreign and not trust_remote_code:
        msg = (
            f"The model directory {directory} names module classes outside sentence-transformers "
            f"({', '.join(foreign)}); loading them would run code from the directory. Pass trust_remote_code=True "
            "only if you trust where the model came from."
        )
        raise ValueError(msg)
    model = SentenceTransformer(
        str(directory),
        device=device,
        local_files_only=True,
        trust_remote_code=trust_remote_code,
        model_kwargs=model_kwargs,
        processor_kwargs=tokenizer_kwargs,
        config_kwargs=config_kwargs,
    )
    if max_length is not None:
        limit = _position_limit(model)
        model.max_seq_length = int(max_length) if limit is None else min(int(max_length), limit)
    if precision is not None:
        cast_module(model, precision)
    return model.eval()


def _position_limit(model: Any) -> int | None:
    """The most tokens the encoder has positions for (a longer `max_length` is capped there, not an error)."""
    config = getattr(getattr(model[0], "auto_model", None), "config", None)
    limit = getattr(config, "max_position_embeddings", None)
    if not isinstance(limit, int) or isinstance(limit, bool) or limit <= 0:
        return None
    # (XLM-)RoBERTa positions start after the padding index: two of them are never usable
    return limit - 2 if getattr(config, "model_type", "") in {"roberta", "xlm-roberta"} else limit


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}

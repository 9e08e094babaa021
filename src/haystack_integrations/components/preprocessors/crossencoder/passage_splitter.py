"""PassageSplitter: documents in, passages that fit a cross-encoder out."""

import asyncio
import threading
from pathlib import Path
from typing import Any

from haystack import Document, component, default_from_dict, default_to_dict, logging
from haystack.utils import Secret

from .splitting import check_int, check_passage_sizes, pair_special_tokens, passage_token_budget, split_document

logger = logging.getLogger(__name__)

# Tokenizers without a known limit report a sentinel such as int(1e30) as model_max_length.
_SENTINEL_MAX_LENGTH = 1_000_000
_FALLBACK_MAX_LENGTH = 512


@component
class PassageSplitter:
    """
    Splits documents into passages that fit a cross-encoder, measured in the cross-encoder's own tokenizer.

    A cross-encoder reads at most `max_length` tokens of query plus document and silently truncates the rest, so a
    long document is judged by its beginning only. Put a PassageSplitter between the retriever and the
    `CrossEncoderRanker` to rank passages instead: each passage fits the budget, ends at a sentence end when it can,
    and keeps its parent's meta and score plus `source_id`, `passage_index`, `passage_count`, `split_idx_start`,
    `split_idx_end` (character offsets: `parent.content[split_idx_start:split_idx_end] == passage.content`), the
    marker `passage_splitter="crossencoder-haystack"` and, for content with form feeds, `page_number`. The ranker
    aggregates only passages with that marker back into their parent (see `is_passage`); chunks of other splitters
    keep being ranked as they are, whatever their `source_id`.

    ### Usage example

    ```python
    from haystack import Document
    from haystack_integrations.components.preprocessors.crossencoder import PassageSplitter

    splitter = PassageSplitter(tokenizer="/models/ms-marco-MiniLM-L6-v2", max_length=512, max_query_tokens=64)
    splitter.warm_up()
    result = splitter.run(documents=[Document(content="Cross-encoders read query and passage together. " * 200)])
    for passage in result["documents"]:
        print(passage.meta["source_id"], passage.meta["passage_index"], passage.meta["split_idx_start"])
    ```
    """

    def __init__(
        self,
        *,
        tokenizer: str,
        max_tokens: int | None = None,
        overlap_tokens: int = 32,
        max_length: int | None = None,
        max_query_tokens: int = 64,
        token: Secret | None = Secret.from_env_var(["HF_API_TOKEN", "HF_TOKEN"], strict=False),
        tokenizer_kwargs: dict[str, Any] | None = None,
    ) -> None:
        """
        Create a PassageSplitter. The tokenizer is loaded by `warm_up()`.

        :param tokenizer: Local directory or Hugging Face hub id of the tokenizer, usually the cross-encoder's model
            directory (a CrossEncoder directory has its tokenizer files at the top level). Must have a fast
            tokenizer (`tokenizer.json`): passages are cut at token offsets.
        :param max_tokens: The most tokens a passage may have, without special tokens. If None, it is derived from
            `max_length` and `max_query_tokens` so that query and passage fit the model together.
        :param overlap_tokens: Tokens shared by consecutive passages of a document; `0 <= overlap_tokens <` budget.
        :param max_length: The cross-encoder's maximum input length in tokens, used only when `max_tokens` is None.
            If both are None, the tokenizer's `model_max_length` is used (512 if it reports no real limit).
        :param max_query_tokens: Tokens to leave for the query when the budget is derived from `max_length`.
        :param token: Hugging Face token for private hub tokenizers.
        :param tokenizer_kwargs: Extra keyword arguments for `AutoTokenizer.from_pretrained` (e.g. `revision`).
        :raises ValueError: If a size is invalid, e.g. `overlap_tokens` not smaller than the passage budget.
        """
        if not isinstance(tokenizer, str) or not tokenizer.strip():
            raise ValueError(
                f"`tokenizer` must be a model directory or hub id (a non-empty str), got {tokenizer!r}. "
                "Pass the cross-encoder's model directory, e.g. PassageSplitter(tokenizer='/models/my-cross-encoder')."
            )
        if max_tokens is not None:
            check_passage_sizes(max_tokens, overlap_tokens)
        if max_length is not None:
            check_int("max_length", max_length, minimum=1)
        check_int("overlap_tokens", overlap_tokens, minimum=0)
        check_int("max_query_tokens", max_query_tokens, minimum=0)
        if max_tokens is None and max_length is not None:
            check_passage_sizes(passage_token_budget(max_length, max_query_tokens), overlap_tokens)
        if tokenizer_kwargs is not None and not isinstance(tokenizer_kwargs, dict):
            raise ValueError(f"`tokenizer_kwargs` must be a dict or None, got {type(tokenizer_kwargs).__name__}.")

        self.tokenizer = tokenizer
        self.max_tokens = max_tokens
        self.overlap_tokens = overlap_tokens
        self.max_length = max_length
        self.max_query_tokens = max_query_tokens
        self.token = token
        self.tokenizer_kwargs = tokenizer_kwargs
        self._tokenizer: Any = None
        self._budget: int | None = None
        self._warm_up_lock = threading.Lock()

    @property
    def passage_budget(self) -> int | None:
        """The most tokens a passage may have; None until `warm_up()` when it depends on the tokenizer."""
        return self._budget

    def warm_up(self) -> None:
        """
        Load the tokenizer and settle the passage budget. Idempotent and thread-safe.

        :raises OSError: If the tokenizer cannot be loaded.
        :raises ValueError: If the tokenizer is not a fast one, or the budget leaves no room for `overlap_tokens`.
        """
        if self._tokenizer is not None:
            return
        with self._warm_up_lock:
            if self._tokenizer is not None:
                return
            loaded = self._load_tokenizer()
            budget = self._resolve_budget(loaded)
            check_passage_sizes(budget, self.overlap_tokens)
            self._budget = budget
            self._tokenizer = loaded

    async def warm_up_async(self) -> None:
        """
        Like `warm_up()`, but loads the tokenizer in a worker thread so the event loop keeps running.
        """
        await asyncio.get_running_loop().run_in_executor(None, self.warm_up)

    def _load_tokenizer(self) -> Any:
        from transformers import AutoTokenizer

        kwargs = dict(self.tokenizer_kwargs or {})
        path = Path(self.tokenizer).expanduser()
        if path.exists():
            kwargs.setdefault("local_files_only", True)
            source = str(path)
        elif self.tokenizer.startswith((".", "/", "~")) or "\\" in self.tokenizer:
            raise FileNotFoundError(
                f"The tokenizer directory {self.tokenizer!r} does not exist. Pass the cross-encoder's model directory "
                "(with tokenizer.json at its top level) or a Hugging Face hub id."
            )
        else:
            source = self.tokenizer
        if self.token is not None and "token" not in kwargs:
            kwargs["token"] = self.token.resolve_value()
        try:
            loaded = AutoTokenizer.from_pretrained(source, **{**kwargs, "use_fast": True})
        except (OSError, ValueError) as error:
            raise OSError(
                f"Could not load the tokenizer {self.tokenizer!r}: {str(error).splitlines()[0]}. Without internet "
                "access, pass a local directory (the cross-encoder's model directory has the tokenizer files)."
            ) from error
        if not getattr(loaded, "is_fast", False):
            raise ValueError(
                f"The tokenizer {self.tokenizer!r} loaded as a slow tokenizer ({type(loaded).__name__}), which gives "
                "no character offsets. Use a model directory that has a tokenizer.json (save the tokenizer with a "
                "recent transformers version to create one)."
            )
        return loaded

    def _resolve_budget(self, loaded: Any) -> int:
        if self.max_tokens is not None:
            return self.max_tokens
        max_length = self.max_length
        if max_length is None:
            max_length = loaded.model_max_length
            if not isinstance(max_length, int) or max_length > _SENTINEL_MAX_LENGTH:
                max_length = _FALLBACK_MAX_LENGTH
        return passage_token_budget(max_length, self.max_query_tokens, special_tokens=pair_special_tokens(loaded))

    @component.output_types(documents=list[Document])
    def run(self, documents: list[Document]) -> dict[str, list[Document]]:
        """
        Split each document into passages; warms up first if needed.

        :param documents: The documents to split; they are not modified. Documents with `content=None` are passed
            through unchanged, with a warning.
        :returns: A dictionary with:
            - `documents`: the passages of the first document, then of the second, and so on.
        :raises TypeError: If `documents` is not a list of Documents.
        """
        _check_documents(documents)
        return {"documents": self._split_all(documents)}

    @component.output_types(documents=list[Document])
    async def run_async(self, documents: list[Document]) -> dict[str, list[Document]]:
        """
        Asynchronously split each document into passages; tokenization runs in a worker thread.

        :param documents: The documents to split; they are not modified. Documents with `content=None` are passed
            through unchanged, with a warning.
        :returns: A dictionary with:
            - `documents`: the passages of the first document, then of the second, and so on.
        :raises TypeError: If `documents` is not a list of Documents.
        """
        _check_documents(documents)
        passages = await asyncio.get_running_loop().run_in_executor(None, self._split_all, documents)
        return {"documents": passages}

    def _split_all(self, documents: list[Document]) -> list[Document]:
        self.warm_up()
        assert self._budget is not None  # set by warm_up
        passages: list[Document] = []
        for document in documents:
            if document.content is None:
                logger.warning(
                    "PassageSplitter: document {document_id} has content=None and is passed through unsplit.",
                    document_id=document.id,
                )
                passages.append(document)
                continue
            passages.extend(split_document(document, self._tokenizer, self._budget, self.overlap_tokens))
        return passages

    def to_dict(self) -> dict[str, Any]:
        """
        Serializes the component to a dictionary.

        :returns: Dictionary with serialized data.
        """
        return default_to_dict(
            self,
            tokenizer=self.tokenizer,
            max_tokens=self.max_tokens,
            overlap_tokens=self.overlap_tokens,
            max_length=self.max_length,
            max_query_tokens=self.max_query_tokens,
            token=self.token,
            tokenizer_kwargs=self.tokenizer_kwargs,
        )

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "PassageSplitter":
        """
        Deserializes the component from a dictionary.

        :param data: Dictionary to deserialize from.
        :returns: Deserialized component.
        """
        return default_from_dict(cls, data)


def _check_documents(documents: Any) -> None:
    if not isinstance(documents, list) or not all(isinstance(document, Document) for document in documents):
        raise TypeError(
            "PassageSplitter expects `documents` to be a list of haystack Document objects, "
            f"got {type(documents).__name__}. Wrap texts as Document(content=text)."
        )

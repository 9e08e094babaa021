from dataclasses import replace
from typing import Any

from azure.ai.inference import EmbeddingsClient
from azure.ai.inference.aio import EmbeddingsClient as AsyncEmbeddingsClient
from azure.core.credentials import TokenCredential
from azure.core.credentials_async import AsyncTokenCredential
from haystack import Document, component, default_from_dict, default_to_dict, logging
from haystack.utils import Secret
from tqdm import tqdm

from haystack_integrations.components.embedders.azure_ai_inference.client import (
    API_KEY_ENV_VAR,
    ENDPOINT_ENV_VAR,
    AzureAIInferenceEmbeddingError,
    ServiceConnection,
    validate_settings,
)

logger = logging.getLogger(__name__)


@component
class AzureAIInferenceDocumentEmbedder:
    """
    Computes document embeddings with a model deployed behind an Azure AI Inference endpoint.

    Documents are embedded in batches through the official `azure-ai-inference` SDK; each text is
    `prefix + meta fields + content + suffix`. Requests are retried on 408/429/5xx answers and timeouts with
    backoff (honouring `Retry-After`). The documents come back as copies carrying `embedding`; the input documents
    are never changed. With `raise_on_failure=False` a batch that still fails is logged and its documents come back
    without an embedding.

    ### Usage example
    <!-- test-ignore -->
    ```python
    from haystack import Document
    from haystack_integrations.components.embedders.azure_ai_inference import AzureAIInferenceDocumentEmbedder

    # reads AZURE_AI_INFERENCE_ENDPOINT and AZURE_AI_INFERENCE_API_KEY
    document_embedder = AzureAIInferenceDocumentEmbedder(model="embed-v-4-0", meta_fields_to_embed=["title"])
    result = document_embedder.run([Document(content="I love pizza!", meta={"title": "Food"})])

    print(result["documents"][0].embedding)
    # [0.0172, -0.0233, ...]
    print(result["meta"])
    # {'model': 'embed-v-4-0', 'usage': {'prompt_tokens': 6, 'total_tokens': 6}}
    ```
    """

    def __init__(
        self,
        *,
        endpoint: Secret = Secret.from_env_var(ENDPOINT_ENV_VAR),
        api_key: Secret | None = Secret.from_env_var(API_KEY_ENV_VAR, strict=False),
        credential: TokenCredential | AsyncTokenCredential | None = None,
        model: str | None = None,
        dimensions: int | None = None,
        input_type: str | None = "document",
        prefix: str = "",
        suffix: str = "",
        batch_size: int = 32,
        progress_bar: bool = True,
        meta_fields_to_embed: list[str] | None = None,
        embedding_separator: str = "\n",
        timeout: float = 30.0,
        max_retries: int = 3,
        raise_on_failure: bool = True,
        api_version: str | None = None,
    ) -> None:
        """
        Creates an AzureAIInferenceDocumentEmbedder. No connection is made until `warm_up` or `run`.

        :param endpoint:
            The Azure AI Inference endpoint, the URL the SDK appends `/embeddings` to, for example
            `https://<resource>.services.ai.azure.com/models`. Read from `AZURE_AI_INFERENCE_ENDPOINT` by default.
        :param api_key:
            The endpoint's API key, sent as `api-key` and `Authorization: Bearer` headers.
            Read from `AZURE_AI_INFERENCE_API_KEY` by default. Not needed when `credential` is given.
        :param credential:
            An `azure.core.credentials.TokenCredential` (or `AsyncTokenCredential`, usable by `run_async` only),
            for example `azure.identity.DefaultAzureCredential()`, for Entra ID authentication over HTTPS.
            It takes precedence over `api_key`. Python-only: it is not serialized by `to_dict`.
        :param model:
            The deployment name of the embedding model, needed when the endpoint serves several models.
        :param dimensions:
            The size of the returned embeddings, for models that support shortening them. None: the model's size.
        :param input_type:
            What the texts are, for models that embed queries and documents differently:
            `"document"` (default), `"query"` or `"text"`. None: not sent.
        :param prefix:
            A string added at the beginning of each text before embedding it.
        :param suffix:
            A string added at the end of each text before embedding it.
        :param batch_size:
            How many documents are embedded per request.
        :param progress_bar:
            Whether to show a progress bar while embedding.
        :param meta_fields_to_embed:
            Meta fields whose values are embedded before the content (fields a document lacks are skipped).
        :param embedding_separator:
            The separator between the meta values and the content.
        :param timeout:
            Seconds to wait for the connection and for the answer of each attempt.
        :param max_retries:
            How many times a request is retried after 408, 429 or 5xx answers, timeouts or connection errors.
        :param raise_on_failure:
            If True, a batch that still fails after the retries raises `AzureAIInferenceEmbeddingError`.
            If False, the failure is logged and that batch's documents are returned without an embedding.
        :param api_version:
            The Azure AI Inference API version. None: the SDK's default.
        """
        validate_settings(
            owner=type(self).__name__,
            endpoint=endpoint,
            api_key=api_key,
            credential=credential,
            dimensions=dimensions,
            input_type=input_type,
            timeout=timeout,
            max_retries=max_retries,
        )
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError(f"{type(self).__name__}: 'batch_size' must be a positive integer, got {batch_size!r}.")
        if meta_fields_to_embed is not None and not all(isinstance(field, str) for field in meta_fields_to_embed):
            raise TypeError(
                f"{type(self).__name__}: 'meta_fields_to_embed' must be a list of meta field names (strings), "
                f"got {meta_fields_to_embed!r}."
            )
        self.endpoint = endpoint
        self.api_key = api_key
        self.credential = credential
        self.model = model
        self.dimensions = dimensions
        self.input_type = input_type
        self.prefix = prefix
        self.suffix = suffix
        self.batch_size = batch_size
        self.progress_bar = progress_bar
        self.meta_fields_to_embed = list(meta_fields_to_embed or [])
        self.embedding_separator = embedding_separator
        self.timeout = timeout
        self.max_retries = max_retries
        self.raise_on_failure = raise_on_failure
        self.api_version = api_version

        self.client: EmbeddingsClient | None = None
        self.async_client: AsyncEmbeddingsClient | None = None

    def _connection(self) -> ServiceConnection:
        return ServiceConnection(
            owner=type(self).__name__,
            endpoint=self.endpoint,
            api_key=self.api_key,
            credential=self.credential,
            timeout=self.timeout,
            max_retries=self.max_retries,
            api_version=self.api_version,
        )

    def warm_up(self) -> None:
        """
        Creates the synchronous client (once). Raises a `ValueError` naming the environment variable to set when
        the endpoint or the key cannot be resolved.
        """
        if self.client is None:
            self.client = self._connection().client()

    async def warm_up_async(self) -> None:
        """
        Creates the asynchronous client (once), on the event loop that `run_async` will use.
        """
        if self.async_client is None:
            self.async_client = self._connection().async_client()

    def close(self) -> None:
        """
        Releases the synchronous client.
        """
        if self.client is not None:
            self.client.close()
            self.client = None

    async def close_async(self) -> None:
        """
        Releases the asynchronous client.
        """
        if self.async_client is not None:
            await self.async_client.close()
            self.async_client = None

    def to_dict(self) -> dict[str, Any]:
        """
        Serializes the component to a dictionary. The `credential` is not serialized.

        :returns:
            Dictionary with serialized data.
        """
        return default_to_dict(
            self,
            endpoint=self.endpoint,
            api_key=self.api_key,
            model=self.model,
            dimensions=self.dimensions,
            input_type=self.input_type,
            prefix=self.prefix,
            suffix=self.suffix,
            batch_size=self.batch_size,
            progress_bar=self.progress_bar,
            meta_fields_to_embed=self.meta_fields_to_embed,
            embedding_separator=self.embedding_separator,
            timeout=self.timeout,
            max_retries=self.max_retries,
            raise_on_failure=self.raise_on_failure,
            api_version=self.api_version,
        )

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "AzureAIInferenceDocumentEmbedder":
        """
        Deserializes the component from a dictionary.

        :param data:
            Dictionary to deserialize from.
        :returns:
            Deserialized component.
        """
        return default_from_dict(cls, data)

    def _check_input(self, documents: Any) -> None:
        if not isinstance(documents, list) or not all(isinstance(document, Document) for document in documents):
            raise TypeError(
                f"{type(self).__name__} expects a list of Documents as input. "
                "In case you want to embed a string, please use the AzureAIInferenceTextEmbedder."
            )

    def _text_to_embed(self, document: Document) -> str:
        meta_values = [
            str(document.meta[field])
            for field in self.meta_fields_to_embed
            if field in document.meta and document.meta[field] is not None
        ]
        return self.prefix + self.embedding_separator.join([*meta_values, document.content or ""]) + self.suffix

    def _batches(self, documents: list[Document]) -> list[tuple[int, list[str]]]:
        """(start index, texts) for each request."""
        texts = [self._text_to_embed(document) for document in documents]
        return [(start, texts[start : start + self.batch_size]) for start in range(0, len(texts), self.batch_size)]

    def _parameters(self) -> dict[str, Any]:
        return {"model": self.model, "dimensions": self.dimensions, "input_type": self.input_type}

    def _skip_failed_batch(self, error: AzureAIInferenceEmbeddingError, documents: list[Document]) -> None:
        if self.raise_on_failure:
            raise error
        logger.warning(
            "Documents {ids} are returned without embeddings: {error}",
            ids=", ".join(document.id for document in documents),
            error=str(error),
        )

    @staticmethod
    def _collect(result: Any, start: int, embeddings: list[list[float] | None], meta: dict[str, Any]) -> None:
        for offset, item in enumerate(sorted(result.data, key=lambda item: item.index)):
            embeddings[start + offset] = list(item.embedding)
        meta["model"] = result.model
        meta["usage"]["prompt_tokens"] += result.usage.prompt_tokens
        meta["usage"]["total_tokens"] += result.usage.total_tokens

    @staticmethod
    def _embedded_copies(documents: list[Document], embeddings: list[list[float] | None]) -> list[Document]:
        copies = []
        for document, embedding in zip(documents, embeddings, strict=True):
            changes: dict[str, Any] = {"meta": dict(document.meta)}
            if embedding is not None:
                changes["embedding"] = embedding
            copies.append(replace(document, **changes))
        return copies

    def _progress(self, total: int) -> tqdm:
        return tqdm(total=total, disable=not self.progress_bar, desc="Calculating embeddings", unit="doc")

    @component.output_types(documents=list[Document], meta=dict[str, Any])
    def run(self, documents: list[Document]) -> dict[str, Any]:
        """
        Embeds a list of documents.

        :param documents:
            The documents to embed.
        :returns:
            A dictionary with the following keys:
            - `documents`: Copies of the documents, in input order, with `embedding` set
              (left as it was for documents of a failed batch when `raise_on_failure=False`).
            - `meta`: The `model` that answered and the summed token `usage`.
        :raises TypeError: If `documents` is not a list of Documents.
        :raises AzureAIInferenceEmbeddingError: If a batch fails after the retries and `raise_on_failure` is True.
        """
        self._check_input(documents)
        self.warm_up()
        assert self.client is not None  # built by warm_up above
        connection = self._connection()
        embeddings: list[list[float] | None] = [None] * len(documents)
        meta: dict[str, Any] = {"model": self.model, "usage": {"prompt_tokens": 0, "total_tokens": 0}}
        with self._progress(len(documents)) as progress:
            for start, texts in self._batches(documents):
                try:
                    result = connection.embed(self.client, texts, **self._parameters())
                except AzureAIInferenceEmbeddingError as error:
                    self._skip_failed_batch(error, documents[start : start + len(texts)])
                else:
                    self._collect(result, start, embeddings, meta)
                progress.update(len(texts))
        return {"documents": self._embedded_copies(documents, embeddings), "meta": meta}

    @component.output_types(documents=list[Document], meta=dict[str, Any])
    async def run_async(self, documents: list[Document]) -> dict[str, Any]:
        """
        Embeds a list of documents asynchronously, with the `azure.ai.inference.aio` client.

        :param documents:
            The documents to embed.
        :returns:
            A dictionary with the following keys:
            - `documents`: Copies of the documents, in input order, with `embedding` set
              (left as it was for documents of a failed batch when `raise_on_failure=False`).
            - `meta`: The `model` that answered and the summed token `usage`.
        :raises TypeError: If `documents` is not a list of Documents.
        :raises AzureAIInferenceEmbeddingError: If a batch fails after the retries and `raise_on_failure` is True.
        """
        self._check_input(documents)
        await self.warm_up_async()
        assert self.async_client is not None  # built by warm_up_async above
        connection = self._connection()
        embeddings: list[list[float] | None] = [None] * len(documents)
        meta: dict[str, Any] = {"model": self.model, "usage": {"prompt_tokens": 0, "total_tokens": 0}}
        with self._progress(len(documents)) as progress:
            for start, texts in self._batches(documents):
                try:
                    result = await connection.embed_async(self.async_client, texts, **self._parameters())
                except AzureAIInferenceEmbeddingError as error:
                    self._skip_failed_batch(error, documents[start : start + len(texts)])
                else:
                    self._collect(result, start, embeddings, meta)
                progress.update(len(texts))
        return {"documents": self._embedded_copies(documents, embeddings), "meta": meta}

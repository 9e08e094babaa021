from dataclasses import replace
from typing import Any, cast

from azure.ai.inference.models import EmbeddingsResult
from azure.core.credentials import TokenCredential
from azure.core.credentials_async import AsyncTokenCredential
from haystack import Document, component, logging
from haystack.utils import Secret
from tqdm import tqdm

from haystack_integrations.components.embedders.azure_ai_inference.base import EmbedderBase
from haystack_integrations.components.embedders.azure_ai_inference.client import (
    API_KEY_ENV_VAR,
    ENDPOINT_ENV_VAR,
    AzureAIInferenceEmbeddingError,
)

logger = logging.getLogger(__name__)


@component
class AzureAIInferenceDocumentEmbedder(EmbedderBase):
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

    _SERIALIZED_PARAMETERS = (
        *EmbedderBase._SERIALIZED_PARAMETERS,
        "batch_size",
        "progress_bar",
        "meta_fields_to_embed",
        "embedding_separator",
        "raise_on_failure",
    )

    # Longer than 80 lines for its signature and the docstring of its 16 parameters; the body is the base's call.
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
        EmbedderBase.__init__(
            self,
            endpoint=endpoint,
            api_key=api_key,
            credential=credential,
            model=model,
            dimensions=dimensions,
            input_type=input_type,
            prefix=prefix,
            suffix=suffix,
            timeout=timeout,
            max_retries=max_retries,
            api_version=api_version,
        )
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError(f"{type(self).__name__}: 'batch_size' must be a positive integer, got {batch_size!r}.")
        if meta_fields_to_embed is not None and not all(isinstance(field, str) for field in meta_fields_to_embed):
            raise TypeError(
                f"{type(self).__name__}: 'meta_fields_to_embed' must be a list of meta field names (strings), "
                f"got {meta_fields_to_embed!r}."
            )
        self.batch_size = batch_size
        self.progress_bar = progress_bar
        self.meta_fields_to_embed = list(meta_fields_to_embed or [])
        self.embedding_separator = embedding_separator
        self.raise_on_failure = raise_on_failure

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
        client, connection = self._warm_client(), self._connection()
        with _Gathered(self, documents) as gathered:
            for start, texts in self._batches(documents):
                try:
                    gathered.add(start, connection.embed(client, texts, **self._parameters()))
                except AzureAIInferenceEmbeddingError as error:
                    gathered.skip(start, texts, error)
        return gathered.output()

    @component.output_types(documents=list[Document], meta=dict[str, Any])
    async def run_async(self, documents: list[Document]) -> dict[str, Any]:
        """
        Embeds a list of documents asynchronously, with the `azure.ai.inference.aio` client.

        :param documents:
            The documents to embed.
        :returns:
            The same dictionary as `run`: the embedded copies of the `documents` and the `meta` of the answers.
        :raises TypeError: If `documents` is not a list of Documents.
        :raises AzureAIInferenceEmbeddingError: If a batch fails after the retries and `raise_on_failure` is True.
        """
        self._check_input(documents)
        client, connection = await self._warm_async_client(), self._connection()
        with _Gathered(self, documents) as gathered:
            for start, texts in self._batches(documents):
                try:
                    gathered.add(start, await connection.embed_async(client, texts, **self._parameters()))
                except AzureAIInferenceEmbeddingError as error:
                    gathered.skip(start, texts, error)
        return gathered.output()


class _Gathered:
    """What one run gathers batch by batch: the embeddings, the summed token usage and the progress bar."""

    def __init__(self, embedder: AzureAIInferenceDocumentEmbedder, documents: list[Document]) -> None:
        self.embedder = embedder
        self.documents = documents
        self.embeddings: list[list[float] | None] = [None] * len(documents)
        self.meta: dict[str, Any] = {"model": embedder.model, "usage": {"prompt_tokens": 0, "total_tokens": 0}}
        self.progress = tqdm(
            total=len(documents), disable=not embedder.progress_bar, desc="Calculating embeddings", unit="doc"
        )

    def __enter__(self) -> "_Gathered":
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.progress.close()

    def add(self, start: int, result: EmbeddingsResult) -> None:
        for offset, item in enumerate(sorted(result.data, key=lambda item: item.index)):
            # The SDK types `embedding` as `str | list[float]`: a string only for encoding_format="base64",
            # which this embedder never asks for.
            self.embeddings[start + offset] = list(cast("list[float]", item.embedding))
        self.meta["model"] = result.model
        self.meta["usage"]["prompt_tokens"] += result.usage.prompt_tokens
        self.meta["usage"]["total_tokens"] += result.usage.total_tokens
        self.progress.update(len(result.data))

    def skip(self, start: int, texts: list[str], error: AzureAIInferenceEmbeddingError) -> None:
        if self.embedder.raise_on_failure:
            raise error
        logger.warning(
            "Documents {ids} are returned without embeddings: {error}",
            ids=", ".join(document.id for document in self.documents[start : start + len(texts)]),
            error=str(error),
        )
        self.progress.update(len(texts))

    def output(self) -> dict[str, Any]:
        copies = []
        for document, embedding in zip(self.documents, self.embeddings, strict=True):
            changes: dict[str, Any] = {"meta": dict(document.meta)}
            if embedding is not None:
                changes["embedding"] = embedding
            copies.append(replace(document, **changes))
        return {"documents": copies, "meta": self.meta}

from typing import Any

from azure.core.credentials import TokenCredential
from azure.core.credentials_async import AsyncTokenCredential
from haystack import component
from haystack.utils import Secret

from haystack_integrations.components.embedders.azure_ai_inference.base import EmbedderBase
from haystack_integrations.components.embedders.azure_ai_inference.client import API_KEY_ENV_VAR, ENDPOINT_ENV_VAR


@component
class AzureAIInferenceTextEmbedder(EmbedderBase):
    """
    Embeds a string (usually a query) with a model deployed behind an Azure AI Inference endpoint.

    It calls the `/embeddings` route through the official `azure-ai-inference` SDK, authenticating with an API key
    or an Entra ID credential, retrying 408/429/5xx answers and timeouts with backoff (honouring `Retry-After`).
    Use it to embed the query for an embedding retriever; embed the documents with
    `AzureAIInferenceDocumentEmbedder` and the same model.

    ### Usage example
    <!-- test-ignore -->
    ```python
    from haystack_integrations.components.embedders.azure_ai_inference import AzureAIInferenceTextEmbedder

    # reads AZURE_AI_INFERENCE_ENDPOINT and AZURE_AI_INFERENCE_API_KEY
    text_embedder = AzureAIInferenceTextEmbedder(model="embed-v-4-0")

    print(text_embedder.run("I love pizza!"))

    # {'embedding': [0.0172, -0.0233, ...],
    #  'meta': {'model': 'embed-v-4-0', 'usage': {'prompt_tokens': 4, 'total_tokens': 4}}}
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
        input_type: str | None = "query",
        prefix: str = "",
        suffix: str = "",
        timeout: float = 30.0,
        max_retries: int = 3,
        api_version: str | None = None,
    ) -> None:
        """
        Creates an AzureAIInferenceTextEmbedder. No connection is made until `warm_up` or `run`.

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
            What the text is, for models that embed queries and documents differently:
            `"query"` (default), `"document"` or `"text"`. None: not sent.
        :param prefix:
            A string added at the beginning of the text before embedding it.
        :param suffix:
            A string added at the end of the text before embedding it.
        :param timeout:
            Seconds to wait for the connection and for the answer of each attempt.
        :param max_retries:
            How many times a request is retried after 408, 429 or 5xx answers, timeouts or connection errors.
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

    def _texts(self, text: Any) -> list[str]:
        if not isinstance(text, str):
            raise TypeError(
                f"{type(self).__name__} expects a string as input, got {type(text).__name__}. "
                "In case you want to embed a list of Documents, please use the AzureAIInferenceDocumentEmbedder."
            )
        return [self.prefix + text + self.suffix]

    @staticmethod
    def _output(result: Any) -> dict[str, Any]:
        usage = {"prompt_tokens": result.usage.prompt_tokens, "total_tokens": result.usage.total_tokens}
        return {"embedding": list(result.data[0].embedding), "meta": {"model": result.model, "usage": usage}}

    @component.output_types(embedding=list[float], meta=dict[str, Any])
    def run(self, text: str) -> dict[str, Any]:
        """
        Embeds a single string.

        :param text:
            The text to embed.
        :returns:
            A dictionary with the following keys:
            - `embedding`: The embedding of the text.
            - `meta`: The `model` that answered and the token `usage`.
        :raises TypeError: If `text` is not a string.
        :raises AzureAIInferenceEmbeddingError: If the service refuses or keeps failing the request.
        """
        texts = self._texts(text)
        client = self._warm_client()
        return self._output(self._connection().embed(client, texts, **self._parameters()))

    @component.output_types(embedding=list[float], meta=dict[str, Any])
    async def run_async(self, text: str) -> dict[str, Any]:
        """
        Embeds a single string asynchronously, with the `azure.ai.inference.aio` client.

        :param text:
            The text to embed.
        :returns:
            The same dictionary as `run`: the text's `embedding` and the `meta` of the answer.
        :raises TypeError: If `text` is not a string.
        :raises AzureAIInferenceEmbeddingError: If the service refuses or keeps failing the request.
        """
        texts = self._texts(text)
        client = await self._warm_async_client()
        return self._output(await self._connection().embed_async(client, texts, **self._parameters()))

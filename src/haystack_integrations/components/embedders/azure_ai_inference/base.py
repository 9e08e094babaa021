"""What the text and the document embedder do alike: check and keep their settings, hold the SDK clients, serialize."""

from typing import Any, ClassVar, TypeVar

from azure.ai.inference import EmbeddingsClient
from azure.ai.inference.aio import EmbeddingsClient as AsyncEmbeddingsClient
from azure.core.credentials import TokenCredential
from azure.core.credentials_async import AsyncTokenCredential
from haystack import default_from_dict, default_to_dict
from haystack.utils import Secret

from haystack_integrations.components.embedders.azure_ai_inference.client import ServiceConnection, validate_settings

_Embedder = TypeVar("_Embedder", bound="EmbedderBase")


class EmbedderBase:
    """The settings, clients and serialization of an Azure AI Inference embedder; subclasses add what they embed."""

    # The `__init__` parameters `to_dict` records, each read from the attribute of the same name (`credential` is
    # Python-only and not among them). A subclass appends its own.
    _SERIALIZED_PARAMETERS: ClassVar[tuple[str, ...]] = (
        "endpoint",
        "api_key",
        "model",
        "dimensions",
        "input_type",
        "prefix",
        "suffix",
        "timeout",
        "max_retries",
        "api_version",
    )

    def __init__(
        self,
        *,
        endpoint: Secret,
        api_key: Secret | None,
        credential: TokenCredential | AsyncTokenCredential | None,
        model: str | None,
        dimensions: int | None,
        input_type: str | None,
        prefix: str,
        suffix: str,
        timeout: float,
        max_retries: int,
        api_version: str | None,
    ) -> None:
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
        self.endpoint = endpoint
        self.api_key = api_key
        self.credential = credential
        self.model = model
        self.dimensions = dimensions
        self.input_type = input_type
        self.prefix = prefix
        self.suffix = suffix
        self.timeout = timeout
        self.max_retries = max_retries
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

    def _parameters(self) -> dict[str, Any]:
        return {"model": self.model, "dimensions": self.dimensions, "input_type": self.input_type}

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

    def _warm_client(self) -> EmbeddingsClient:
        self.warm_up()
        assert self.client is not None  # built by warm_up above
        return self.client

    async def _warm_async_client(self) -> AsyncEmbeddingsClient:
        await self.warm_up_async()
        assert self.async_client is not None  # built by warm_up_async above
        return self.async_client

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
        return default_to_dict(self, **{name: getattr(self, name) for name in self._SERIALIZED_PARAMETERS})

    @classmethod
    def from_dict(cls: type[_Embedder], data: dict[str, Any]) -> _Embedder:
        """
        Deserializes the component from a dictionary.

        :param data:
            Dictionary to deserialize from.
        :returns:
            Deserialized component.
        """
        return default_from_dict(cls, data)

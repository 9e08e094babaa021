"""What both Azure AI Inference embedders share: building the SDK clients, bounded retries, errors that say the fix.

Retries are azure-core's own `RetryPolicy`, adjusted in two ways: an embeddings POST has no side effects, so it is
retried on 408, 429, 5xx, timeouts and connection errors (azure-core retries a POST only on 500/503/504), and a
server's `Retry-After` is honoured but capped, so one answer can never stall a run for long.
"""

import inspect
from dataclasses import dataclass
from typing import Any

from azure.ai.inference import EmbeddingsClient
from azure.ai.inference.aio import EmbeddingsClient as AsyncEmbeddingsClient
from azure.ai.inference.models import EmbeddingInputType, EmbeddingsResult
from azure.core.credentials import AzureKeyCredential
from azure.core.exceptions import (
    AzureError,
    HttpResponseError,
    ServiceRequestError,
    ServiceRequestTimeoutError,
    ServiceResponseTimeoutError,
)
from azure.core.pipeline.policies import AsyncRetryPolicy, RetryPolicy
from haystack.utils import Secret

ENDPOINT_ENV_VAR = "AZURE_AI_INFERENCE_ENDPOINT"
API_KEY_ENV_VAR = "AZURE_AI_INFERENCE_API_KEY"
INPUT_TYPES: tuple[str, ...] = tuple(input_type.value for input_type in EmbeddingInputType)

BACKOFF_FACTOR_SECONDS = 0.5
MAX_BACKOFF_SECONDS = 8.0
MAX_RETRY_AFTER_SECONDS = 60.0
_USER_AGENT = "crossencoder-haystack"
_RETRIED_STATUSES = frozenset({408, 429}) | frozenset(range(500, 600))


class AzureAIInferenceEmbeddingError(RuntimeError):
    """An embeddings request to Azure AI Inference failed; the message names the endpoint and what to change.

    The SDK's own exception is chained as `__cause__`.
    """

    def __init__(self, message: str, *, status_code: int | None = None) -> None:
        super().__init__(message)
        self.status_code = status_code


class _IdempotentPostRetries:
    """Mixed into azure-core's retry policies: retry embeddings POSTs like GETs, and cap `Retry-After`."""

    def configure_retries(self, options: dict[str, Any]) -> dict[str, Any]:
        settings = super().configure_retries(options)  # type: ignore[misc]
        settings["methods"] = frozenset(settings["methods"]) | {"POST"}
        return settings

    def get_retry_after(self, response: Any) -> float | None:
        retry_after = super().get_retry_after(response)  # type: ignore[misc]
        return None if retry_after is None else min(retry_after, MAX_RETRY_AFTER_SECONDS)


class EmbeddingsRetryPolicy(_IdempotentPostRetries, RetryPolicy):
    """azure-core's `RetryPolicy` for embeddings: POSTs retried on 408/429/5xx/timeouts, `Retry-After` capped."""


class AsyncEmbeddingsRetryPolicy(_IdempotentPostRetries, AsyncRetryPolicy):
    """azure-core's `AsyncRetryPolicy` for embeddings: POSTs retried on 408/429/5xx/timeouts, `Retry-After` capped."""


def retry_settings(max_retries: int) -> dict[str, Any]:
    # azure-core stops at the smallest of these counters, so all of them get the same budget.
    return {
        "retry_total": max_retries,
        "retry_connect": max_retries,
        "retry_read": max_retries,
        "retry_status": max_retries,
        "retry_backoff_factor": BACKOFF_FACTOR_SECONDS,
        "retry_backoff_max": MAX_BACKOFF_SECONDS,
    }


def validate_settings(
    *,
    owner: str,
    endpoint: Any,
    api_key: Any,
    credential: Any,
    dimensions: Any,
    input_type: Any,
    timeout: Any,
    max_retries: Any,
) -> None:
    """Raise a `TypeError`/`ValueError` naming the parameter and the fix for the first bad setting."""
    if not isinstance(endpoint, Secret):
        raise TypeError(
            f"{owner}: 'endpoint' must be a haystack Secret, got {type(endpoint).__name__}. "
            f"Pass endpoint=Secret.from_env_var('{ENDPOINT_ENV_VAR}') or endpoint=Secret.from_token('<url>')."
        )
    if api_key is not None and not isinstance(api_key, Secret):
        raise TypeError(
            f"{owner}: 'api_key' must be a haystack Secret or None, got {type(api_key).__name__}. "
            f"Pass api_key=Secret.from_env_var('{API_KEY_ENV_VAR}') or api_key=Secret.from_token('<key>')."
        )
    if credential is not None and not callable(getattr(credential, "get_token", None)):
        raise TypeError(
            f"{owner}: 'credential' must be an azure.core.credentials TokenCredential or AsyncTokenCredential "
            f"(for example azure.identity.DefaultAzureCredential()), got {type(credential).__name__}."
        )
    if dimensions is not None and (isinstance(dimensions, bool) or not isinstance(dimensions, int) or dimensions < 1):
        raise ValueError(f"{owner}: 'dimensions' must be a positive integer or None, got {dimensions!r}.")
    if input_type is not None and input_type not in INPUT_TYPES:
        raise ValueError(f"{owner}: 'input_type' must be one of {INPUT_TYPES} or None, got {input_type!r}.")
    if isinstance(timeout, bool) or not isinstance(timeout, int | float) or timeout <= 0:
        raise ValueError(f"{owner}: 'timeout' must be a positive number of seconds, got {timeout!r}.")
    if isinstance(max_retries, bool) or not isinstance(max_retries, int) or max_retries < 0:
        raise ValueError(f"{owner}: 'max_retries' must be an integer >= 0, got {max_retries!r}.")


def _is_async_credential(credential: Any) -> bool:
    get_token = getattr(credential, "get_token_info", None) or credential.get_token
    return inspect.iscoroutinefunction(get_token)


@dataclass(frozen=True)
class ServiceConnection:
    """Where and how one component reaches an Azure AI Inference endpoint; builds its clients and explains failures."""

    owner: str
    endpoint: Secret
    api_key: Secret | None
    credential: Any
    timeout: float
    max_retries: int
    api_version: str | None

    def endpoint_url(self) -> str:
        try:
            url = self.endpoint.resolve_value()
        except ValueError:
            url = None
        if not url:
            raise ValueError(
                f"{self.owner} needs an endpoint: set the {ENDPOINT_ENV_VAR} environment variable to your Azure AI "
                "Inference endpoint (e.g. https://<resource>.services.ai.azure.com/models) "
                "or pass endpoint=Secret.from_token('<url>')."
            )
        if not url.startswith(("https://", "http://")):
            raise ValueError(f"{self.owner}: the endpoint must be an http(s) URL, got {url!r}.")
        return url.rstrip("/")

    def _auth(self) -> Any:
        if self.credential is not None:
            return self.credential
        try:
            key = self.api_key.resolve_value() if self.api_key is not None else None
        except ValueError:
            key = None
        if not key:
            raise ValueError(
                f"{self.owner} needs an API key or a credential: set the {API_KEY_ENV_VAR} environment variable, "
                f"pass api_key=Secret.from_env_var('<VAR>'), or pass credential=DefaultAzureCredential() "
                "(azure-identity)."
            )
        return AzureKeyCredential(key)

    def _client_options(self, retry_policy: RetryPolicy | AsyncRetryPolicy) -> dict[str, Any]:
        options: dict[str, Any] = {
            "retry_policy": retry_policy,
            "connection_timeout": self.timeout,
            "read_timeout": self.timeout,
            "user_agent": _USER_AGENT,
        }
        if self.api_version:
            options["api_version"] = self.api_version
        return options

    def client(self) -> EmbeddingsClient:
        if self.credential is not None and _is_async_credential(self.credential):
            raise TypeError(
                f"{self.owner}: the credential is an AsyncTokenCredential, which only run_async can use. "
                "Use run_async, or pass a synchronous TokenCredential (e.g. azure.identity.DefaultAzureCredential)."
            )
        policy = EmbeddingsRetryPolicy(**retry_settings(self.max_retries))
        return EmbeddingsClient(self.endpoint_url(), self._auth(), **self._client_options(policy))

    def async_client(self) -> AsyncEmbeddingsClient:
        # azure-core's async auth policy awaits a coroutine get_token and calls a plain one, so both credentials work.
        policy = AsyncEmbeddingsRetryPolicy(**retry_settings(self.max_retries))
        return AsyncEmbeddingsClient(self.endpoint_url(), self._auth(), **self._client_options(policy))

    def embed(self, client: EmbeddingsClient, texts: list[str], **parameters: Any) -> EmbeddingsResult:
        try:
            result = client.embed(input=texts, **parameters)
        except AzureError as error:
            raise self.explain(error) from error
        return self._checked(result, texts)

    async def embed_async(self, client: AsyncEmbeddingsClient, texts: list[str], **parameters: Any) -> EmbeddingsResult:
        try:
            result = await client.embed(input=texts, **parameters)
        except AzureError as error:
            raise self.explain(error) from error
        return self._checked(result, texts)

    def _checked(self, result: EmbeddingsResult, texts: list[str]) -> EmbeddingsResult:
        if len(result.data) != len(texts):
            raise AzureAIInferenceEmbeddingError(
                f"{self.owner}: {self.endpoint_url()} returned {len(result.data)} embeddings for {len(texts)} inputs."
            )
        return result

    def explain(self, error: AzureError) -> AzureAIInferenceEmbeddingError:
        """An `AzureAIInferenceEmbeddingError` that says which endpoint failed, how, and what to change."""
        where = f"{self.owner}: the request to {self.endpoint_url()}"
        if isinstance(error, HttpResponseError) and error.status_code is not None:
            status = error.status_code
            said = error.error.message if error.error is not None and error.error.message else error.reason
            if status in (401, 403):
                fix = (
                    f"Check the key: set the {API_KEY_ENV_VAR} environment variable (or api_key) to a key of this "
                    "endpoint, or pass a credential that has access to it."
                )
            elif status == 404:
                fix = (
                    "Check the endpoint: it is the base URL the SDK appends '/embeddings' to, "
                    "e.g. https://<resource>.services.ai.azure.com/models, and the model must be deployed there."
                )
            elif status in _RETRIED_STATUSES:
                fix = f"It still failed after max_retries={self.max_retries} retries; retry later or raise max_retries."
            else:
                fix = "Check 'model', 'dimensions' and 'input_type' against what the deployed model supports."
            return AzureAIInferenceEmbeddingError(
                f"{where} failed with HTTP {status} ({said}). {fix}", status_code=status
            )
        if isinstance(error, ServiceResponseTimeoutError | ServiceRequestTimeoutError):
            return AzureAIInferenceEmbeddingError(
                f"{where} timed out after timeout={self.timeout}s (with max_retries={self.max_retries}). "
                "Raise 'timeout', lower 'batch_size', or check that the endpoint is reachable."
            )
        if isinstance(error, ServiceRequestError):
            return AzureAIInferenceEmbeddingError(
                f"{where} could not be sent ({error.message}). Check the endpoint URL and the network."
            )
        return AzureAIInferenceEmbeddingError(f"{where} failed: {error.message}")

"""Pytest fixtures that run the loopback cloud servers of `tests.cloud_servers`, one fresh server per test.

Register them for every test module with `pytest_plugins = ["tests.cloud_fixtures"]` in the root conftest.py.
"""

from collections.abc import Iterator

import pytest

from tests.cloud_servers import AzureAIInferenceServer, AzureOpenAIServer, CohereServer


@pytest.fixture
def azure_ai_inference_server() -> Iterator[AzureAIInferenceServer]:
    """A running Azure AI Inference embeddings fake; its key is `tests.cloud_servers.DEFAULT_API_KEY`."""
    with AzureAIInferenceServer() as server:
        yield server


@pytest.fixture
def azure_openai_server() -> Iterator[AzureOpenAIServer]:
    """A running Azure OpenAI embeddings fake; its key is `tests.cloud_servers.DEFAULT_API_KEY`."""
    with AzureOpenAIServer() as server:
        yield server


@pytest.fixture
def cohere_server() -> Iterator[CohereServer]:
    """A running Cohere v2 rerank fake; its key is `tests.cloud_servers.DEFAULT_API_KEY`."""
    with CohereServer() as server:
        yield server

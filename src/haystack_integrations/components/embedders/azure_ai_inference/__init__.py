"""Embedders for models deployed behind an Azure AI Inference endpoint, on the official `azure-ai-inference` SDK."""

from haystack_integrations.components.embedders.azure_ai_inference.client import AzureAIInferenceEmbeddingError
from haystack_integrations.components.embedders.azure_ai_inference.document_embedder import (
    AzureAIInferenceDocumentEmbedder,
)
from haystack_integrations.components.embedders.azure_ai_inference.text_embedder import AzureAIInferenceTextEmbedder

__all__ = ["AzureAIInferenceDocumentEmbedder", "AzureAIInferenceEmbeddingError", "AzureAIInferenceTextEmbedder"]

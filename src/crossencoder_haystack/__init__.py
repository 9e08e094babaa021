"""Tooling around the crossencoder-haystack components: CLI, training, evaluation, serving and the demo.

The Haystack components themselves live under `haystack_integrations.components`.
"""

from crossencoder_haystack.__about__ import __version__

__all__ = ["__version__"]

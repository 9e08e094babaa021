"""A cross-encoder scoring head that starts out as the bi-encoder it was built from.

`SegmentCosineScore` mean-pools the token embeddings of the query segment (`[CLS] query [SEP]`, token type 0) and
of the document segment (`document [SEP]`, token type 1) of one joint forward pass and scores the pair with
`scale * cosine + bias`. Built on a mean-pooling bi-encoder such as all-MiniLM-L6-v2, the untrained cross-encoder
therefore already ranks roughly like the bi-encoder, and fine-tuning starts from there instead of from a random
head on the joint embedding, which has to learn query-document interaction from nothing (the plateau of the first
few hundred steps that made that recipe too slow on a CPU).

sentence-transformers imports module classes outside its own namespace only with `trust_remote_code=True`;
`load_cross_encoder` hands it this class itself (it is in `model_loading.KNOWN_HEADS`), so a model with this head
loads with `trust_remote_code=False` and no code from the model directory runs.
"""

from typing import Any

import torch
from sentence_transformers.base.modules import Module
from torch import nn


class SegmentCosineScore(Module):
    """
    Scores a (query, document) pair by the cosine of its two segments' mean-pooled token embeddings.

    Reads `token_embeddings`, `attention_mask` and `token_type_ids` from the features and writes `scores`
    (batch, 1). Needs a tokenizer that marks the second segment with token type 1 (BERT-style models).

    ```python
    from sentence_transformers import CrossEncoder
    from sentence_transformers.base.modules import Transformer

    encoder = Transformer("path/to/all-MiniLM-L6-v2", max_seq_length=128)
    encoder.model.config.num_labels = 1
    model = CrossEncoder(modules=[encoder, SegmentCosineScore()])
    ```

    :param scale: Initial factor on the cosine (learned).
    :param bias: Initial offset (learned); with the defaults a cosine of 0.5 gives a logit of 0.
    """

    config_keys: list[str] = []  # noqa: RUF012 (sentence-transformers' own modules declare it the same way)

    def __init__(self, scale: float = 20.0, bias: float = -10.0) -> None:
        super().__init__()
        self.scale = nn.Parameter(torch.tensor(float(scale)))
        self.bias = nn.Parameter(torch.tensor(float(bias)))

    def forward(self, features: dict[str, Any], **kwargs: Any) -> dict[str, Any]:
        if features.get("token_type_ids") is None:
            msg = (
                "SegmentCosineScore needs token_type_ids to tell the query from the document; this model's "
                "tokenizer does not return them. Build the cross-encoder with a dense head instead."
            )
            raise ValueError(msg)
        # Pooled and compared in float32 whatever the transformer computes in: in bfloat16 the sums over ~100
        # tokens and the cosine (steps of 1/256 near 1, times a learned scale of ~20) would tie and swap documents
        # whose scores differ. The head's share of the time is negligible.
        embeddings = features["token_embeddings"].float()
        mask = features["attention_mask"].unsqueeze(-1).to(embeddings.dtype)
        document = features["token_type_ids"].unsqueeze(-1).to(embeddings.dtype) * mask
        query = mask - document
        query_mean = (embeddings * query).sum(1) / query.sum(1).clamp(min=1.0)
        document_mean = (embeddings * document).sum(1) / document.sum(1).clamp(min=1.0)
        cosine = nn.functional.cosine_similarity(query_mean, document_mean, dim=-1)
        features["scores"] = (self.scale.float() * cosine + self.bias.float()).unsqueeze(1)
        return features

    def save(self, output_path: str, *args: Any, safe_serialization: bool = True, **kwargs: Any) -> None:
        self.save_config(output_path)
        self.save_torch_weights(output_path, safe_serialization=safe_serialization)

    @classmethod
    def load(
        cls,
        model_name_or_path: str,
        subfolder: str = "",
        token: bool | str | None = None,
        cache_folder: str | None = None,
        revision: str | None = None,
        local_files_only: bool = False,
        init_defaults: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> "SegmentCosineScore":
        module = cls()
        cls.load_torch_weights(
            model_name_or_path,
            subfolder=subfolder,
            token=token,
            cache_folder=cache_folder,
            revision=revision,
            local_files_only=local_files_only,
            model=module,
        )
        return module


# Saved models record `type(module).__module__` in modules.json, and models saved before the engine moved into
# `_engine` record the public path: new saves record it too, so the private layout can change without breaking them.
SegmentCosineScore.__module__ = "haystack_integrations.components.rankers.crossencoder.score_heads"

from haystack_integrations.components.rankers.crossencoder.activations import ACTIVATIONS, apply_activation
from haystack_integrations.components.rankers.crossencoder.aggregation import AGGREGATIONS, aggregate_scores
from haystack_integrations.components.rankers.crossencoder.fallback import FallbackRanker
from haystack_integrations.components.rankers.crossencoder.model_loading import (
    ModelNotAvailableError,
    hub_is_reachable,
    load_cross_encoder,
)
from haystack_integrations.components.rankers.crossencoder.ranker import CrossEncoderRanker

__all__ = [
    "ACTIVATIONS",
    "AGGREGATIONS",
    "CrossEncoderRanker",
    "FallbackRanker",
    "ModelNotAvailableError",
    "aggregate_scores",
    "apply_activation",
    "hub_is_reachable",
    "load_cross_encoder",
]

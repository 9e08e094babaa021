from haystack_integrations.components.rankers.crossencoder.activations import ACTIVATIONS, apply_activation
from haystack_integrations.components.rankers.crossencoder.aggregation import AGGREGATIONS, aggregate_scores
from haystack_integrations.components.rankers.crossencoder.cascade import CascadeRanker
from haystack_integrations.components.rankers.crossencoder.fallback import FallbackRanker
from haystack_integrations.components.rankers.crossencoder.fusion import (
    FUSION_FILE,
    FUSIONS,
    fuse_scores,
    read_fusion_defaults,
    write_fusion_defaults,
)
from haystack_integrations.components.rankers.crossencoder.model_loading import (
    ModelNotAvailableError,
    hub_is_reachable,
    load_cross_encoder,
)
from haystack_integrations.components.rankers.crossencoder.ranker import CrossEncoderRanker

__all__ = [
    "ACTIVATIONS",
    "AGGREGATIONS",
    "FUSIONS",
    "FUSION_FILE",
    "CascadeRanker",
    "CrossEncoderRanker",
    "FallbackRanker",
    "ModelNotAvailableError",
    "aggregate_scores",
    "apply_activation",
    "fuse_scores",
    "hub_is_reachable",
    "load_cross_encoder",
    "read_fusion_defaults",
    "write_fusion_defaults",
]

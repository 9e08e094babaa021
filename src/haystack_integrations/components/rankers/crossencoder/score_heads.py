"""The class path saved models name for their scoring head (`modules.json`).

Models saved by `rerank train` record `haystack_integrations.components.rankers.crossencoder.score_heads.
SegmentCosineScore`; this module keeps that path loading. The class lives in the private engine.
"""

from haystack_integrations.components.rankers.crossencoder._engine.score_heads import SegmentCosineScore

__all__ = ["SegmentCosineScore"]

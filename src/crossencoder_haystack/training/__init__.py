"""Fine-tuning cross-encoder rerankers: data formats, hard-negative mining and `train(...)` (`rerank train|mine`)."""

from typing import Any

from crossencoder_haystack.training.base_model import TrainingBase, build_cross_encoder
from crossencoder_haystack.training.config import TrainConfig
from crossencoder_haystack.training.data import (
    DataProblem,
    TrainingData,
    TrainingDataError,
    load_training_data,
    write_jsonl,
)
from crossencoder_haystack.training.losses import LossChoice, choose_loss
from crossencoder_haystack.training.mining import MiningInput, mine_hard_negatives, read_beir
from crossencoder_haystack.training.trainer import TrainingResult, train

__all__ = [
    "DataProblem",
    "LossChoice",
    "MiningInput",
    "TrainConfig",
    "TrainingBase",
    "TrainingData",
    "TrainingDataError",
    "TrainingResult",
    "build_cross_encoder",
    "choose_loss",
    "load_training_data",
    "mine_hard_negatives",
    "read_beir",
    "train",
    "write_jsonl",
]


def __getattr__(name: str) -> Any:
    """Deprecated names: `BaseModel` (now `TrainingBase`)."""
    if name == "BaseModel":
        from crossencoder_haystack.training import base_model

        return base_model.BaseModel  # warns
    msg = f"module {__name__!r} has no attribute {name!r}"
    raise AttributeError(msg)

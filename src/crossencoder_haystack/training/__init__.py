"""Fine-tuning cross-encoder rerankers: data formats, hard-negative mining and `train(...)` (`rerank train|mine`)."""

from crossencoder_haystack.training.base_model import BaseModel, build_cross_encoder
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
    "BaseModel",
    "DataProblem",
    "LossChoice",
    "MiningInput",
    "TrainConfig",
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

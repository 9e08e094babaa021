"""`rerank demo`: an offline, end-to-end look at what a cross-encoder reranker changes.

`run_demo(...)` indexes the packaged HR candidate-search set (90 Turkish and English CVs), runs recruiter
queries through retrieve -> PassageSplitter -> CrossEncoderRanker, prints per query what the reranker moved and
why (the best-matching passage, query terms highlighted), and scores first stage vs reranked on the held-out
queries. Without a cached or reachable cross-encoder it fine-tunes a small starter model once (`starter_model`).
"""

from crossencoder_haystack.demo.dataset import cv_documents, hr_dataset_path, hr_queries, load_hr_dataset
from crossencoder_haystack.demo.model_choice import ModelChoice, choose_model
from crossencoder_haystack.demo.run import DemoResult, QueryResult, run_demo
from crossencoder_haystack.demo.starter_model import (
    StarterBuild,
    build_starter_model,
    starter_model_dir,
    starter_training_lists,
)

__all__ = [
    "DemoResult",
    "ModelChoice",
    "QueryResult",
    "StarterBuild",
    "build_starter_model",
    "choose_model",
    "cv_documents",
    "hr_dataset_path",
    "hr_queries",
    "load_hr_dataset",
    "run_demo",
    "starter_model_dir",
    "starter_training_lists",
]

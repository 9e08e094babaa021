"""`rerank demo`: an offline, end-to-end look at what a reranker changes.

`run_demo(...)` indexes the packaged HR candidate-search set (90 Turkish and English CVs), runs recruiter queries
through first stage -> PassageSplitter -> CrossEncoderRanker, prints per query what the reranker moved and why (the
best-matching passage, query terms highlighted), and scores BM25 alone, the first stage and the reranked lists on
the held-out queries. The first stage is multilingual-e5-small fused with BM25 when the `multilingual` extra is
installed, else the bundled all-MiniLM-L6-v2. Without a cached or reachable reranker it fine-tunes a small starter
model once with the package's bi-encoder training recipe (`starter_model`).
"""

from crossencoder_haystack.demo.dataset import cv_documents, hr_dataset_path, hr_queries, load_hr_dataset
from crossencoder_haystack.demo.model_choice import EmbedderChoice, ModelChoice, choose_embedder, choose_model
from crossencoder_haystack.demo.run import DemoResult, QueryResult, run_demo
from crossencoder_haystack.demo.starter_model import (
    STARTER_RECIPES,
    StarterBuild,
    StarterRecipe,
    build_starter_model,
    starter_model_dir,
    starter_recipe,
    starter_training_rows,
)

__all__ = [
    "STARTER_RECIPES",
    "DemoResult",
    "EmbedderChoice",
    "ModelChoice",
    "QueryResult",
    "StarterBuild",
    "StarterRecipe",
    "build_starter_model",
    "choose_embedder",
    "choose_model",
    "cv_documents",
    "hr_dataset_path",
    "hr_queries",
    "load_hr_dataset",
    "run_demo",
    "starter_model_dir",
    "starter_recipe",
    "starter_training_rows",
]

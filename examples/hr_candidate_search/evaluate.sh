#!/usr/bin/env bash
# Score the HR set's 14 held-out queries with `rerank evaluate`: the embedding first stage alone, and reranked
# by a cross-encoder that scores long CVs by passages. Pass a model directory or hub id as $1; the default is
# the starter model `rerank demo` builds and caches (run `rerank demo` once first).
#
#   bash examples/hr_candidate_search/evaluate.sh [MODEL] [extra rerank-evaluate options...]
set -euo pipefail

DATASET=$(python -c "from crossencoder_haystack.demo import hr_dataset_path; print(hr_dataset_path())")
MODEL=${1:-$(python -c "from crossencoder_haystack.demo import starter_model_dir; print(starter_model_dir())")}
shift || true

# --split-long-documents: the ranker cuts each CV into passages that fit --max-length with the query, 128 being
# what the starter model was trained on. --k 100 reranks every CV (the set has 90), as the demo does.
rerank evaluate \
  --dataset "$DATASET" --split test \
  --first-stage embedding \
  --ranker none --ranker "$MODEL" \
  --k 100 --split-long-documents --max-length 128 \
  --latency-queries 0 \
  "$@"

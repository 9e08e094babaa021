"""SciFact end to end with the package's one training recipe (issue #15): `rerank mine` + `rerank train` with no
flags but the data paths, then BM25's top 20/50/100/150 of all 300 test queries reranked, alone and fused with BM25
at the weight `rerank train` tuned on its held-out training queries.

    python benchmarks/train_scifact.py

It is `benchmarks/generalization.py --domains scifact --collections scifact` (same cache, same numbers); the
cross-encoder recipes measured before (segment-cosine and dense heads, LambdaLoss/BCE/CMNRL) are in
`benchmarks/results/train_scifact.md` and in this file's git history.
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from generalization import main

if __name__ == "__main__":
    sys.argv[1:1] = ["--domains", "scifact", "--collections", "scifact"]
    main()

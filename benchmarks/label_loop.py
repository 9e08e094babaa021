"""The README's labelling loop on the bundled HR set with the real commands, the HR judgements as the expert.

`rerank label` serves the 18 `train` queries with their embedding top N; a simulated expert reads each query's
candidates over the page's HTTP API and posts the grade the HR set's own qrels give (0..3), as the page does. Then
the server is killed, and the log becomes training data and qrels:

    rerank label --queries HR --split train --output OUT/labels.jsonl --top-n 20 --port 0      (judged over HTTP)
    rerank label --output OUT/labels.jsonl --export lists --to OUT/train.jsonl --queries HR
    rerank label --output OUT/labels.jsonl --export qrels --to OUT/labelled --queries HR
    rerank train --data OUT/train.jsonl --output OUT/model [--max-steps N]
    rerank evaluate --dataset HR --split test --first-stage embedding --ranker none --ranker OUT/model --k 20

It prints the time of each step and the held-out test queries' nDCG@10 / MRR@10, first stage against reranked.

    python benchmarks/label_loop.py [--output DIR] [--top-n 20] [--max-steps N]
"""

import argparse
import json
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx

from crossencoder_haystack.data import read_qrels
from crossencoder_haystack.demo import hr_dataset_path

_URL = re.compile(r"Open (http://\S+)")


def _rerank(*arguments: str) -> float:
    """Run `rerank ARGUMENTS` to the end; returns its wall time."""
    started = time.perf_counter()
    subprocess.run([sys.executable, "-m", "crossencoder_haystack.cli", *arguments], check=True)
    return time.perf_counter() - started


def _label(hr: Path, labels: Path, top_n: int) -> tuple[int, float, float]:
    """Serve the train queries, judge every candidate with the HR qrels; (pairs judged, start s, judging s)."""
    grades = read_qrels(hr / "qrels" / "train.tsv")
    command = [sys.executable, "-m", "crossencoder_haystack.cli", "label", "--queries", str(hr), "--split", "train"]
    command += ["--output", str(labels), "--top-n", str(top_n), "--port", "0"]
    started = time.perf_counter()
    process = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
    try:
        assert process.stdout is not None
        url = next(match.group(1) for line in process.stdout if (match := _URL.search(line)))
        start_seconds = time.perf_counter() - started
        base, token = url.split("/?token=")
        client = httpx.Client(base_url=base, headers={"Authorization": f"Bearer {token}"}, timeout=600)
        judging = time.perf_counter()
        judged = 0
        for query in client.get("/api/session").json()["queries"]:
            query_id = query["query_id"]
            for candidate in client.get(f"/api/queries/{query_id}").json()["candidates"]:
                grade = grades.get(query_id, {}).get(candidate["document_id"], 0)
                body = {"query_id": query_id, "document_id": candidate["document_id"], "grade": grade}
                client.post("/api/judgements", json=body).raise_for_status()
                judged += 1
        return judged, start_seconds, time.perf_counter() - judging
    finally:
        process.send_signal(signal.SIGKILL)  # a crash: every confirmed judgement must already be on disk
        process.wait()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--output", default="out/label_loop", help="working directory (emptied of old labels)")
    parser.add_argument("--top-n", type=int, default=20)
    parser.add_argument("--max-steps", type=int, default=None, help="rerank train --max-steps (default: its own)")
    args = parser.parse_args()

    hr, out = hr_dataset_path(), Path(args.output)
    out.mkdir(parents=True, exist_ok=True)
    labels = out / "labels.jsonl"
    labels.unlink(missing_ok=True)
    judged, start_seconds, judge_seconds = _label(hr, labels, args.top_n)
    print(f"label: {judged} pairs judged over HTTP in {judge_seconds:.1f} s (server up after {start_seconds:.1f} s)")

    export = ["label", "--output", str(labels), "--queries", str(hr), "--export"]
    seconds = _rerank(*export, "lists", "--to", str(out / "train.jsonl"))
    seconds += _rerank(*export, "qrels", "--to", str(out / "labelled"))
    print(f"export: {seconds:.1f} s")

    train = ["train", "--data", str(out / "train.jsonl"), "--output", str(out / "model")]
    if args.max_steps is not None:
        train += ["--max-steps", str(args.max_steps)]
    print(f"train: {_rerank(*train):.1f} s")

    evaluate = ["evaluate", "--dataset", str(hr), "--split", "test", "--first-stage", "embedding", "--ranker", "none"]
    evaluate += ["--ranker", str(out / "model"), "--k", str(args.top_n), "--latency-queries", "0"]
    print(f"evaluate: {_rerank(*evaluate, '--output', str(out / 'evaluation')):.1f} s")
    results = json.loads((out / "evaluation" / "results.json").read_text(encoding="utf-8"))
    for row in results["rows"]:
        metrics = row["metrics"]
        print(f"{row['name']:>40} @{row['k']}: nDCG@10 {metrics['ndcg@10']:.3f}, MRR@10 {metrics['mrr@10']:.3f}")


if __name__ == "__main__":
    main()

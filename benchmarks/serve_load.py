"""Load test of `rerank serve`: throughput and latency under 1, 8 and 32 concurrent clients, with and without a
dynamic-batching window.

The script starts the service itself (`python -m crossencoder_haystack.cli serve ...`) on 127.0.0.1, once per batch
window, and drives it with closed-loop clients (each sends its next request when the previous one is answered).
Every request is a Cohere v2 rerank of one SciFact query against 50 SciFact abstracts (synthetic text if the data
is absent), with `max_tokens_per_doc` so that each abstract is one passage. Requests still in flight when a level's
time is up are cancelled; the service drops them from its queue, so they do not spill into the next level.

Without `--model`, the bundled all-MiniLM-L6-v2 bi-encoder is saved as a 1-logit CrossEncoder and used as a
stand-in: its scores are meaningless, its cost is that of a MiniLM-L6 reranker.

A second, in-process measurement (`--probe-requests`, 0 to skip) scores the pairs of several requests one request
at a time and then all in one call of `CrossEncoder.predict`: what a multi-query scoring entry point would let the
batcher gain.

    python benchmarks/serve_load.py --duration 60 --max-tokens-per-doc 32 --num-threads 1 \
        --output benchmarks/results/serve_load.md
"""

import argparse
import asyncio
import json
import os
import platform
import random
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import numpy as np
from rich.console import Console
from rich.table import Table

SCIFACT = Path("/work/shared/data/scifact")
console = Console(width=140)


@dataclass
class LevelResult:
    window_ms: float
    clients: int
    seconds: float
    latencies: list[float] = field(default_factory=list)
    errors: dict[int, int] = field(default_factory=dict)
    cancelled: int = 0
    batch_requests_mean: float = float("nan")

    @property
    def completed(self) -> int:
        return len(self.latencies)

    def percentile(self, q: float) -> float:
        return float(np.percentile(self.latencies, q)) if self.latencies else float("nan")


def load_texts(documents: int) -> tuple[list[str], list[str]]:
    """SciFact queries and abstracts, or synthetic sentences if the data set is not there."""
    if (SCIFACT / "corpus.jsonl").exists():
        with (SCIFACT / "queries.jsonl").open() as lines:
            queries = [json.loads(line)["text"] for line in lines]
        with (SCIFACT / "corpus.jsonl").open() as lines:
            corpus = [json.loads(line)["text"] for line in lines]
        return queries, [text for text in corpus if text.strip()]
    words = "cell protein gene expression patient risk trial dose effect model brain tissue level response".split()
    rng = random.Random(0)
    corpus = [" ".join(rng.choices(words, k=200)) + "." for _ in range(max(500, documents))]
    queries = [" ".join(rng.choices(words, k=8)) for _ in range(200)]
    return queries, corpus


def stand_in_model(directory: Path, max_length: int) -> Path:
    """The bundled all-MiniLM-L6-v2 saved as a 1-logit CrossEncoder (a random classification head)."""
    from sentence_transformers import CrossEncoder

    from crossencoder_haystack.bundled_model import bundled_minilm_path

    CrossEncoder(str(bundled_minilm_path()), num_labels=1, max_length=max_length).save(str(directory))
    return directory


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_service(model: Path, port: int, window_ms: float, args: argparse.Namespace) -> subprocess.Popen:
    command = [
        sys.executable, "-m", "crossencoder_haystack.cli", "serve",
        "--model", str(model), "--port", str(port), "--max-length", str(args.max_length),
        "--batch-window-ms", str(window_ms), "--request-timeout", str(args.request_timeout),
        "--max-queue", "256", "--api-key-env", "SERVE_LOAD_NO_API_KEY", "--log-level", "warning",
    ]  # fmt: skip
    if args.num_threads:
        command += ["--num-threads", str(args.num_threads)]
    environment = {**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    environment.pop("SERVE_LOAD_NO_API_KEY", None)
    process = subprocess.Popen(command, env=environment)
    deadline = time.monotonic() + args.startup_timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the service exited with {process.returncode} during startup")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/health", timeout=2).status_code == 200:
                return process
        except httpx.TransportError:
            pass
        time.sleep(1)
    process.send_signal(signal.SIGTERM)
    raise RuntimeError(f"the service did not start within {args.startup_timeout} s")


def stop_service(process: subprocess.Popen) -> None:
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(60)
    except subprocess.TimeoutExpired:
        process.kill()


def request_body(rng: random.Random, queries: list[str], corpus: list[str], args: argparse.Namespace) -> dict:
    return {
        "model": "stand-in",
        "query": rng.choice(queries),
        "documents": rng.sample(corpus, args.documents),
        "max_tokens_per_doc": args.max_tokens_per_doc,
    }


async def run_level(url: str, clients: int, window_ms: float, texts: tuple, args: argparse.Namespace) -> LevelResult:
    queries, corpus = texts
    result = LevelResult(window_ms=window_ms, clients=clients, seconds=args.duration)
    limits = httpx.Limits(max_connections=clients + 2, max_keepalive_connections=clients + 2)
    async with httpx.AsyncClient(base_url=url, timeout=None, limits=limits) as http:

        async def client(seed: int) -> None:
            rng = random.Random(seed)
            while True:
                body = request_body(rng, queries, corpus, args)
                started = time.perf_counter()
                response = await http.post("/v2/rerank", json=body)
                if response.status_code == 200:
                    result.latencies.append(time.perf_counter() - started)
                else:
                    result.errors[response.status_code] = result.errors.get(response.status_code, 0) + 1

        tasks = [asyncio.create_task(client(1000 * clients + i)) for i in range(clients)]
        await asyncio.sleep(args.duration)
        result.cancelled = sum(1 for task in tasks if not task.done())
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    return result


def metric_value(text: str, name: str) -> float:
    match = re.search(rf"^{re.escape(name)} (\S+)$", text, re.MULTILINE)
    return float(match.group(1)) if match else 0.0


def wait_for_idle(url: str, timeout: float = 300) -> None:
    """Wait until the batch that was running when the clients left is done."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if metric_value(httpx.get(f"{url}/metrics", timeout=10).text, "rerank_queue_depth") == 0:
            return
        time.sleep(0.5)


def measure_window(model: Path, window_ms: float, texts: tuple, args: argparse.Namespace) -> list[LevelResult]:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    console.print(f"[bold]batch window {window_ms:g} ms[/bold]: starting the service on {url}")
    process = start_service(model, port, window_ms, args)
    try:
        rng = random.Random(7)
        for _ in range(2):  # warm-up
            httpx.post(f"{url}/v2/rerank", json=request_body(rng, *texts, args), timeout=None).raise_for_status()
        results = []
        for clients in args.concurrency:
            before = httpx.get(f"{url}/metrics", timeout=10).text
            level = asyncio.run(run_level(url, clients, window_ms, texts, args))
            wait_for_idle(url)
            after = httpx.get(f"{url}/metrics", timeout=10).text
            batches = metric_value(after, "rerank_batch_requests_count") - metric_value(
                before, "rerank_batch_requests_count"
            )
            requests = metric_value(after, "rerank_batch_requests_sum") - metric_value(
                before, "rerank_batch_requests_sum"
            )
            level.batch_requests_mean = requests / batches if batches else float("nan")
            console.print(
                f"  {clients:>2} clients: {level.completed} done, {level.completed / level.seconds:.3f} req/s, "
                f"p50 {level.percentile(50):.2f} s, errors {level.errors or 0}, cancelled at the end {level.cancelled}"
            )
            results.append(level)
        return results
    finally:
        stop_service(process)


def probe_pair_batching(model: Path, texts: tuple, args: argparse.Namespace) -> dict[str, float]:
    """Pairs/s scoring several requests one by one (batch_size 16) vs all their pairs in one predict call."""
    import torch
    from sentence_transformers import CrossEncoder

    from crossencoder_haystack.serving.served_model import truncate_to_tokens

    if args.num_threads:
        torch.set_num_threads(args.num_threads)
    queries, corpus = texts
    cross_encoder = CrossEncoder(str(model), max_length=args.max_length, local_files_only=True)
    rng = random.Random(11)
    requests = []
    for _ in range(args.probe_requests):
        body = request_body(rng, queries, corpus, args)
        cut = truncate_to_tokens(body["documents"], cross_encoder.tokenizer, args.max_tokens_per_doc)
        requests.append([(body["query"], doc) for doc in cut])
    all_pairs = [pair for pairs in requests for pair in pairs]
    cross_encoder.predict(all_pairs[:16], batch_size=16)
    timings: dict[str, list[float]] = {"one request per call": [], "all requests in one call": []}
    for _ in range(args.probe_repeats):
        started = time.perf_counter()
        for pairs in requests:
            cross_encoder.predict(pairs, batch_size=16)
        timings["one request per call"].append(time.perf_counter() - started)
        started = time.perf_counter()
        cross_encoder.predict(all_pairs, batch_size=16 * len(requests))
        timings["all requests in one call"].append(time.perf_counter() - started)
    return {mode: len(all_pairs) / float(np.median(seconds)) for mode, seconds in timings.items()}


def report(results: list[LevelResult], probe: dict[str, float], args: argparse.Namespace, notes: list[str]) -> str:
    table = Table(title="rerank serve under load")
    columns = [
        "window ms",
        "clients",
        "done",
        "req/s",
        "docs/s",
        "p50 s",
        "p95 s",
        "p99 s",
        "errors",
        "cut",
        "req/batch",
    ]
    for column in columns:
        table.add_column(column, justify="right")
    lines = ["| " + " | ".join(columns) + " |", "|" + "---:|" * len(columns)]
    for level in results:
        row = [
            f"{level.window_ms:g}",
            str(level.clients),
            str(level.completed),
            f"{level.completed / level.seconds:.3f}",
            f"{level.completed * args.documents / level.seconds:.1f}",
            f"{level.percentile(50):.2f}",
            f"{level.percentile(95):.2f}",
            f"{level.percentile(99):.2f}",
            str(sum(level.errors.values())) + (f" {level.errors}" if level.errors else ""),
            str(level.cancelled),
            f"{level.batch_requests_mean:.2f}",
        ]
        table.add_row(*row)
        lines.append("| " + " | ".join(row) + " |")
    console.print(table)

    windows = sorted({level.window_ms for level in results}, reverse=True)
    speedups = []
    if len(windows) == 2:
        batched, unbatched = windows
        for clients in args.concurrency:
            with_window = next(r for r in results if r.window_ms == batched and r.clients == clients)
            without = next(r for r in results if r.window_ms == unbatched and r.clients == clients)
            ratio = with_window.completed / without.completed if without.completed else float("nan")
            speedups.append(f"| {clients} | {with_window.completed} | {without.completed} | {ratio:.2f}x |")
            console.print(
                f"speed-up of a {batched:g} ms window over {unbatched:g} ms at {clients} clients: {ratio:.2f}x"
            )
    for mode, pairs_per_second in probe.items():
        console.print(f"pair-batching probe, {mode}: {pairs_per_second:.2f} pairs/s")

    markdown = [
        "# `rerank serve` under load",
        "",
        f"Command: `python benchmarks/serve_load.py {' '.join(sys.argv[1:])}`",
        "",
        *notes,
        "",
        "## Throughput and latency",
        "",
        "`done`: requests answered 200 within the level's time; `cut`: requests still in flight when the time was "
        "up (cancelled by the client, dropped by the service); `req/batch`: requests per model batch, from the "
        "service's own `/metrics`. Latency percentiles are over the answered requests only, so at high "
        "concurrency they undercount the queueing of the cut ones.",
        "",
        *lines,
    ]
    if speedups:
        markdown += [
            "",
            f"## Dynamic batching: window {windows[0]:g} ms vs {windows[1]:g} ms (requests answered)",
            "",
            "| clients | with window | without | speed-up |",
            "|---:|---:|---:|---:|",
            *speedups,
        ]
    if probe:
        markdown += [
            "",
            f"## What scoring several requests in one model call would gain ({args.probe_requests} requests x "
            f"{args.documents} pairs, in-process `CrossEncoder.predict`, median of {args.probe_repeats})",
            "",
            "| mode | pairs/s |",
            "|---|---:|",
            *[f"| {mode} | {value:.2f} |" for mode, value in probe.items()],
        ]
    return "\n".join(markdown) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", type=Path, default=None, help="A cross-encoder directory (default: the stand-in).")
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 8, 32])
    parser.add_argument("--windows", type=float, nargs="+", default=[5.0, 0.0], help="Batch windows in ms.")
    parser.add_argument("--duration", type=float, default=25.0, help="Seconds per concurrency level.")
    parser.add_argument("--documents", type=int, default=50, help="Documents per request.")
    parser.add_argument("--max-length", type=int, default=128)
    parser.add_argument("--max-tokens-per-doc", type=int, default=96, help="Cohere max_tokens_per_doc per request.")
    parser.add_argument("--request-timeout", type=float, default=600.0)
    parser.add_argument("--startup-timeout", type=float, default=600.0)
    parser.add_argument("--num-threads", type=int, default=None, help="The service's --num-threads.")
    parser.add_argument("--probe-requests", type=int, default=2, help="Requests in the pair-batching probe; 0 skips.")
    parser.add_argument("--probe-repeats", type=int, default=1)
    parser.add_argument("--output", type=Path, default=None, help="Write the Markdown report here.")
    args = parser.parse_args()

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    texts = load_texts(args.documents)
    load_average = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="serve_load_") as scratch:
        model = args.model or stand_in_model(Path(scratch) / "minilm-cross-encoder", args.max_length)
        results = [level for window in args.windows for level in measure_window(model, window, texts, args)]
        probe = probe_pair_batching(model, texts, args) if args.probe_requests else {}
    import torch

    model_text = "the bundled all-MiniLM-L6-v2 as a 1-logit CrossEncoder stand-in" if args.model is None else args.model
    data_text = "SciFact" if (SCIFACT / "corpus.jsonl").exists() else "synthetic text"
    notes = [
        f"- Machine: {os.cpu_count()} CPU cores shared with other engineers' jobs (load average "
        f"{load_average[0]:.1f} at the start, {os.getloadavg()[0]:.1f} at the end), no GPU, Python "
        f"{platform.python_version()}, torch {torch.__version__}, model threads: {args.num_threads or 'default'}. "
        "Numbers move with the neighbours' load.",
        f"- Model: {model_text}, max_length {args.max_length}; data: {data_text}.",
        f"- Each request: 1 query, {args.documents} abstracts, `max_tokens_per_doc={args.max_tokens_per_doc}` "
        f"(one passage per abstract); {args.duration:g} s per level; closed-loop clients.",
    ]
    markdown = report(results, probe, args, notes)
    if args.output:
        args.output.parent.mkdir(parents=True, exist_ok=True)
        args.output.write_text(markdown)
        console.print(f"wrote {args.output}")


if __name__ == "__main__":
    main()

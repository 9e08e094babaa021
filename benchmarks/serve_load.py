"""Load test of `rerank serve`: throughput and latency under 1, 8 and 32 concurrent clients, dynamic batching vs
one request at a time.

Two service configurations are compared:

- "dynamic batching" (the defaults): `--batch-window-ms 5 --max-batch-documents 512`; the model worker collects
  the requests waiting (or arriving within 5 ms) into one batch and scores all their pairs in one model call.
- "one request at a time": `--batch-window-ms 0 --max-batch-documents 1`; a batch closes as soon as it holds one
  request. (A 0 ms window alone is not that: the worker still takes every request already queued.)

The script starts the service itself (`python -m crossencoder_haystack.cli serve ...`) on 127.0.0.1, once per
configuration, and drives it with closed-loop clients (each sends its next request when the previous one is answered).
Every request is a Cohere v2 rerank of one SciFact query against 50 SciFact abstracts (synthetic text if the data
is absent), with `max_tokens_per_doc` so that each abstract is one passage. Requests still in flight when a level's
time is up are cancelled; the service drops them from its queue, so they do not spill into the next level.

Without `--model`, the bundled all-MiniLM-L6-v2 bi-encoder is saved as a 1-logit CrossEncoder and used as a
stand-in: its scores are meaningless, its cost is that of a MiniLM-L6 reranker.

A second, in-process measurement (`--probe-requests`, 0 to skip) takes the service's own code path without HTTP
and queueing: the same requests as `RerankJob`s, scored by a `ServedModel` one by one
(`[served.rank(job) for job in jobs]`) and all together (`served.rank_many(jobs)`, what a batch of the service
runs).

    python benchmarks/serve_load.py --duration 45 --concurrency 1 8 --max-tokens-per-doc 32 --num-threads 1 \
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
from rich.markup import escape
from rich.table import Table

from crossencoder_haystack.serving.limits import ServiceLimits

SCIFACT = Path("/work/shared/data/scifact")
console = Console(width=140)


@dataclass(frozen=True)
class ServiceConfig:
    """One way to run the service: its label and its batching flags."""

    label: str
    window_ms: float
    max_batch_documents: int


# The defaults of `ServiceLimits` (batch_window_ms=5, max_batch_documents=512) and the one-request-at-a-time setup.
_DEFAULTS = ServiceLimits()
CONFIGS = {
    "batching": ServiceConfig("dynamic batching", _DEFAULTS.batch_window_ms, _DEFAULTS.max_batch_documents),
    "one-at-a-time": ServiceConfig("one request at a time", 0.0, 1),
}


@dataclass
class LevelResult:
    config: ServiceConfig
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


def start_service(model: Path, port: int, config: ServiceConfig, args: argparse.Namespace) -> subprocess.Popen:
    command = [
        sys.executable, "-m", "crossencoder_haystack.cli", "serve",
        "--model", str(model), "--port", str(port), "--max-length", str(args.max_length),
        "--batch-window-ms", str(config.window_ms), "--max-batch-documents", str(config.max_batch_documents),
        "--request-timeout", str(args.request_timeout),
        "--max-queue", "256", "--no-auth", "--log-level", "warning",
    ]  # fmt: skip
    if args.num_threads:
        command += ["--num-threads", str(args.num_threads)]
    environment = {**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
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


async def run_level(
    url: str, clients: int, config: ServiceConfig, texts: tuple, args: argparse.Namespace
) -> LevelResult:
    queries, corpus = texts
    result = LevelResult(config=config, clients=clients, seconds=args.duration)
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


def measure_config(model: Path, config: ServiceConfig, texts: tuple, args: argparse.Namespace) -> list[LevelResult]:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    console.print(
        f"[bold]{config.label}[/bold] (batch window {config.window_ms:g} ms, max batch documents "
        f"{config.max_batch_documents}): starting the service on {url}"
    )
    process = start_service(model, port, config, args)
    try:
        rng = random.Random(7)
        for _ in range(2):  # warm-up
            httpx.post(f"{url}/v2/rerank", json=request_body(rng, *texts, args), timeout=None).raise_for_status()
        results = []
        for clients in args.concurrency:
            before = httpx.get(f"{url}/metrics", timeout=10).text
            level = asyncio.run(run_level(url, clients, config, texts, args))
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


PROBE_ONE_BY_ONE = "one request at a time"
PROBE_TOGETHER = "all requests in one call"
PROBE_CODE = {PROBE_ONE_BY_ONE: "[served.rank(job) for job in jobs]", PROBE_TOGETHER: "served.rank_many(jobs)"}


def probe_rank_many(model: Path, texts: tuple, args: argparse.Namespace) -> dict[str, float]:
    """Pairs/s of `ServedModel.rank` per request vs `ServedModel.rank_many` over all of them, in-process."""
    from crossencoder_haystack.serving.served_model import RerankJob, ServedModel

    queries, corpus = texts
    served = ServedModel(model, max_length=args.max_length, batch_size=16, num_threads=args.num_threads)
    served.warm_up()
    rng = random.Random(11)
    jobs = []
    for _ in range(args.probe_requests):
        body = request_body(rng, queries, corpus, args)
        jobs.append(
            RerankJob(query=body["query"], texts=body["documents"], max_tokens_per_text=args.max_tokens_per_doc)
        )
    pairs = sum(job.size for job in jobs)
    served.rank(
        RerankJob(query=jobs[0].query, texts=list(jobs[0].texts[:16]), max_tokens_per_text=args.max_tokens_per_doc)
    )
    timings: dict[str, list[float]] = {PROBE_ONE_BY_ONE: [], PROBE_TOGETHER: []}
    for _ in range(args.probe_repeats):
        started = time.perf_counter()
        one_by_one = [served.rank(job) for job in jobs]
        timings[PROBE_ONE_BY_ONE].append(time.perf_counter() - started)
        started = time.perf_counter()
        together = served.rank_many(jobs)
        timings[PROBE_TOGETHER].append(time.perf_counter() - started)
        if [[text.index for text in ranked] for ranked in together] != [
            [text.index for text in ranked] for ranked in one_by_one
        ]:
            console.print("[yellow]warning: rank_many ordered some texts differently from rank[/yellow]")
    return {mode: pairs / float(np.median(seconds)) for mode, seconds in timings.items()}


def report(results: list[LevelResult], probe: dict[str, float], args: argparse.Namespace, notes: list[str]) -> str:
    table = Table(title="rerank serve under load")
    columns = [
        "service",
        "window ms",
        "max batch docs",
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
        table.add_column(column, justify="left" if column == "service" else "right")
    lines = ["| " + " | ".join(columns) + " |", "|---|" + "---:|" * (len(columns) - 1)]
    for level in results:
        row = [
            level.config.label,
            f"{level.config.window_ms:g}",
            str(level.config.max_batch_documents),
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

    batching, one_at_a_time = CONFIGS["batching"], CONFIGS["one-at-a-time"]
    speedups = []
    if {level.config for level in results} == {batching, one_at_a_time}:
        for clients in args.concurrency:
            batched = next(r for r in results if r.config == batching and r.clients == clients)
            single = next(r for r in results if r.config == one_at_a_time and r.clients == clients)
            ratio = batched.completed / single.completed if single.completed else float("nan")
            speedups.append(
                f"| {clients} | {batched.completed} | {single.completed} "
                f"| {batched.completed * args.documents / batched.seconds:.1f} "
                f"| {single.completed * args.documents / single.seconds:.1f} | {ratio:.2f}x |"
            )
            console.print(f"dynamic batching vs one request at a time, {clients} clients: {ratio:.2f}x")
    for mode, pairs_per_second in probe.items():
        console.print(f"in-process probe, {mode} ({escape(PROBE_CODE[mode])}): {pairs_per_second:.2f} pairs/s")
    if len(probe) == 2 and probe[PROBE_ONE_BY_ONE]:
        console.print(f"in-process probe, rank_many vs rank: {probe[PROBE_TOGETHER] / probe[PROBE_ONE_BY_ONE]:.2f}x")

    markdown = [
        "# `rerank serve` under load",
        "",
        f"Command: `python benchmarks/serve_load.py {' '.join(sys.argv[1:])}`",
        "",
        *notes,
        "",
        "## Throughput and latency",
        "",
        f"`service`: dynamic batching (`--batch-window-ms {batching.window_ms:g} --max-batch-documents "
        f"{batching.max_batch_documents}`, the defaults: the requests of a batch are scored in one model call) or "
        f"one request at a time (`--batch-window-ms {one_at_a_time.window_ms:g} --max-batch-documents "
        f"{one_at_a_time.max_batch_documents}`: every batch holds one request). `done`: requests answered 200 "
        "within the level's time; `cut`: requests still in flight when the time was up (cancelled by the client, "
        "dropped by the service); `req/batch`: requests per model batch, from the service's own `/metrics`. Latency "
        "percentiles are over the answered requests only, so at high concurrency they undercount the queueing of "
        "the cut ones.",
        "",
        *lines,
    ]
    if speedups:
        markdown += [
            "",
            "## Dynamic batching vs one request at a time (requests answered, and docs/s)",
            "",
            "| clients | requests, dynamic batching | requests, one at a time | docs/s, dynamic batching "
            "| docs/s, one at a time | speed-up |",
            "|---:|---:|---:|---:|---:|---:|",
            *speedups,
        ]
    if probe:
        markdown += [
            "",
            f"## In-process: `ServedModel.rank_many` vs `ServedModel.rank` per request ({args.probe_requests} "
            f"requests x {args.documents} documents, no HTTP or queue, median of {args.probe_repeats})",
            "",
            "| mode | code | pairs/s |",
            "|---|---|---:|",
            *[f"| {mode} | `{PROBE_CODE[mode]}` | {value:.2f} |" for mode, value in probe.items()],
        ]
    return "\n".join(markdown) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", type=Path, default=None, help="A cross-encoder directory (default: the stand-in).")
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 8, 32])
    parser.add_argument(
        "--configs",
        nargs="+",
        choices=list(CONFIGS),
        default=list(CONFIGS),
        help="Service configurations to measure: 'batching' (dynamic batching: --batch-window-ms 5 "
        "--max-batch-documents 512, the defaults) and 'one-at-a-time' (--batch-window-ms 0 --max-batch-documents 1) "
        "(default: both).",
    )
    parser.add_argument("--duration", type=float, default=25.0, help="Seconds per concurrency level.")
    parser.add_argument("--documents", type=int, default=50, help="Documents per request.")
    parser.add_argument("--max-length", type=int, default=128)
    parser.add_argument("--max-tokens-per-doc", type=int, default=96, help="Cohere max_tokens_per_doc per request.")
    parser.add_argument("--request-timeout", type=float, default=600.0)
    parser.add_argument("--startup-timeout", type=float, default=600.0)
    parser.add_argument("--num-threads", type=int, default=None, help="The service's --num-threads.")
    parser.add_argument(
        "--probe-requests",
        type=int,
        default=2,
        help="Requests in the in-process rank_many vs rank probe; 0 skips.",
    )
    parser.add_argument("--probe-repeats", type=int, default=1)
    parser.add_argument("--output", type=Path, default=None, help="Write the Markdown report here.")
    args = parser.parse_args()

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    texts = load_texts(args.documents)
    load_average = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="serve_load_") as scratch:
        model = args.model or stand_in_model(Path(scratch) / "minilm-cross-encoder", args.max_length)
        results = [level for name in args.configs for level in measure_config(model, CONFIGS[name], texts, args)]
        probe = probe_rank_many(model, texts, args) if args.probe_requests else {}
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

"""CPU reranking latency: CrossEncoderRanker's fast paths against SentenceTransformersSimilarityRanker.

Not a test. Reads BEIR SciFact (default /work/shared/data/scifact; nothing is copied), takes a seeded sample of
test queries, retrieves each query's BM25 top-`--docs` (title + text, Haystack's in-memory BM25) and reranks
them with every contender on the same model, documents and machine, in one run:

- the peer, `SentenceTransformersSimilarityRanker` with its defaults (torch, batch 16);
- `CrossEncoderRanker` on torch, with token-budget batching, on ONNX (fp32, O2, int8) and OpenVINO (fp32, int8);
- cheaper variants: fewer tokens (`max_length` 192/128), fewer layers (the first 3 of 6), and a cascade (a cheap
  pass over all candidates keeps the head, the full model reranks it).

Contenders run alternately (query by query, the order rotating) so that load from other processes hits them
alike; reported latencies are medians and p95 over queries x repeats. nDCG@10 (ranx) is computed on the same
queries from each contender's own ranking. The physical bound is the model's FLOPs per query at the contender's
token counts divided by the machine's float32 matmul throughput, measured in the same run.

    python benchmarks/latency.py [--model DIR] [--queries 20] [--docs 100] [--repeats 3] [--only NAME,NAME]

The model defaults to /work/models/scifact-minilm-ce when it exists, otherwise a stand-in with the same cost (the
bundled all-MiniLM-L6-v2 weights as a CrossEncoder with an untrained head: its nDCG is meaningless).
Exports and variants are cached under benchmarks/.cache/latency/.
"""

import argparse
import os
import random
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

HERE = Path(__file__).parent
FINE_TUNED_MODEL = Path("/work/models/scifact-minilm-ce")
REFERENCE = "ours torch"  # quality and speed-up are reported against this contender and the peer
PEER = "peer (SentenceTransformersSimilarityRanker)"


@dataclass
class Stage:
    """One model pass of a contender: its max_length, its layer count and how many candidates it scores."""

    max_length: int
    layers: int
    documents: int | None = None  # None: all candidates


@dataclass
class Contender:
    name: str
    rank: Callable[[str, list[Any]], list[Any]]  # (query, documents) -> documents best first, with scores
    stages: list[Stage]
    note: str = ""
    latencies: list[float] = field(default_factory=list)
    run: dict[str, dict[str, float]] = field(default_factory=dict)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir", default="/work/shared/data/scifact")
    parser.add_argument("--model", default=None, help="a CrossEncoder directory (default: see above)")
    parser.add_argument("--queries", type=int, default=20, help="test queries (seeded sample)")
    parser.add_argument("--docs", type=int, default=100, help="BM25 candidates per query")
    parser.add_argument("--repeats", type=int, default=3, help="timed passes over the queries")
    parser.add_argument("--max-length", type=int, default=None, help="max_length of the full-model contenders")
    parser.add_argument("--threads", type=int, default=None, help="num_threads for every contender")
    parser.add_argument("--only", default=None, help="comma-separated contender names (substrings) to run")
    parser.add_argument("--work-dir", default=str(HERE / ".cache" / "latency"))
    parser.add_argument("--output", default=str(HERE / "results" / "latency.md"))
    args = parser.parse_args()
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

    work_dir = Path(args.work_dir)
    work_dir.mkdir(parents=True, exist_ok=True)
    model, model_note = _resolve_model(args.model, work_dir)
    queries, qrels = _scifact_candidates(args.data_dir, "test", args.queries, args.docs)
    calibration_queries, _ = _scifact_candidates(args.data_dir, "train", 4, 16)
    calibration = [(query, doc.content) for _, query, documents in calibration_queries for doc in documents]
    contenders = _contenders(model, work_dir, args, calibration)
    if args.only:
        wanted = [name.strip() for name in args.only.split(",")]
        contenders = [c for c in contenders if c.name in (PEER, REFERENCE) or any(w in c.name for w in wanted)]

    load_before = os.getloadavg()
    throughput_before = _matmul_gflops()
    print(f"{len(contenders)} contenders, {len(queries)} queries x {args.docs} docs x {args.repeats} repeats")
    for contender in contenders:  # warm-up: load models, first-run allocations
        contender.rank(queries[0][1], queries[0][2])
    for repeat in range(args.repeats):
        for index, (query_id, query, documents) in enumerate(queries):
            shift = (repeat * len(queries) + index) % len(contenders)
            for contender in contenders[shift:] + contenders[:shift]:
                started = time.perf_counter()
                ranked = contender.rank(query, documents)
                contender.latencies.append(time.perf_counter() - started)
                if repeat == 0:
                    contender.run[query_id] = {doc.id: float(doc.score) for doc in ranked if doc.score is not None}
        print(f"repeat {repeat + 1}/{args.repeats} done")
    throughput = statistics.median([throughput_before, _matmul_gflops()])
    load_after = os.getloadavg()

    rows = _summarize(contenders, queries, qrels, model, throughput)
    report = _markdown(rows, args, model, model_note, throughput, load_before, load_after)
    print(report)
    Path(args.output).parent.mkdir(parents=True, exist_ok=True)
    Path(args.output).write_text(report, encoding="utf-8")
    print(f"Wrote {args.output}")


def _resolve_model(model: str | None, work_dir: Path) -> tuple[Path, str]:
    if model:
        return Path(model), "given"
    if FINE_TUNED_MODEL.is_dir():
        return FINE_TUNED_MODEL, "the fine-tuned SciFact cross-encoder"
    stand_in = work_dir / "stand-in-minilm-ce"
    if not (stand_in / "config.json").is_file():
        from sentence_transformers import CrossEncoder

        from crossencoder_haystack.bundled_model import bundled_minilm_path

        CrossEncoder(str(bundled_minilm_path()), num_labels=1, local_files_only=True).save(str(stand_in))
    return stand_in, "STAND-IN (bundled MiniLM weights, untrained head): nDCG is meaningless, timings are not"


def _scifact_candidates(data_dir: str, split: str, n_queries: int, n_docs: int):
    """A seeded sample of judged queries of `split`, each with its BM25 top-n_docs documents."""
    from crossencoder_haystack.data import load_dataset
    from crossencoder_haystack.evaluation.first_stage import BM25FirstStage, corpus_documents

    dataset = load_dataset(data_dir, split=split)
    query_ids = sorted(dataset.judged_query_ids())
    random.Random(0).shuffle(query_ids)
    query_ids = query_ids[:n_queries]
    bm25 = BM25FirstStage(corpus_documents(dataset))
    queries = [(qid, dataset.queries[qid], bm25.retrieve(qid, dataset.queries[qid], n_docs)) for qid in query_ids]
    qrels = {qid: {doc: grade for doc, grade in dataset.qrels[qid].items() if grade > 0} for qid in query_ids}
    return queries, qrels


def _contenders(model: Path, work_dir: Path, args: argparse.Namespace, calibration) -> list[Contender]:
    from haystack_integrations.components.rankers.sentence_transformers import SentenceTransformersSimilarityRanker

    from haystack_integrations.components.rankers.crossencoder import CrossEncoderRanker
    from haystack_integrations.components.rankers.crossencoder.export import export_cross_encoder, read_manifest
    from haystack_integrations.components.rankers.crossencoder.model_loading import load_cross_encoder

    full = load_cross_encoder(str(model), max_length=args.max_length)
    length = int(full.max_seq_length)
    layers = int(full.transformers_model.config.num_hidden_layers)
    del full
    short = max(32, (length * 2 // 3) // 16 * 16)  # about two thirds of the tokens
    top_k = args.docs
    threads = {"num_threads": args.threads} if args.threads else {}

    def exported(backend: str, optimize: str | None = None, quantize: str | None = None, source: Path = model):
        name = "-".join(part for part in (source.name, backend, optimize, quantize) if part)
        directory = work_dir / name
        if backend not in read_manifest(directory):
            print(f"exporting {name} ...")
            export_cross_encoder(
                source,
                directory,
                backend=backend,
                optimize=optimize,
                quantize=quantize,
                calibration_pairs=calibration if quantize == "int8-static" else None,
                max_length=args.max_length,
            )
        return str(directory)

    def ours(name: str, stages: list[Stage], note: str = "", **kwargs: Any) -> Contender:
        ranker = CrossEncoderRanker(
            top_k=top_k, **{"model": str(model), "max_length": args.max_length, **threads, **kwargs}
        )
        ranker.warm_up()
        return Contender(name, lambda q, d: ranker.run(query=q, documents=d)["documents"], stages, note)

    # trust_remote_code: a model with this package's segment-cosine head names its class in modules.json.
    peer = SentenceTransformersSimilarityRanker(model=str(model), top_k=top_k, trust_remote_code=True)
    peer.warm_up()
    if args.max_length:
        peer._cross_encoder.max_seq_length = args.max_length  # same tokens for every contender
    full_model = [Stage(length, layers)]
    int8 = exported("onnx", None, "avx2")
    contenders = [
        Contender(PEER, lambda q, d: peer.run(query=q, documents=d)["documents"], full_model, "defaults (batch 16)"),
        ours(REFERENCE, full_model, "defaults (batch 16, length-sorted, query tokenized once)"),
        ours("ours torch, token budget 2048", full_model, max_tokens_per_batch=2048),
        ours("ours onnx fp32", full_model, model=exported("onnx"), backend="onnx"),
        ours("ours onnx O2", full_model, model=exported("onnx", "O2"), backend="onnx"),
        ours("ours onnx int8", full_model, "dynamic int8, avx2 preset", model=int8, backend="onnx"),
        ours("ours onnx int8, 1 thread", full_model, "num_threads=1", model=int8, backend="onnx", num_threads=1),
        ours("ours onnx O2 int8", full_model, model=exported("onnx", "O2", "avx2"), backend="onnx"),
        ours("ours openvino fp32", full_model, model=exported("openvino"), backend="openvino"),
        ours(
            "ours openvino int8-static",
            full_model,
            f"calibrated on {len(calibration)} pairs of SciFact train queries",
            model=exported("openvino", None, "int8-static"),
            backend="openvino",
        ),
        ours(
            f"ours onnx int8, max_length {short}", [Stage(short, layers)], model=int8, backend="onnx", max_length=short
        ),
        _scored(
            f"ours onnx int8, max_length {short}, query_window",
            [Stage(short, layers)],
            "keeps the opening and the best-matching window of long texts",
            _scorer(int8, "onnx", short, "query_window", threads),
        ),
    ]
    half = _first_layers(model, work_dir, layers // 2)
    contenders.append(
        ours(
            f"ours onnx int8, first {layers // 2} of {layers} layers",
            [Stage(length, layers // 2)],
            "no re-training",
            model=exported("onnx", None, "avx2", source=half),
            backend="onnx",
        )
    )
    keep, first_length = max(10, args.docs // 4), max(32, length // 3)
    cheap = _scorer(int8, "onnx", first_length, "longest_first", threads)
    head = _scorer(int8, "onnx", length, "longest_first", threads)
    contenders.append(
        _scored(
            f"cascade: int8 at max_length {first_length} keeps {keep}, int8 at {length} reranks them",
            [Stage(first_length, layers), Stage(length, layers, keep)],
            "",
            cheap,
            head=(head, keep),
        )
    )
    return contenders


def _scorer(model: str, backend: str, max_length: int, truncation: str, threads: dict):
    """A pair scorer used directly: for options the ranker does not take yet (truncation)."""
    from haystack_integrations.components.rankers.crossencoder.scoring import load_pair_scorer

    return load_pair_scorer(
        model,
        backend=backend,
        device="cpu",
        batch_size=16,
        max_length=max_length,
        token=None,
        trust_remote_code=False,
        model_kwargs=None,
        tokenizer_kwargs=None,
        config_kwargs=None,
        truncation=truncation,
        **threads,
    )


def _scored(name: str, stages: list[Stage], note: str, scorer, head=None) -> Contender:
    """A contender that ranks with pair scorers (and, for a cascade, reranks the first stage's head)."""
    from dataclasses import replace

    import numpy as np

    def rank(query: str, documents: list) -> list:
        logits = scorer.logits(query, [doc.content for doc in documents])
        ranked = [replace(documents[i], score=float(logits[i])) for i in np.argsort(-logits, kind="stable")]
        if head is None:
            return ranked
        head_scorer, keep = head
        top = ranked[:keep]
        logits = head_scorer.logits(query, [doc.content for doc in top])
        return [replace(top[i], score=float(logits[i])) for i in np.argsort(-logits, kind="stable")]

    return Contender(name, rank, stages, note or "pair scorers called directly")


def _first_layers(model: Path, work_dir: Path, keep: int) -> Path:
    """The model with only its first `keep` transformer layers (no re-training), saved as a CrossEncoder."""
    directory = work_dir / f"{model.name}-first{keep}layers"
    if (directory / "config.json").is_file():
        return directory
    import torch

    from haystack_integrations.components.rankers.crossencoder.model_loading import load_cross_encoder

    cross_encoder = load_cross_encoder(str(model))
    encoder = cross_encoder.transformers_model.base_model.encoder
    encoder.layer = torch.nn.ModuleList(list(encoder.layer)[:keep])
    cross_encoder.transformers_model.config.num_hidden_layers = keep
    cross_encoder.save(str(directory))
    return directory


def _matmul_gflops(repeats: int = 10) -> float:
    """float32 matmul throughput of this process's torch threads, on a BERT-sized feed-forward product."""
    import torch

    a, b = torch.randn(4096, 384), torch.randn(384, 1536)
    torch.matmul(a, b)
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        torch.matmul(a, b)
        times.append(time.perf_counter() - started)
    return 2 * 4096 * 384 * 1536 / statistics.median(times) / 1e9


def _pair_lengths(model: Path, max_length: int, queries) -> list[list[int]]:
    from transformers import AutoTokenizer

    from haystack_integrations.components.rankers.crossencoder.pair_encoding import PairEncoder

    encoder = PairEncoder(AutoTokenizer.from_pretrained(str(model)), max_length)
    return [
        sorted((len(p.input_ids) for p in encoder.encode(q, [d.content for d in docs])), reverse=True)
        for _, q, docs in queries
    ]


def _gflop_per_query(model: Path, stages: list[Stage], queries, cache: dict) -> tuple[float, float]:
    """Mean (tokens, GFLOP) per query: 2 x weights per token x tokens + attention (4 x L^2 x hidden per layer)."""
    from transformers import AutoConfig

    config = AutoConfig.from_pretrained(str(model))
    hidden, intermediate = config.hidden_size, config.intermediate_size
    tokens = flops = 0.0
    for stage in stages:
        if stage.max_length not in cache:
            cache[stage.max_length] = _pair_lengths(model, stage.max_length, queries)
        for lengths in cache[stage.max_length]:
            # A later cascade stage scores the head, whose lengths we approximate by the query's average.
            kept = lengths if stage.documents is None else [statistics.mean(lengths)] * stage.documents
            for n in kept:
                tokens += n
                flops += stage.layers * (2 * n * (4 * hidden * hidden + 2 * hidden * intermediate) + 4 * n * n * hidden)
    return tokens / len(queries), flops / len(queries) / 1e9


def _summarize(contenders: list[Contender], queries, qrels, model: Path, gflops: float) -> list[dict[str, Any]]:
    from ranx import Qrels, Run, evaluate

    by_name = {c.name: c for c in contenders}
    peer_median = statistics.median(by_name[PEER].latencies)
    reference_ndcg = None
    lengths_cache: dict = {}
    rows = []
    for contender in contenders:
        latencies = sorted(contender.latencies)
        median = statistics.median(latencies)
        p95 = latencies[min(len(latencies) - 1, round(0.95 * (len(latencies) - 1)))]
        ndcg = float(evaluate(Qrels(qrels), Run(contender.run), "ndcg@10", make_comparable=True))
        if contender.name == REFERENCE:
            reference_ndcg = ndcg
        tokens, gflop = _gflop_per_query(model, contender.stages, queries, lengths_cache)
        rows.append(
            {
                "name": contender.name,
                "note": contender.note,
                "median": median,
                "p95": p95,
                "docs_per_s": len(queries[0][2]) / median,
                "speedup": peer_median / median,
                "ndcg": ndcg,
                "tokens": tokens,
                "bound": gflop / gflops,
            }
        )
    for row in rows:
        row["ndcg_loss"] = (reference_ndcg - row["ndcg"]) * 100 if reference_ndcg is not None else float("nan")
    return rows


def _markdown(rows, args, model: Path, model_note: str, gflops: float, load_before, load_after) -> str:
    import platform

    import onnxruntime
    import openvino
    import torch

    lines = [
        "# Reranking latency on this CPU: CrossEncoderRanker vs SentenceTransformersSimilarityRanker",
        "",
        f"- model: `{model}` ({model_note})",
        f"- data: SciFact test, {args.queries} queries (seeded sample), BM25 top-{args.docs} (title + text) each; "
        f"{args.repeats} timed passes, contenders alternating",
        f"- machine: {os.cpu_count()} CPUs ({platform.processor() or platform.machine()}), torch {torch.__version__} "
        f"({torch.get_num_threads()} threads), onnxruntime {onnxruntime.__version__}, openvino {openvino.__version__}",
        f"- float32 matmul throughput measured in this run: {gflops:.1f} GFLOP/s; load average before "
        f"{load_before[0]:.1f}, after {load_after[0]:.1f} (the cores are shared: timings are noisy)",
        "",
        "| contender | median s/query | p95 s | docs/s | speed-up vs peer | nDCG@10 | loss vs fp32 (points) "
        "| tokens/query | FLOP bound s | % of bound | note |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        lines.append(
            f"| {row['name']} | {row['median']:.2f} | {row['p95']:.2f} | {row['docs_per_s']:.1f} | "
            f"{row['speedup']:.2f}x | {row['ndcg']:.4f} | {row['ndcg_loss']:+.1f} | {row['tokens']:.0f} | "
            f"{row['bound']:.2f} | {100 * row['bound'] / row['median']:.0f}% | {row['note']} |"
        )
    eligible = [row for row in rows if row["ndcg_loss"] <= 1.0]
    best = min(eligible, key=lambda row: row["median"]) if eligible else None
    lines += [
        "",
        "FLOP bound: the contender's model FLOPs per query at its real (unpadded) token counts divided by the "
        "measured float32 matmul throughput; int8 contenders can beat it.",
    ]
    if best is not None:
        lines.append(
            f"Fastest within 1 nDCG@10 point of fp32 torch: **{best['name']}**, {best['speedup']:.2f}x the peer."
        )
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()

"""CPU reranking latency by precision and backend: CrossEncoderRanker against SentenceTransformersSimilarityRanker.

Not a test (issue #14's protocol). Reads BEIR SciFact (default /work/shared/data/scifact; nothing is copied), takes a
seeded sample of test queries, retrieves each query's BM25 top-`--docs` (title + text, Haystack's in-memory BM25)
and reranks them with every contender on the same documents and machine, in one run:

- the peer, `SentenceTransformersSimilarityRanker`, at its defaults and given `model_kwargs={"torch_dtype":
  torch.bfloat16}` (its best effort), on the fine-tuned cross-encoder;
- `CrossEncoderRanker` at its defaults (`precision="auto"`) and at each explicit precision and backend: torch fp32
  and bf16, onnx fp32 and int8 (dynamic, `quantize="auto"`: the preset for this CPU), OpenVINO fp32, bf16 and int8
  (static, calibrated on SciFact train pairs), where onnxruntime / OpenVINO are installed;
- the same grid on the package's default model, the bi-encoder reranker `rerank train` makes
  (`benchmarks/.cache/generalization/scifact-tuned`, from `benchmarks/generalization.py`): query and documents
  encoded separately and scored by their cosine. The peer cannot run it as what it is (it would load a cross-encoder
  with an untrained head), so its rows are compared with the peer on the cross-encoder: the two models a user picks
  between;
- with `--variants`, cheaper cross-encoder variants at the default precision: fewer tokens (about 2/3 of
  `max_length`, with and without `truncation="query_window"`), the first half of the layers, and a cascade.
- with `--students DIR,...` (`rerank distill` students of either model), each student at the default precision and,
  with `--cascade-keep 10,20,...`, a `CascadeRanker` of it and its teacher per value (rows of the teacher's model).

The cross-encoder is `--model`, else one fine-tuned by this script on first use (cached): the segment-cosine head on
the bundled all-MiniLM-L6-v2 with LambdaLoss on lists of SciFact training queries (the lambda-cos recipe of
`benchmarks/results/train_scifact.md`, via `rerank train`), from the rows `rerank mine` wrote for
`benchmarks/generalization.py` when they exist.

Contenders run alternately (query by query, the order rotating) so that load from other processes hits them alike;
latencies are medians and p95 over queries x repeats. nDCG@10 (ranx) comes from each contender's own ranking; the
agreement columns compare its top 10 with the fp32 torch ranking of the same model. The CPU model, its flags, core
count, library versions and the 1-minute load average at launch, start and end of timing head the output and the
results files (`--output` .md and the .json beside it).

    nice -n 19 python benchmarks/latency.py [--queries 20] [--docs 100] [--repeats 3] [--only NAME,NAME] [--variants]
        [--students DIR,DIR --cascade-keep 10,20]

Exports, the fine-tuned model and the variants are cached under benchmarks/.cache/latency/.
"""

import argparse
import importlib.util
import json
import os
import random
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from importlib import metadata
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
MINED_TRIPLETS = HERE / ".cache" / "generalization" / "scifact-mined.jsonl"  # written by benchmarks/generalization.py
BI_ENCODER_MODEL = HERE / ".cache" / "generalization" / "scifact-tuned"
# The lambda-cos recipe of benchmarks/results/train_scifact.md: segment-cosine head, LambdaLoss, 6 lists per step.
CROSS_ENCODER_RECIPE = ("--head", "cosine", "--batch-size", "6", "--max-steps", "128")
CROSS_ENCODER, BI_ENCODER = "cross-encoder", "bi-encoder"
PEER, PEER_BF16 = "peer defaults", "peer torch_dtype=bfloat16"
DEFAULTS, FP32 = "ours defaults", "ours torch fp32"  # FP32: the reference of each model's agreement columns
VERSIONS = (
    "haystack-ai",
    "sentence-transformers-haystack",
    "sentence-transformers",
    "transformers",
    "torch",
    "onnxruntime",
    "openvino",
    "ranx",
    "crossencoder-haystack",
)


@dataclass
class Contender:
    model: str  # CROSS_ENCODER or BI_ENCODER
    name: str
    rank: Callable[[str, list[Any]], list[Any]]  # (query, documents) -> documents best first, with scores
    note: str = ""
    reset: Callable[[], None] = lambda: None  # called before each timed call, untimed
    latencies: list[float] = field(default_factory=list)
    run: dict[str, dict[str, float]] = field(default_factory=dict)  # query id -> {document id: score}
    top10: dict[str, list[str]] = field(default_factory=dict)  # query id -> ids of the first 10

    @property
    def key(self) -> str:
        return f"{self.model}: {self.name}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir", default="/work/shared/data/scifact")
    parser.add_argument("--model", default=None, help="a fine-tuned CrossEncoder directory (default: see above)")
    parser.add_argument("--bi-encoder", default=str(BI_ENCODER_MODEL), help="a bi-encoder reranker directory")
    parser.add_argument("--queries", type=int, default=20, help="test queries (seeded sample)")
    parser.add_argument("--docs", type=int, default=100, help="BM25 candidates per query")
    parser.add_argument("--repeats", type=int, default=3, help="timed passes over the queries")
    parser.add_argument("--threads", type=int, default=None, help="num_threads for every contender of ours")
    parser.add_argument(
        "--only",
        default=None,
        help="comma-separated substrings of 'model: contender' to run, e.g. 'openvino,bi-encoder: ours defaults' "
        "(the peer's defaults and each model's torch fp32 always run: the ratios and agreement need them)",
    )
    parser.add_argument("--variants", action="store_true", help="also the cheaper cross-encoder variants")
    parser.add_argument(
        "--students",
        default=None,
        help="comma-separated student directories made by `rerank distill` from one of the two models: each runs "
        "alone at the default precision and, with --cascade-keep, in a CascadeRanker with its teacher",
    )
    parser.add_argument("--cascade-keep", default="", help="comma-separated cascade_keep values, e.g. 10,20,30,50")
    parser.add_argument("--work-dir", default=str(HERE / ".cache" / "latency"))
    parser.add_argument("--output", default=str(HERE / "results" / "latency.md"), help="and a .json beside it")
    args = parser.parse_args()
    if args.queries < 1 or args.docs < 1 or args.repeats < 1:
        parser.error("--queries, --docs and --repeats must be >= 1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

    environment = _environment()
    print(_environment_lines(environment, args), flush=True)
    work_dir = Path(args.work_dir)
    work_dir.mkdir(parents=True, exist_ok=True)
    models = _models(args, work_dir)
    queries, qrels = _scifact_candidates(args.data_dir, "test", args.queries, args.docs)
    calibration_queries, _ = _scifact_candidates(args.data_dir, "train", 4, 16)
    calibration = [(query, doc.content) for _, query, documents in calibration_queries for doc in documents]
    contenders = _contenders(models, work_dir, args, calibration)

    environment["load_1min"]["start"] = os.getloadavg()[0]
    environment["matmul_gflops"] = {"before": _matmul_gflops()}
    print(
        f"{len(contenders)} contenders, {len(queries)} queries x {args.docs} docs x {args.repeats} repeats", flush=True
    )
    for contender in contenders:  # warm-up: first-run allocations, kernel selection
        contender.rank(queries[0][1], queries[0][2])
    for repeat in range(args.repeats):
        for index, (query_id, query, documents) in enumerate(queries):
            shift = (repeat * len(queries) + index) % len(contenders)
            for contender in contenders[shift:] + contenders[:shift]:
                contender.reset()
                started = time.perf_counter()
                ranked = contender.rank(query, documents)
                contender.latencies.append(time.perf_counter() - started)
                if repeat == 0:
                    contender.run[query_id] = {doc.id: float(doc.score) for doc in ranked if doc.score is not None}
                    contender.top10[query_id] = [doc.id for doc in ranked[:10]]
        print(f"repeat {repeat + 1}/{args.repeats} done", flush=True)
    environment["matmul_gflops"]["after"] = _matmul_gflops()
    environment["load_1min"]["end"] = os.getloadavg()[0]

    rows = _summarize(contenders, queries, qrels)
    targets = _targets(rows, environment["precision_auto"])
    report = _markdown(rows, targets, environment, args, models)
    print(report)
    output = Path(args.output)
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(report, encoding="utf-8")
    settings = {key: value for key, value in vars(args).items() if key != "work_dir"}
    document = {
        "environment": environment,
        "settings": settings,
        "models": {kind: {"path": str(path), "note": note} for kind, (path, note) in models.items()},
        "rows": rows,
        "targets": targets,
    }
    output.with_suffix(".json").write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")
    print(f"Wrote {output} and {output.with_suffix('.json')}")


# --- the machine ------------------------------------------------------------------------------------------------


def _environment() -> dict[str, Any]:
    """CPU model, its precision-relevant flags, cores, library versions, what `precision="auto"` picks, the load."""
    from crossencoder_haystack.evaluation.environment import describe_environment
    from haystack_integrations.components.rankers.crossencoder._engine.precision import (
        REPORTED_CPU_FLAGS,
        cpu_flags,
        precision_reason,
        resolve_precision,
    )

    environment = describe_environment()
    environment["cpu_flags"] = {flag: flag in cpu_flags() for flag in REPORTED_CPU_FLAGS}
    environment["versions"] = {package: _version(package) for package in VERSIONS}
    auto = resolve_precision("auto", "cpu")
    environment["precision_auto"] = {"resolved": auto, "reason": precision_reason("auto", auto, "cpu")}
    environment["load_1min"] = {"launch": os.getloadavg()[0]}
    return environment


def _version(package: str) -> str | None:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return None


def _environment_lines(environment: dict[str, Any], args: argparse.Namespace) -> str:
    flags = ", ".join(f"{flag} {'yes' if present else 'no'}" for flag, present in environment["cpu_flags"].items())
    versions = ", ".join(f"{name} {version or 'not installed'}" for name, version in environment["versions"].items())
    load = environment["load_1min"]
    loads = ", ".join(f"{when} {value:.2f}" for when, value in load.items())
    lines = [
        f"- command: `python benchmarks/latency.py {' '.join(sys.argv[1:])}`",
        f"- CPU: {environment['cpu']}, {environment['cpu_count']} cores (torch uses {environment['torch_threads']} "
        f"threads); Python {environment['python']}, {environment['platform']}",
        f"- CPU flags: {flags}",
        f'- `precision="auto"` on this CPU: **{environment["precision_auto"]["resolved"]}** '
        f"({environment['precision_auto']['reason']})",
        f"- libraries: {versions}",
        f"- 1-minute load average: {loads} (2 shared cores: above ~0.5 before the start, timings are noisy)",
    ]
    if "matmul_gflops" in environment:
        throughput = environment["matmul_gflops"]
        lines.append(
            "- matmul throughput (BERT-sized feed-forward product, GFLOP/s): "
            + "; ".join(f"{when} fp32 {v['fp32']:.0f}, bf16 {v['bf16']:.0f}" for when, v in throughput.items())
        )
    return "\n".join(lines)


def _matmul_gflops(repeats: int = 10) -> dict[str, float]:
    """fp32 and bf16 matmul throughput of this process's torch threads: what the hardware offers each precision."""
    import torch

    result = {}
    for name, dtype in (("fp32", torch.float32), ("bf16", torch.bfloat16)):
        a, b = torch.randn(4096, 384, dtype=dtype), torch.randn(384, 1536, dtype=dtype)
        torch.matmul(a, b)
        times = []
        for _ in range(repeats):
            started = time.perf_counter()
            torch.matmul(a, b)
            times.append(time.perf_counter() - started)
        result[name] = 2 * 4096 * 384 * 1536 / statistics.median(times) / 1e9
    return result


# --- models and data --------------------------------------------------------------------------------------------


def _models(args: argparse.Namespace, work_dir: Path) -> dict[str, tuple[Path, str]]:
    """{kind: (directory, note)}: the fine-tuned cross-encoder and the bi-encoder reranker (if it exists)."""
    models = {}
    if args.model:
        models[CROSS_ENCODER] = (Path(args.model), "given with --model")
    else:
        models[CROSS_ENCODER] = _fine_tuned_cross_encoder(args.data_dir, work_dir)
    bi_encoder = Path(args.bi_encoder)
    if (bi_encoder / "modules.json").is_file():
        models[BI_ENCODER] = (bi_encoder, "the bi-encoder reranker `rerank train` makes by default")
    else:
        print(f"No bi-encoder reranker at {bi_encoder}: run benchmarks/generalization.py --domains scifact first.")
    return models


def _fine_tuned_cross_encoder(data_dir: str, work_dir: Path) -> tuple[Path, str]:
    """The segment-cosine cross-encoder fine-tuned on SciFact train (LambdaLoss on lists); trained on first use."""
    directory = work_dir / "scifact-minilm-cosine-ce"
    lists = work_dir / "scifact-train-lists.jsonl"
    command = ["train", "--data", str(lists), "--output", str(directory), *CROSS_ENCODER_RECIPE]
    note = f"fine-tuned by this script: `rerank {' '.join(command)}` (segment-cosine head, LambdaLoss)"
    if (directory / "config.json").is_file():
        return directory, note
    work_dir.mkdir(parents=True, exist_ok=True)  # also when called from benchmarks/distill.py on a fresh clone
    if MINED_TRIPLETS.is_file():
        _lists_from_triplets(MINED_TRIPLETS, lists)
    else:
        _rerank("mine", "--queries", data_dir, "--format", "lists", "--output", str(lists))
    _rerank(*command)
    return directory, note


def _lists_from_triplets(triplets: Path, lists: Path) -> None:
    """`rerank mine`'s triplet rows (query, positive, negatives) as lists rows (query, documents, labels)."""
    with triplets.open(encoding="utf-8") as source, lists.open("w", encoding="utf-8") as target:
        for line in source:
            row = json.loads(line)
            documents = [row["positive"], *row["negatives"]]
            labels = [1] + [0] * len(row["negatives"])
            target.write(json.dumps({"query": row["query"], "documents": documents, "labels": labels}) + "\n")


def _rerank(*arguments: str) -> None:
    print("$ rerank " + " ".join(arguments), flush=True)
    subprocess.run([sys.executable, "-m", "crossencoder_haystack.cli", *arguments], check=True)


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


# --- contenders -------------------------------------------------------------------------------------------------


@dataclass
class Spec:
    """A contender not built yet: models are loaded (and exported) only for the contenders that run."""

    model: str
    name: str
    build: Callable[[], Contender]


def _contenders(models: dict[str, tuple[Path, str]], work_dir: Path, args, calibration) -> list[Contender]:
    cross_encoder, _ = models[CROSS_ENCODER]
    specs = _peers(cross_encoder, args.docs)
    for kind, (directory, _) in models.items():
        specs += _grid(kind, directory, work_dir, args, calibration)
    if args.variants:
        specs += _variants(cross_encoder, work_dir, args)
    if args.students:
        specs += _distilled(models, args)
    if args.only:
        wanted = [name.strip() for name in args.only.split(",")]
        references = {PEER, FP32}  # kept: the ratios and agreement columns need them
        specs = [s for s in specs if s.name in references or any(w in f"{s.model}: {s.name}" for w in wanted)]
    return [spec.build() for spec in specs]


def _peers(model: Path, top_k: int) -> list[Spec]:
    def peer(name: str, note: str, bf16: bool = False) -> Spec:
        def build() -> Contender:
            import torch
            from haystack_integrations.components.rankers.sentence_transformers import (
                SentenceTransformersSimilarityRanker,
            )

            # trust_remote_code: a model with this package's segment-cosine head names its class in modules.json.
            ranker = SentenceTransformersSimilarityRanker(
                model=str(model),
                top_k=top_k,
                trust_remote_code=True,
                model_kwargs={"torch_dtype": torch.bfloat16} if bf16 else None,
            )
            ranker.warm_up()
            return Contender(CROSS_ENCODER, name, lambda q, d: ranker.run(query=q, documents=d)["documents"], note)

        return Spec(CROSS_ENCODER, name, build)

    return [
        peer(PEER, "torch fp32, batch 16"),
        peer(PEER_BF16, "model_kwargs={'torch_dtype': torch.bfloat16}", bf16=True),
    ]


def _ours(kind: str, name: str, model: Path | str, args, note: str = "", **kwargs: Any) -> Contender:
    from haystack_integrations.components.rankers.crossencoder import CrossEncoderRanker

    settings = {"model": str(model), "top_k": args.docs, **({"num_threads": args.threads} if args.threads else {})}
    ranker = CrossEncoderRanker(**{**settings, **kwargs})
    ranker.warm_up()
    rank = lambda q, d: ranker.run(query=q, documents=d)["documents"]  # noqa: E731
    return Contender(kind, name, rank, note, reset=lambda: _forget_document_embeddings(ranker))


def _forget_document_embeddings(ranker: Any) -> None:
    """
    Empty a bi-encoder reranker's document-embedding cache, so that every timed call encodes its documents.

    Otherwise the warm-up and later repeats would time cache lookups of the same documents: the cache pays off in
    production when documents recur, but the peer has none and this benchmark measures the model. The ranker has no
    public switch for it (yet), so this reaches into its scorer; a cross-encoder scorer has no such cache.
    """
    cache = getattr(getattr(ranker, "_scorer", None), "_cache", None)
    if cache is not None:
        cache.clear()


def _grid(kind: str, model: Path, work_dir: Path, args, calibration) -> list[Spec]:
    """CrossEncoderRanker at its defaults, then each explicit precision on each installed backend."""
    from haystack_integrations.components.rankers.crossencoder._engine.precision import resolve_precision

    def ours(name: str, export: tuple[str, str | None] | None = None, note: str = "", **kwargs: Any) -> Spec:
        def build() -> Contender:
            source, how = _export(model, work_dir, *export, calibration) if export else (model, "")
            return _ours(kind, name, source, args, note or how, **kwargs)

        return Spec(kind, name, build)

    specs = [
        ours(DEFAULTS, note=f"torch, precision auto -> {resolve_precision('auto', 'cpu')}"),
        ours(FP32, precision="fp32"),
        ours("ours torch bf16", precision="bf16"),
        ours("ours torch bf16 1 stream", precision="bf16", num_streams=1, note="one batch at a time, 2 threads"),
    ]
    if importlib.util.find_spec("onnxruntime") is not None:
        specs += [
            ours("ours onnx fp32", ("onnx", None), backend="onnx", precision="fp32"),
            ours("ours onnx int8", ("onnx", "auto"), backend="onnx", precision="int8"),
        ]
    else:
        print("onnxruntime is not installed: no onnx contenders (pip install 'crossencoder-haystack[onnx]').")
    if importlib.util.find_spec("openvino") is not None:
        specs += [
            ours("ours openvino fp32", ("openvino", None), backend="openvino", precision="fp32"),
            ours("ours openvino bf16", ("openvino", None), backend="openvino", precision="bf16"),
            ours(
                "ours openvino bf16 1 stream",
                ("openvino", None),
                backend="openvino",
                precision="bf16",
                num_streams=1,
            ),
            ours("ours openvino int8", ("openvino", "int8-static"), backend="openvino", precision="int8"),
        ]
    else:
        print("openvino is not installed: no openvino contenders (pip install 'crossencoder-haystack[openvino]').")
    return specs


def _export(model: Path, work_dir: Path, backend: str, quantize: str | None, calibration) -> tuple[Path, str]:
    """(directory, how it is quantized): `model` exported for `backend` (cached under `work_dir`)."""
    from crossencoder_haystack.export.exporting import export_cross_encoder
    from haystack_integrations.components.rankers.crossencoder._engine.manifest import read_manifest

    directory = work_dir / "-".join(part for part in (model.name, backend, quantize) if part)
    recorded = read_manifest(directory).get(backend)
    if recorded is None:
        print(f"exporting {directory.name} ...", flush=True)
        recorded = export_cross_encoder(
            model,
            directory,
            backend=backend,
            quantize=quantize,
            calibration_pairs=calibration if quantize == "int8-static" else None,
        )
    if recorded.quantize == "int8-static":
        return directory, f"static, calibrated on {len(calibration)} SciFact train pairs"
    if recorded.quantize:
        chosen = f" ({recorded.quantize_chosen_by})" if recorded.quantize_chosen_by else ""
        return directory, f"dynamic, preset {recorded.quantize}{chosen}"
    return directory, ""


def _variants(model: Path, work_dir: Path, args) -> list[Spec]:
    """Cheaper cross-encoders at the default precision: fewer tokens, fewer layers, a cascade."""
    from haystack_integrations.components.rankers.crossencoder._engine.model_loading import load_cross_encoder

    full = load_cross_encoder(str(model))
    length, layers = int(full.max_seq_length), int(full.transformers_model.config.num_hidden_layers)
    del full
    short = max(32, (length * 2 // 3) // 16 * 16)  # about two thirds of the tokens
    half = max(32, length // 2)
    keep, first_length = max(10, args.docs // 4), max(32, length // 3)

    def ours(name: str, note: str = "", source: Callable[[], Path] = lambda: model, **kwargs: Any) -> Spec:
        return Spec(CROSS_ENCODER, name, lambda: _ours(CROSS_ENCODER, name, source(), args, note, **kwargs))

    def cascade() -> Contender:
        from haystack_integrations.components.rankers.crossencoder import CrossEncoderRanker

        threads = {"num_threads": args.threads} if args.threads else {}
        cheap = CrossEncoderRanker(model=str(model), top_k=keep, max_length=first_length, **threads)
        head = CrossEncoderRanker(model=str(model), top_k=args.docs, **threads)
        cheap.warm_up()
        head.warm_up()

        def rank(query: str, documents: list) -> list:
            kept = cheap.run(query=query, documents=documents)["documents"]
            return head.run(query=query, documents=kept)["documents"]

        return Contender(CROSS_ENCODER, cascade_name, rank, "two rankers at the default precision")

    cascade_name = f"cascade: max_length {first_length} keeps {keep} for max_length {length}"
    window = "keeps the opening and the best-matching window of long texts"
    return [
        ours(f"ours max_length {short}", max_length=short),
        ours(f"ours max_length {short} query_window", window, max_length=short, truncation="query_window"),
        *(
            ours(
                f"ours openvino bf16 max_length {tokens} query_window",
                window,
                source=lambda: _export(model, work_dir, "openvino", None, [])[0],
                backend="openvino",
                precision="bf16",
                max_length=tokens,
                truncation="query_window",
            )
            for tokens in (short, half)
        ),
        ours(
            f"ours first {layers // 2} of {layers} layers",
            "no re-training",
            source=lambda: _first_layers(model, work_dir, layers // 2),
        ),
        Spec(CROSS_ENCODER, cascade_name, cascade),
    ]


def _distilled(models: dict[str, tuple[Path, str]], args) -> list[Spec]:
    """Students of `rerank distill` alone, and in a CascadeRanker with their teacher at each --cascade-keep."""
    from crossencoder_haystack.training.distill_card import read_distillation_record

    keeps = [int(value) for value in args.cascade_keep.split(",") if value.strip()]
    specs = []
    for student in (Path(path.strip()) for path in args.students.split(",") if path.strip()):
        teacher = Path(read_distillation_record(student).get("teacher") or models[CROSS_ENCODER][0])
        kind = next((k for k, (path, _) in models.items() if path.resolve() == teacher.resolve()), CROSS_ENCODER)
        note = f"`rerank distill` student of {teacher.name}"
        specs.append(
            Spec(
                kind,
                f"ours student {student.name}",
                partial(_ours, kind, f"ours student {student.name}", student, args, note),
            )
        )
        specs += [
            Spec(kind, f"cascade {student.name} keeps {keep}", partial(_cascade, kind, student, teacher, keep, args))
            for keep in keeps
        ]
    return specs


def _cascade(kind: str, student: Path, teacher: Path, keep: int, args) -> Contender:
    """A CascadeRanker: the student ranks the BM25 candidates, the teacher re-ranks the best `keep`."""
    from haystack_integrations.components.rankers.crossencoder import CascadeRanker, CrossEncoderRanker

    threads = {"num_threads": args.threads} if args.threads else {}
    cascade = CascadeRanker(
        student=CrossEncoderRanker(model=str(student), top_k=args.docs, **threads),
        teacher=CrossEncoderRanker(model=str(teacher), top_k=args.docs, **threads),
        cascade_keep=keep,
    )
    cascade.warm_up()
    rank = lambda q, d: cascade.run(query=q, documents=d)["documents"]  # noqa: E731
    reset = lambda: _forget_document_embeddings(cascade.teacher)  # noqa: E731
    return Contender(kind, f"cascade {student.name} keeps {keep}", rank, f"teacher {teacher.name}", reset=reset)


def _first_layers(model: Path, work_dir: Path, keep: int) -> Path:
    """The model with only its first `keep` transformer layers (no re-training), saved as a CrossEncoder."""
    directory = work_dir / f"{model.name}-first{keep}layers"
    if (directory / "config.json").is_file():
        return directory
    import torch

    from haystack_integrations.components.rankers.crossencoder._engine.model_loading import load_cross_encoder

    cross_encoder = load_cross_encoder(str(model))
    encoder = cross_encoder.transformers_model.base_model.encoder
    encoder.layer = torch.nn.ModuleList(list(encoder.layer)[:keep])
    cross_encoder.transformers_model.config.num_hidden_layers = keep
    cross_encoder.save(str(directory))
    return directory


# --- results ----------------------------------------------------------------------------------------------------


def _summarize(contenders: list[Contender], queries, qrels) -> list[dict[str, Any]]:
    """One row per contender: latency, docs/s, ratios to the peer, nDCG@10 and agreement with its model's fp32."""
    from ranx import Qrels, Run, evaluate

    by_key = {c.key: c for c in contenders}
    peer = by_key.get(f"{CROSS_ENCODER}: {PEER}")
    peer_bf16 = by_key.get(f"{CROSS_ENCODER}: {PEER_BF16}")
    docs = statistics.mean(len(documents) for _, _, documents in queries)
    ndcg = {c.key: float(evaluate(Qrels(qrels), Run(c.run), "ndcg@10", make_comparable=True)) for c in contenders}
    rows = []
    for contender in contenders:
        latencies = sorted(contender.latencies)
        median = statistics.median(latencies)
        reference = by_key.get(f"{BI_ENCODER if contender.model == BI_ENCODER else CROSS_ENCODER}: {FP32}")
        same, overlap = _agreement(contender, reference) if reference else (None, None)
        rows.append(
            {
                "model": contender.model,
                "name": contender.name,
                "note": contender.note,
                "median_s": median,
                "p95_s": latencies[min(len(latencies) - 1, round(0.95 * (len(latencies) - 1)))],
                "docs_per_s": docs / median,
                "vs_peer": statistics.median(peer.latencies) / median if peer else None,
                "vs_peer_bf16": statistics.median(peer_bf16.latencies) / median if peer_bf16 else None,
                "ndcg@10": ndcg[contender.key],
                "ndcg_loss_points": (ndcg[reference.key] - ndcg[contender.key]) * 100 if reference else None,
                "same_top10": same,
                "top10_overlap": overlap,
            }
        )
    return rows


def _agreement(contender: Contender, reference: Contender) -> tuple[float, float]:
    """(share of queries whose top 10 is the same set of documents, mean share of the top 10 in common)."""
    same, overlap = [], []
    for query_id, expected in reference.top10.items():
        common = set(contender.top10[query_id]) & set(expected)
        same.append(len(common) == len(expected) == len(contender.top10[query_id]))
        overlap.append(len(common) / max(1, len(expected)))
    return statistics.mean(same), statistics.mean(overlap)


def _targets(rows: list[dict[str, Any]], auto: dict[str, str]) -> list[dict[str, Any]]:
    """Issue #14's targets, checked on this run's numbers for each model (those whose contenders ran)."""
    targets: list[dict[str, Any]] = []

    def check(goal: str, value: float | None, met: Callable[[float], bool], shown: str) -> None:
        if value is not None:
            targets.append({"target": goal, "value": value, "shown": shown.format(value), "met": bool(met(value))})

    for model in (CROSS_ENCODER, BI_ENCODER):
        own = {row["name"]: row for row in rows if row["model"] == model}
        defaults, fp32 = own.get(DEFAULTS), own.get(FP32)
        if defaults is None:
            continue
        if auto["resolved"] != "bf16":  # no fast bf16 on this CPU: auto is fp32 and must cost nothing
            if fp32 is not None:
                ratio = fp32["median_s"] / defaults["median_s"]
                check(f"{model}: defaults never slower than fp32 (5% noise)", ratio, lambda v: v >= 0.95, "{:.2f}x")
            check(f"{model}: defaults never change the top 10", defaults["same_top10"], lambda v: v == 1, "{:.0%}")
            continue
        check(f"{model}: defaults >= 2.5x the peer's defaults", defaults["vs_peer"], lambda v: v >= 2.5, "{:.2f}x")
        check(f"{model}: defaults >= 1.3x the peer given bf16", defaults["vs_peer_bf16"], lambda v: v >= 1.3, "{:.2f}x")
        loss = defaults["ndcg_loss_points"]
        check(f"{model}: defaults' nDCG@10 within 0.5 point of fp32", loss, lambda v: v <= 0.5, "{:+.2f} points")
        same = defaults["same_top10"]
        check(f"{model}: defaults' top 10 = fp32's on >= 90% of queries", same, lambda v: v >= 0.9, "{:.0%}")
        eligible = [
            row
            for row in own.values()
            if row["name"].startswith(("ours", "cascade"))
            and row["ndcg_loss_points"] is not None
            and row["ndcg_loss_points"] <= 1.0
            and row["vs_peer"] is not None
        ]
        if eligible:
            best = max(eligible, key=lambda row: row["vs_peer"])
            goal = f"{model}: best configuration within 1 point ({best['name']}) >= 4x the peer's defaults"
            check(goal, best["vs_peer"], lambda v: v >= 4.0, "{:.2f}x")
    return targets


def _markdown(rows, targets, environment, args, models) -> str:
    lines = [
        "# Reranking latency by precision and backend: CrossEncoderRanker vs SentenceTransformersSimilarityRanker",
        "",
        _environment_lines(environment, args),
        f"- data: SciFact test, {args.queries} queries (seeded sample), BM25 top-{args.docs} (title + text) each; "
        f"{args.repeats} timed passes, contenders alternating query by query",
    ]
    lines += [f"- {kind} model: `{path}` ({note})" for kind, (path, note) in models.items()]
    lines += [
        "",
        "Ratios are the peer's median over this contender's (higher is faster). nDCG@10 loss and top-10 agreement "
        "compare with `ours torch fp32` on the same model (the peer's rows: on the cross-encoder).",
        "",
        "| model | contender | median s/query | p95 s | docs/s | vs peer defaults | vs peer bf16 | nDCG@10 "
        "| loss vs fp32 (points) | same top 10 | top-10 overlap | note |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        lines.append(
            f"| {row['model']} | {row['name']} | {row['median_s']:.3f} | {row['p95_s']:.3f} | "
            f"{row['docs_per_s']:.0f} | {_ratio(row['vs_peer'])} | {_ratio(row['vs_peer_bf16'])} | "
            f"{row['ndcg@10']:.4f} | {_signed(row['ndcg_loss_points'])} | {_share(row['same_top10'])} | "
            f"{_share(row['top10_overlap'])} | {row['note']} |"
        )
    if targets:
        lines += ["", "Issue #14's targets on this CPU:", "", "| target | this run | met |", "|---|---|---|"]
        lines += [f"| {t['target']} | {t['shown']} | {'yes' if t['met'] else '**no**'} |" for t in targets]
    return "\n".join(lines) + "\n"


def _ratio(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}x"


def _signed(value: float | None) -> str:
    return "-" if value is None else f"{value:+.2f}"


def _share(value: float | None) -> str:
    return "-" if value is None else f"{value:.0%}"


if __name__ == "__main__":
    main()

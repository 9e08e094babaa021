"""`rerank distill` and the cascade on SciFact: students of 2, 3 and 4 layers, cascades, against the peer (issue #21).

One command from a fresh clone (reads ../shared/data/scifact, caches everything under benchmarks/.cache/distill):

    nice -n 19 python benchmarks/distill.py

1. The teacher: the best SciFact reranker `rerank mine` + `rerank train` make with their defaults, the bi-encoder
   reranker `benchmarks/generalization.py` builds (`benchmarks/.cache/generalization/scifact-tuned`; built here with
   the same two commands if it is missing), or `--teacher DIR`.
2. One `rerank distill` per student size (`--layers 2,3,4`) on SciFact's train queries plus pseudo-queries drawn from
   the corpus (never a test query), each within `--max-minutes` (40); the teacher's scores are cached once and
   shared by the three runs. Students are reused on later runs (`--redistill` makes them again). They read
   `--student-max-length` (128) tokens per pair, the peer's `max_length`: the bi-encoder teacher's 256 would leave a
   2-layer student at two thirds of the peer's work, short of 2.5x before any training.
3. All 300 SciFact test queries, each with BM25's top 100 (title + text), reranked by every contender on the same
   documents and machine, alternating query by query (the order rotating): the peer, Haystack's
   `SentenceTransformersSimilarityRanker` at its defaults on the teacher (a bi-encoder teacher it cannot run: then on
   `--peer-model`, by default the fine-tuned MiniLM-L6 cross-encoder of `benchmarks/latency.py`, the same size and
   `max_length` 128, which is what a user of the peer would run instead); the teacher, each student and the cascades
   (the `--cascade-layers` student re-ranked by the teacher at `--cascade-keep` 10, 20, 30, 50), in float32 (what an
   AVX2-only CPU runs) and, where the CPU multiplies bfloat16 natively, at `precision="auto"` as well.
4. nDCG@10 (ranx) from each contender's own ranking, the agreement with the float32 teacher on the test queries
   (nDCG@10 against its ranking, Spearman of the scores), median and p95 latency per query and the speed-up over the
   peer's median; the issue's target is checked at each precision. CPU model, flags, cores, library versions and the
   load average head the report (`--output`, a .json beside it).

On a CPU with AVX-512 (and AMX), `--isa avx2` reruns the command with MKL, oneDNN and ATen capped at AVX2
(`MKL_ENABLE_INSTRUCTIONS`, `ONEDNN_MAX_CPU_ISA`, `ATEN_CPU_CAPABILITY`): float32 on the kernels an AVX2-only CPU
runs (half the matmul rate of AVX-512 here, about that of the AMD EPYC in benchmarks/results), and `precision="auto"`
is float32 as there. A stand-in, stated in the report, for when no AVX2-only machine is at hand.

The timed run takes about 2.3 hours on the 2-core Xeon (17 contenders x 300 queries; the float32 teacher alone is
5 s a query). Each query's results go to a journal (`WORK_DIR/timing-ISA.jsonl`) as they come: `--stop-after-minutes
N` ends a session's share and the same command continues where it stopped, on the same CPU, caps, contenders and
queries only (another journal is set aside and the run starts afresh). The report says how many sessions it took.
A stopped run also writes what it has, over the queries timed so far, beside `--output` as `NAME-partial.md` (and
.json), with the target left undecided: it is over all the test queries.

Smoke run (minutes, not hours; writes nothing into benchmarks/results):

    nice -n 19 python benchmarks/distill.py --queries 3 --max-minutes 1 --train-queries 10 --pseudo-queries 10 \\
        --layers 2 --cascade-keep 10 --retriever bm25 --work-dir /tmp/distill-smoke \\
        --output /tmp/distill-smoke/distill.md
"""

import argparse
import json
import os
import random
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
DEFAULT_TEACHER = HERE / ".cache" / "generalization" / "scifact-tuned"
GENERALIZATION_CACHE = HERE / ".cache" / "generalization"
LATENCY_CROSS_ENCODER = HERE / ".cache" / "latency" / "scifact-minilm-cosine-ce"
PEER = "peer: SentenceTransformersSimilarityRanker, defaults"
TARGET_SPEED_UP, TARGET_POINTS = 2.5, 1.0
# What `--isa avx2` sets before torch loads: MKL's GEMMs, oneDNN's kernels and ATen's vectorized ops at AVX2.
ISA_CAPS = {"avx2": {"MKL_ENABLE_INSTRUCTIONS": "AVX2", "ONEDNN_MAX_CPU_ISA": "AVX2", "ATEN_CPU_CAPABILITY": "avx2"}}


@dataclass
class Contender:
    name: str
    precision: str  # "fp32", "auto" or "peer"
    rank: Callable[[str, list[Any]], list[Any]]
    note: str = ""
    reset: Callable[[], None] = lambda: None  # untimed, before each call
    latencies: list[float] = field(default_factory=list)
    run: dict[str, dict[str, float]] = field(default_factory=dict)  # query id -> {document id: score}


def main() -> None:
    args = _arguments()
    if args.isa != "native":
        _rerun_capped(ISA_CAPS[args.isa])
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    environment = _environment()
    print(_environment_lines(environment), flush=True)
    work = Path(args.work_dir)
    work.mkdir(parents=True, exist_ok=True)
    data_dir = Path(args.data_dir)
    teacher = Path(args.teacher) if args.teacher else _default_teacher(data_dir)
    peer_model = _peer_model(args, teacher)
    queries_source = _training_queries(data_dir, args.train_queries, work)
    students = {layers: _distil(args, teacher, layers, queries_source, work) for layers in _ints(args.layers)}
    if args.distil_only:
        print(f"Students made (cached under {work}); --distil-only: no timing run.", flush=True)
        return
    queries, qrels = _test_candidates(data_dir, args.queries, args.docs)
    contenders = _contenders(args, teacher, peer_model, students, environment["precision_auto"])
    environment["load_1min"]["start"] = os.getloadavg()[0]
    print(f"{len(contenders)} contenders, {len(queries)} queries x {args.docs} documents", flush=True)
    journal = TimingJournal(Path(args.journal or work / f"timing-{args.isa}.jsonl"))
    environment["timing_sessions"] = journal.open(_journal_header(environment, contenders, queries, students, args))
    deadline = time.monotonic() + args.stop_after_minutes * 60 if args.stop_after_minutes else None
    finished = _time_contenders(contenders, queries, args.repeats, journal, deadline)
    output = Path(args.output)
    if not finished:
        print(f"Stopped (--stop-after-minutes): {journal.path} holds the queries done; the same command on this "
              "CPU continues from there.", flush=True)  # fmt: skip
        queries = _timed_queries(contenders, queries)
        if not queries:
            return
        output = output.with_name(f"{output.stem}-partial{output.suffix}")  # never in place of a full run's
    environment["load_1min"]["end"] = os.getloadavg()[0]
    environment["timed_queries"] = f"{len(queries)} of {args.queries}" + ("" if finished else " (partial)")
    rows = _summarize(contenders, queries, qrels)
    targets = _targets(rows) if finished else []
    report = _markdown(rows, targets, environment, args, teacher, peer_model, students)
    print(report)
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(report, encoding="utf-8")
    document = {
        "environment": environment,
        "settings": vars(args),
        "teacher": str(teacher),
        "peer_model": str(peer_model),
        "students": {str(layers): info for layers, info in students.items()},
        "rows": rows,
        "targets": targets,
    }
    output.with_suffix(".json").write_text(json.dumps(document, indent=2, default=str) + "\n", encoding="utf-8")
    print(f"Wrote {output} and {output.with_suffix('.json')}")


def _arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir", default=str(REPO.parent / "shared" / "data" / "scifact"))
    parser.add_argument("--teacher", help="the teacher directory (default: rerank mine + rerank train's SciFact model)")
    parser.add_argument("--peer-model", help="the peer's cross-encoder when the teacher is a bi-encoder")
    parser.add_argument("--layers", default="2,3,4", help="student sizes, comma-separated")
    parser.add_argument("--max-minutes", type=float, default=40.0, help="budget of each rerank distill")
    parser.add_argument(
        "--student-max-length",
        type=int,
        default=128,
        help="the students' tokens per pair (rerank distill --max-length): the peer's 128, not the teacher's 256",
    )
    parser.add_argument("--train-queries", type=int, help="distil on only this many train queries (smoke runs)")
    parser.add_argument("--pseudo-queries", type=int, default=1000, help="rerank distill --pseudo-queries")
    parser.add_argument("--retriever", default="hybrid", help="rerank distill --retriever")
    parser.add_argument("--redistill", action="store_true", help="distil again even if a student exists")
    parser.add_argument(
        "--distil-only",
        action="store_true",
        help="make (or reuse) the students and stop: the timed run can then go on another CPU, e.g. an AVX2-only one",
    )
    parser.add_argument(
        "--isa",
        choices=["native", *ISA_CAPS],
        default="native",
        help="avx2: cap MKL, oneDNN and ATen at AVX2 (float32 as an AVX2-only CPU runs it; see the docstring)",
    )
    parser.add_argument("--queries", type=int, default=300, help="test queries (all 300 by default)")
    parser.add_argument("--docs", type=int, default=100, help="BM25 candidates per test query")
    parser.add_argument("--repeats", type=int, default=1, help="timed passes over the test queries")
    parser.add_argument(
        "--stop-after-minutes",
        type=float,
        help="stop the timed run after this many minutes; the same command (same CPU) continues it from its journal",
    )
    parser.add_argument("--journal", help="the timed run's journal (default: WORK_DIR/timing-ISA.jsonl)")
    parser.add_argument(
        "--precisions",
        default="fp32,auto",
        help="contenders' precisions: fp32 and/or auto (auto only where it resolves to bf16); the peer always runs",
    )
    parser.add_argument("--cascade-layers", type=int, help="the cascade's student (default: the smallest)")
    parser.add_argument("--cascade-keep", default="10,20,30,50", help="cascade_keep values, comma-separated")
    parser.add_argument("--work-dir", default=str(HERE / ".cache" / "distill"))
    parser.add_argument("--output", default=str(HERE / "results" / "distill.md"), help="and a .json beside it")
    args = parser.parse_args()
    if args.queries < 1 or args.docs < 1 or args.repeats < 1:
        parser.error("--queries, --docs and --repeats must be >= 1")
    if not set(args.precisions.split(",")) <= {"fp32", "auto"}:
        parser.error(f"--precisions takes fp32 and/or auto, comma-separated; got {args.precisions!r}")
    return args


def _rerun_capped(caps: dict[str, str]) -> None:
    """Run this command again with `caps` in its environment (they must be set before torch loads), unless set."""
    if all(os.environ.get(variable) == value for variable, value in caps.items()):
        return
    os.environ.update(caps)
    os.execv(sys.executable, [sys.executable, *sys.argv])


def _ints(text: str) -> list[int]:
    return [int(part) for part in text.split(",") if part.strip()]


# --- the machine ------------------------------------------------------------------------------------------------


def _environment() -> dict[str, Any]:
    """CPU model, its precision-relevant flags, cores, versions, what precision="auto" picks, the load average (the
    same record as benchmarks/latency.py's) and the instruction-set caps in force."""
    environment = _latency_benchmark()._environment()
    caps = {variable for variables in ISA_CAPS.values() for variable in variables}
    environment["isa_caps"] = {variable: os.environ[variable] for variable in sorted(caps) if variable in os.environ}
    return environment


def _latency_benchmark() -> Any:
    """benchmarks/latency.py as a module (its machine record and its fine-tuned cross-encoder)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("latency_benchmark", HERE / "latency.py")
    latency = importlib.util.module_from_spec(spec)  # type: ignore[arg-type]
    spec.loader.exec_module(latency)  # type: ignore[union-attr]
    return latency


def _environment_lines(environment: dict[str, Any]) -> str:
    flags = ", ".join(f"{flag} {'yes' if present else 'no'}" for flag, present in environment["cpu_flags"].items())
    versions = ", ".join(f"{name} {version or '-'}" for name, version in environment["versions"].items())
    loads = ", ".join(f"{when} {value:.2f}" for when, value in environment["load_1min"].items())
    auto = environment["precision_auto"]
    return "\n".join(
        [
            f"- command: `python benchmarks/distill.py {' '.join(sys.argv[1:])}`",
            f"- CPU: {environment['cpu']}, {environment['cpu_count']} cores (torch uses "
            f"{environment['torch_threads']} threads); Python {environment['python']}, {environment['platform']}",
            f"- CPU flags: {flags}",
            f"- instruction sets: {_caps_line(environment['isa_caps'])}",
            f'- `precision="auto"` on this CPU: **{auto["resolved"]}** ({auto["reason"]})',
            f"- libraries: {versions}",
            f"- 1-minute load average: {loads} (2 shared cores: above ~0.5 before the start, timings are noisy)",
        ]
    )


def _caps_line(caps: dict[str, str]) -> str:
    if not caps:
        return "native (no cap)"
    listed = ", ".join(f"{name}={value}" for name, value in caps.items())
    return f"capped, {listed} (float32 on AVX2 kernels: a stand-in for an AVX2-only CPU, not one)"


# --- models -----------------------------------------------------------------------------------------------------


def _rerank(*arguments: str) -> float:
    """Run a `rerank` command; returns its minutes."""
    started = time.monotonic()
    print("$ rerank " + " ".join(arguments), flush=True)
    subprocess.run([sys.executable, "-m", "crossencoder_haystack.cli", *arguments], check=True)
    return (time.monotonic() - started) / 60


def _default_teacher(data_dir: Path) -> Path:
    """rerank mine + rerank train with their defaults on SciFact train (generalization.py's cache, made if missing)."""
    mined = GENERALIZATION_CACHE / "scifact-mined.jsonl"
    if not mined.exists():
        _rerank("mine", "--queries", str(data_dir), "--output", str(mined))
    if not (DEFAULT_TEACHER / "modules.json").exists():
        minutes = _rerank("train", "--data", str(mined), "--output", str(DEFAULT_TEACHER))
        (DEFAULT_TEACHER / "train_minutes.txt").write_text(f"{minutes:.2f}\n")
    return DEFAULT_TEACHER


def _is_bi_encoder(model: Path) -> bool:
    from haystack_integrations.components.rankers.crossencoder._engine.bi_encoder_scoring import is_bi_encoder_directory

    return is_bi_encoder_directory(model)


def _peer_model(args: argparse.Namespace, teacher: Path) -> Path:
    """The model the peer runs: the teacher, or for a bi-encoder teacher a cross-encoder of the same size."""
    if not _is_bi_encoder(teacher):
        return teacher
    if args.peer_model:
        return Path(args.peer_model)
    if (LATENCY_CROSS_ENCODER / "config.json").is_file():
        return LATENCY_CROSS_ENCODER
    return _latency_benchmark()._fine_tuned_cross_encoder(args.data_dir, LATENCY_CROSS_ENCODER.parent)[0]


def _training_queries(data_dir: Path, count: int | None, work: Path) -> list[str]:
    """`rerank distill` arguments for the train queries: the BEIR directory, or a file of the first `count`."""
    if count is None:
        return ["--queries", str(data_dir), "--split", "train"]
    from crossencoder_haystack.data import load_beir

    dataset = load_beir(data_dir, "train")
    chosen = dataset.judged_query_ids()[:count]
    path = work / f"train-queries-{count}.txt"
    path.write_text("\n".join(dataset.queries[query_id] for query_id in chosen) + "\n", encoding="utf-8")
    return ["--queries", str(path), "--corpus", str(data_dir / "corpus.jsonl")]


def _distil(args: argparse.Namespace, teacher: Path, layers: int, queries: list[str], work: Path) -> dict:
    """The student of `layers` layers: `rerank distill` (timed), unless one is there already."""
    from crossencoder_haystack.training.distill_card import read_distillation_record

    directory = work / f"student-{layers}l"
    if args.redistill or not read_distillation_record(directory):
        minutes = _rerank(
            "distill", "--teacher", str(teacher), *queries, "--output", str(directory), "--layers", str(layers),
            "--max-minutes", str(args.max_minutes), "--pseudo-queries", str(args.pseudo_queries),
            "--retriever", args.retriever, "--cache-dir", str(work / "teacher-scores"),
            "--max-length", str(args.student_max_length),
        )  # fmt: skip
        (directory / "distill_minutes.txt").write_text(f"{minutes:.2f}\n")
    record = read_distillation_record(directory)
    minutes_file = directory / "distill_minutes.txt"
    record["command_minutes"] = float(minutes_file.read_text()) if minutes_file.exists() else None
    record["path"] = str(directory)
    return record


# --- data and contenders ----------------------------------------------------------------------------------------


def _test_candidates(data_dir: Path, count: int, docs: int):
    """The first `count` of a seeded shuffle of the judged test queries, each with BM25's top `docs`."""
    from crossencoder_haystack.data import load_beir
    from crossencoder_haystack.evaluation.first_stage import BM25FirstStage, corpus_documents

    dataset = load_beir(data_dir, "test")
    query_ids = sorted(dataset.judged_query_ids())
    random.Random(0).shuffle(query_ids)
    query_ids = query_ids[:count]
    bm25 = BM25FirstStage(corpus_documents(dataset))
    queries = [(qid, dataset.queries[qid], bm25.retrieve(qid, dataset.queries[qid], docs)) for qid in query_ids]
    qrels = {qid: {doc: grade for doc, grade in dataset.qrels[qid].items() if grade > 0} for qid in query_ids}
    return queries, qrels


def _contenders(args, teacher: Path, peer_model: Path, students: dict[int, dict], auto: dict) -> list[Contender]:
    wanted = args.precisions.split(",")
    precisions = [p for p in ("fp32", "auto") if p in wanted and (p == "fp32" or auto["resolved"] == "bf16")]
    cascade_layers = args.cascade_layers or min(students)
    contenders = [_peer(peer_model, args.docs)]
    for precision in precisions:
        contenders.append(_ours(f"teacher ({precision})", teacher, precision, args.docs))
        for layers, record in students.items():
            contenders.append(
                _ours(f"student {layers} layers ({precision})", Path(record["path"]), precision, args.docs)
            )
        for keep in _ints(args.cascade_keep):
            student = Path(students[cascade_layers]["path"])
            contenders.append(_cascade(f"cascade {cascade_layers} layers, keep {keep} ({precision})", student,
                                       teacher, keep, precision, args.docs))  # fmt: skip
    return contenders


def _peer(model: Path, top_k: int) -> Contender:
    from haystack_integrations.components.rankers.sentence_transformers import SentenceTransformersSimilarityRanker

    # trust_remote_code: a model with this package's segment-cosine head names its class in modules.json.
    ranker = SentenceTransformersSimilarityRanker(model=str(model), top_k=top_k, trust_remote_code=True)
    ranker.warm_up()
    return Contender(PEER, "peer", lambda q, d: ranker.run(query=q, documents=d)["documents"], f"on {model.name}")


def _ours(name: str, model: Path, precision: str, top_k: int) -> Contender:
    from haystack_integrations.components.rankers.crossencoder import CrossEncoderRanker

    ranker = CrossEncoderRanker(model=str(model), top_k=top_k, precision=precision)
    ranker.warm_up()
    rank = lambda q, d: ranker.run(query=q, documents=d)["documents"]  # noqa: E731
    return Contender(name, precision, rank, model.name, reset=lambda: _forget_document_embeddings(ranker))


def _cascade(name: str, student: Path, teacher: Path, keep: int, precision: str, top_k: int) -> Contender:
    from haystack_integrations.components.rankers.crossencoder import CascadeRanker, CrossEncoderRanker

    cascade = CascadeRanker(
        student=CrossEncoderRanker(model=str(student), top_k=top_k, precision=precision),
        teacher=CrossEncoderRanker(model=str(teacher), top_k=top_k, precision=precision),
        cascade_keep=keep,
    )
    cascade.warm_up()
    rank = lambda q, d: cascade.run(query=q, documents=d)["documents"]  # noqa: E731
    reset = lambda: _forget_document_embeddings(cascade.teacher)  # noqa: E731
    return Contender(name, precision, rank, f"{student.name} -> {teacher.name}", reset=reset)


def _forget_document_embeddings(ranker: Any) -> None:
    """Empty a bi-encoder's document-embedding cache (as benchmarks/latency.py does): every call encodes."""
    cache = getattr(getattr(ranker, "_scorer", None), "_cache", None)
    if cache is not None:
        cache.clear()


def _time_contenders(contenders: list[Contender], queries, repeats: int, journal, deadline: float | None) -> bool:
    """
    Every contender on every query, alternating query by query with the order rotating; scores from pass 1. Queries
    the journal holds are taken from it (a run stopped by `deadline` continues there); returns whether all ran.
    """
    by_name = {contender.name: contender for contender in contenders}
    done = journal.done()
    for (repeat, index), results in sorted(done.items()):
        query_id = queries[index][0]
        for name, result in results.items():
            by_name[name].latencies.append(result["latency"])
            if repeat == 0:
                by_name[name].run[query_id] = result["scores"]
    if done:
        print(f"{len(done)} of {repeats * len(queries)} timed queries taken from {journal.path}", flush=True)
    for contender in contenders:  # warm-up: first-run allocations, kernel selection
        contender.rank(queries[0][1], queries[0][2])
    for repeat in range(repeats):
        for index, (query_id, query, documents) in enumerate(queries):
            if (repeat, index) in done:
                continue
            if deadline is not None and time.monotonic() > deadline:
                return False
            shift = (repeat * len(queries) + index) % len(contenders)
            results = {}
            for contender in contenders[shift:] + contenders[:shift]:
                contender.reset()
                started = time.perf_counter()
                ranked = contender.rank(query, documents)
                latency = time.perf_counter() - started
                scores = {doc.id: float(doc.score) for doc in ranked if doc.score is not None}
                contender.latencies.append(latency)
                if repeat == 0:
                    contender.run[query_id] = scores
                results[contender.name] = {"latency": latency, "scores": scores if repeat == 0 else None}
            journal.add(repeat, index, query_id, results)
            if (index + 1) % 25 == 0:
                print(f"pass {repeat + 1}: {index + 1}/{len(queries)} queries", flush=True)
    return True


class TimingJournal:
    """
    The timed run, a line per query (each contender's latency and scores), so that a run stopped by a session's end
    continues on the next one: only on the same CPU, caps, contenders, queries and settings (the header says which);
    a journal of another setting is set aside (renamed) and the run starts afresh.
    """

    def __init__(self, path: Path) -> None:
        self.path = path

    def open(self, header: dict[str, Any]) -> int:
        """Start or continue the journal for `header`; returns how many sessions it now spans."""
        lines = self._lines()
        if lines and lines[0].get("header") != header:
            aside = self.path.with_name(f"{self.path.stem}-set-aside-{int(time.time())}{self.path.suffix}")
            self.path.rename(aside)
            print(f"{self.path} was for another CPU or setting: moved to {aside.name}, starting afresh", flush=True)
            lines = []
        sessions = 1 + sum(1 for line in lines if "session" in line)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self.path.open("a", encoding="utf-8") as journal:
            if not lines:
                journal.write(json.dumps({"header": header}) + "\n")
            journal.write(json.dumps({"session": sessions, "started": time.strftime("%Y-%m-%d %H:%M:%S")}) + "\n")
        return sessions

    def done(self) -> dict[tuple[int, int], dict[str, Any]]:
        return {(line["repeat"], line["index"]): line["results"] for line in self._lines() if "results" in line}

    def add(self, repeat: int, index: int, query_id: str, results: dict[str, Any]) -> None:
        line = {"repeat": repeat, "index": index, "query_id": query_id, "results": results}
        with self.path.open("a", encoding="utf-8") as journal:
            journal.write(json.dumps(line) + "\n")

    def _lines(self) -> list[dict[str, Any]]:
        if not self.path.exists():
            return []
        lines = []
        for text in self.path.read_text(encoding="utf-8").splitlines():
            try:
                lines.append(json.loads(text))
            except json.JSONDecodeError:  # a line cut by a stop mid-write: that query runs again
                continue
        return lines


def _timed_queries(contenders: list[Contender], queries) -> list:
    """The queries every contender has been timed on (all of them once a run is complete)."""
    return [query for query in queries if all(query[0] in contender.run for contender in contenders)]


def _journal_header(environment: dict[str, Any], contenders: list[Contender], queries, students, args) -> dict:
    """What must not change between the sessions of one timed run."""
    return {
        "cpu": environment["cpu"],
        "cpu_flags": environment["cpu_flags"],
        "isa_caps": environment["isa_caps"],
        "cores": environment["cpu_count"],
        "versions": environment["versions"],
        "contenders": [contender.name for contender in contenders],
        "students": {str(layers): [record.get("steps"), record.get("minutes")] for layers, record in students.items()},
        "queries": [query_id for query_id, _, _ in queries],
        "docs": args.docs,
        "repeats": args.repeats,
    }


# --- results ----------------------------------------------------------------------------------------------------


def _summarize(contenders: list[Contender], queries, qrels) -> list[dict[str, Any]]:
    from crossencoder_haystack.evaluation.metrics import evaluate_rankings
    from crossencoder_haystack.training.agreement import teacher_agreement

    query_ids = [query_id for query_id, _, _ in queries]
    by_name = {contender.name: contender for contender in contenders}
    peer = by_name[PEER]
    teacher = by_name.get("teacher (fp32)") or by_name["teacher (auto)"]  # the reference: fp32 where it ran
    peer_median = statistics.median(peer.latencies)
    teacher_ndcg = None
    rows = []
    for contender in contenders:
        rankings = {qid: sorted(run, key=lambda doc: -run[doc]) for qid, run in contender.run.items()}
        ndcg = float(evaluate_rankings(qrels, query_ids, rankings, ["ndcg@10"])["ndcg@10"])
        teacher_ndcg = ndcg if contender is teacher else teacher_ndcg
        agreement = teacher_agreement(teacher.run, contender.run)
        latencies = sorted(contender.latencies)
        median = statistics.median(latencies)
        rows.append(
            {
                "contender": contender.name,
                "precision": contender.precision,
                "note": contender.note,
                "median_s": median,
                "p95_s": latencies[min(len(latencies) - 1, round(0.95 * (len(latencies) - 1)))],
                "vs_peer": peer_median / median,
                "ndcg@10": ndcg,
                "ndcg@10_vs_teacher": agreement.ndcg_at_10,
                "spearman_vs_teacher": agreement.spearman,
            }
        )
    for row in rows:
        row["points_vs_teacher"] = (row["ndcg@10"] - teacher_ndcg) * 100  # type: ignore[operator]
    return rows


def _targets(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Issue #21's target at each precision: the fastest student or cascade within 1 point of the teacher."""
    targets = []
    for precision in dict.fromkeys(row["precision"] for row in rows if row["precision"] != "peer"):
        eligible = [
            row
            for row in rows
            if row["precision"] == precision
            and row["contender"].startswith(("student", "cascade"))
            and row["points_vs_teacher"] >= -TARGET_POINTS
        ]
        best = max(eligible, key=lambda row: row["vs_peer"], default=None)
        targets.append(
            {
                "precision": precision,
                "best": best["contender"] if best else None,
                "vs_peer": best["vs_peer"] if best else None,
                "points_vs_teacher": best["points_vs_teacher"] if best else None,
                "met": bool(best and best["vs_peer"] >= TARGET_SPEED_UP),
            }
        )
    return targets


def _markdown(rows, targets, environment, args, teacher: Path, peer_model: Path, students: dict) -> str:
    lines = [
        "# `rerank distill` and the cascade: students and cascades against the peer (SciFact)",
        "",
        _environment_lines(environment),
        f"- teacher: `{teacher}`; the peer runs `{peer_model}`",
        f"- test: SciFact test, {environment.get('timed_queries', args.queries)} queries (seeded order), BM25 "
        f"top-{args.docs} (title + text) each; "
        f"{args.repeats} timed pass(es), contenders alternating query by query; timed in "
        f"{environment.get('timing_sessions', 1)} session(s) on this CPU (a stopped run continues from its journal)",
        "",
        "| student | distilled on | steps | minutes (command) | agreement after (nDCG@10 vs teacher, Spearman) |",
        "|---|---|---|---|---|",
    ]
    for layers, record in students.items():
        data, after = record.get("data", {}), record.get("agreement", {}).get("after", {})
        lines.append(
            f"| {layers} layers ({record.get('student', '')}) | {data.get('queries')} queries + "
            f"{data.get('pseudo_queries')} pseudo-queries, {data.get('training_pairs')} pairs | "
            f"{record.get('steps')} | "
            f"{_number(record.get('command_minutes'), '.1f')} | {_number(after.get('ndcg@10_vs_teacher'))}, "
            f"{_number(after.get('spearman'))} |"
        )
    lines += [
        "",
        "| contender | median s/query | p95 s | vs peer | nDCG@10 | vs the teacher (points) | nDCG@10 vs teacher's "
        "ranking | Spearman vs teacher | note |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        lines.append(
            f"| {row['contender']} | {row['median_s']:.3f} | {row['p95_s']:.3f} | {row['vs_peer']:.2f}x | "
            f"{row['ndcg@10']:.4f} | {row['points_vs_teacher']:+.2f} | {_number(row['ndcg@10_vs_teacher'])} | "
            f"{_number(row['spearman_vs_teacher'])} | {row['note']} |"
        )
    reference = next((row["contender"] for row in rows if row["contender"] == "teacher (fp32)"), "teacher (auto)")
    lines += ["", f"Points, nDCG@10 and Spearman vs the teacher: against `{reference}`.", "",
              f"Target: a student or cascade >= {TARGET_SPEED_UP}x the peer within {TARGET_POINTS} point of "
              "the teacher's nDCG@10 (fp32 = what an AVX2-only CPU runs).", "",
              "| precision | fastest within 1 point | vs peer | points | met |", "|---|---|---|---|---|"]  # fmt: skip
    if not targets:
        lines.append("| - | partial run: not decided (the target is over all the test queries) | - | - | - |")
    for target in targets:
        lines.append(
            f"| {target['precision']} | {target['best'] or '-'} | {_number(target['vs_peer'], '.2f')}x | "
            f"{_number(target['points_vs_teacher'], '+.2f')} | {'yes' if target['met'] else '**no**'} |"
        )
    return "\n".join(lines) + "\n"


def _number(value: float | None, spec: str = ".4f") -> str:
    return "-" if value is None else format(value, spec)


if __name__ == "__main__":
    main()

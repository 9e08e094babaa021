"""The teacher's scores of (query, document) pairs: computed once, kept on disk, resumed after an interruption.

On a CPU the teacher's forward passes are the expensive part of a distillation, so every score is appended to a
JSONL file as soon as it exists and a later run (another student size, a longer budget, a run after Ctrl-C) scores
only the pairs still missing. One file per teacher: `teacher-<key>.jsonl` where the key is the fingerprint of the
teacher directory (its files: a retrained teacher starts a new file), its `max_length` and precision. Each line is
`{"pair": <sha256 of query and text, 32 hex>, "logit": <raw teacher score>}`; a line cut off by a crash is skipped.

The teacher runs through `CrossEncoderRanker` on its fastest faithful backend (`teacher_backend="auto"`):

- a bi-encoder reranker on torch: its document-embedding cache encodes each corpus document once, whatever the
  number of queries retrieving it, which makes it the cheapest teacher there is;
- a cross-encoder as an OpenVINO float32 export when OpenVINO is installed (exported once into the cache directory;
  faster than torch at the same nDCG@10, see benchmarks/results/latency-amd-epyc-avx2.md), else on torch;
- in both, `precision="auto"`: bfloat16 where the CPU multiplies it natively (AMX / AVX512-BF16), float32 elsewhere.
"""

import hashlib
import importlib.util
import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from haystack import Document, logging

from crossencoder_haystack.training.distill_data import DistillationSet

if TYPE_CHECKING:
    from haystack_integrations.components.rankers.crossencoder._engine.precision import Precision
    from haystack_integrations.components.rankers.crossencoder._engine.scoring import Backend

logger = logging.getLogger(__name__)

TeacherBackend = Literal["auto", "torch", "onnx", "openvino"]
TEACHER_BACKENDS: tuple[str, ...] = ("auto", "torch", "onnx", "openvino")
_SEPARATOR = "\x1f"


def pair_key(query: str, text: str) -> str:
    """The cache key of a (query, document text) pair."""
    return hashlib.sha256(f"{query}{_SEPARATOR}{text}".encode()).hexdigest()[:32]


class TeacherScoreCache:
    """
    Raw teacher scores by pair, read from and appended to one JSONL file.

    ```python
    cache = TeacherScoreCache("cache/teacher-abc.jsonl")
    cache.put_many([("what is bm25?", "BM25 is a ranking function.", 4.2)])
    cache.get("what is bm25?", "BM25 is a ranking function.")  # 4.2, also in a later process
    ```
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path).expanduser()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._scores: dict[str, float] = {}
        if self.path.is_file():
            with self.path.open(encoding="utf-8") as lines:
                for line in lines:
                    try:
                        record = json.loads(line)
                        self._scores[str(record["pair"])] = float(record["logit"])
                    except (ValueError, KeyError, TypeError):
                        continue  # a line cut off by an interrupted run
        self.loaded = len(self._scores)

    def __len__(self) -> int:
        return len(self._scores)

    def get(self, query: str, text: str) -> float | None:
        """The teacher's score of the pair, or None if it was never scored."""
        return self._scores.get(pair_key(query, text))

    def put_many(self, scored: list[tuple[str, str, float]]) -> None:
        """Append `(query, text, logit)` scores to the file (flushed at once) and to memory."""
        with self.path.open("a", encoding="utf-8") as output:
            for query, text, logit in scored:
                key = pair_key(query, text)
                self._scores[key] = float(logit)
                output.write(json.dumps({"pair": key, "logit": float(logit)}) + "\n")


def teacher_cache_path(
    cache_dir: str | Path, teacher: str | Path, max_length: int | None = None, precision: str = "auto"
) -> Path:
    """The score file of a teacher (at a max_length and precision) in `cache_dir`."""
    from crossencoder_haystack.evaluation.fingerprints import json_fingerprint, model_fingerprint

    identity = {"teacher": model_fingerprint(teacher), "max_length": max_length, "precision": precision}
    key = json_fingerprint(identity)[:16]
    return Path(cache_dir).expanduser() / f"teacher-{key}.jsonl"


@dataclass
class TeacherRanker:
    """The teacher as loaded for scoring, and how (for the model card)."""

    ranker: Any  # a warm CrossEncoderRanker
    backend: str
    description: str


def load_teacher(
    teacher: str | Path,
    *,
    backend: TeacherBackend = "auto",
    precision: "Precision" = "auto",
    max_length: int | None = None,
    batch_size: int = 32,
    export_dir: str | Path | None = None,
) -> TeacherRanker:
    """
    The teacher as a warm `CrossEncoderRanker` on its fastest faithful backend (see the module docstring).

    :param teacher: The teacher directory (a cross-encoder or a bi-encoder reranker, or an export of one).
    :param backend: `"auto"`, `"torch"`, `"onnx"` or `"openvino"` (`"onnx"`/`"openvino"` export the teacher first
        unless it is an export already).
    :param precision: The ranker's `precision`: `"auto"` (bf16 where the CPU multiplies it natively: scores move in
        the third decimal), or `"fp32"` for scores equal to float32's on any machine.
    :param max_length: Tokens per pair (per text for a bi-encoder); None keeps the teacher's.
    :param batch_size: Pairs per forward pass.
    :param export_dir: Where an export made for scoring is kept (reused by later runs).
    :raises ValueError: If `backend` is unknown.
    """
    from haystack_integrations.components.rankers.crossencoder import CrossEncoderRanker
    from haystack_integrations.components.rankers.crossencoder._engine.bi_encoder_scoring import is_bi_encoder_directory
    from haystack_integrations.components.rankers.crossencoder._engine.manifest import read_manifest

    if backend not in TEACHER_BACKENDS:
        msg = f"teacher_backend must be one of {', '.join(TEACHER_BACKENDS)}, got {backend!r}."
        raise ValueError(msg)
    directory = Path(teacher).expanduser()
    exported: list[Backend] = [name for name in ("openvino", "onnx") if name in read_manifest(directory)]
    chosen: Backend
    if backend == "auto":
        chosen = _auto_backend(directory, exported, is_bi_encoder_directory(directory))
    else:
        chosen = backend
    source = directory
    if chosen != "torch" and chosen not in exported:
        export = _export_for_scoring(directory, chosen, export_dir)
        if export is None:
            chosen = "torch"
        else:
            source = export
    ranker = CrossEncoderRanker(
        model=str(source), backend=chosen, max_length=max_length, batch_size=batch_size, precision=precision
    )
    ranker.warm_up()
    return TeacherRanker(ranker, chosen, f"{chosen}, precision {precision}, from {source}")


def _auto_backend(directory: Path, exported: "list[Backend]", bi_encoder: bool) -> "Backend":
    if exported:
        return exported[0]
    if bi_encoder:
        return "torch"  # the document-embedding cache beats any engine here
    return "openvino" if importlib.util.find_spec("openvino") is not None else "torch"


def _export_for_scoring(directory: Path, backend: str, export_dir: str | Path | None) -> Path | None:
    """A float32 export of the teacher for `backend` (made once, in `export_dir`); None if exporting fails."""
    from crossencoder_haystack.evaluation.fingerprints import model_fingerprint
    from crossencoder_haystack.export.exporting import export_cross_encoder
    from haystack_integrations.components.rankers.crossencoder._engine.manifest import read_manifest

    if export_dir is None:
        return None
    target = Path(export_dir).expanduser() / f"teacher-{backend}-{model_fingerprint(directory)[:16]}"
    if backend in read_manifest(target):
        return target
    try:
        export_cross_encoder(directory, target, backend=backend)
    except Exception as error:  # any export failure: score on torch instead
        logger.warning(
            "Could not export the teacher for {backend} ({error}); scoring on torch.", backend=backend, error=error
        )
        return None
    return target


@dataclass
class TeacherScoring:
    """What one scoring pass did."""

    scored: int = 0  # pairs the teacher scored in this run
    reused: int = 0  # pairs found in the cache
    seconds: float = 0.0
    stopped_early: bool = False  # the time budget ran out before every pair was scored


def score_pairs(
    teacher: Any,
    dataset: DistillationSet,
    query_ids: list[str],
    cache: TeacherScoreCache,
    *,
    deadline: float | None = None,
    on_pairs: Callable[[int], None] = lambda count: None,
    queries_per_call: int = 4,
) -> TeacherScoring:
    """
    Score every (query, candidate) pair of `query_ids` the cache does not hold yet, in that order, a few queries
    per call (their pairs share the teacher's batches), appending each call's scores to the cache.

    :param teacher: A warm `CrossEncoderRanker`.
    :param dataset: The queries, corpus and candidates.
    :param query_ids: The queries to score, most important first (scoring stops at `deadline`).
    :param cache: Where scores are looked up and stored.
    :param deadline: A `time.monotonic()` value after which no new call starts.
    :param on_pairs: Called with the number of pairs done (scored or found in the cache) after each step.
    :param queries_per_call: Queries scored together in one `run_batch`.
    """
    started = time.monotonic()
    result = TeacherScoring()
    queries = dataset.all_queries()
    pending: list[tuple[str, list[str]]] = []
    for position, query_id in enumerate(query_ids):
        missing = [
            doc_id
            for doc_id in dataset.candidates.get(query_id, [])
            if cache.get(queries[query_id], dataset.corpus[doc_id]) is None
        ]
        known = len(dataset.candidates.get(query_id, [])) - len(missing)
        result.reused += known
        on_pairs(known)
        if missing:
            pending.append((query_id, missing))
        if len(pending) >= queries_per_call or (pending and position == len(query_ids) - 1):
            if deadline is not None and time.monotonic() >= deadline:
                result.stopped_early = True
                break
            result.scored += _score_call(teacher, dataset, queries, pending, cache)
            on_pairs(sum(len(doc_ids) for _, doc_ids in pending))
            pending = []
    result.seconds = time.monotonic() - started
    return result


def _score_call(
    teacher: Any,
    dataset: DistillationSet,
    queries: dict[str, str],
    pending: list[tuple[str, list[str]]],
    cache: TeacherScoreCache,
) -> int:
    """One `run_batch` of the teacher over a few queries' missing pairs; raw scores (identity, no fusion)."""
    documents = [[Document(id=doc_id, content=dataset.corpus[doc_id]) for doc_id in doc_ids] for _, doc_ids in pending]
    ranked = teacher.run_batch(
        queries=[queries[query_id] for query_id, _ in pending],
        documents=documents,
        top_k=max(len(docs) for docs in documents),
        activation="identity",
        scale=1.0,
        first_stage_weight=0.0,
    )["documents"]
    scored = [
        (queries[query_id], document.content, float(document.score))
        for (query_id, _), results in zip(pending, ranked, strict=True)
        for document in results
        if document.score is not None
    ]
    cache.put_many(scored)
    return len(scored)

"""The starter model: a small cross-encoder the demo fine-tunes once, offline, when no trained reranker is at hand.

Recipe (the variants tried and their numbers are in examples/hr_candidate_search/README.md):

- base: the bundled all-MiniLM-L6-v2 bi-encoder with the dense head on the mean-pooled pair (the recipe measured
  for this set; `train(...)`'s default for bi-encoders is now the segment-cosine head);
- passages: the CVs cut by the ranker's own splitting core (`split_document`) into the passages the demo
  pipeline will score, so that training and ranking see the same texts;
- labelled lists, from the HR set's `train` split only (its `test` queries are never read here): for each
  (train query, CV graded >= 2) a list of that CV's best passage (by BM25 over the passages) and hard negatives,
  the best passages of the CVs graded 0 that BM25 ranks highest for the query, labelled with their grades;
- self-supervised lists from the corpus: pseudo-queries made of the rarest words of a CV's bullet lines, the
  passage holding the line as the positive and BM25-hard passages of other CVs as negatives. 18 labelled
  queries alone teach too little; these teach "the passage that says it" in both languages;
- LambdaLoss over the lists, a fixed seed, a bounded number of steps: a few minutes on a 2-core CPU.
"""

import json
import random
import re
import shutil
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from haystack import Document

from crossencoder_haystack.data import BeirDataset
from crossencoder_haystack.demo.dataset import load_hr_dataset

STARTER_MODEL_NAME = "hr-starter-v1"
STARTER_MANIFEST = "starter.json"
CACHE_APP_NAME = "crossencoder-haystack"

TRAIN_MAX_LENGTH = 128
# The pipeline's PassageSplitter keeps 64 tokens for the query and 3 special tokens: 160 gives 93-token passages,
# the size the model was trained on (query + passage + specials stay within 128 tokens for queries up to 32).
RANKING_MAX_LENGTH = 160
PASSAGE_TOKENS = 93
OVERLAP_TOKENS = 16
LIST_SIZE = 8
HARD_NEGATIVE_POOL = 15
PSEUDO_QUERIES_PER_CV = 3
DEFAULT_STEPS = 60
DEFAULT_SEED = 42

_BULLET = re.compile(r"^\s*[-*•]\s+(.+)$", re.MULTILINE)
_WORD = re.compile(r"[^\W\d_][\w'+#.-]*[\w+#]|[^\W\d_]")
_MIN_BULLET_WORDS = 6


def cache_root(cache_dir: str | Path | None = None) -> Path:
    """This package's cache directory: `cache_dir`, or `platformdirs.user_cache_dir("crossencoder-haystack")`."""
    if cache_dir is not None:
        return Path(cache_dir).expanduser()
    from platformdirs import user_cache_dir

    return Path(user_cache_dir(CACHE_APP_NAME))


def starter_model_dir(cache_dir: str | Path | None = None) -> Path:
    """Where the starter model lives: `<cache>/models/hr-starter-v1`."""
    return cache_root(cache_dir) / "models" / STARTER_MODEL_NAME


def is_starter_model(path: str | Path) -> bool:
    """Whether `path` holds a finished starter model (its manifest is written last, after the weights)."""
    path = Path(path)
    return (path / STARTER_MANIFEST).is_file() and (path / "config.json").is_file()


def ranking_settings(path: str | Path) -> dict[str, int]:
    """The `build_rerank_pipeline` settings the starter model was trained for (`max_length`, `overlap_tokens`)."""
    try:
        manifest = json.loads((Path(path) / STARTER_MANIFEST).read_text(encoding="utf-8"))
        return {key: int(value) for key, value in manifest["ranking"].items()}
    except (OSError, ValueError, KeyError, TypeError):
        return {"max_length": RANKING_MAX_LENGTH, "overlap_tokens": OVERLAP_TOKENS}


@dataclass
class StarterBuild:
    """A finished starter-model build: where it is, how long it took and what it learned from."""

    path: Path
    seconds: float
    steps: int
    labelled_lists: int
    pseudo_lists: int


def cv_passages(dataset: BeirDataset, tokenizer: Any) -> list[Document]:
    """Every CV cut into the passages the demo's ranker scores (same splitting core, budget and overlap)."""
    from haystack_integrations.components.preprocessors.crossencoder import split_document

    passages = []
    for doc_id, entry in dataset.corpus.items():
        document = Document(id=doc_id, content=entry["text"])
        passages.extend(split_document(document, tokenizer, PASSAGE_TOKENS, OVERLAP_TOKENS))
    return passages


class PassageIndex:
    """BM25 over the passages, on Turkish-aware folded text (so "İşe alım" finds "işe alım")."""

    def __init__(self, passages: list[Document]) -> None:
        from haystack.components.retrievers.in_memory import InMemoryBM25Retriever
        from haystack.document_stores.in_memory import InMemoryDocumentStore

        from crossencoder_haystack.demo.display import fold

        self._fold = fold
        self.passages = {_passage_key(passage): passage for passage in passages}
        store = InMemoryDocumentStore()
        store.write_documents(
            [
                Document(id=key, content=fold(passage.content or "")[0], meta={"source_id": passage.meta["source_id"]})
                for key, passage in self.passages.items()
            ]
        )
        self._retriever = InMemoryBM25Retriever(document_store=store, top_k=len(self.passages))

    def ranked(self, query: str) -> list[tuple[str, Document]]:
        """(CV id, passage) pairs for `query`, best BM25 match first (passages with no shared word are left out)."""
        hits = self._retriever.run(query=self._fold(query)[0])["documents"]
        return [(hit.meta["source_id"], self.passages[hit.id]) for hit in hits]

    def best_passages(self, ranked: list[tuple[str, Document]], cv_ids: list[str]) -> dict[str, Document]:
        """Each CV's best passage in `ranked` (`ranked(query)`), its first passage when it is not there."""
        best: dict[str, Document] = {}
        for cv_id, passage in ranked:
            best.setdefault(cv_id, passage)
        for passage in self.passages.values():
            if passage.meta["source_id"] in cv_ids and passage.meta["passage_index"] == 0:
                best.setdefault(passage.meta["source_id"], passage)
        return best


def labelled_lists(dataset: BeirDataset, index: PassageIndex, rng: random.Random) -> list[dict[str, Any]]:
    """
    LambdaLoss lists from judged queries: per (query, CV graded >= 2), the CV's best passage and `LIST_SIZE - 1`
    others: one CV graded 1 (when there is one) and BM25-hard CVs graded 0, each by its best passage, labelled
    with their grades.
    """
    rows = []
    cv_ids = list(dataset.corpus)
    for query_id, query in dataset.queries.items():
        grades = dataset.qrels.get(query_id, {})
        ranked = index.ranked(query)
        best = index.best_passages(ranked, cv_ids)
        by_bm25 = list(dict.fromkeys([cv_id for cv_id, _ in ranked] + cv_ids))
        hard = [cv_id for cv_id in by_bm25 if grades.get(cv_id, 0) == 0][:HARD_NEGATIVE_POOL]
        weak = [cv_id for cv_id in cv_ids if grades.get(cv_id, 0) == 1]
        for cv_id in cv_ids:
            if grades.get(cv_id, 0) < 2:
                continue
            others = rng.sample(weak, 1) if weak else []
            others += rng.sample(hard, min(len(hard), LIST_SIZE - 1 - len(others)))
            listed = [cv_id, *others]
            rows.append(
                {
                    "query": query,
                    "documents": [best[item].content for item in listed],
                    "labels": [float(grades.get(item, 0)) for item in listed],
                }
            )
    return rows


def pseudo_query(line: str, document_frequency: Counter, rng: random.Random) -> str | None:
    """2-5 of the rarest words of a CV line, in their order: a keyword query the line answers."""
    from crossencoder_haystack.demo.display import fold

    words = [word for word in _WORD.findall(line) if len(word) > 2]
    if len(words) < 3:
        return None
    count = min(len(words), rng.randint(2, 5))
    rarest = sorted(range(len(words)), key=lambda position: document_frequency[fold(words[position])[0]])[:count]
    return " ".join(words[position] for position in sorted(rarest))


def pseudo_lists(
    dataset: BeirDataset, passages: list[Document], index: PassageIndex, rng: random.Random
) -> list[dict[str, Any]]:
    """
    Self-supervised LambdaLoss lists from the corpus alone: per CV, `PSEUDO_QUERIES_PER_CV` bullet lines become
    pseudo-queries; the passage holding the line is the positive, passages of other CVs that BM25 ranks highest for
    the pseudo-query are the negatives.
    """
    from crossencoder_haystack.demo.display import fold

    document_frequency = Counter(
        word for entry in dataset.corpus.values() for word in set(re.findall(r"\w+", fold(entry["text"])[0]))
    )
    by_cv: dict[str, list[Document]] = {}
    for passage in passages:
        by_cv.setdefault(passage.meta["source_id"], []).append(passage)
    rows = []
    for cv_id, entry in dataset.corpus.items():
        lines = [match for match in _BULLET.finditer(entry["text"]) if len(match.group(1).split()) >= _MIN_BULLET_WORDS]
        for match in rng.sample(lines, min(PSEUDO_QUERIES_PER_CV, len(lines))):
            query = pseudo_query(match.group(1), document_frequency, rng)
            if query is None:
                continue
            positive = max(by_cv[cv_id], key=lambda passage: _overlap(passage, match.start(1), match.end(1)))
            negatives = list(
                dict.fromkeys(passage.content for other, passage in index.ranked(query) if other != cv_id)
            )[:HARD_NEGATIVE_POOL]
            while len(negatives) < LIST_SIZE - 1:
                other = rng.choice([passage for passage in passages if passage.meta["source_id"] != cv_id])
                negatives.append(other.content)
            chosen = rng.sample(negatives, LIST_SIZE - 1)
            labels = [1.0] + [0.0] * len(chosen)
            rows.append({"query": query, "documents": [positive.content, *chosen], "labels": labels})
    return rows


def starter_training_lists(
    dataset: BeirDataset | None = None, tokenizer: Any = None, seed: int = DEFAULT_SEED
) -> tuple[list[dict[str, Any]], int]:
    """
    The starter model's training rows (LambdaLoss lists) and how many of them are labelled (they come first).

    :param dataset: The judged queries to learn from; default the HR set's `train` split. Never pass `test`.
    :param tokenizer: The model's fast tokenizer; default the bundled all-MiniLM-L6-v2's.
    :param seed: Seeds the sampling of negatives and pseudo-queries.
    """
    dataset = dataset if dataset is not None else load_hr_dataset("train")
    if tokenizer is None:
        from transformers import AutoTokenizer

        from crossencoder_haystack.bundled_model import bundled_minilm_path

        tokenizer = AutoTokenizer.from_pretrained(str(bundled_minilm_path()))
    rng = random.Random(seed)
    passages = cv_passages(dataset, tokenizer)
    index = PassageIndex(passages)
    labelled = labelled_lists(dataset, index, rng)
    return labelled + pseudo_lists(dataset, passages, index, rng), len(labelled)


def build_starter_model(
    output: str | Path | None = None,
    *,
    base_model: str | Path | None = None,
    max_steps: int = DEFAULT_STEPS,
    seed: int = DEFAULT_SEED,
    training_lists: tuple[list[dict[str, Any]], int] | None = None,
    console: Any = None,
    show_progress: bool = True,
) -> StarterBuild:
    """
    Fine-tune the starter model and save it to `output` (default the user cache), all or nothing: it is trained
    into a temporary sibling directory that replaces `output` only when finished, so an interrupted build never
    leaves a half model that later runs would reuse.

    :param output: The model directory; default `starter_model_dir()`.
    :param base_model: What to fine-tune; default the bundled all-MiniLM-L6-v2.
    :param max_steps: Optimizer steps (4 lists of 8 passages each).
    :param seed: Seeds data sampling, the new head and the data order.
    :param training_lists: `starter_training_lists(...)`'s result, if already built.
    :param console: A `rich.console.Console` for the explanation; default stdout.
    :param show_progress: Show the training progress bar.
    """
    from rich.console import Console
    from rich.markup import escape

    from crossencoder_haystack.training import train
    from crossencoder_haystack.training.data import TrainingData

    console = console or Console()
    output = Path(output) if output is not None else starter_model_dir()
    started = time.monotonic()
    rows, labelled = training_lists if training_lists is not None else starter_training_lists(seed=seed)
    console.print(
        f"Building the starter model: {labelled} lists from the 18 train queries + {len(rows) - labelled} "
        f"self-supervised lists from the CVs, {max_steps} LambdaLoss steps (a few minutes on a CPU, once)."
    )
    building = output.with_name(f"{output.name}.building")
    shutil.rmtree(building, ignore_errors=True)
    try:
        result = train(
            TrainingData(rows, "lists", "hr_candidate_search train split + corpus pseudo-queries"),
            building,
            base_model=base_model,
            eval_fraction=0,
            loss="lambda",
            max_steps=max_steps,
            batch_size=4,
            learning_rate=2e-4,
            head_learning_rate=2e-3,
            head="dense",
            max_length=TRAIN_MAX_LENGTH,
            seed=seed,
            mini_batch_size=32,
            show_progress=show_progress,
        )
        seconds = time.monotonic() - started
        manifest = {
            "name": STARTER_MODEL_NAME,
            "built_seconds": round(seconds, 1),
            "steps": result.steps,
            "labelled_lists": labelled,
            "pseudo_lists": len(rows) - labelled,
            "seed": seed,
            "ranking": {"max_length": RANKING_MAX_LENGTH, "overlap_tokens": OVERLAP_TOKENS},
        }
        (building / STARTER_MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
        _point_model_card_at(building, output)
        shutil.rmtree(output, ignore_errors=True)
        output.parent.mkdir(parents=True, exist_ok=True)
        building.replace(output)
    finally:
        shutil.rmtree(building, ignore_errors=True)
    console.print(f"Starter model built in {seconds / 60:.1f} min and cached in {escape(str(output))}.")
    return StarterBuild(output, seconds, result.steps, labelled, len(rows) - labelled)


def _point_model_card_at(building: Path, output: Path) -> None:
    """The model card names the directory it was saved in; make it name where the model ends up."""
    card = building / "README.md"
    if card.is_file():
        card.write_text(card.read_text(encoding="utf-8").replace(str(building), str(output)), encoding="utf-8")


def _passage_key(passage: Document) -> str:
    return f"{passage.meta['source_id']}#{passage.meta['passage_index']}"


def _overlap(passage: Document, start: int, end: int) -> int:
    return min(end, passage.meta["split_idx_end"]) - max(start, passage.meta["split_idx_start"])

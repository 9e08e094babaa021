"""The rankers an evaluation compares, each given on the command line as one `--ranker` value:

- a model directory: a `CrossEncoderRanker(model=DIR, ...)` with the evaluation's ranker options;
- a Haystack YAML file holding one component (`type:` + `init_parameters:`) or a pipeline with one ranker in it
  (`components:` + `connections:`); append `#name` to pick a component of a pipeline that has several rankers.
  Any ranker taking `query` and `documents` works (`SentenceTransformersSimilarityRanker`, `CohereRanker`, ...);
- `none`: no reranking, the first stage alone.

Every ranker scores the same first-stage candidates. Its identity (class, settings that change scores, and the
fingerprint of a local model directory) keys the score cache.
"""

import inspect
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from haystack import Document

from crossencoder_haystack.evaluation.fingerprints import json_fingerprint, model_fingerprint

NO_RANKER = "none"

# Settings that change speed or logging but not scores, so changing them keeps the cached scores valid.
_SETTINGS_NOT_CHANGING_SCORES = frozenset(
    {
        "top_k",
        "batch_size",
        "show_progress_bar",
        "progress_bar",
        "device",
        "token",
        "api_key",
        "num_threads",
        "cache_size",
        "max_tokens_per_batch",
        "timeout",
        "max_retries",
    }
)


@dataclass
class RankerUnderTest:
    """
    One ranker of an evaluation: a Haystack ranker component plus its name in reports and its cache identity.

    :param name: The name used in the table, the run files and results.json.
    :param component: The ranker component (`run(query=..., documents=..., top_k=...)`).
    :param spec: What the user passed (`--ranker` value).
    :param identity: The score-cache key: class, score-relevant settings and model fingerprint.
    :param settings: The component's serialized form (`to_dict()`), without secrets, for results.json.
    """

    name: str
    component: Any
    spec: str
    identity: str
    settings: dict[str, Any]
    model_calls: int = 0
    _warmed_up: bool = field(default=False, repr=False)

    def warm_up(self) -> None:
        """Load the model (once); evaluation calls this only when something needs scoring."""
        if not self._warmed_up:
            if hasattr(self.component, "warm_up"):
                self.component.warm_up()
            self._warmed_up = True

    def score(self, query: str, documents: list[Document]) -> dict[str, float | None]:
        """
        Run the ranker on `documents` and return every input document's score.

        :param query: The query text.
        :param documents: The candidates (unique ids).
        :returns: Document id -> score; None for a document the ranker did not return (e.g. below its threshold),
            -inf for one it returned without a score.
        """
        scores: dict[str, float | None] = dict.fromkeys((document.id for document in documents), None)
        if not documents:
            return scores
        self.warm_up()
        self.model_calls += 1
        arguments: dict[str, Any] = {"query": query, "documents": documents}
        if _accepts(self.component.run, "top_k"):
            arguments["top_k"] = len(documents)
        for ranked in self.component.run(**arguments)["documents"]:
            if ranked.id in scores:
                # Returned without a score (e.g. no text to score): it ranks after every scored document.
                scores[ranked.id] = float("-inf") if ranked.score is None else float(ranked.score)
        return scores

    def timed_score(self, query: str, documents: list[Document]) -> tuple[dict[str, float | None], float]:
        """`score` and the wall time it took, in seconds."""
        start = time.perf_counter()
        scores = self.score(query, documents)
        return scores, time.perf_counter() - start

    @property
    def model(self) -> str | None:
        model = self.settings.get("init_parameters", {}).get("model")
        return None if model is None else str(model)

    @property
    def backend(self) -> str | None:
        backend = self.settings.get("init_parameters", {}).get("backend")
        return None if backend is None else str(backend)


def _accepts(function: Any, parameter: str) -> bool:
    try:
        return parameter in inspect.signature(function).parameters
    except (TypeError, ValueError):
        return False


def _takes_query_and_documents(instance: Any) -> bool:
    run = getattr(instance, "run", None)
    return run is not None and _accepts(run, "query") and _accepts(run, "documents")


def _serialized(component: Any) -> dict[str, Any]:
    if hasattr(component, "to_dict"):
        try:
            return component.to_dict()
        except Exception:  # a component that cannot serialize is still usable, keyed by its type alone
            pass
    return {"type": f"{type(component).__module__}.{type(component).__name__}", "init_parameters": {}}


def _identity(settings: dict[str, Any]) -> str:
    parameters = {
        name: value
        for name, value in settings.get("init_parameters", {}).items()
        if name not in _SETTINGS_NOT_CHANGING_SCORES
    }
    model = parameters.get("model")
    fingerprint = model_fingerprint(model) if isinstance(model, str) and Path(model).expanduser().exists() else None
    return json_fingerprint({"type": settings.get("type"), "init_parameters": parameters, "model": fingerprint})


def _without_secrets(settings: dict[str, Any]) -> dict[str, Any]:
    parameters = {
        name: value for name, value in settings.get("init_parameters", {}).items() if name not in ("token", "api_key")
    }
    return {"type": settings.get("type"), "init_parameters": parameters}


def cross_encoder_ranker(model_dir: Path, options: dict[str, Any]) -> Any:
    """A `CrossEncoderRanker` for a local model directory; `options` are its init parameters (None = default)."""
    from haystack_integrations.components.rankers.crossencoder import CrossEncoderRanker

    init = {name: value for name, value in options.items() if value is not None}
    return CrossEncoderRanker(model=str(model_dir.resolve()), **init)


def component_from_yaml(path: Path, name: str | None = None) -> Any:
    """
    The ranker component in a Haystack YAML file: a single component (`type` + `init_parameters`) or a pipeline.

    :param path: The YAML file.
    :param name: For a pipeline: the component to use; needed only when several components take query+documents.
    :raises ValueError: If the file holds no ranker (or several and `name` is not given).
    """
    import yaml
    from haystack import Pipeline

    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as error:
        msg = f"--ranker {path}: not valid YAML ({error})."
        raise ValueError(msg) from error
    if isinstance(data, dict) and "type" in data and "components" not in data:
        data = {"components": {name or path.stem: data}, "connections": []}
    if not isinstance(data, dict) or not isinstance(data.get("components"), dict):
        msg = (
            f"--ranker {path}: expected a Haystack component (type: ..., init_parameters: ...) or a pipeline "
            "(components: ..., connections: ...)."
        )
        raise ValueError(msg)
    pipeline = Pipeline.from_dict(data)
    if name is not None:
        try:
            return pipeline.get_component(name)
        except ValueError as error:
            msg = f"--ranker {path}#{name}: the pipeline has no component {name!r}."
            raise ValueError(msg) from error
    rankers = [
        (component_name, instance)
        for component_name, instance in pipeline.walk()
        if _takes_query_and_documents(instance)
    ]
    if len(rankers) != 1:
        found = ", ".join(component_name for component_name, _ in rankers) or "none"
        msg = (
            f"--ranker {path}: expected exactly one component whose run() takes `query` and `documents`, found "
            f"{found}. Pick one with '{path}#<component name>'."
        )
        raise ValueError(msg)
    return rankers[0][1]


def load_ranker(spec: str, options: dict[str, Any] | None = None) -> RankerUnderTest | None:
    """
    Build the ranker a `--ranker` value describes (see the module docstring); `none` gives None.

    :param spec: A model directory, a YAML file (optionally `file.yaml#component`) or `none`.
    :param options: `CrossEncoderRanker` init parameters for a model directory (e.g. `split_long_documents`,
        `aggregation`, `batch_size`, `max_length`, `backend`); None values keep the ranker's defaults. Ignored for
        YAML rankers, whose file holds their settings.
    :raises ValueError: If `spec` is none of the accepted forms or the YAML holds no usable ranker.
    """
    if spec.strip().lower() == NO_RANKER:
        return None
    path, component_name = Path(spec).expanduser(), ""
    if not path.exists() and "#" in spec:
        path_text, _, component_name = spec.rpartition("#")
        path = Path(path_text).expanduser()
    if path.is_dir() and not component_name:
        component = cross_encoder_ranker(path, options or {})
        name = path.resolve().name
    elif path.is_file() and path.suffix.lower() in (".yaml", ".yml"):
        component = component_from_yaml(path, component_name or None)
        name = f"{path.stem}#{component_name}" if component_name else path.stem
    else:
        msg = (
            f"--ranker {spec!r} is neither 'none', an existing model directory nor a Haystack YAML file (.yaml/.yml). "
            "Pass e.g. --ranker /models/my-cross-encoder, --ranker ranker.yaml or --ranker none."
        )
        raise ValueError(msg)
    return ranker_from_component(component, name, spec)


def ranker_from_component(component: Any, name: str, spec: str | None = None) -> RankerUnderTest:
    """
    Wrap a ranker component built in Python for `evaluate(rankers=[...])`.

    :param component: Any component whose `run` takes `query` and `documents` (warm-up is done lazily).
    :param name: Its name in the table, run files and results.json.
    :param spec: What to record as its origin (default: the name).
    :raises ValueError: If `component.run` does not take `query` and `documents`.
    """
    if not _takes_query_and_documents(component):
        msg = f"ranker {name!r}: {type(component).__name__}.run() does not take `query` and `documents`."
        raise ValueError(msg)
    settings = _serialized(component)
    return RankerUnderTest(
        name=name,
        component=component,
        spec=spec or name,
        identity=_identity(settings),
        settings=_without_secrets(settings),
    )


def with_unique_names(rankers: list[RankerUnderTest]) -> list[RankerUnderTest]:
    """The same rankers, where names repeat later ones as renamed copies (`name-2`, `name-3`, ...)."""
    names: set[str] = set()
    unique = []
    for ranker in rankers:
        name, number = ranker.name, 1
        while name in names:
            number += 1
            name = f"{ranker.name}-{number}"
        names.add(name)
        unique.append(ranker if name == ranker.name else replace(ranker, name=name))
    return unique


def load_rankers(specs: list[str], options: dict[str, Any] | None = None) -> list[RankerUnderTest]:
    """`load_ranker` for each spec, dropping `none`, with unique names (`name`, `name-2`, ...)."""
    return with_unique_names([ranker for spec in specs if (ranker := load_ranker(spec, options)) is not None])

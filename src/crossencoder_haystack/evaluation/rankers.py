"""The rankers an evaluation compares, each given on the command line as one `--ranker` value:

- a model directory: a `CrossEncoderRanker(model=DIR, ...)` with the evaluation's ranker options;
- a Haystack YAML file holding one component (`type:` + `init_parameters:`) or a pipeline with one ranker in it
  (`components:` + `connections:`); append `#name` to pick a component of a pipeline that has several rankers.
  Any ranker taking `query` and `documents` works (`SentenceTransformersSimilarityRanker`, `CohereRanker`, ...);
- `none`: no reranking, the first stage alone.

Every ranker scores the same first-stage candidates. Its identity (class, settings that change scores, and the
fingerprint of a local model directory) keys the score cache, so two rankers share cached scores only when their
settings are the same. The settings are the component's `to_dict()`, with token secrets (`Secret.from_token`)
replaced by a fixed marker; a component without `to_dict` is read from the attributes named like its `__init__`
parameters. A ranker whose settings cannot be read either way is not cached (a warning says so): it is scored again
on every run rather than risk serving another ranker's scores.
"""

import inspect
import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from enum import Enum
from pathlib import Path
from typing import Any
from unittest import mock

from haystack import Document

from crossencoder_haystack.evaluation.fingerprints import json_fingerprint, model_fingerprint

NO_RANKER = "none"
REDACTED = "<redacted>"
"""What a token secret's value becomes in a ranker's settings (identity and results.json)."""

logger = logging.getLogger(__name__)

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
    :param identity: The score-cache key: class, score-relevant settings and model fingerprint; None when the
        settings cannot be read, and then the ranker's scores are not cached.
    :param settings: The component's serialized form (`to_dict()`), without secrets, for results.json.
    """

    name: str
    component: Any
    spec: str
    identity: str | None
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
    def outputs_probabilities(self) -> bool:
        """Whether the component's scores are calibrated probabilities (`CrossEncoderRanker` with a calibration)."""
        return bool(getattr(self.component, "outputs_probabilities", False))

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


class UnreadableSettingsError(Exception):
    """A component's settings cannot be read, so they cannot key a cache."""


def _type_name(component: Any) -> str:
    return f"{type(component).__module__}.{type(component).__qualname__}"


@contextmanager
def _token_secrets_redacted() -> Iterator[None]:
    """
    While active, `Secret.from_token(...)` serializes to `{"type": "token", "token": REDACTED}` instead of raising.

    This patches Haystack's `TokenSecret` class for the duration, so it is meant for the short, single-threaded
    `to_dict()` calls that read a ranker's settings.
    """
    from haystack.utils.auth import TokenSecret

    with mock.patch.object(TokenSecret, "_to_dict", lambda _self: {"token": REDACTED}):
        yield


def _plain(value: Any, parameter: str) -> Any:
    """`value` as JSON-able data; raises UnreadableSettingsError for objects without a stable serialized form."""
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, Enum):
        return _plain(value.value, parameter)
    if isinstance(value, (list, tuple)):
        return [_plain(item, parameter) for item in value]
    if isinstance(value, dict) and all(isinstance(key, str) for key in value):
        return {key: _plain(item, parameter) for key, item in value.items()}
    if callable(getattr(value, "to_dict", None)):
        try:
            with _token_secrets_redacted():
                return _plain(value.to_dict(), parameter)
        except UnreadableSettingsError:
            raise
        except Exception as error:
            msg = f"init parameter {parameter!r}: {type(value).__name__}.to_dict() raised {error}"
            raise UnreadableSettingsError(msg) from error
    msg = f"init parameter {parameter!r} holds a {type(value).__name__}, which has no stable serialized form"
    raise UnreadableSettingsError(msg)


def _settings_from_attributes(component: Any) -> dict[str, Any]:
    """
    Settings of a component without a working `to_dict`, read as Haystack does: from the attributes named like
    its `__init__` parameters (`self.boost = boost`).

    :raises UnreadableSettingsError: If an init parameter is not kept under its own name, `__init__` takes
        `*args`/`**kwargs`, or a value is not plain data.
    """
    init = type(component).__init__
    if init is object.__init__:
        return {"type": _type_name(component), "init_parameters": {}}
    try:
        parameters = list(inspect.signature(init).parameters.values())[1:]  # without self
    except (TypeError, ValueError) as error:
        msg = f"the signature of {type(component).__name__}.__init__ cannot be read"
        raise UnreadableSettingsError(msg) from error
    values = {}
    for parameter in parameters:
        if parameter.kind in (parameter.VAR_POSITIONAL, parameter.VAR_KEYWORD):
            msg = f"{type(component).__name__}.__init__ takes *{parameter.name}, whose values are not kept by name"
            raise UnreadableSettingsError(msg)
        if not hasattr(component, parameter.name):
            msg = f"init parameter {parameter.name!r} is not kept as attribute self.{parameter.name}"
            raise UnreadableSettingsError(msg)
        values[parameter.name] = _plain(getattr(component, parameter.name), parameter.name)
    return {"type": _type_name(component), "init_parameters": values}


def _serialized(component: Any) -> dict[str, Any]:
    """
    The component's settings: `to_dict()` with token secrets redacted, else read from its attributes.

    :raises UnreadableSettingsError: If neither works; the message says why.
    """
    reasons = []
    if callable(getattr(component, "to_dict", None)):
        try:
            with _token_secrets_redacted():
                return component.to_dict()
        except Exception as error:
            reasons.append(f"to_dict() raised {type(error).__name__}: {error}")
    else:
        reasons.append("it has no to_dict()")
    try:
        return _settings_from_attributes(component)
    except UnreadableSettingsError as error:
        reasons.append(str(error))
    raise UnreadableSettingsError("; ".join(reasons))


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
    from haystack_integrations.components.rankers.crossencoder.fusion import read_fusion_defaults

    init = {name: value for name, value in options.items() if value is not None}
    if read_fusion_defaults(model_dir).get("first_stage_weight"):
        # The reranker's own scores: fusion with the first stage is a row of its own (`fusion_weights`)
        init = {"first_stage_weight": 0.0} | init
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
    try:
        settings = _serialized(component)
    except UnreadableSettingsError as error:
        logger.warning(
            "Ranker %r: its settings cannot be read (%s), so its scores are not cached and every run scores again. "
            "Give %s a to_dict() method to cache them.",
            name,
            error,
            type(component).__name__,
        )
        return RankerUnderTest(
            name=name,
            component=component,
            spec=spec or name,
            identity=None,
            settings={"type": _type_name(component), "init_parameters": {}},
        )
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

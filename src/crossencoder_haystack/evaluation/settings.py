"""The settings of one `evaluate(...)` run, checked once: `EvaluationSettings` and its `RankerOptions`.

`evaluate` takes keyword arguments (the public API, and the `rerank evaluate` flags); it turns them into these frozen
dataclasses, which its steps read. The Ray engine (`distributed.evaluation`) uses the same checks and the same seeded
query sample, so that both engines evaluate the same queries.
"""

import random
from collections.abc import Sequence
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

from crossencoder_haystack.evaluation.metrics import STAT_TESTS
from crossencoder_haystack.evaluation.score_cache import default_cache_dir


@dataclass(frozen=True)
class RankerOptions:
    """
    `CrossEncoderRanker` init parameters for the model-directory rankers under test; None keeps the ranker's default.

    :param split_long_documents: Score long documents by passages.
    :param aggregation: How passage scores become a document score.
    :param batch_size: Pairs per forward pass.
    :param max_length: Maximum tokens of query plus document.
    :param backend: `torch`, `onnx` or `openvino`.
    :param num_threads: CPU threads for the model.
    :param precision: What the model computes in (`auto`, `fp32`, `bf16`, ...).
    :param truncation: How a long pair is cut (`longest_first`, `query_window`).
    """

    split_long_documents: bool | None = None
    aggregation: str | None = None
    batch_size: int | None = None
    max_length: int | None = None
    backend: str | None = None
    num_threads: int | None = None
    precision: str | None = None
    truncation: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """Every option, None for the defaults (what `load_ranker` takes)."""
        return asdict(self)

    def given(self) -> dict[str, Any]:
        """The options that are set (what results.json records)."""
        return {name: value for name, value in asdict(self).items() if value is not None}


RANKER_OPTION_NAMES: tuple[str, ...] = tuple(option.name for option in fields(RankerOptions))
"""The `evaluate` keyword arguments that configure model-directory rankers."""


@dataclass(frozen=True)
class EvaluationSettings:
    """
    The checked settings of one evaluation (see `evaluate` for each one's meaning).

    Build it with `EvaluationSettings.checked(...)`, which raises ValueError on invalid values.
    """

    first_stage: str
    ks: tuple[int, ...]
    max_queries: int | None
    latency_queries: int
    seed: int
    cache_root: Path
    embedding_model: str | Path | None
    stat_test: str
    max_p: float
    fusion_weights: tuple[float, ...] | None
    fusion: str
    ranker_options: RankerOptions
    show_progress: bool

    @property
    def kmax(self) -> int:
        """The largest K: how many candidates the first stage retrieves per query."""
        return self.ks[-1]

    @classmethod
    def checked(
        cls,
        *,
        first_stage: str,
        ks: Sequence[int],
        max_queries: int | None,
        latency_queries: int,
        seed: int,
        cache_dir: str | Path | None,
        embedding_model: str | Path | None,
        stat_test: str,
        max_p: float,
        fusion_weights: Sequence[float] | None,
        fusion: str,
        ranker_options: RankerOptions,
        show_progress: bool,
    ) -> "EvaluationSettings":
        """
        The settings, after checking each value as `evaluate` documents it.

        :raises ValueError: On an invalid value, naming the argument.
        """
        checked_ks = tuple(validated_ks(ks))
        _check_counts(max_queries, latency_queries)
        _check_significance(stat_test, max_p)
        if fusion_weights is not None:
            from crossencoder_haystack.evaluation.fusion_tuning import validated_method, validated_weights

            fusion_weights = tuple(validated_weights(fusion_weights, "fusion_weights"))
            fusion = validated_method(fusion, "fusion")
        return cls(
            first_stage=first_stage,
            ks=checked_ks,
            max_queries=max_queries,
            latency_queries=latency_queries,
            seed=seed,
            cache_root=Path(cache_dir).expanduser() if cache_dir is not None else default_cache_dir(),
            embedding_model=embedding_model,
            stat_test=stat_test,
            max_p=max_p,
            fusion_weights=fusion_weights,
            fusion=fusion,
            ranker_options=ranker_options,
            show_progress=show_progress,
        )

    def to_dict(self) -> dict[str, Any]:
        """The settings results.json records."""
        return {
            "first_stage": self.first_stage,
            "ks": list(self.ks),
            "max_queries": self.max_queries,
            "latency_queries": self.latency_queries,
            "seed": self.seed,
            "cache_dir": str(self.cache_root),
            "ranker_options": self.ranker_options.given(),
            "fusion_weights": None if self.fusion_weights is None else list(self.fusion_weights),
            "fusion": None if self.fusion_weights is None else self.fusion,
        }


def _check_counts(max_queries: int | None, latency_queries: int) -> None:
    if max_queries is not None and max_queries <= 0:
        msg = f"max_queries must be > 0 or None (all queries), got {max_queries}."
        raise ValueError(msg)
    if latency_queries < 0:
        msg = f"latency_queries must be >= 0 (0 = no timing), got {latency_queries}."
        raise ValueError(msg)


def _check_significance(stat_test: str, max_p: float) -> None:
    if stat_test not in STAT_TESTS:
        msg = f"stat_test must be one of {', '.join(STAT_TESTS)}, got {stat_test!r}."
        raise ValueError(msg)
    if not 0 < max_p < 1:
        msg = f"max_p must be between 0 and 1 (e.g. 0.05), got {max_p}."
        raise ValueError(msg)


def validated_ks(ks: Sequence[int] | int) -> list[int]:
    """
    The K values sorted and without repeats.

    :raises ValueError: If `ks` is empty or holds a value that is not a positive integer.
    """
    if isinstance(ks, int):
        ks = [ks]
    if not ks or any(isinstance(k, bool) or not isinstance(k, int) or k <= 0 for k in ks):
        msg = f"ks must be positive integers (e.g. [50, 100, 150]), got {ks!r}."
        raise ValueError(msg)
    return sorted(set(ks))


def seeded_sample(query_ids: list[str], size: int | None, seed: int | str) -> list[str]:
    """A seeded sample of `size` ids, kept in their original order (all of them if size is None or larger)."""
    if size is None or size >= len(query_ids):
        return list(query_ids)
    chosen = set(random.Random(seed).sample(range(len(query_ids)), size))
    return [query_id for index, query_id in enumerate(query_ids) if index in chosen]

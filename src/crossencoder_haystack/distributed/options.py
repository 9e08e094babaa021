"""The `--engine` options that `rerank evaluate`, `rerank mine` and `rerank serve` share (no Ray import here)."""

import argparse
from typing import Any

ENGINES: tuple[str, ...] = ("local", "ray")


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        msg = f"expected an integer >= 1, got {text!r}"
        raise argparse.ArgumentTypeError(msg)
    return value


def _non_negative(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if value < 0:
        msg = f"expected a number >= 0, got {text!r}"
        raise argparse.ArgumentTypeError(msg)
    return value


def add_engine_arguments(parser: argparse.ArgumentParser, *, unit: str = "actor") -> None:
    """
    Add `--engine`, `--ray-address` and the pool size and resources of each `unit` (`actor` or `replica`).

    :param parser: The sub-command's parser.
    :param unit: `actor` (batch jobs: `--actors`) or `replica` (the service: `--replicas`).
    """
    group = parser.add_argument_group("engine (needs the ray extra: pip install 'crossencoder-haystack[ray]')")
    group.add_argument(
        "--engine",
        choices=ENGINES,
        default="local",
        help="local: this process (default); ray: the model work on a Ray cluster, with the same results.",
    )
    group.add_argument(
        "--ray-address",
        help="With --engine ray: auto (the cluster this machine belongs to), host:port or ray://host:10001. "
        "Default: a local cluster on 127.0.0.1 with every core.",
    )
    group.add_argument(
        f"--{unit}s",
        type=_positive_int,
        help=f"With --engine ray: {unit}s, each with one copy of the model (default 1).",
    )
    group.add_argument(
        f"--cpus-per-{unit}", type=_non_negative, help=f"With --engine ray: CPUs per {unit} (default 1)."
    )
    group.add_argument(
        f"--gpus-per-{unit}", type=_non_negative, help=f"With --engine ray: GPUs per {unit} (default 0)."
    )


def ray_options(args: argparse.Namespace, *, unit: str = "actor") -> dict[str, Any]:
    """
    The keyword arguments of the `crossencoder_haystack.distributed` function for the parsed options.

    :raises ValueError: If Ray options are given without `--engine ray`, or `--cpus-per-<unit>` is 0.
    """
    count, cpus, gpus = getattr(args, f"{unit}s"), getattr(args, f"cpus_per_{unit}"), getattr(args, f"gpus_per_{unit}")
    if args.engine != "ray":
        given = [name for name, value in (("--ray-address", args.ray_address), (f"--{unit}s", count)) if value]
        given += [f"--{kind}-per-{unit}" for kind, value in (("cpus", cpus), ("gpus", gpus)) if value is not None]
        if given:
            verb, pronoun = ("is", "it") if len(given) == 1 else ("are", "them")
            msg = f"{', '.join(given)} {verb} for --engine ray only; add --engine ray or leave {pronoun} out."
            raise ValueError(msg)
        return {}
    if cpus == 0:
        msg = f"--cpus-per-{unit} must be > 0 (e.g. 1, or 0.5 for two per core)."
        raise ValueError(msg)
    options: dict[str, Any] = {"ray_address": args.ray_address}
    plural = "replicas" if unit == "replica" else "num_actors"
    if count is not None:
        options[plural] = count
    if cpus is not None:
        options[f"num_cpus_per_{unit}"] = cpus
    if gpus is not None:
        options[f"num_gpus_per_{unit}"] = gpus
    return options

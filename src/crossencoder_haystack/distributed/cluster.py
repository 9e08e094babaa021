"""Connecting to Ray: a cluster at an address, or a local one that listens on 127.0.0.1 only.

A local cluster (no address) is started with the dashboard off, usage statistics off and every Ray process bound to
the loopback interface, so nothing on this machine is reachable from the network. An address (`auto`, a head
node's `host:port` or `ray://host:10001`) joins a running cluster as its own settings say. An already initialised
Ray (`ray.init(...)` called by the user) is used as it is.
"""

import os
from collections.abc import Iterator
from contextlib import contextmanager
from types import ModuleType
from typing import Any

RAY_EXTRA = 'pip install "crossencoder-haystack[ray]"'
LOOPBACK = "127.0.0.1"
# Ray reads this when it starts a local cluster: "0" makes it use the loopback address as the node's address (and
# bind its servers there) instead of the machine's network address.
_CLUSTER_ENV_VAR = "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"
_USAGE_STATS_ENV_VAR = "RAY_USAGE_STATS_ENABLED"


class RayNotInstalledError(ImportError):
    """Ray (with Ray Data and Ray Serve) is not installed; the message says how to install it."""


def import_ray() -> ModuleType:
    """
    The `ray` module.

    :raises RayNotInstalledError: If Ray is not installed.
    """
    try:
        import ray
    except ImportError as error:
        msg = f"Ray is not installed. The distributed engine needs the ray extra: {RAY_EXTRA}"
        raise RayNotInstalledError(msg) from error
    return ray


def is_local(address: str | None) -> bool:
    """Whether `address` asks for a local cluster started by this process (None, empty or `local`)."""
    return address is None or address.strip() in ("", "local")


def connect(address: str | None = None, *, num_cpus: int | None = None, **init_kwargs: Any) -> None:
    """
    Connect this process to Ray, unless it already is.

    ```python
    from crossencoder_haystack.distributed import connect

    connect()  # a local cluster on 127.0.0.1 with every core
    connect("auto")  # the cluster this machine belongs to (`ray start` was run here)
    ```

    :param address: None (or `local`) starts a local cluster bound to 127.0.0.1 without a dashboard; `auto` joins the
        cluster running on this machine; `host:port` or `ray://host:10001` a remote one.
    :param num_cpus: CPUs of a local cluster (default: all cores); ignored when joining a cluster.
    :param init_kwargs: More `ray.init` arguments (e.g. `runtime_env`).
    :raises RayNotInstalledError: If Ray is not installed.
    """
    ray = import_ray()
    if ray.is_initialized():
        return
    if not is_local(address):
        ray.init(address=address, **init_kwargs)
        return
    os.environ.setdefault(_USAGE_STATS_ENV_VAR, "0")
    with _loopback_node(ray):
        ray.init(
            num_cpus=num_cpus,
            include_dashboard=False,
            _node_ip_address=LOOPBACK,
            **init_kwargs,
        )


@contextmanager
def _loopback_node(ray: ModuleType) -> Iterator[None]:
    """
    While a local cluster starts: Ray takes 127.0.0.1 as the node's address (its processes inherit the setting).

    Ray maps `_node_ip_address="127.0.0.1"` to the machine's network address unless clusters are switched off for
    the process; that switch is read from the environment when `ray` is imported, so it is set in both places, and
    both are restored afterwards (a later connection to a real cluster must see the network address again).
    """
    constants: Any = getattr(getattr(ray, "_private", None), "ray_constants", None)  # None when Ray moved it
    saved_env = os.environ.get(_CLUSTER_ENV_VAR)
    saved_constant = getattr(constants, "ENABLE_RAY_CLUSTER", None)
    os.environ[_CLUSTER_ENV_VAR] = "0"
    if saved_constant is not None:
        constants.ENABLE_RAY_CLUSTER = False
    try:
        yield
    finally:
        if saved_env is None:
            os.environ.pop(_CLUSTER_ENV_VAR, None)
        else:
            os.environ[_CLUSTER_ENV_VAR] = saved_env
        if saved_constant is not None:
            constants.ENABLE_RAY_CLUSTER = saved_constant

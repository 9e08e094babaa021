"""The rerank service on Ray Serve: the same app (Cohere v1/v2 and TEI APIs, API key, limits) in N replicas.

Each replica is one `RerankReplica`: the FastAPI app of `crossencoder_haystack.serving.create_app` over its own copy
of the model, whose requests are batched by Ray Serve (`@serve.batch`, up to `max_batch_documents` documents per
batch, waiting up to `batch_window_ms`) instead of the single-process `DynamicBatcher`. Everything in front of the
model is unchanged: the key check, the body and document limits, 429 when a replica's `max_queue` requests are
waiting, 504 after `request_timeout`. Ray Serve's proxy spreads requests over the replicas; more replicas (or nodes)
means more requests per second.

Start it with `rerank serve --engine ray --replicas N`, with `serve(...)` from Python, or with Ray's own CLI from a
config such as `examples/ray_serve.yaml` (`serve run examples/ray_serve.yaml`), which calls `build_app`.

The API key reaches the replicas as an argument of the deployment (the Serve controller keeps it); the model
directory must be readable at the same path on every node.
"""

import asyncio
import functools
import math
import threading
import time
from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path
from typing import Any

from crossencoder_haystack.distributed.cluster import LOOPBACK, connect, import_ray
from crossencoder_haystack.serving.batcher import BatcherStoppedError, Pending, QueueFullError
from crossencoder_haystack.serving.limits import ServiceLimits
from crossencoder_haystack.serving.served_model import RerankJob

import_ray()
from ray import serve  # noqa: E402  (after the check that says how to install Ray)

APPLICATION_NAME = "rerank"
SERVED_MODEL_OPTIONS = ("backend", "max_length", "batch_size", "num_threads", "model_name", "precision", "truncation")
_MAX_RETRY_AFTER_SECONDS = 60


class _QueuePlace:
    """A place held in a `ServeBatchQueue` for a request whose body is being read."""

    def __init__(self, queue: "ServeBatchQueue") -> None:
        self._queue = queue
        self._held = True

    def submit(self, job: RerankJob, *, abandoned: threading.Event | None = None) -> Pending[RerankJob]:
        if not self._held:
            msg = "This queue place was already used or released."
            raise RuntimeError(msg)
        self._held = False
        return self._queue._submit(job, abandoned)

    def release(self) -> None:
        if self._held:
            self._held = False
            self._queue._release()


class ServeBatchQueue:
    """
    One replica's request queue with `DynamicBatcher`'s contract (`reserve` -> `submit`, 429 when `max_queue`
    requests wait, 503 once stopping), whose jobs are scored through `rank`, a `@serve.batch` method.
    """

    def __init__(self, rank: Callable[[RerankJob], Awaitable[Any]], *, max_queue: int) -> None:
        self._rank = rank
        self.max_queue = max_queue
        self._accepting = False
        self._waiting = 0  # places held plus jobs not answered yet
        self._seconds_per_job = 0.0
        self._lock = threading.Lock()
        self._tasks: set[asyncio.Future] = set()

    @property
    def accepting(self) -> bool:
        return self._accepting

    @property
    def depth(self) -> int:
        return self._waiting

    def start(self) -> None:
        self._accepting = True

    def stop(self, timeout: float | None = None) -> None:
        """Refuses new requests and waits (up to `timeout` seconds) for the ones taken to be answered."""
        self._accepting = False
        deadline = None if timeout is None else time.monotonic() + timeout
        while self._waiting and (deadline is None or time.monotonic() < deadline):
            time.sleep(0.05)

    def retry_after(self) -> int:
        return max(1, min(_MAX_RETRY_AFTER_SECONDS, math.ceil(self._waiting * self._seconds_per_job)))

    def reserve(self) -> _QueuePlace:
        with self._lock:
            if not self._accepting:
                msg = "The server is shutting down and takes no new requests."
                raise BatcherStoppedError(msg)
            if self._waiting >= self.max_queue:
                raise QueueFullError(self.max_queue, self.retry_after())
            self._waiting += 1
        return _QueuePlace(self)

    def _release(self) -> None:
        with self._lock:
            self._waiting -= 1

    def _submit(self, job: RerankJob, abandoned: threading.Event | None) -> Pending[RerankJob]:
        loop = asyncio.get_running_loop()
        pending = Pending(job, loop.create_future(), loop, abandoned or threading.Event())
        task = asyncio.ensure_future(self._score(pending))
        self._tasks.add(task)  # held until done: the event loop keeps only weak references to tasks
        task.add_done_callback(self._tasks.discard)
        return pending

    async def _score(self, pending: Pending[RerankJob]) -> None:
        started = time.perf_counter()
        try:
            result = await self._rank(pending.job)
        except Exception as error:
            result = error
        finally:
            self._release()
        self._seconds_per_job = 0.8 * self._seconds_per_job + 0.2 * (time.perf_counter() - started)
        if pending.future.done():  # the request gave up (timeout, client gone)
            return
        if isinstance(result, BaseException):
            pending.future.set_exception(result)
        else:
            pending.future.set_result(result)


def _keep_replica_grpc_on_loopback() -> None:
    """
    On a local cluster (node address 127.0.0.1), make this replica's inter-deployment gRPC server listen on
    127.0.0.1: Ray Serve 2.60 binds it to every interface (`[::]:0`), which a loopback-only cluster has no use for.
    Called in the replica before Ray Serve starts that server; on a real cluster nothing changes.
    """
    import ray

    if ray.util.get_node_ip_address() != LOOPBACK:
        return
    from ray.serve._private import replica as replica_module

    bind = getattr(replica_module, "add_port_to_grpc_server", None)
    if bind is None or getattr(bind, "loopback_only", False):
        return

    def bind_on_loopback(server: Any, address: str) -> int:
        return bind(server, address.replace("[::]", LOOPBACK, 1))

    bind_on_loopback.loopback_only = True  # type: ignore[attr-defined]
    replica_module.add_port_to_grpc_server = bind_on_loopback


def _documents_in(jobs: list[RerankJob], cap: int) -> int:
    """A batch's size for `@serve.batch`: its documents, a job counting at most `cap` (a bigger one runs alone)."""
    return sum(min(job.size, cap) for job in jobs)


@serve.deployment
@serve.ingress()
class RerankReplica:
    """One replica of the rerank service: the app of `create_app` over its own model, batched by Ray Serve."""

    def __init__(self, model_options: Mapping[str, Any], api_key: str | None, limits: ServiceLimits) -> None:
        from crossencoder_haystack.serving.served_model import ServedModel

        _keep_replica_grpc_on_loopback()
        self._served = ServedModel(**dict(model_options))
        self._api_key = api_key
        self._limits = limits
        self._on_batch: Callable[[int, int, float], None] | None = None
        cap = limits.max_batch_documents
        self._rank = serve.batch(
            max_batch_size=cap,
            batch_wait_timeout_s=limits.batch_window_ms / 1000,
            batch_size_fn=functools.partial(_documents_in, cap=cap),
        )(self._rank_jobs)

    def __serve_build_asgi_app__(self) -> Any:
        from crossencoder_haystack.serving.app import create_app

        # ServeBatchQueue offers DynamicBatcher's interface (reserve, start, stop, accepting, depth) without being one.
        return create_app(
            self._served,
            api_key=self._api_key,
            limits=self._limits,
            batcher_factory=self._queue,  # type: ignore[arg-type]
        )

    def _queue(self, on_batch: Callable[[int, int, float], None]) -> ServeBatchQueue:
        self._on_batch = on_batch
        return ServeBatchQueue(self._rank, max_queue=self._limits.max_queue)

    async def _rank_jobs(self, jobs: list[RerankJob]) -> list[Any]:
        """One `@serve.batch` batch: the jobs scored together (shared model batches), one result per job."""
        started = time.perf_counter()
        results = await asyncio.to_thread(lambda: list(self._served.rank_batch(jobs)))
        if self._on_batch is not None:
            self._on_batch(len(jobs), sum(job.size for job in jobs), time.perf_counter() - started)
        return results


def rerank_application(
    model: str | Path,
    *,
    replicas: int = 1,
    api_key: str | None = None,
    limits: ServiceLimits | None = None,
    num_cpus_per_replica: float = 1,
    num_gpus_per_replica: float = 0,
    **model_options: Any,
) -> Any:
    """
    The Ray Serve application of the rerank service, ready for `serve.run`.

    ```python
    from ray import serve
    from crossencoder_haystack.distributed import connect, rerank_application

    connect()
    serve.run(rerank_application("/models/my-cross-encoder", replicas=2), route_prefix="/")
    ```

    :param model: A local cross-encoder directory (the same path on every node).
    :param replicas: Replicas, each with its own copy of the model.
    :param api_key: The key clients must send as `Authorization: Bearer <key>`; None accepts requests without one.
    :param limits: Request limits, queue, batch window and timeout per replica; defaults to `ServiceLimits()`.
    :param num_cpus_per_replica: CPUs per replica (torch threads in it).
    :param num_gpus_per_replica: GPUs per replica; 0 for CPU.
    :param model_options: `ServedModel` parameters: `backend`, `max_length`, `batch_size`, `num_threads`,
        `model_name`, `precision`, `truncation`.
    :raises FileNotFoundError: If `model` is not a directory.
    :raises ValueError: If `replicas` is not a positive int.
    """
    from crossencoder_haystack.serving.served_model import ServedModel

    path = Path(model).expanduser()
    if not path.is_dir():
        msg = f"model {path} is not a directory; pass a local cross-encoder directory."
        raise FileNotFoundError(msg)
    if isinstance(replicas, bool) or not isinstance(replicas, int) or replicas < 1:
        msg = f"replicas must be an int >= 1, got {replicas!r}."
        raise ValueError(msg)
    unknown = sorted(set(model_options) - set(SERVED_MODEL_OPTIONS))
    if unknown:
        msg = f"unknown model options {', '.join(unknown)}; the options are {', '.join(SERVED_MODEL_OPTIONS)}."
        raise ValueError(msg)
    limits = limits or ServiceLimits()
    options = {name: value for name, value in model_options.items() if value is not None}
    ServedModel(str(path), **options)  # checks the options here (it loads nothing), not in every replica
    # @serve.deployment made the class a Deployment; Ray's decorator typing does not say so.
    deployment = RerankReplica.options(  # type: ignore[attr-defined]
        num_replicas=replicas,
        # Requests beyond a replica's own queue are answered by its app (429), not queued by Ray.
        max_ongoing_requests=limits.max_queue + 8,
        ray_actor_options={"num_cpus": num_cpus_per_replica, "num_gpus": num_gpus_per_replica},
    )
    return deployment.bind({"model": str(path.resolve()), **options}, api_key, limits)


def build_app(args: dict[str, str]) -> Any:
    """
    The application for Ray's CLI: `serve run crossencoder_haystack.distributed.serving:build_app model=DIR` or a
    config file's `import_path` and `args` (see `examples/ray_serve.yaml`).

    Arguments (strings): `model` (required), `replicas`, `api_key_env` or `no_auth` (as `rerank serve`: without
    either, `RERANK_API_KEY` if set, else no key on a loopback host), `host` (the host Serve's proxy listens on, for
    that check; default 127.0.0.1), `num_cpus_per_replica`, `num_gpus_per_replica`, the `ServedModel` options
    (`backend`, `max_length`, `batch_size`, `num_threads`, `model_name`, `precision`, `truncation`) and the
    `ServiceLimits` fields.
    """
    from crossencoder_haystack.serving.auth import resolve_api_key

    args = dict(args)
    if "model" not in args:
        msg = "build_app needs model=<a local cross-encoder directory>."
        raise ValueError(msg)
    api_key = resolve_api_key(
        args.pop("api_key_env", None),
        no_auth=str(args.pop("no_auth", "false")).lower() in ("1", "true", "yes"),
        host=args.pop("host", "127.0.0.1"),
    )
    # Values from Ray's CLI: numbers parsed here, the rest strings; the callees check them.
    limit_values: dict[str, Any] = {name: _number(args.pop(name)) for name in _LIMIT_FIELDS if name in args}
    numbers: dict[str, Any] = {name: _number(args.pop(name)) for name in _NUMBER_OPTIONS if name in args}
    options: dict[str, Any] = args
    limits = ServiceLimits(**limit_values)
    return rerank_application(options.pop("model"), api_key=api_key, limits=limits, **numbers, **options)


_LIMIT_FIELDS = tuple(ServiceLimits.__dataclass_fields__)
_NUMBER_OPTIONS = (
    "replicas",
    "num_cpus_per_replica",
    "num_gpus_per_replica",
    "max_length",
    "batch_size",
    "num_threads",
)


def _number(text: Any) -> int | float:
    value = float(text)
    return int(value) if value.is_integer() and "." not in str(text) else value


def serve_on_ray(
    model: str | Path,
    *,
    ray_address: str | None = None,
    replicas: int = 1,
    host: str = "127.0.0.1",
    port: int = 8080,
    api_key_env: str | None = None,
    no_auth: bool = False,
    limits: ServiceLimits | None = None,
    num_cpus_per_replica: float = 1,
    num_gpus_per_replica: float = 0,
    blocking: bool = True,
    **model_options: Any,
) -> None:
    """
    Serve `model` with `replicas` replicas on Ray Serve at `http://host:port` (the same API as `rerank serve`).

    ```python
    from crossencoder_haystack.distributed import serve_on_ray

    serve_on_ray("/models/my-cross-encoder", replicas=4, ray_address="auto")  # until Ctrl-C
    ```

    :param model: A local cross-encoder directory (the same path on every node).
    :param ray_address: The cluster; None starts a local one on 127.0.0.1.
    :param replicas: Replicas, each with its own copy of the model.
    :param host: Where Ray Serve's HTTP proxy listens.
    :param port: Its port.
    :param api_key_env: As `serve(...)` in `crossencoder_haystack.serving`.
    :param no_auth: As `serve(...)` in `crossencoder_haystack.serving`.
    :param limits: Per-replica limits; defaults to `ServiceLimits()`.
    :param num_cpus_per_replica: CPUs per replica.
    :param num_gpus_per_replica: GPUs per replica.
    :param blocking: Wait until Ctrl-C, then shut the application down; False returns once it is running.
    :param model_options: `ServedModel` parameters (`backend`, `max_length`, `batch_size`, `precision`, ...).
    :raises AuthConfigurationError: If no API key is set where one is required (before anything starts).
    """
    from crossencoder_haystack.serving.auth import resolve_api_key

    api_key = resolve_api_key(api_key_env, no_auth=no_auth, host=host)
    resources = {"num_cpus_per_replica": num_cpus_per_replica, "num_gpus_per_replica": num_gpus_per_replica}
    application = rerank_application(
        model, replicas=replicas, api_key=api_key, limits=limits, **resources, **model_options
    )
    connect(ray_address)
    serve.start(http_options={"host": host, "port": port})
    serve.run(application, name=APPLICATION_NAME, route_prefix="/")
    if not blocking:
        return
    try:
        while True:
            time.sleep(1)
    except KeyboardInterrupt:
        pass
    finally:
        serve.delete(APPLICATION_NAME)

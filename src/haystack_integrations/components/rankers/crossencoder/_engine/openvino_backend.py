"""Running an exported cross-encoder with OpenVINO on the CPU: padded token arrays in, one logit per pair out.

OpenVINO runs a float32 model in bfloat16 by default on CPUs with AMX or AVX512-BF16 (Intel Sapphire Rapids and
later), which moves scores at the third decimal. `openvino_config` therefore always sets the inference precision:
`"fp32"` (the default) computes in float32 on every CPU; `"bf16"` is the fast, slightly less exact choice.

`CrossEncoderRanker(backend="openvino")` passes the precision its `precision` setting resolves to: with `"auto"`
(the default) bf16 on CPUs with AMX or AVX512-BF16 and fp32 elsewhere; `"fp32"` forces float32. In an int8 export
(`rerank export --backend openvino --quantize int8-static`) the hint applies to the layers between the int8 ones.
"""

import threading
from pathlib import Path
from typing import Any

import numpy as np

from haystack_integrations.components.rankers.crossencoder._engine.backend_imports import import_backend_library
from haystack_integrations.components.rankers.crossencoder._engine.checks import check_choice

OPENVINO_PRECISIONS: tuple[str, ...] = ("fp32", "bf16")

# The first `InferRequest.infer` of a process initializes a C++ function-local static in OpenVINO's Python binding
# that calls back into Python: two threads making their first call at once deadlock (one waits for the GIL inside
# the static's initializer, the other holds the GIL waiting for the initializer; seen with openvino 2026.4 and two
# streams on a busy machine). The first call of the process therefore runs alone, the later ones concurrently.
_first_infer = threading.Lock()
_first_infer_done = threading.Event()


def openvino_config(precision: str = "fp32", num_threads: int | None = None, streams: int = 1) -> dict[str, Any]:
    """
    The CPU compile options: a latency hint (all threads on one request) and an explicit inference precision.

    :param precision: `"fp32"` computes in float32 on every CPU; `"bf16"` in bfloat16 (fast on CPUs with AMX or
        AVX512-BF16, emulated and slow elsewhere).
    :param num_threads: `INFERENCE_NUM_THREADS`; `None` lets OpenVINO use every core.
    :param streams: Requests OpenVINO runs at once (`NUM_STREAMS`), sharing the threads; 1 gives one request all.
    :raises ValueError: If `precision` is not one of `OPENVINO_PRECISIONS`.
    """
    check_choice("precision", precision, OPENVINO_PRECISIONS)
    ov = import_backend_library("openvino", "openvino")
    import openvino.properties as properties
    import openvino.properties.hint as hints

    config: dict[str, Any] = {
        hints.performance_mode(): hints.PerformanceMode.LATENCY,
        hints.inference_precision(): ov.Type.f32 if precision == "fp32" else ov.Type.bf16,
    }
    if num_threads is not None:
        config[properties.inference_num_threads()] = num_threads
    if streams > 1:
        config[properties.num_streams()] = streams
    return config


class OpenVinoForward:
    """
    An OpenVINO model compiled for the CPU with a latency hint (all threads on one request) and a fixed precision.

    Each calling thread gets its own infer request, so `streams` threads (`BatchStreams`) can run batches at once.

    :param model_file: The `openvino_model*.xml` file (its `.bin` next to it).
    :param num_threads: `INFERENCE_NUM_THREADS`; `None` lets OpenVINO use every core.
    :param precision: The inference precision, `"fp32"` or `"bf16"` (see `openvino_config`).
    :param streams: Batches run at once (`NUM_STREAMS`), each on its share of the threads.
    """

    def __init__(
        self, model_file: str | Path, num_threads: int | None = None, precision: str = "fp32", streams: int = 1
    ) -> None:
        config = openvino_config(precision, num_threads, streams)
        core = import_backend_library("openvino", "openvino").Core()
        self.model_file = Path(model_file)
        model = core.read_model(str(model_file))
        self.input_names = [port.get_any_name() for port in model.inputs]
        self.compiled = core.compile_model(model, "CPU", config)
        self._requests = threading.local()

    def __call__(self, batch: dict[str, np.ndarray]) -> np.ndarray:
        """Logits of shape (batch, num_labels) for padded `input_ids`, `attention_mask`, `token_type_ids`."""
        request = getattr(self._requests, "request", None)
        if request is None:
            request = self._requests.request = self.compiled.create_infer_request()
        inputs = {name: batch[name] for name in self.input_names}
        result = request.infer(inputs) if _first_infer_done.is_set() else _infer_alone(request, inputs)
        return np.asarray(result[self.compiled.outputs[0]], dtype=np.float32)


def _infer_alone(request: Any, inputs: dict[str, np.ndarray]) -> Any:
    """The process's first inference, one thread at a time (see `_first_infer`); waiting releases the GIL."""
    with _first_infer:
        result = request.infer(inputs)
        _first_infer_done.set()
    return result

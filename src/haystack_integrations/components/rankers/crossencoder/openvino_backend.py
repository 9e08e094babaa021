"""Running an exported cross-encoder with OpenVINO on the CPU: padded token arrays in, one logit per pair out."""

from pathlib import Path
from typing import Any

import numpy as np


def _import_openvino() -> Any:
    try:
        import openvino
    except ImportError as error:
        msg = "backend='openvino' needs openvino: pip install 'crossencoder-haystack[openvino]'."
        raise ImportError(msg) from error
    return openvino


class OpenVinoForward:
    """
    An OpenVINO model compiled for the CPU with a latency hint (all threads on one request).

    Not thread-safe on its own (one infer request); `TokenizedPairScorer` serializes calls.

    :param model_file: The `openvino_model*.xml` file (its `.bin` next to it).
    :param num_threads: `INFERENCE_NUM_THREADS`; `None` lets OpenVINO use every core.
    """

    def __init__(self, model_file: str | Path, num_threads: int | None = None) -> None:
        ov = _import_openvino()
        core = ov.Core()
        config: dict[str, Any] = {"PERFORMANCE_HINT": "LATENCY"}
        if num_threads is not None:
            config["INFERENCE_NUM_THREADS"] = num_threads
        self.model_file = Path(model_file)
        model = core.read_model(str(model_file))
        self.input_names = [port.get_any_name() for port in model.inputs]
        self.compiled = core.compile_model(model, "CPU", config)
        self.request = self.compiled.create_infer_request()

    def __call__(self, batch: dict[str, np.ndarray]) -> np.ndarray:
        """Logits of shape (batch, num_labels) for padded `input_ids`, `attention_mask`, `token_type_ids`."""
        result = self.request.infer({name: batch[name] for name in self.input_names})
        return np.asarray(result[self.compiled.outputs[0]], dtype=np.float32)

"""Running an exported cross-encoder with onnxruntime on the CPU: padded token arrays in, one logit per pair out.

A float32 model computes in float32: onnxruntime does not switch to bfloat16 on x86 CPUs with AMX or AVX512-BF16
(its fp32 scores equal torch's to float rounding on such a CPU), and its one bfloat16 fast-math option, for arm64,
is pinned off here.

So an onnx model computes in the precision it was exported in: float32, or int8 for an export made with
`rerank export --backend onnx --quantize ...` (detected from the export manifest or the file name). The ranker's
`precision` therefore only checks what the file gives: `"auto"` takes either, `"fp32"` refuses an int8 file and
`"int8"` a float32 one; bf16 and fp16 are not available on this backend (use `backend="openvino"` or `"torch"`).
"""

from pathlib import Path

import numpy as np

from haystack_integrations.components.rankers.crossencoder._engine.backend_imports import import_backend_library


class OnnxForward:
    """
    An onnxruntime session for one model file. `session.run` is thread-safe, so one session serves every thread.

    :param model_file: The `.onnx` file.
    :param num_threads: Threads for one inference (`intra_op_num_threads`); `None` lets onnxruntime use one per
        physical core.
    """

    def __init__(self, model_file: str | Path, num_threads: int | None = None) -> None:
        ort = import_backend_library("onnxruntime", "onnx")
        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        # Idle threads sleep instead of spinning: on cores shared with other work, spinning threads steal the
        # CPU the busy one needs.
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        # Off by default; pinned so that a float32 model keeps computing in float32 on arm64 (Graviton 3+) too.
        options.add_session_config_entry("mlas.enable_gemm_fastmath_arm64_bfloat16", "0")
        if num_threads is not None:
            options.intra_op_num_threads = num_threads
            options.inter_op_num_threads = 1
        self.model_file = Path(model_file)
        self.session = ort.InferenceSession(str(model_file), options, providers=["CPUExecutionProvider"])
        self.input_names = [node.name for node in self.session.get_inputs()]
        self.output_name = self.session.get_outputs()[0].name

    def __call__(self, batch: dict[str, np.ndarray]) -> np.ndarray:
        """Logits of shape (batch, num_labels) for padded `input_ids`, `attention_mask`, `token_type_ids`."""
        feeds = {name: batch[name] for name in self.input_names}
        return np.asarray(self.session.run([self.output_name], feeds)[0], dtype=np.float32)

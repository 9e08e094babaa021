"""The machine and library versions an evaluation ran on: latency numbers mean little without them."""

import os
import platform
from importlib import metadata
from pathlib import Path
from typing import Any

_PACKAGES = ("haystack-ai", "sentence-transformers", "transformers", "torch", "ranx", "crossencoder-haystack")


def cpu_model() -> str:
    """The CPU's model name (from /proc/cpuinfo on Linux), or what `platform` knows."""
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.is_file():
        for line in cpuinfo.read_text(encoding="utf-8", errors="replace").splitlines():
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def _version(package: str) -> str | None:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return None


def describe_environment() -> dict[str, Any]:
    """Python and library versions, CPU model and count, and the number of threads torch uses."""
    import torch

    return {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpu": cpu_model(),
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "versions": {package: _version(package) for package in _PACKAGES},
    }

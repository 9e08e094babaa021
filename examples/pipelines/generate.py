"""Regenerate the YAML pipelines next to this file from `crossencoder_haystack.pipelines.EXAMPLE_PIPELINES`.

    python examples/pipelines/generate.py

tests/test_pipelines.py fails when the checked-in files and the generator disagree: run this after changing
`build_rerank_pipeline` or a component's serialization, and commit the result.
"""

from pathlib import Path

from crossencoder_haystack.pipelines import write_example_pipelines

HERE = Path(__file__).resolve().parent


def main() -> None:
    for path in write_example_pipelines(HERE):
        print(path.relative_to(HERE.parent.parent))


if __name__ == "__main__":
    main()

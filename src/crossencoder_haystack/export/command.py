"""`rerank export`: write an ONNX or OpenVINO copy of a reranker (a cross-encoder, or a bi-encoder reranker as
`rerank train` saves one) that `CrossEncoderRanker` loads."""

import argparse
from pathlib import Path

from crossencoder_haystack.cli_arguments import add_command, add_scoring_arguments

_EXPORT_SUMMARY = "Export a reranker to ONNX or OpenVINO (optionally optimized and int8) for fast CPU reranking."
_EXPORT_DESCRIPTION = (
    "Export a sentence-transformers cross-encoder, or a bi-encoder reranker directory (as `rerank train` "
    "saves one), for CrossEncoderRanker(model=OUTPUT, backend=BACKEND). The output directory holds the "
    "tokenizer, the configs, crossencoder_haystack.json, the model file and a manifest naming it. No code "
    "from the model directory is run."
)

# Kept literal (not imported from the component) so `rerank --help` does not import haystack.
_BACKENDS = ("onnx", "openvino")
_OPTIMIZATION_LEVELS = ("O1", "O2", "O3", "O4")
_QUANTIZATION_PRESETS = ("auto", "avx2", "avx512", "avx512_vnni", "arm64", "int8-static")


def default_output_dir(model: str, backend: str, optimize: str | None = None, quantize: str | None = None) -> Path:
    """`./<model name>-<backend>[-<optimize>][-<quantize>]`, e.g. `./scifact-minilm-ce-onnx-avx2`."""
    parts = [Path(model.rstrip("/")).name or "model", backend, optimize, quantize]
    return Path.cwd() / "-".join(part for part in parts if part)


def register(subparsers: argparse._SubParsersAction) -> None:
    """Adds the `export` sub-command."""
    parser = add_command(subparsers, "export", _export, _EXPORT_SUMMARY, _EXPORT_DESCRIPTION)
    parser.add_argument(
        "model", help="A local cross-encoder or bi-encoder reranker directory (or a cross-encoder hub id in the cache)."
    )
    parser.add_argument("--backend", choices=_BACKENDS, default="onnx", help="Default: %(default)s.")
    parser.add_argument(
        "--optimize",
        choices=_OPTIMIZATION_LEVELS,
        default=None,
        help="onnxruntime graph optimization (onnx only): O1 basic, O2 + transformer fusions, O3 + GELU "
        "approximation, O4 + float16 (GPUs only).",
    )
    parser.add_argument(
        "--quantize",
        choices=_QUANTIZATION_PRESETS,
        default=None,
        help="int8: a dynamic preset for the target CPU (onnx only; auto = the one for this machine's CPU flags: "
        "avx512_vnni with AVX-512 VNNI or AMX, else avx2) or int8-static (needs --calibration).",
    )
    parser.add_argument(
        "--calibration",
        type=Path,
        default=None,
        help="(query, document) pairs for int8-static: query<TAB>document lines, or JSONL with query/document.",
    )
    add_scoring_arguments(parser, ["max_length"])
    parser.add_argument(
        "--output",
        type=Path,
        default=None,
        help="Output directory (default: ./<model name>-<backend>[-<optimize>][-<quantize>]).",
    )


def _export(args: argparse.Namespace) -> int:
    import sys

    from rich.console import Console

    from crossencoder_haystack.export.calibration import read_calibration_pairs
    from crossencoder_haystack.export.exporting import export_cross_encoder

    console = Console(stderr=True)
    try:
        output = args.output or default_output_dir(args.model, args.backend, args.optimize, _preset(args.quantize))
        pairs = read_calibration_pairs(args.calibration) if args.calibration else None
        with console.status(f"Exporting {args.model} to {args.backend}…"):
            exported = export_cross_encoder(
                args.model,
                output,
                backend=args.backend,
                optimize=args.optimize,
                quantize=args.quantize,
                calibration_pairs=pairs,
                max_length=args.max_length,
            )
    except (ValueError, OSError) as error:
        console.print(f"[red]error:[/red] {error}")
        return 2
    console.print(f"Wrote {output / exported.file} (max_length {exported.max_length}).")
    if exported.quantize_chosen_by:
        console.print(f"--quantize auto chose {exported.quantize} ({exported.quantize_chosen_by}).")
    print(
        "Use it with:\n"
        "  from haystack_integrations.components.rankers.crossencoder import CrossEncoderRanker\n"
        f"  ranker = CrossEncoderRanker(model={str(output)!r}, backend={args.backend!r})",
        file=sys.stdout,
    )
    return 0


def _preset(quantize: str | None) -> str | None:
    """The preset `--quantize auto` stands for on this machine (for the default output name); others unchanged."""
    if quantize != "auto":
        return quantize
    from crossencoder_haystack.export.exporting import auto_quantization_preset

    return auto_quantization_preset()[0]

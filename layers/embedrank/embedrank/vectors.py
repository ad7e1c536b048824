"""Vectors as data: base64 strings or plain float lists, never a Python object per element we do not need.

Canonical base64 is the little-endian float32 bytes of a vector (what OpenAI returns and the openai SDK decodes with
``np.frombuffer(b64decode(s), "float32")``). Providers are asked for base64 where they offer it; when the caller wants
base64 too the strings pass through untouched, and when the caller wants floats they are decoded with ``array``.
"""

from __future__ import annotations

import math
import sys
from array import array
from base64 import b64decode, b64encode
from collections.abc import Sequence
from typing import Literal

Encoding = Literal["float", "base64"]

_LITTLE = sys.byteorder == "little"


def _from_b64(s: str) -> array[float]:
    a = array("f", b64decode(s))
    if not _LITTLE:  # pragma: no cover - every Lambda and dev machine is little-endian
        a.byteswap()
    return a


def _to_b64(a: array[float]) -> str:
    if not _LITTLE:  # pragma: no cover
        a = array("f", a)
        a.byteswap()
    return b64encode(a.tobytes()).decode("ascii")


def b64_len(dims: int) -> int:
    """Length of the base64 text of a float32 vector of ``dims`` elements."""
    return 4 * math.ceil(dims * 4 / 3)


class Vectors:
    """A batch of embeddings in one of two encodings, converted only when the caller needs the other one."""

    __slots__ = ("encoding", "items")

    def __init__(self, encoding: Encoding, items: Sequence[str] | Sequence[Sequence[float]]) -> None:
        self.encoding: Encoding = encoding
        self.items = list(items)

    @classmethod
    def concat(cls, parts: Sequence[Vectors]) -> Vectors:
        if len(parts) == 1:
            return parts[0]
        encoding: Encoding = "base64" if all(p.encoding == "base64" for p in parts) else "float"
        items: list[object] = []
        for part in parts:
            items.extend(part.as_encoding(encoding))
        return cls(encoding, items)  # type: ignore[arg-type]

    def __len__(self) -> int:
        return len(self.items)

    def widths(self) -> set[int]:
        """The set of vector widths present; computed from the base64 length, without decoding."""
        if self.encoding == "base64":
            sizes = {len(s) * 3 // 4 - s[-2:].count("=") for s in self.items if isinstance(s, str)}
            return {n // 4 if n % 4 == 0 else -1 for n in sizes}  # -1: not a whole float32 vector
        return {len(v) for v in self.items if not isinstance(v, str)}

    def as_encoding(self, encoding: Encoding) -> list[object]:
        if encoding == self.encoding:
            return self.items  # type: ignore[return-value]
        if encoding == "float":
            return [_from_b64(s).tolist() for s in self.items]  # type: ignore[arg-type]
        return [_to_b64(array("f", v)) for v in self.items]  # type: ignore[arg-type]

    def truncated(self, dims: int) -> Vectors:
        """Matryoshka truncation: keep the first ``dims`` elements and re-normalize to unit length."""
        out: list[str] = []
        for item in self.items:
            a = _from_b64(item) if isinstance(item, str) else array("f", item)  # type: ignore[arg-type,type-var]
            head = a[:dims]
            norm = math.sqrt(math.fsum(x * x for x in head)) or 1.0
            out.append(_to_b64(array("f", [x / norm for x in head])))
        return Vectors("base64", out)

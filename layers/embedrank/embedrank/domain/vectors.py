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
from typing import Any, Literal

import orjson

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


# Bytes a float array's JSON text never holds but any other JSON value does: a string or an object needs '"' or "{",
# a nested array a "[" past the first byte, and every literal one of three letters: true (t), false (a), null (n),
# and NaN (a), Infinity (n, t), which Python's json module writes. Each probe is one memchr over the array.
_NOT_IN_NUMBERS = (b'"', b"{", b"t", b"a", b"n")
Kind = Literal["float", "base64", "json"]


def split_float_arrays(raw: bytes, key: bytes = b'"embedding"') -> tuple[Any, list[bytes]]:
    """Cut every ``key: [numbers]`` array out of a provider's JSON answer, as raw text, and parse the rest.

    The parsed skeleton holds ``0`` where each array was; the arrays come back in document order. This lets a float
    answer pass through as the provider's own text (``orjson.Fragment``) instead of 24,576 Python floats parsed and
    re-printed per 16x1536 request. ``Vectors.widths`` checks each array holds only numbers (a few memchr probes
    per array).
    """
    spans: list[bytes] = []
    parts: list[bytes] = []
    pos = scan = 0
    end = len(raw)
    while (found := raw.find(key, scan)) >= 0:
        i = found + len(key)
        while i < end and raw[i] in b" \t\r\n:":
            i += 1
        if i >= end or raw[i] != 0x5B:  # not followed by an array: a string value such as "object": "embedding"
            scan = i
            continue
        j = raw.find(b"]", i)
        if j < 0:
            raise ValueError("an embedding array is not terminated")
        span = raw[i : j + 1]
        parts += (raw[pos:i], b"0")
        spans.append(span)
        pos = scan = j + 1
    parts.append(raw[pos:])
    return orjson.loads(b"".join(parts)), spans


def _json_widths(spans: list[bytes]) -> set[int]:
    """The width of float arrays' JSON text: {-1} when any holds something other than numbers.

    Each array is probed for the bytes above (~3 µs per 1536-dim array in all); elements are counted in the first
    array only, since one answer's vectors come from one model. An exact per-character check plus a count of every
    array cost ~0.45 ms per 16x1536 answer, almost half the gateway's latency budget.
    """
    for span in spans:
        if span.find(b"[", 1) >= 0:
            return {-1}
        for probe in _NOT_IN_NUMBERS:
            if probe in span:
                return {-1}
    if not spans:
        return set()
    first = spans[0]
    return {first.count(b",") + 1 if first[1:-1].strip() else 0}


class Vectors:
    """A batch of embeddings held as base64 strings, float lists, or float arrays' JSON text (``json``), converted
    only when the caller needs another form."""

    __slots__ = ("encoding", "items")

    def __init__(self, encoding: Kind, items: Sequence[Any]) -> None:
        self.encoding: Kind = encoding
        self.items: list[Any] = list(items)

    @classmethod
    def concat(cls, parts: Sequence[Vectors]) -> Vectors:
        if len(parts) == 1:
            return parts[0]
        kinds = {p.encoding for p in parts}
        kind: Kind = kinds.pop() if len(kinds) == 1 else "base64"
        items: list[Any] = []
        for part in parts:
            items.extend(part.items if part.encoding == kind else part.as_encoding("base64"))
        return cls(kind, items)

    def __len__(self) -> int:
        return len(self.items)

    def widths(self) -> set[int]:
        """The set of vector widths present, counted without decoding a single float."""
        if self.encoding == "base64":
            sizes = {len(s) * 3 // 4 - s[-2:].count("=") for s in self.items}
            return {n // 4 if n % 4 == 0 else -1 for n in sizes}  # -1: not a whole float32 vector
        if self.encoding == "json":
            return _json_widths(self.items)
        return {len(v) for v in self.items}

    def _arrays(self) -> list[array[float]]:
        if self.encoding == "base64":
            return [_from_b64(s) for s in self.items]
        if self.encoding == "json":
            return [array("f", orjson.loads(b)) for b in self.items]
        return [array("f", v) for v in self.items]

    def as_encoding(self, encoding: Encoding, start: int = 0, stop: int | None = None) -> list[Any]:
        """``items[start:stop]`` in ``encoding``: a streamed answer converts one slice at a time."""
        items = self.items if start == 0 and stop is None else self.items[start:stop]
        if encoding == self.encoding:
            return items
        if encoding == "float":
            if self.encoding == "json":
                return [orjson.Fragment(b) for b in items]
            return [_from_b64(s).tolist() for s in items]
        return [_to_b64(a) for a in Vectors(self.encoding, items)._arrays()]

    def truncated(self, dims: int) -> Vectors:
        """Matryoshka truncation: keep the first ``dims`` elements and re-normalize to unit length."""
        out: list[str] = []
        for a in self._arrays():
            head = a[:dims]
            norm = math.sqrt(math.fsum(x * x for x in head)) or 1.0
            out.append(_to_b64(array("f", [x / norm for x in head])))
        return Vectors("base64", out)

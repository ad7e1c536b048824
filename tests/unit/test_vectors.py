"""Vectors as data: float text passed through, base64 untouched, conversions exact."""

from __future__ import annotations

import json

import orjson
import pytest

from embedrank.domain.vectors import Vectors, split_float_arrays
from fakes import b64, decode_b64, vector


def openai_text(vectors: list[list[float]]) -> bytes:
    data = [{"object": "embedding", "index": i, "embedding": v} for i, v in enumerate(vectors)]
    return json.dumps({"object": "list", "data": data[::-1], "usage": {"prompt_tokens": 3}}).encode()


def test_float_arrays_are_cut_out_as_text_in_document_order() -> None:
    raw = openai_text([vector(0, 8), vector(1, 8)])
    skeleton, spans = split_float_arrays(raw)
    assert [d["embedding"] for d in skeleton["data"]] == [0, 0]
    assert [d["object"] for d in skeleton["data"]] == ["embedding", "embedding"]  # a string value is left alone
    assert [json.loads(s) for s in spans] == [vector(1, 8), vector(0, 8)]  # document order: index 1 first
    vectors = Vectors("json", spans)
    assert vectors.widths() == {8}
    out = orjson.loads(orjson.dumps(vectors.as_encoding("float")))
    assert out == [vector(1, 8), vector(0, 8)]
    assert [decode_b64(s) for s in vectors.as_encoding("base64")] == [vector(1, 8), vector(0, 8)]


def test_base64_answers_have_no_arrays_to_cut() -> None:
    raw = json.dumps({"data": [{"object": "embedding", "index": 0, "embedding": b64(vector(0, 4))}]}).encode()
    skeleton, spans = split_float_arrays(raw)
    assert spans == [] and skeleton["data"][0]["embedding"] == b64(vector(0, 4))


@pytest.mark.parametrize("value", ['"x"', '{"a": 1}', "true", "false", "null", "NaN", "-Infinity"])
def test_non_numeric_or_cut_arrays_are_refused(value: str) -> None:
    raw = f'{{"data": [{{"embedding": [1, 2]}}, {{"embedding": [1, {value}]}}]}}'.encode()
    _, spans = split_float_arrays(raw)
    assert Vectors("json", spans).widths() == {-1}  # -1: not a float array (the service answers 502)
    _, spans = split_float_arrays(b'{"data": [{"embedding": [1.5e-3, -2, 0.25]}, {"embedding": [1, 2, 3]}]}')
    assert Vectors("json", spans).widths() == {3}
    with pytest.raises(ValueError):  # a nested array is cut at its first "]": what is left is not JSON
        split_float_arrays(b'{"data": [{"embedding": [1, [3]]}]}')
    with pytest.raises(ValueError):
        split_float_arrays(b'{"data": [{"embedding": [1, 2')


def test_concat_of_mixed_forms_and_truncation() -> None:
    a = Vectors("json", [orjson.dumps(vector(0, 8))])
    b = Vectors("base64", [b64(vector(1, 8))])
    both = Vectors.concat([a, b])
    assert both.encoding == "base64" and [decode_b64(s) for s in both.items] == [vector(0, 8), vector(1, 8)]
    short = Vectors("json", [orjson.dumps([3.0, 4.0, 12.0])]).truncated(2)
    assert decode_b64(short.items[0]) == pytest.approx([0.6, 0.8])
    assert Vectors("json", [b"[]"]).widths() == {0}

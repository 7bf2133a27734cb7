"""Unsigned LEB128, shared by the Avro tags and the WebAssembly image rewriter."""

from __future__ import annotations

import pytest

from aonode.codec.varint import encode_uleb128


@pytest.mark.parametrize(
    ("value", "encoded"),
    [(0, "00"), (1, "01"), (127, "7f"), (128, "8001"), (300, "ac02"), (624485, "e58e26")],
)
def test_known_encodings(value: int, encoded: str) -> None:
    assert encode_uleb128(value).hex() == encoded


def test_round_trips_through_the_standard_reading() -> None:
    for value in (0, 63, 64, 2**14 - 1, 2**14, 2**32 - 1, 2**64 - 1):
        out, shift = 0, 0
        for byte in encode_uleb128(value):
            out |= (byte & 0x7F) << shift
            shift += 7
        assert out == value and encode_uleb128(value)[-1] < 0x80

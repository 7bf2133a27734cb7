"""Request headers: lowercased names, the first value of a repeated name, the block size."""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from aonode.http.request import Request

_BYTES = st.binary(max_size=12)  # any byte, NUL and non-ASCII included


def one_by_one(raw: list[tuple[bytes, bytes]]) -> tuple[dict[str, str], int]:
    headers: dict[str, str] = {}
    size = 0
    for k, v in raw:
        size += len(k) + len(v) + 4
        headers.setdefault(k.decode("latin-1").lower(), v.decode("latin-1"))
    return headers, size


def of(raw: Any) -> tuple[dict[str, str], int]:
    async def receive() -> dict[str, Any]:
        return {"type": "http.disconnect"}

    request = Request.from_scope({"type": "http", "headers": raw}, receive, 100)
    return request.headers, request.header_bytes


@settings(max_examples=300)
@given(
    st.lists(
        st.tuples(st.sampled_from([b"Content-Type", b"content-type", b"X-A", b"", b"a\0b"]), _BYTES)
        | st.tuples(_BYTES, _BYTES),
        max_size=6,
    )
)
def test_headers_read_as_one_by_one(raw: list[tuple[bytes, bytes]]) -> None:
    """Same names, first values, order and size: repeats, case, NUL and empty ones too."""
    headers, size = of(raw)
    expected, expected_size = one_by_one(raw)
    assert list(headers.items()) == list(expected.items())
    assert size == expected_size


def test_any_iterable_of_pairs() -> None:
    raw = [(b"Host", b"x"), (b"content-length", b"3")]
    assert of(iter([list(p) for p in raw])) == one_by_one(raw)
    assert of([]) == ({}, 0)

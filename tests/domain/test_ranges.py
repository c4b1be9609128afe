"""``Range`` and ``If-None-Match`` parsing (RFC 9110 sections 13.1.2 and 14): pure values."""

from __future__ import annotations

import pytest

from gateway.domain.ranges import ByteRange, RangeNotSatisfiable, etag_matches, parse_range

SIZE = 1000
ETAG = '"0123abcd"'


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("bytes=0-99", ByteRange(0, 100)),
        ("bytes=0-0", ByteRange(0, 1)),
        ("bytes=100-", ByteRange(100, SIZE)),
        ("bytes=999-", ByteRange(999, SIZE)),
        ("bytes=999-999", ByteRange(999, SIZE)),
        ("bytes=-50", ByteRange(950, SIZE)),
        ("bytes=-1", ByteRange(999, SIZE)),
        ("bytes=-1000", ByteRange(0, SIZE)),
        # An end past the object, or a suffix longer than it, is clamped to the object.
        ("bytes=0-5000", ByteRange(0, SIZE)),
        ("bytes=500-1000", ByteRange(500, SIZE)),
        ("bytes=-5000", ByteRange(0, SIZE)),
        # The unit is case-insensitive; whitespace around the parts is tolerated.
        ("Bytes=0-99", ByteRange(0, 100)),
        ("BYTES = 10 - 19 ", ByteRange(10, 20)),
    ],
)
def test_single_ranges(header: str, expected: ByteRange) -> None:
    assert parse_range(header, SIZE) == expected


def test_byte_range_length_and_content_range() -> None:
    wanted = parse_range("bytes=100-199", SIZE)
    assert wanted is not None
    assert wanted.length == 100
    assert wanted.content_range(SIZE) == "bytes 100-199/1000"
    suffix = parse_range("bytes=-50", SIZE)
    assert suffix is not None
    assert suffix.content_range(SIZE) == "bytes 950-999/1000"


@pytest.mark.parametrize(
    "header",
    [
        "bytes=1000-",  # first byte is one past the end
        "bytes=1000-1999",
        "bytes=5000-6000",
        "bytes=-0",  # a zero-length suffix selects nothing
    ],
)
def test_unsatisfiable_ranges(header: str) -> None:
    with pytest.raises(RangeNotSatisfiable):
        parse_range(header, SIZE)


def test_unsatisfiable_is_a_value_error_carrying_the_header() -> None:
    with pytest.raises(ValueError, match="bytes=2000-"):
        parse_range("bytes=2000-", SIZE)


@pytest.mark.parametrize(
    "header",
    [
        None,
        "",
        # several ranges: we may serve the whole object instead
        "bytes=0-9,20-29",
        "bytes=0-9, -5",
        # other units
        "items=0-9",
        "none",
        "=0-9",
        # malformed
        "bytes",
        "bytes=",
        "bytes=abc",
        "bytes=-",
        "bytes=a-9",
        "bytes=0-b",
        "bytes=-x",
        "bytes=+1-2",
        "bytes=1-2-3",
        "bytes=0x10-0x20",
        "bytes=1.5-2",
        "bytes=9-5",  # last before first: invalid, so ignored (not 416)
        # Latin-1 header bytes that str.isdigit() calls digits but int() refuses
        "bytes=\xb2-",
        "bytes=0-\xb9",
        "bytes=-\xb3",
    ],
)
def test_headers_that_are_ignored(header: str | None) -> None:
    assert parse_range(header, SIZE) is None


def test_empty_object() -> None:
    assert parse_range(None, 0) is None
    assert parse_range("bytes=0-9,10-19", 0) is None
    with pytest.raises(RangeNotSatisfiable):
        parse_range("bytes=0-", 0)
    with pytest.raises(RangeNotSatisfiable):
        parse_range("bytes=0-0", 0)
    # RFC 9110 calls a non-zero suffix satisfiable even on an empty representation, but there
    # are no bytes to put in a 206; the gateway answers 416 (``bytes */0``).
    with pytest.raises(RangeNotSatisfiable):
        parse_range("bytes=-5", 0)


def test_one_byte_object() -> None:
    assert parse_range("bytes=0-", 1) == ByteRange(0, 1)
    assert parse_range("bytes=-9", 1) == ByteRange(0, 1)
    with pytest.raises(RangeNotSatisfiable):
        parse_range("bytes=1-", 1)


@pytest.mark.parametrize(
    ("header", "matches"),
    [
        (None, False),
        ("", False),
        (ETAG, True),
        ('"other"', False),
        ("0123abcd", False),  # unquoted is a different tag
        (f'"a", {ETAG}, "b"', True),
        (f'"a",{ETAG}', True),
        ('"a", "b"', False),
        (f"W/{ETAG}", True),  # If-None-Match uses the weak comparison
        (f'"a", W/{ETAG}', True),
        ('W/"other"', False),
        ("*", True),
        (" * ", True),
        ('"a", *', True),
    ],
)
def test_etag_matches(header: str | None, matches: bool) -> None:
    assert etag_matches(header, ETAG) is matches


def test_positions_longer_than_19_digits_never_reach_int() -> None:
    huge = "9" * 4400  # int() refuses this many digits: it used to answer 500
    with pytest.raises(RangeNotSatisfiable):
        parse_range(f"bytes={huge}-", 100)
    assert parse_range(f"bytes=10-{huge}", 100) == ByteRange(10, 100)
    assert parse_range(f"bytes=-{huge}", 100) == ByteRange(0, 100)
    assert parse_range("bytes=0-9999999999999999999", 100) == ByteRange(0, 100)

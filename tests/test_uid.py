import pytest
from hypothesis import given, strategies as st

from hardware.errors import InvalidUID
from hardware.uid import is_random_uid, normalise_uid, parse_get_uid_response


@pytest.mark.parametrize("raw, expected", [
    (b"\x04\xa1\xb2\xc3", "04A1B2C3"),
    ("04:a1:b2:c3:d4:e5:f6", "04A1B2C3D4E5F6"),
    ("04 A1 B2 C3", "04A1B2C3"),
    ("0x04a1b2c3", "04A1B2C3"),
    ("01-2e-3f-4a-5b-6c-7d-8e", "012E3F4A5B6C7D8E"),  # FeliCa IDm, 8 bytes
    (bytes(range(10)), "00010203040506070809"),
])
def test_normalise(raw, expected):
    assert normalise_uid(raw) == expected


@pytest.mark.parametrize("raw", ["", "04A1B2", "04A1B2C3D5", "ZZ112233", "04A1B2C", b"\x01\x02",
                                 bytes(11), 12345678])
def test_normalise_rejects(raw):
    with pytest.raises(InvalidUID):
        normalise_uid(raw)


@given(st.sampled_from([4, 7, 8, 10]).flatmap(lambda n: st.binary(min_size=n, max_size=n)))
def test_normalise_roundtrip(raw):
    text = normalise_uid(raw)
    assert text == text.upper() and len(text) == 2 * len(raw)
    assert bytes.fromhex(text) == raw
    assert normalise_uid(":".join(text[i:i + 2].lower() for i in range(0, len(text), 2))) == text


@pytest.mark.parametrize("uid, random", [
    ("08A1B2C3", True),
    ("08000000", True),
    ("04A1B2C3", False),
    ("0812345678AABB", False),  # 7-byte UIDs are never random IDs
    ("80A1B2C3", False),
])
def test_random_uid(uid, random):
    assert is_random_uid(uid) is random


def test_get_uid_response():
    assert parse_get_uid_response([0x04, 0x11, 0x22, 0x33], 0x90, 0x00) == "04112233"
    with pytest.raises(InvalidUID, match="6A 81"):
        parse_get_uid_response([], 0x6A, 0x81)

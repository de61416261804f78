import random
from datetime import datetime, timedelta, timezone
from email.utils import format_datetime

import pytest

from edge.backoff import Backoff, parse_retry_after


def test_grows_caps_and_resets():
    rng = random.Random(1)
    b = Backoff(base=1, factor=2, cap=60)
    assert b.delay(rng) == 0
    ceilings = []
    for _ in range(10):
        b = b.failed()
        d = b.delay(rng)
        ceilings.append(d)
        assert min(60, 2 ** (b.failures - 1)) / 2 <= d <= min(60, 2 ** (b.failures - 1))
    assert max(ceilings) <= 60
    assert b.succeeded().delay(rng) == 0
    assert Backoff().failed() != Backoff()  # immutable values
    with pytest.raises(Exception):
        b.failures = 0


def test_jitter_spreads_devices():
    delays = {round(Backoff(failures=6).delay(random.Random(seed)), 3) for seed in range(50)}
    assert len(delays) > 40


def test_retry_after_is_a_floor_but_capped():
    rng = random.Random(2)
    assert Backoff(failures=1).delay(rng, retry_after=30) == 30
    assert Backoff(failures=1, cap=10).delay(rng, retry_after=3600) == 10


@pytest.mark.parametrize("header, expected", [
    ("120", 120.0), (" 5 ", 5.0), ("", None), (None, None), ("soon", None),
])
def test_parse_retry_after(header, expected):
    assert parse_retry_after(header) == expected


def test_parse_retry_after_date():
    when = datetime.now(timezone.utc) + timedelta(seconds=90)
    assert 80 <= parse_retry_after(format_datetime(when, usegmt=True)) <= 91

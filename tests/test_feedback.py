"""LED/buzzer feedback on gpiozero's MockFactory, and the null feedback.

Pin histories are compared in full (``[s.state for s in pin.states]``):
gpiozero's ``assert_states()`` zips and would pass on a shorter expectation.
MockPin records only changes, so a list is the exact on/off sequence.
"""

from __future__ import annotations

import logging
import time

import pytest

gpiozero = pytest.importorskip("gpiozero")
from gpiozero import Device, LED  # noqa: E402
from gpiozero.pins.mock import MockFactory  # noqa: E402

from hardware.errors import FeedbackUnavailable, HardwareError  # noqa: E402
from hardware.feedback import (  # noqa: E402
    OFF,
    PATTERNS,
    PERSISTENT_PATTERNS,
    VERDICTS,
    Feedback,
    GpioFeedback,
    NullFeedback,
    open_feedback,
)

GREEN, RED, BUZZER = 17, 27, 22
F, T = False, True
FAST = 50  # every duration / 50: the longest tap pattern lasts 40 ms


@pytest.fixture
def factory():
    """A fresh MockFactory as the default pin factory; reset after the test."""
    factory = MockFactory()
    Device.pin_factory = factory
    yield factory
    factory.reset()
    Device.pin_factory = None


@pytest.fixture
def make(factory):
    """Build GpioFeedback on the mock pins; closes each one after the test."""
    made: list[GpioFeedback] = []

    def make(speed: float = FAST) -> GpioFeedback:
        fb = GpioFeedback(GREEN, RED, BUZZER, speed=speed)
        made.append(fb)
        return fb

    yield make
    for fb in made:
        fb.close()


def states(factory: MockFactory, pin: int) -> list[bool]:
    return [s.state for s in factory.pin(pin).states]


def all_states(factory: MockFactory) -> tuple[list[bool], list[bool], list[bool]]:
    return states(factory, GREEN), states(factory, RED), states(factory, BUZZER)


def expect(factory: MockFactory, green: list[bool], red: list[bool], buzzer: list[bool]) -> None:
    """Wait (with a deadline) until the pins have exactly these histories.

    Blink threads make their first write after ``blink()`` returns, so a
    state just after a call is polled for rather than read once."""
    deadline = time.monotonic() + 2.0
    while all_states(factory) != (green, red, buzzer) and time.monotonic() < deadline:
        time.sleep(0.002)
    assert all_states(factory) == (green, red, buzzer)


def wait_idle(fb: GpioFeedback, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while fb.is_playing:
        assert time.monotonic() < deadline, "pattern did not finish in time"
        time.sleep(0.002)


# -- the tap patterns, complete ---------------------------------------------------

# (method, green, red, buzzer): the full pin history after the pattern.
TAP_CASES = [
    ("accepted", [F, T, F], [F], [F, T, F]),
    ("duplicate", [F, T, F, T, F], [F], [F, T, F]),
    ("unknown_card", [F], [F, T, F], [F, T, F, T, F]),
    ("blocked_card", [F], [F, T, F], [F, T, F]),
    ("random_uid", [F], [F, T, F, T, F, T, F], [F, T, F, T, F, T, F]),
    ("error", [F, T, F, T, F, T, F], [F, T, F, T, F, T, F], [F, T, F, T, F]),
]


@pytest.mark.parametrize("method, green, red, buzzer", TAP_CASES)
def test_tap_pattern_full_pin_sequence(make, factory, method, green, red, buzzer):
    fb = make()
    getattr(fb, method)()
    assert fb.is_playing
    wait_idle(fb)
    assert all_states(factory) == (green, red, buzzer)
    time.sleep(0.05)  # nothing keeps running after the pattern
    assert all_states(factory) == (green, red, buzzer)
    assert fb.history == [method]


def test_every_verdict_has_a_tested_pattern():
    assert {VERDICTS[v] for v in PATTERNS} == {case[0] for case in TAP_CASES}
    assert set(PATTERNS) == set(VERDICTS)


@pytest.mark.parametrize("verdict", sorted(PATTERNS))
def test_on_times_follow_the_table_scaled_by_speed(make, factory, verdict):
    speed = 20
    fb = make(speed=speed)
    fb.signal(verdict)
    wait_idle(fb)
    for pin, spec in zip((GREEN, RED, BUZZER), PATTERNS[verdict]):
        history = factory.pin(pin).states
        if spec == OFF:
            assert len(history) == 1
            continue
        on_time, _, n = spec
        # the timestamp of each False entry is how long the pin had been on
        on_phases = [s.timestamp for s in history[1:] if s.state is False]
        assert len(on_phases) == n
        for seconds in on_phases:
            assert seconds >= on_time / speed * 0.9


def test_patterns_differ_by_sound_alone_and_by_light_alone():
    sounds = [p.buzzer for p in PATTERNS.values()]
    lights = [(p.green, p.red) for p in PATTERNS.values()]
    assert len(set(sounds)) == len(PATTERNS)
    assert len(set(lights)) == len(PATTERNS)
    assert all(p.buzzer != OFF for p in PATTERNS.values()), "every tap must be heard"
    assert all(p.buzzer == OFF for p in PERSISTENT_PATTERNS.values()), "states are silent"


# -- interruption, persistence ------------------------------------------------------


def test_calls_return_immediately_and_close_stops_everything(make, factory):
    fb = make(speed=1)  # blocked lasts 2 s at real speed
    started = time.monotonic()
    fb.blocked_card()
    assert time.monotonic() - started < 0.1
    assert fb.is_playing
    expect(factory, [F], [F, T], [F, T])
    started = time.monotonic()
    fb.close()
    assert time.monotonic() - started < 0.5
    assert all_states(factory) == ([F], [F, T, F], [F, T, F])
    assert fb.green.closed and fb.red.closed and fb.buzzer.closed
    assert not fb.is_playing
    fb.accepted()  # ignored after close, never raises
    fb.reader_down()
    assert fb.history == ["blocked_card"]


def test_second_tap_interrupts_the_running_pattern(make, factory):
    fb = make(speed=2)  # blocked: red 1 s; accepted: 0.3 s
    started = time.monotonic()
    fb.blocked_card()
    fb.accepted()
    wait_idle(fb)
    assert time.monotonic() - started < 0.9, "waited for the blocked pattern"
    assert all_states(factory) == (
        [F, T, F],  # accepted's green
        [F, T, F],  # blocked's red, cut short by the new tap
        [F, T, F, T, F],  # blocked's long beep cut, then accepted's beep
    )
    assert factory.pin(RED).states[2].timestamp < 0.9
    assert fb.history == ["blocked_card", "accepted"]


def test_reader_down_runs_until_reader_up(make, factory):
    fb = make()  # red 10 ms on every 40 ms
    fb.reader_down()
    assert fb.is_reader_down
    time.sleep(0.2)
    fb.reader_up()
    red = states(factory, RED)
    assert len(red) >= 5, "the slow blink keeps running in the background"
    assert red == [F] + [T, F] * ((len(red) - 1) // 2)
    time.sleep(0.1)
    assert states(factory, RED) == red, "reader_up stopped the blink"
    assert states(factory, GREEN) == [F] and states(factory, BUZZER) == [F]
    assert fb.history == ["reader_down", "reader_up"]
    assert not fb.is_reader_down


def test_reader_down_resumes_after_a_tap(make, factory):
    fb = make(speed=1)  # reader_down: red 0.5 s on; accepted lasts 0.6 s
    fb.reader_down()
    expect(factory, [F], [F, T], [F])
    fb.accepted()
    expect(factory, [F, T], [F, T, F], [F, T])
    wait_idle(fb)
    expect(factory, [F, T, F], [F, T, F, T], [F, T, F])
    fb.reader_up()
    assert all_states(factory) == ([F, T, F], [F, T, F, T, F], [F, T, F])
    assert fb.history == ["reader_down", "accepted", "reader_up"]


def test_state_change_during_a_tap_waits_for_the_tap(make, factory):
    fb = make(speed=1)
    fb.accepted()
    fb.reader_down()
    assert states(factory, RED) == [F], "the tap owns the red LED"
    wait_idle(fb)
    expect(factory, [F, T, F], [F, T], [F, T, F])


def test_offline_resumes_after_a_tap_and_online_stops_it(make, factory):
    fb = make(speed=1)  # offline: green 0.25 s on; duplicate lasts 0.6 s
    fb.offline()
    fb.offline()  # repeated: no restart, recorded once
    expect(factory, [F, T], [F], [F])
    fb.duplicate()
    wait_idle(fb)
    expect(factory, [F, T, F, T, F, T, F, T], [F], [F, T, F])
    fb.online()
    assert all_states(factory) == ([F, T, F, T, F, T, F, T, F], [F], [F, T, F])
    assert fb.history == ["offline", "duplicate", "online"]


def test_reader_up_leaves_offline_blink_alone(make, factory):
    fb = make(speed=1)
    fb.offline()
    fb.reader_down()
    expect(factory, [F, T], [F, T], [F])
    fb.reader_up()
    expect(factory, [F, T], [F, T, F], [F])
    assert fb.is_offline and not fb.is_reader_down


def test_gpio_signal_dispatch_plays_the_pattern(make, factory):
    fb = make()
    fb.signal("random")
    wait_idle(fb)
    assert all_states(factory) == ([F], [F, T, F, T, F, T, F], [F, T, F, T, F, T, F])


# -- construction and open_feedback ------------------------------------------------------


def test_invalid_pin_names_the_key_and_releases_built_pins(factory):
    with pytest.raises(FeedbackUnavailable, match=r"red_pin=99") as info:
        GpioFeedback(GREEN, 99, BUZZER)
    assert isinstance(info.value, HardwareError)
    LED(GREEN).close()  # the green LED built before the failure was released


def test_pin_in_use_names_the_key(factory):
    with pytest.raises(FeedbackUnavailable, match=r"buzzer_pin=17"):
        GpioFeedback(GREEN, RED, GREEN)


def test_speed_must_be_positive(factory):
    with pytest.raises(ValueError):
        GpioFeedback(GREEN, RED, BUZZER, speed=0)


def test_open_feedback_gpio_on_mock_pins(factory):
    fb = open_feedback("gpio", green_pin=GREEN, red_pin=RED, buzzer_pin=BUZZER, speed=FAST)
    try:
        assert isinstance(fb, GpioFeedback)
        fb.accepted()
        wait_idle(fb)
        assert states(factory, GREEN) == [F, T, F]
    finally:
        fb.close()


def test_open_feedback_gpio_with_invalid_pin_warns_and_returns_null(caplog):
    caplog.set_level(logging.INFO, logger="hardware.feedback")
    fb = open_feedback("gpio", red_pin=99, pin_factory=MockFactory())
    assert type(fb) is NullFeedback
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert warnings[0].name == "hardware.feedback"
    assert "red_pin=99" in warnings[0].getMessage()
    fb.accepted()  # and it works
    assert fb.history == ["accepted"]


def test_open_feedback_gpio_without_pin_factory_warns_and_returns_null(monkeypatch, caplog):
    monkeypatch.setenv("GPIOZERO_PIN_FACTORY", "no-such-factory")
    monkeypatch.setattr(Device, "pin_factory", None)
    caplog.set_level(logging.INFO, logger="hardware.feedback")
    fb = open_feedback("gpio")
    assert type(fb) is NullFeedback
    [record] = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert "green_pin='GPIO17'" in record.getMessage()
    assert "no-such-factory" in record.getMessage()


def _on_a_raspberry_pi() -> bool:
    try:
        with open("/proc/device-tree/model", "rb") as f:
            return b"Raspberry Pi" in f.read()
    except OSError:
        return False


@pytest.mark.skipif(_on_a_raspberry_pi(), reason="a Raspberry Pi does have GPIO")
def test_open_feedback_gpio_off_a_pi_warns_and_returns_null(monkeypatch, caplog):
    monkeypatch.delenv("GPIOZERO_PIN_FACTORY", raising=False)
    monkeypatch.setattr(Device, "pin_factory", None)
    caplog.set_level(logging.INFO, logger="hardware.feedback")
    fb = open_feedback("gpio")
    assert type(fb) is NullFeedback
    [record] = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert "pin factory" in record.getMessage()


def test_open_feedback_auto_falls_back_quietly(caplog):
    caplog.set_level(logging.INFO, logger="hardware.feedback")
    fb = open_feedback("auto", red_pin=99, pin_factory=MockFactory())
    assert type(fb) is NullFeedback
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert any("red_pin=99" in r.getMessage() for r in caplog.records)


def test_open_feedback_auto_uses_gpio_when_it_can(factory):
    fb = open_feedback("auto")
    try:
        assert isinstance(fb, GpioFeedback)
    finally:
        fb.close()


def test_open_feedback_none_and_unknown_kind(factory):
    assert type(open_feedback("none")) is NullFeedback
    assert factory.pins == {}, "null feedback touches no pin"
    with pytest.raises(ValueError, match="gpoi"):
        open_feedback("gpoi")


# -- null feedback -----------------------------------------------------------------------


@pytest.mark.parametrize("verdict, method", sorted(VERDICTS.items()))
def test_signal_dispatches_each_verdict(verdict, method):
    calls: list[str] = []

    spy = Feedback()
    setattr(spy, method, lambda: calls.append(method))
    spy.signal(verdict)
    assert calls == [method]
    null = NullFeedback()
    null.signal(verdict)
    assert null.history == [method]


@pytest.mark.parametrize("bad", ["ACCEPTED", "unknown_card", "", "late", None])
def test_signal_rejects_unknown_verdicts(bad):
    fb = NullFeedback()
    with pytest.raises(ValueError, match="accepted, duplicate, unknown, blocked, random, error"):
        fb.signal(bad)
    assert fb.history == []


def test_null_feedback_logs_and_keeps_history(caplog):
    caplog.set_level(logging.INFO, logger="hardware.feedback")
    fb = NullFeedback()
    fb.accepted()
    fb.duplicate()
    fb.unknown_card()
    fb.blocked_card()
    fb.random_uid()
    fb.error()
    fb.reader_down()
    fb.reader_down()
    fb.reader_up()
    fb.reader_up()
    fb.offline()
    fb.online()
    expected = [
        "accepted", "duplicate", "unknown_card", "blocked_card", "random_uid", "error",
        "reader_down", "reader_up", "offline", "online",
    ]  # fmt: skip
    assert fb.history == expected
    logged = [r for r in caplog.records if r.name == "hardware.feedback"]
    assert [r.levelno for r in logged] == [logging.INFO] * len(expected)
    assert [r.getMessage() for r in logged] == [f"feedback: {name}" for name in expected]
    fb.close()
    fb.accepted()
    assert fb.history == expected and fb.closed


def test_null_feedback_history_is_bounded():
    fb = NullFeedback()
    fb.history_limit = 5
    for _ in range(7):
        fb.accepted()
    fb.error()
    assert fb.history == ["accepted"] * 4 + ["error"]
    assert isinstance(fb.history, list)


def test_feedback_is_a_context_manager():
    with NullFeedback() as fb:
        fb.accepted()
    assert fb.closed

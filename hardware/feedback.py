"""What the person at the gate sees and hears after a tap: LEDs and a buzzer.

Every edge has a green LED, a red LED and an active buzzer (one that sounds
at its own pitch while its pin is high). The patterns are the user-facing
documentation for the people at the gate; each one can be told apart by
light alone and by sound alone:

==============  ==========================  ==========================  ===========================
signal          green LED                   red LED                     buzzer (sound)
==============  ==========================  ==========================  ===========================
accepted        on 0.6 s                    off                         one short beep, 0.15 s
duplicate       two blinks, 0.15 s each     off                         one tick, 0.05 s
unknown_card    off                         on 1 s                      two beeps, 0.2 s each
blocked_card    off                         on 2 s                      one long beep, 1 s
random_uid      off                         three blinks, 0.15 s each   three ticks, with the red
error           three blinks, 0.25 s each   three blinks, with green    two long beeps, 0.6 s each
reader_down     off                         slow blink (0.5 s on every  silent
                                            2 s) until ``reader_up()``
offline         short flash (0.25 s every   off                         silent
                3 s) until ``online()``
==============  ==========================  ==========================  ===========================

* *accepted*: your attendance is recorded.
* *duplicate*: you were already recorded a moment ago; nothing new was saved.
* *unknown_card*: this card is not registered; see the administrator.
* *blocked_card*: this card has been blocked (lost, replaced, revoked).
* *random_uid*: a phone or a privacy card that shows a different number on
  every tap; use the ID card itself.
* *error*: the tap could not be recorded; tap again or tell the staff.
* *reader_down*: the card reader is unplugged or broken; taps are not seen.
* *offline*: the device has not reached the server for a long time; taps are
  still recorded and will be sent later.

A tap pattern takes over all three devices and a new tap interrupts the
previous pattern at once. ``reader_down`` and ``offline`` are persistent: they
run in the background between taps, pause while a tap pattern plays and resume
when it ends; both can be active together (red and green blinking on their own).

Default wiring (BCM numbers; every LED through a 330 Ω resistor to GND):

=========  ====  ==============
device     BCM   physical pin
=========  ====  ==============
green LED  17    11
red LED    27    13
buzzer     22    15 (GND on 14)
=========  ====  ==============

:func:`open_feedback` never fails for lack of GPIO: on a laptop, or when the
pins cannot be used, it logs why and returns the null :class:`Feedback`, which
only logs each signal, so the service runs (silently) without LEDs and buzzer.
"""

from __future__ import annotations

import logging
import threading
import warnings
from typing import Any, Literal, NamedTuple, Union

from hardware.errors import FeedbackUnavailable

log = logging.getLogger(__name__)

#: A device that stays off during a pattern.
OFF: Literal["off"] = "off"

#: ``(on_time, off_time, n)`` in seconds at ``speed=1``; ``n=None`` repeats forever.
Blink = tuple[float, float, Union[int, None]]
Spec = Union[Blink, Literal["off"]]


class Pattern(NamedTuple):
    """What each of the three devices does during one signal."""

    green: Spec
    red: Spec
    buzzer: Spec


#: Tap patterns, by verdict (the ``verdict`` field of the tap record plus
#: ``random`` and ``error``). See the table in the module docstring.
PATTERNS: dict[str, Pattern] = {
    "accepted": Pattern(green=(0.6, 0.0, 1), red=OFF, buzzer=(0.15, 0.0, 1)),
    "duplicate": Pattern(green=(0.15, 0.15, 2), red=OFF, buzzer=(0.05, 0.0, 1)),
    "unknown": Pattern(green=OFF, red=(1.0, 0.0, 1), buzzer=(0.2, 0.15, 2)),
    "blocked": Pattern(green=OFF, red=(2.0, 0.0, 1), buzzer=(1.0, 0.0, 1)),
    "random": Pattern(green=OFF, red=(0.15, 0.15, 3), buzzer=(0.05, 0.25, 3)),
    "error": Pattern(green=(0.25, 0.25, 3), red=(0.25, 0.25, 3), buzzer=(0.6, 0.3, 2)),
}

#: Persistent patterns, shown between taps while their state lasts.
PERSISTENT_PATTERNS: dict[str, Pattern] = {
    "reader_down": Pattern(green=OFF, red=(0.5, 1.5, None), buzzer=OFF),
    "offline": Pattern(green=(0.25, 2.75, None), red=OFF, buzzer=OFF),
}

#: Verdict string → name of the :class:`Feedback` method that shows it.
VERDICTS: dict[str, str] = {
    "accepted": "accepted",
    "duplicate": "duplicate",
    "unknown": "unknown_card",
    "blocked": "blocked_card",
    "random": "random_uid",
    "error": "error",
}

DEFAULT_GREEN_PIN = "GPIO17"
DEFAULT_RED_PIN = "GPIO27"
DEFAULT_BUZZER_PIN = "GPIO22"

#: Wait this long (real seconds) after a tap pattern's nominal end before the
#: persistent pattern resumes, so gpiozero's blink threads finish on their own.
RESUME_GRACE = 0.05


def pattern_duration(pattern: Pattern) -> float:
    """Length of a finite pattern in seconds at ``speed=1``."""
    longest = 0.0
    for spec in pattern:
        if spec == OFF:
            continue
        on_time, off_time, n = spec
        if n is None:
            raise ValueError("a persistent pattern has no end")
        longest = max(longest, n * (on_time + off_time))
    return longest


class Feedback:
    """LED and buzzer feedback; this base class is the null implementation.

    Methods are named after what the person should learn. Each returns at
    once: patterns play in the background and the tap path never waits.
    The null feedback logs each signal at INFO on the ``hardware.feedback``
    logger and appends its name (the method name, e.g. ``"unknown_card"``) to
    :attr:`history`, so a demo without GPIO still shows what happened and
    tests of other modules can assert on it.

    The persistent states (``reader_down``/``reader_up``,
    ``offline``/``online``) are recorded and shown only when they change:
    calling :meth:`offline` on every sync attempt is fine. After
    :meth:`close` every call is ignored.
    """

    kind = "none"
    #: At most this many entries are kept in :attr:`history` (oldest dropped).
    history_limit = 1000
    _log_level = logging.INFO

    def __init__(self) -> None:
        self.history: list[str] = []
        self._lock = threading.RLock()
        self._reader_down = False
        self._offline = False
        self._closed = False

    # -- tap signals ---------------------------------------------------------
    def accepted(self) -> None:
        """The tap is recorded."""
        self._tap("accepted", "accepted")

    def duplicate(self) -> None:
        """The same card was recorded a moment ago; nothing new was saved."""
        self._tap("duplicate", "duplicate")

    def unknown_card(self) -> None:
        """The card is not registered."""
        self._tap("unknown_card", "unknown")

    def blocked_card(self) -> None:
        """The card is blocked (lost, replaced, revoked)."""
        self._tap("blocked_card", "blocked")

    def random_uid(self) -> None:
        """A phone or privacy card with a random UID: it can never identify anyone."""
        self._tap("random_uid", "random")

    def error(self) -> None:
        """The tap could not be recorded: tap again or tell the staff."""
        self._tap("error", "error")

    def signal(self, verdict: str) -> None:
        """Show ``verdict``: ``accepted``, ``duplicate``, ``unknown``,
        ``blocked``, ``random`` or ``error``; ValueError for anything else."""
        try:
            method = VERDICTS[verdict]
        except (KeyError, TypeError):
            raise ValueError(
                f"unknown verdict {verdict!r}; use one of {', '.join(VERDICTS)}"
            ) from None
        getattr(self, method)()

    # -- persistent states -----------------------------------------------------
    def reader_down(self) -> None:
        """The reader is gone: a slow red blink until :meth:`reader_up`."""
        self._set_state("_reader_down", True, "reader_down")

    def reader_up(self) -> None:
        """The reader is back: stop the :meth:`reader_down` signal."""
        self._set_state("_reader_down", False, "reader_up")

    def offline(self) -> None:
        """The server has been unreachable for long: a short green flash
        every few seconds between taps until :meth:`online`."""
        self._set_state("_offline", True, "offline")

    def online(self) -> None:
        """The server is reachable again: stop the :meth:`offline` signal."""
        self._set_state("_offline", False, "online")

    @property
    def is_reader_down(self) -> bool:
        return self._reader_down

    @property
    def is_offline(self) -> bool:
        return self._offline

    @property
    def closed(self) -> bool:
        return self._closed

    # -- lifecycle -----------------------------------------------------------
    def close(self) -> None:
        """Turn everything off and release the hardware; later calls are ignored."""
        with self._lock:
            self._closed = True

    def __enter__(self) -> "Feedback":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def __repr__(self) -> str:
        states = [s for s, on in (("reader_down", self._reader_down), ("offline", self._offline)) if on]
        return f"<{type(self).__name__} {' '.join(states) or 'idle'}{' closed' if self._closed else ''}>"

    # -- internals -------------------------------------------------------------
    def _record(self, name: str) -> None:
        self.history.append(name)
        if len(self.history) > self.history_limit:
            del self.history[: len(self.history) - self.history_limit]
        log.log(self._log_level, "feedback: %s", name)

    def _tap(self, name: str, verdict: str) -> None:
        with self._lock:
            if self._closed:
                return
            self._record(name)
            try:
                self._play_tap(verdict)
            except Exception:  # feedback is advisory: it must never break a tap
                log.exception("feedback: could not show %s", name)

    def _set_state(self, attr: str, value: bool, name: str) -> None:
        with self._lock:
            if self._closed or getattr(self, attr) == value:
                return
            setattr(self, attr, value)
            self._record(name)
            try:
                self._show_state()
            except Exception:
                log.exception("feedback: could not show %s", name)

    def _play_tap(self, verdict: str) -> None:
        """Start the pattern of ``verdict``; must not block (hook)."""

    def _show_state(self) -> None:
        """Show the persistent states after a change (hook)."""

    def _idle_pattern(self) -> Pattern:
        """The persistent patterns of the active states, merged."""
        specs: list[Spec] = [OFF, OFF, OFF]
        for name, active in (("reader_down", self._reader_down), ("offline", self._offline)):
            if active:
                for i, spec in enumerate(PERSISTENT_PATTERNS[name]):
                    if specs[i] == OFF:
                        specs[i] = spec
        return Pattern(*specs)


class NullFeedback(Feedback):
    """No LEDs, no buzzer: each signal is only logged and kept in :attr:`history`."""


class GpioFeedback(Feedback):
    """Green LED, red LED and an active buzzer on GPIO, driven by gpiozero.

    Patterns are played with gpiozero's own ``blink(..., background=True)``
    (``Buzzer.beep`` is the same method), so every call returns at once and
    a new signal stops the previous pattern cleanly. ``speed`` divides every
    duration (tests use e.g. 50). Raises :class:`FeedbackUnavailable` (naming
    the pin keyword) when gpiozero is missing, no pin factory works here, or a
    pin is invalid or in use; :func:`open_feedback` turns that into the null
    feedback.
    """

    kind = "gpio"
    _log_level = logging.DEBUG

    def __init__(
        self,
        green_pin: int | str = DEFAULT_GREEN_PIN,
        red_pin: int | str = DEFAULT_RED_PIN,
        buzzer_pin: int | str = DEFAULT_BUZZER_PIN,
        *,
        active_high: bool = True,
        pin_factory: Any = None,
        speed: float = 1.0,
    ) -> None:
        if not speed > 0:
            raise ValueError(f"speed must be a positive number, not {speed!r}")
        super().__init__()
        self.speed = float(speed)
        self.pins = {"green_pin": green_pin, "red_pin": red_pin, "buzzer_pin": buzzer_pin}
        self.green, self.red, self.buzzer = _build_devices(
            self.pins, active_high=active_high, pin_factory=pin_factory
        )
        self._generation = 0
        self._timer: threading.Timer | None = None
        self._shown: list[Spec | None] = [OFF, OFF, OFF]
        self._idle = threading.Event()
        self._idle.set()

    @property
    def devices(self) -> tuple[Any, Any, Any]:
        """The gpiozero ``(LED, LED, Buzzer)``: green, red, buzzer."""
        return (self.green, self.red, self.buzzer)

    @property
    def is_playing(self) -> bool:
        """True while a tap pattern plays (until the persistent one resumes)."""
        return not self._idle.is_set()

    def wait_idle(self, timeout: float | None = None) -> bool:
        """Wait until the current tap pattern has ended; False on timeout."""
        return self._idle.wait(timeout)

    def close(self) -> None:
        """Stop every pattern, turn the LEDs and buzzer off and release the pins."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            self._generation += 1
            if self._timer is not None:
                self._timer.cancel()
                self._timer = None
            for device in self.devices:
                try:
                    device.off()
                    device.close()
                except Exception:
                    log.debug("feedback: closing %r failed", device, exc_info=True)
            self._idle.set()

    def __repr__(self) -> str:
        pins = ", ".join(f"{k}={v!r}" for k, v in self.pins.items())
        return f"<GpioFeedback {pins}{' closed' if self._closed else ''}>"

    # -- internals -------------------------------------------------------------
    def _apply(self, pattern: Pattern, *, only_changed: bool) -> None:
        for i, (device, spec) in enumerate(zip(self.devices, pattern)):
            if only_changed and self._shown[i] == spec:
                continue
            # off() stops (and joins) the running blink thread first, so the
            # new pattern always starts from a dark, silent device.
            device.off()
            if spec != OFF:
                on_time, off_time, n = spec
                device.blink(on_time / self.speed, off_time / self.speed, n, background=True)
            self._shown[i] = spec

    def _play_tap(self, verdict: str) -> None:
        pattern = PATTERNS[verdict]
        self._generation += 1
        generation = self._generation
        if self._timer is not None:
            self._timer.cancel()
        self._idle.clear()
        self._apply(pattern, only_changed=False)
        self._shown = [None, None, None]  # the tap owns every device now
        delay = pattern_duration(pattern) / self.speed + RESUME_GRACE
        timer = threading.Timer(delay, self._resume, args=(generation,))
        timer.name = "feedback-resume"
        timer.daemon = True
        self._timer = timer
        timer.start()

    def _resume(self, generation: int) -> None:
        with self._lock:
            if self._closed or generation != self._generation:
                return  # a newer tap (or close) owns the devices
            self._timer = None
            try:
                self._apply(self._idle_pattern(), only_changed=False)
            except Exception:
                log.exception("feedback: could not resume the persistent signal")
            finally:
                self._idle.set()

    def _show_state(self) -> None:
        if self.is_playing:
            return  # shown when the tap pattern ends
        self._apply(self._idle_pattern(), only_changed=True)


_ROLES = (("green_pin", "green LED", "LED"), ("red_pin", "red LED", "LED"), ("buzzer_pin", "buzzer", "Buzzer"))


def _build_devices(
    pins: dict[str, int | str], *, active_high: bool, pin_factory: Any
) -> tuple[Any, Any, Any]:
    """Create the gpiozero devices, translating every failure into
    :class:`FeedbackUnavailable` that names the pin keyword."""
    try:
        import gpiozero
    except ImportError as exc:
        raise FeedbackUnavailable(
            f"gpiozero is not installed ({exc}); install the 'edge' extra"
        ) from exc

    built: list[Any] = []
    try:
        # gpiozero warns once per pin factory it falls back from; keep those
        # to explain a failure instead of printing them on stderr.
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            for key, role, class_name in _ROLES:
                pin = pins[key]
                try:
                    device = getattr(gpiozero, class_name)(
                        pin, active_high=active_high, initial_value=False, pin_factory=pin_factory
                    )
                except gpiozero.BadPinFactory as exc:
                    tried = "; ".join(
                        str(w.message) for w in caught if issubclass(w.category, gpiozero.PinWarning)
                    )
                    raise FeedbackUnavailable(
                        f"no GPIO here for {key}={pin!r} ({role}): {exc}"
                        + (f" [{tried}]" if tried else "")
                        + "; run on a Raspberry Pi or set GPIOZERO_PIN_FACTORY"
                    ) from exc
                except Exception as exc:  # vendor errors: GPIOZeroError, lgpio.error, OSError, ...
                    raise FeedbackUnavailable(
                        f"cannot drive the {role} on {key}={pin!r}: {type(exc).__name__}: {exc}"
                    ) from exc
                built.append(device)
        for w in caught:
            log.debug("gpiozero: %s", w.message)
    except BaseException:
        for device in built:
            try:
                device.close()
            except Exception:
                log.debug("feedback: closing %r failed", device, exc_info=True)
        raise
    return built[0], built[1], built[2]


def open_feedback(
    kind: str = "auto",
    *,
    green_pin: int | str = DEFAULT_GREEN_PIN,
    red_pin: int | str = DEFAULT_RED_PIN,
    buzzer_pin: int | str = DEFAULT_BUZZER_PIN,
    active_high: bool = True,
    pin_factory: Any = None,
    speed: float = 1.0,
) -> Feedback:
    """Create the feedback the configuration asks for.

    ``kind`` is ``gpio`` (LEDs and buzzer), ``none`` (the null feedback) or
    ``auto`` (GPIO when it can be built, else null). The service must never
    crash for lack of GPIO: when ``gpio`` is asked for and cannot be built
    (no Raspberry Pi, gpiozero missing, bad or busy pin) this logs a WARNING
    with the reason and returns the null feedback; ``auto`` logs the reason
    at INFO. An unknown ``kind`` or a non-positive ``speed`` is a
    configuration mistake and raises ValueError.
    """
    choice = kind.strip().lower()
    if choice in ("none", "null"):
        return NullFeedback()
    if choice not in ("gpio", "auto"):
        raise ValueError(f"unknown feedback kind {kind!r}; use gpio, none or auto")
    try:
        return GpioFeedback(
            green_pin,
            red_pin,
            buzzer_pin,
            active_high=active_high,
            pin_factory=pin_factory,
            speed=speed,
        )
    except FeedbackUnavailable as exc:
        if choice == "gpio":
            log.warning(
                "GPIO FEEDBACK UNAVAILABLE, LEDs and buzzer stay dark and silent "
                "(null feedback): %s",
                exc,
            )
        else:
            log.info("no GPIO feedback (%s); using null feedback", exc)
        return NullFeedback()

"""Hardware drivers: card readers and the LED/buzzer feedback.

This is the only package that imports pyscard, nfcpy or gpiozero, and it
imports them lazily inside each driver, so ``edge`` and ``server`` run on any
machine.
"""

from hardware.errors import HardwareError, ReaderUnavailable, InvalidUID
from hardware.reader import CardReader, CardTap, FakeReader, open_reader
from hardware.uid import normalise_uid, is_random_uid

__all__ = [
    "HardwareError",
    "ReaderUnavailable",
    "InvalidUID",
    "CardReader",
    "CardTap",
    "FakeReader",
    "open_reader",
    "normalise_uid",
    "is_random_uid",
]

"""One error tree for the hardware package.

Vendor exceptions (pyscard's ``SmartcardException`` and ``BaseSCardException``,
nfcpy's ``IOError``, gpiozero's errors) are translated into these at the
driver, so callers never import a vendor module to catch an error.
"""


class HardwareError(Exception):
    """Base class of every error raised by :mod:`hardware`."""


class ReaderUnavailable(HardwareError, OSError):
    """The reader (or the service behind it, such as pcscd) is not there now."""


class InvalidUID(HardwareError, ValueError):
    """A card UID that is not hex of an accepted length."""


class FeedbackUnavailable(HardwareError, RuntimeError):
    """GPIO feedback was asked for but no pin factory can drive it here."""

"""One error tree for the edge package."""


class EdgeError(Exception):
    """Base class of every error raised by :mod:`edge`."""


class ConfigError(EdgeError, ValueError):
    """A bad configuration file or environment override; the message names the key."""


class StorageError(EdgeError, OSError):
    """The tap database could not be written (disk full, I/O error, ...)."""


class RosterImportError(EdgeError, ValueError):
    """A roster CSV with bad rows; ``problems`` lists (file, line, field, reason)."""

    def __init__(self, problems: list[tuple[str, int, str, str]]):
        self.problems = problems
        lines = [f"{f}:{line}: {field}: {reason}" for f, line, field, reason in problems]
        super().__init__(
            f"{len(problems)} problem(s), nothing imported:\n" + "\n".join(lines)
        )


class ControlError(EdgeError, RuntimeError):
    """The running edge could not be reached or refused a control request."""

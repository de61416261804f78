"""What is wrong with an import: every problem with its file, line and field.

An import is all or nothing: the readers and checks collect every
:class:`Problem` they find, and only when there is none is anything written.
:class:`RegistryImportError` carries the whole list; its message has one line
per problem, e.g. ``employees.csv:7: nip: NIP birth date 19851332 is not a real date``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from server.errors import ServerError


@dataclass(frozen=True)
class Problem:
    """One bad cell, row or file.

    ``line`` is the line (CSV) or row (spreadsheet) number a person sees in an
    editor, header and title rows counted; 0 when the problem is about the
    whole file or an option. JSON rows are counted from 1 in their ``rows``
    list (``unit="row"``). ``field`` is the column (canonical name), or ""
    when the problem is not about one column.
    """

    file: str
    line: int
    field: str
    reason: str
    unit: str = "line"

    def __str__(self) -> str:
        where = self.file
        if self.line:
            where += f":{self.line}" if self.unit == "line" else f": {self.unit} {self.line}"
        return f"{where}: {self.field}: {self.reason}" if self.field else f"{where}: {self.reason}"

    def to_dict(self) -> dict[str, Any]:
        return {"file": self.file, self.unit: self.line, "field": self.field,
                "reason": self.reason}


class RegistryImportError(ServerError, ValueError):
    """An import was refused; ``problems`` lists everything found, nothing was written."""

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = list(problems)
        super().__init__("\n".join(str(p) for p in self.problems))

    def summary(self) -> str:
        files = sorted({p.file for p in self.problems})
        count = len(self.problems)
        return (f"{', '.join(files)}: {count} problem{'s' if count != 1 else ''}, "
                f"nothing was imported")


class Problems:
    """A collector bound to one file: ``add(line, field, reason)``, then :meth:`raise_if_any`."""

    def __init__(self, file: str, unit: str = "line") -> None:
        self.file = file
        self.unit = unit
        self.items: list[Problem] = []

    def add(self, line: int, field: str, reason: str) -> None:
        self.items.append(Problem(self.file, line, field, reason, self.unit))

    def extend(self, problems: list[Problem]) -> None:
        self.items.extend(problems)

    def __bool__(self) -> bool:
        return bool(self.items)

    def __len__(self) -> int:
        return len(self.items)

    def raise_if_any(self) -> None:
        if self.items:
            raise RegistryImportError(self.items)

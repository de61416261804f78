"""Registry imports: sites, ASN employees, students (Dapodik) and the card register.

Each ``import_*`` function reads a file (a path, or the bytes of an upload
with a ``name`` for messages), checks every row, compares the result with
the database and returns a :class:`RegistryDiff`. Nothing is written when
any problem is found (:class:`RegistryImportError` lists them all with file,
line and field), with ``dry_run=True``, or when the diff is empty; otherwise
the diff is applied in the caller's transaction, the affected sites' rosters
are rebuilt for the edges and past days are queued for reconciliation.

See docs/REGISTRY.md for the formats and the rules.
"""

from server.registry.cards_import import import_cards
from server.registry.diff import DiffEntry, RegistryDiff
from server.registry.employees import import_employees
from server.registry.problems import Problem, RegistryImportError
from server.registry.sites import import_sites
from server.registry.students import import_students

__all__ = [
    "DiffEntry", "Problem", "RegistryDiff", "RegistryImportError",
    "import_cards", "import_employees", "import_sites", "import_students",
]

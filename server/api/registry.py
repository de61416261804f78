"""``POST /registry/{sites|employees|students|cards}``: registry imports over HTTP
(diskominfo keys only).

The body is the file itself: CSV (``text/csv``), XLSX, or JSON (the Dapodik
web-service answer for students, ``{"rows": [...]}`` otherwise). The import is
the one ``attendance-server import`` runs (:mod:`server.registry`): all or
nothing; ``dry_run=true`` only computes the diff. The reply is the diff. A file
with problems is refused with 422 and every problem in ``details`` (file,
line or row, field, reason); nothing is written.
"""

from __future__ import annotations

from datetime import date
from typing import Any, Callable

from flask import Blueprint, current_app, request

from server.api import engine, reply, request_body, request_query
from server.api.keyauth import authenticate_key, require_diskominfo
from server.db import reading
from server.errors import ApiError

bp = Blueprint("registry", __name__)

#: Uploads may be bigger than sync requests: a regency's employee registry is megabytes.
DEFAULT_MAX_BYTES = 64 * 1024 * 1024
_EXTENSIONS = {"text/csv": "csv", "application/json": "json",
               "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet": "xlsx"}


def _importer(kind: str) -> Callable[..., Any]:
    from server import registry

    return {"sites": registry.import_sites, "employees": registry.import_employees,
            "students": registry.import_students, "cards": registry.import_cards}[kind]


def _problem_detail(problem: Any) -> dict[str, Any]:
    item = problem.to_dict()
    field = problem.field
    if field.startswith("--"):
        # The importers name command-line options; over HTTP they are query parameters.
        field = field[2:].replace("-", "_")
        item["field"] = field
    where = problem.file + (f":{problem.line}" if problem.line and problem.unit == "line"
                            else f" row {problem.line}" if problem.line else "")
    return {"path": f"{where}: {field}" if field else where, "message": problem.reason, **item}


@bp.post("/registry/<any(sites, employees, students, cards):kind>")
def import_registry(kind: str) -> Any:
    """Import (or with ``dry_run=true`` only compare) one registry file."""
    from server.registry import RegistryImportError

    key = authenticate_key()
    require_diskominfo(key)
    params = request_query()
    request.max_content_length = current_app.config.get("REGISTRY_MAX_BYTES",
                                                        DEFAULT_MAX_BYTES)
    media = (request.mimetype or "").lower()
    raw = request.get_data(cache=True)  # cached: request_body() reads it again
    if media == "application/json":
        request_body()  # the document's checks (JSON, NUL, depth) before the importer's
    if not raw:
        raise ApiError(400, "validation_error", "the body is empty: send the file itself",
                       details=[{"path": "", "message": "empty body"}])
    name = params.get("filename") or f"{kind}.{_EXTENSIONS.get(media, 'upload')}"
    options: dict[str, Any] = {"name": name}
    if "effective" in params and kind in ("employees", "students"):
        options["effective"] = date.fromisoformat(params["effective"])
    if "npsn" in params and kind == "students":
        options["npsn"] = params["npsn"]
    dry_run = params.get("dry_run") == "true"
    importer = _importer(kind)
    try:
        if dry_run:
            with reading(engine()) as conn:
                diff = importer(conn, raw, dry_run=True, **options)
        else:
            with engine().begin() as conn:
                diff = importer(conn, raw, **options)
    except RegistryImportError as exc:
        details = [_problem_detail(p) for p in exc.problems]
        raise ApiError(422, "invalid_file", exc.summary(), details=details) from None
    except ValueError as exc:
        raise ApiError(400, "validation_error", str(exc)[:300]) from None
    current_app.logger.info("registry %s imported by %s from %s: %s%s", kind, key.label, name,
                            diff.counts(), " (dry run)" if dry_run else "")
    return reply({**diff.to_dict(limit=None), "dry_run": dry_run})

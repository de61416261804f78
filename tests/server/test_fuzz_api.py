"""API fuzzing with schemathesis against the served OpenAPI document: no 500s.

Every operation is called with generated (valid and invalid) bodies and
parameters, with a real device token, on a SQLite database. The checks are
schemathesis' own: no server error, responses that match the document.
"""

from __future__ import annotations

import hypothesis
import pytest
import schemathesis
from hypothesis import strategies as st
from schemathesis import checks as st_checks

from server.app import create_app
from tests.server.helpers import enroll_device, make_site



@pytest.fixture(scope="module")
def fuzz_app(tmp_path_factory):
    path = tmp_path_factory.mktemp("fuzz") / "server.db"
    app = create_app({"DATABASE_URL": f"sqlite:///{path}", "MIGRATE_ON_START": True})
    engine = app.extensions["attendance"].engine
    site = make_site(engine, "20401234")
    device = enroll_device(app.test_client(), engine, site)
    app.config["FUZZ_TOKEN"] = device.token
    # -- integrators' API: its operations take an API key instead of a device token.
    from server.apikeys import create_key

    with engine.begin() as conn:
        app.config["FUZZ_API_KEY"] = create_key(conn, "fuzz", "diskominfo").token
        app.config["FUZZ_OPERATOR_KEY"] = create_key(conn, "fuzz", "operator", site).token
    yield app
    engine.dispose()


@pytest.fixture(scope="module")
def fuzz_schema(fuzz_app):
    return schemathesis.openapi.from_wsgi("/api/v1/openapi.json", fuzz_app)


def test_no_server_errors(fuzz_app, fuzz_schema):
    # schemathesis' pytest plugin does not run under pytest 9 yet, so each
    # operation's strategy is driven with hypothesis directly.
    device_headers = {"Authorization": f"Bearer {fuzz_app.config['FUZZ_TOKEN']}"}
    key_headers = {"Authorization": f"Bearer {fuzz_app.config['FUZZ_API_KEY']}"}
    operator_headers = {"Authorization": f"Bearer {fuzz_app.config['FUZZ_OPERATOR_KEY']}"}
    operations = [result.ok() for result in fuzz_schema.get_all_operations()]
    assert len(operations) >= 6
    seen: dict[str, set[int]] = {}

    for operation in operations:
        schemes = {name for item in operation.definition.raw.get("security", [])
                   for name in item}
        keys_only = schemes == {"apiKey"}

        @hypothesis.given(case=operation.as_strategy(), operator=st.booleans())
        @hypothesis.settings(max_examples=80, deadline=None, database=None,
                             suppress_health_check=list(hypothesis.HealthCheck))
        def run(case, operator):
            # Key operations alternate between the two roles (an operator key reaches
            # the site-scoped paths without guessing the site code).
            headers = ((operator_headers if operator else key_headers) if keys_only
                       else device_headers)
            response = case.call(headers=headers)
            seen.setdefault(f"{case.method} {case.path}", set()).add(response.status_code)
            assert response.status_code < 500, (case.method, case.path, case.body,
                                                response.status_code, response.text[:300])
            case.validate_response(response, checks=[st_checks.not_a_server_error])

        run()
    # The fuzzing reached past authentication and validation, not only the error paths.
    assert any(200 in codes for codes in seen.values()), seen
    assert any(400 in codes for codes in seen.values()), seen
    key_operations = [f"{op.method.upper()} {op.path}" for op in operations
                      if op.definition.raw.get("security") == [{"apiKey": []}]]
    # Random uploads are never a valid registry file: reaching the importer (422) counts.
    assert key_operations and all(seen[name] & {200, 422} for name in key_operations), seen

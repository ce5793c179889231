"""Fuzz every operation of the OpenAPI document with schemathesis: no server error, ever.

Bounded: :data:`EXAMPLES` generated requests per operation (valid and invalid ones, mixed by
schemathesis), sent with a dispatcher's token to the real uvicorn server of the session, on
SQLite and PostgreSQL.  The WebSocket stream is not part of the OpenAPI document.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

import httpx
import schemathesis
from hypothesis import HealthCheck, given, settings

from citywatch.api.security import LoginGuard
from tests.api.conftest import Server

#: Generated requests per operation (kept small: the suite runs on a shared 2-core machine).
EXAMPLES = 25


def test_no_operation_answers_with_a_server_error(server: Server) -> None:
    doc = httpx.get(f"{server.url}/openapi.json").json()
    schema = schemathesis.openapi.from_dict(doc)
    headers = server.headers["disp"]
    failures: list[str] = []
    codes: Counter[int] = Counter()
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 15

    for op in operations:

        @settings(
            max_examples=EXAMPLES,
            deadline=None,
            database=None,
            suppress_health_check=list(HealthCheck),
        )
        @given(case=op.as_strategy())
        def fuzz(case: Any) -> None:
            response = case.call(base_url=server.url, headers=headers, timeout=30)
            codes[response.status_code // 100 * 100] += 1
            if response.status_code >= 500:
                failures.append(f"{case.method} {case.formatted_path}: {response.text[:200]}")

        fuzz()
    # Thousands of random logins from 127.0.0.1 made the guard back off for that address:
    # start afresh for the tests that follow.
    server.app.state.login_guard.close()
    server.app.state.login_guard = LoginGuard()
    assert failures == [], failures[:5]
    # It really exercised the service: accepted requests and refused ones.
    assert codes[200] >= len(operations) and codes[400] >= len(operations), codes

"""``citywatch stats near-repeat-refresh``: the tables the live advisories use, from cron."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import select

from citywatch.city import load_pack
from citywatch.incidents.storage import insert_incidents
from citywatch.store.advisory_models import NearRepeatTableRow
from citywatch.store.db import make_engine, session_factory, upgrade
from tests.api.test_advisories import _history
from tests.helpers import run


def test_refresh_stores_every_category(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    pack = load_pack("manhattan")
    url = f"sqlite:///{tmp_path / 'cw.db'}"
    engine = make_engine(url)
    upgrade(engine)
    history = _history(pack, datetime.now(UTC))
    with engine.begin() as conn:
        insert_incidents(conn, history)
    code, stdout, stderr = run(
        ["stats", "near-repeat-refresh", "--pack", "manhattan", "--db", url, "--json"], capsys
    )
    assert code == 0, stderr
    doc = json.loads(stdout)
    by = {t["category"]: t for t in doc["tables"]}
    assert set(by) == {"burglary", "robbery", "theft"}
    assert by["burglary"]["events"] == int((history["category"] == "burglary").sum())
    assert by["burglary"]["window"]["distance_m"] == 100.0
    assert by["robbery"]["table"] is None and by["robbery"]["window"] is None
    assert by["robbery"]["note"] == "0 located incidents in 365 days; a table needs at least 30"
    with session_factory(engine)() as s:
        stored = s.scalars(select(NearRepeatTableRow).order_by(NearRepeatTableRow.id)).all()
    assert [r.computed_by for r in stored] == ["cli"] * 3
    assert stored[0].table == by["burglary"]["table"]
    # the table for people says why robbery has no window
    code, stdout, _ = run(
        ["stats", "near-repeat-refresh", "--pack", "manhattan", "--db", url, "-c", "robbery"],
        capsys,
    )
    assert code == 0 and "a table needs at least 30" in stdout
    code, _, stderr = run(
        ["stats", "near-repeat-refresh", "--pack", "manhattan", "--db", url, "-c", "arson"],
        capsys,
    )
    assert code != 0 and stderr.startswith("Error: near-repeat advisories exist for")

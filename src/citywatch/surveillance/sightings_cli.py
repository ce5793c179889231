"""``citywatch sightings``: replay a plate-reader feed through the API, retention, hotlist files.

``replay`` talks to a running service over HTTP (``--url``, a bearer ``--token`` of an admin,
or ``$CITYWATCH_TOKEN``) exactly as a recognition system would; ``purge`` and ``hotlist
import|export`` work on the database (``--db``), audited as ``cli``.
"""

from __future__ import annotations

import json
import os
import time
import urllib.error
import urllib.request
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import numpy as np
import shapely
import typer
from shapely.ops import nearest_points

from citywatch.city import CityPack
from citywatch.console import console, print_json
from citywatch.errors import DataError, NotFoundError, OptionError, ValidationError
from citywatch.surveillance.alpr import (
    Relocation,
    read_alpr,
    replay_offsets,
    synthetic_hotlist,
)
from citywatch.surveillance.sightings import DEFAULT_RETENTION_DAYS, MAX_BATCH_SIGHTINGS

__all__ = ["app"]

app = typer.Typer(
    help="Sightings: replay a reader feed, retention, hotlists.", no_args_is_help=True
)
hotlist_app = typer.Typer(
    help="Hotlist files (CSV) in and out of the database.", no_args_is_help=True
)
app.add_typer(hotlist_app, name="hotlist")

Db = Annotated[str | None, typer.Option("--db", help="Database URL (default: embedded SQLite).")]
Json = Annotated[bool, typer.Option("--json", help="Print JSON.")]
ENV_TOKEN = "CITYWATCH_TOKEN"
#: Synthetic entries of a replay are labelled so wherever they are shown.
SYNTHETIC_LABEL = "SYNTHETIC replay entry (no real case)"


class _Api:
    """A minimal JSON client of the service (standard library only)."""

    def __init__(self, url: str, token: str | None) -> None:
        self.url = url.rstrip("/")
        self.token = token

    def call(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(self.url + path, data=data, method=method)
        req.add_header("Content-Type", "application/json")
        if self.token:
            req.add_header("Authorization", f"Bearer {self.token}")
        try:
            with urllib.request.urlopen(req, timeout=60) as resp:
                return resp.status, json.loads(resp.read() or b"null")
        except urllib.error.HTTPError as exc:
            try:
                detail = json.loads(exc.read() or b"null")
            except ValueError:
                detail = None
            return exc.code, detail
        except (urllib.error.URLError, OSError) as exc:
            raise DataError(f"cannot reach the service at {self.url}: {exc}") from None


def _inside(pack: CityPack, lon: np.ndarray, lat: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Points outside the city moved to the nearest point 50 m inside it."""
    city: Any = shapely.union_all([c.geometry for c in pack.level("city")])
    inner: Any = city.buffer(-0.0005)
    if inner.is_empty:
        inner = city
    out = ~shapely.intersects_xy(city, lon, lat)
    lon, lat = lon.copy(), lat.copy()
    for i in np.nonzero(out)[0]:
        p = nearest_points(inner, shapely.Point(lon[i], lat[i]))[0]
        lon[i], lat[i] = p.x, p.y
    return lon, lat


def _register(api: _Api, sensor_id: str, lon: np.ndarray, lat: np.ndarray) -> bool:
    """Register a car-mounted reader at the first of its positions that snaps to a street."""
    for x, y in list(zip(lon, lat, strict=True))[:: max(1, len(lon) // 20)][:20]:
        code, _ = api.call(
            "POST",
            "/api/v1/sensors",
            {
                "id": sensor_id,
                "kind": "plate_reader",
                "owner": "police",
                "lon": float(x),
                "lat": float(y),
                "name": "car-mounted reader (replay of Seattle SPD ALPR)",
            },
        )
        if code == 201:
            return True
    return False


def _seed(api: _Api, plates: list[str]) -> dict[str, int]:
    counts: Counter[str] = Counter()
    for i, plate in enumerate(plates, start=1):
        code, _ = api.call(
            "POST",
            "/api/v1/hotlists/entries",
            {
                "kind": "plate",
                "value": plate,
                "hashed": True,
                "reason": "stolen_vehicle",
                "owner": "citywatch replay",
                "legal_basis": "synthetic demonstration entry: no real case, no real legal basis",
                "case_ref": f"SYNTHETIC-{i:03d}",
                "label": SYNTHETIC_LABEL,
                "synthetic": True,
                "priority": 2,
                "purpose": "replay of the Seattle ALPR feed with a synthetic hotlist",
            },
        )
        counts["added" if code == 201 else "already_listed" if code == 409 else f"http_{code}"] += 1
    return dict(counts)


@app.command("replay")
def replay(
    file: Annotated[Path, typer.Argument(help="ALPR file (pipe-separated, .csv or .csv.gz).")],
    url: Annotated[str, typer.Option("--url", help="The service.")] = "http://127.0.0.1:8000",
    token: Annotated[
        str | None, typer.Option("--token", help=f"Bearer token of an admin (or ${ENV_TOKEN}).")
    ] = None,
    speed: Annotated[
        float, typer.Option("--speed", min=0, help="Feed time / real time; 0: as fast as possible.")
    ] = 60.0,
    limit: Annotated[
        int | None, typer.Option("--limit", min=1, help="Replay the first N reads.")
    ] = None,
    seed_hotlist: Annotated[
        int,
        typer.Option(
            "--seed-hotlist", min=0, help="Synthetic hotlist entries drawn from the plates."
        ),
    ] = 20,
    seed: Annotated[int, typer.Option("--seed", help="Seed of the synthetic hotlist.")] = 7,
    batch: Annotated[
        int, typer.Option("--batch", min=1, max=MAX_BATCH_SIGHTINGS, help="Most reads per request.")
    ] = 500,
    pack: Annotated[
        str | None, typer.Option("--pack", help="The served pack (default: asked of the service).")
    ] = None,
    as_json: Json = False,
) -> None:
    """Feed a real plate-reader file through POST /api/v1/sightings at --speed times real
    time, relocated onto the served city, with a seeded synthetic hotlist; prints the alerts."""
    from citywatch.city import load_pack

    if not file.is_file():
        raise NotFoundError(f"file not found: {file}")
    api = _Api(url, token or os.environ.get(ENV_TOKEN))
    if not api.token:
        raise OptionError(f"give --token (or set ${ENV_TOKEN}): an admin's bearer token")
    code, health = api.call("GET", "/api/v1/health")
    if code != 200:
        raise DataError(f"{url}/api/v1/health answered {code}")
    city = load_pack(pack or str(health["pack"]))
    feed = read_alpr(file)
    reads = feed.reads if limit is None else feed.reads.head(limit)
    if reads.empty:
        raise ValidationError(f"{file} holds no read with a position", field="file")
    bbox = city.info()["bbox"]
    move = Relocation.onto(reads["lon"].to_numpy(), reads["lat"].to_numpy(), tuple(bbox))
    lon, lat = _inside(city, *move(reads["lon"].to_numpy(), reads["lat"].to_numpy()))
    sensors = sorted(reads["sensor_id"].unique())
    registered = [
        s
        for s in sensors
        if _register(api, s, lon[reads["sensor_id"] == s], lat[reads["sensor_id"] == s])
    ]
    plates = synthetic_hotlist(reads["plate_hash"], seed_hotlist, seed)
    seeded = _seed(api, plates)
    due = replay_offsets(reads["seen_at"], speed)
    start = time.monotonic()
    totals: Counter[str] = Counter()
    refused: Counter[str] = Counter()
    created: list[int] = []
    updated: set[int] = set()
    i = 0
    while i < len(reads):
        wait = due[i] - (time.monotonic() - start)
        if wait > 0:
            time.sleep(min(wait, 1.0))
            continue
        elapsed = time.monotonic() - start
        j = i
        while j < len(reads) and j - i < batch and due[j] <= elapsed:
            j += 1
        now = datetime.now(UTC)
        items = [
            {
                "sensor_id": reads["sensor_id"].iloc[k],
                "seen_at": now.isoformat(),
                "kind": "plate",
                "value": reads["plate_hash"].iloc[k],
                "hashed": True,
                "lon": float(lon[k]),
                "lat": float(lat[k]),
            }
            for k in range(i, j)
        ]
        code, out = api.call("POST", "/api/v1/sightings", {"sightings": items})
        if code != 200:
            raise DataError(f"POST /api/v1/sightings answered {code}: {out}")
        for key in ("stored", "hits", "refused"):
            totals[key] += int(out[key])
        refused.update(r["error"]["code"] for r in out["results"] if r["error"])
        created += out["alerts_created"]
        updated.update(out["alerts_updated"])
        i = j
    doc: dict[str, Any] = {
        "file": feed.summary(),
        "replayed": len(reads),
        "speed": speed,
        "pack": city.name,
        "relocated": True,
        "sensors": {"devices": len(sensors), "registered": len(registered)},
        "synthetic_hotlist": {"entries": len(plates), **seeded, "seed": seed},
        **{k: totals[k] for k in ("stored", "hits", "refused")},
        "refused_by_code": dict(refused),
        "alerts_created": created,
        "alerts_updated": sorted(updated - set(created)),
        "seconds": round(time.monotonic() - start, 3),
    }
    if as_json:
        print_json(doc)
        return
    console.print(
        f"{len(reads)} reads replayed onto {city.name} (positions relocated, hotlist synthetic): "
        f"{totals['stored']} stored, {totals['hits']} hits, {totals['refused']} refused; "
        f"{len(created)} alerts raised"
    )


@app.command("purge")
def purge(
    days: Annotated[
        int, typer.Option("--days", min=1, max=3650, help="Keep non-hits this many days.")
    ] = DEFAULT_RETENTION_DAYS,
    db: Db = None,
    as_json: Json = False,
) -> None:
    """Delete the sightings that matched no hotlist entry and are older than --days
    (hits stay with their alerts); audited with the counts."""
    from citywatch.store.db import make_engine, session_factory, upgrade
    from citywatch.surveillance.sightings import purge_sightings

    engine = make_engine(db)
    upgrade(engine)
    result = purge_sightings(session_factory(engine), retention_days=days, actor="cli")
    if as_json:
        print_json(result.as_dict())
        return
    console.print(
        f"{result.deleted} sightings older than {result.cutoff:%Y-%m-%d %H:%M} UTC deleted; "
        f"{result.hits_kept} hits kept with their alerts"
    )


@hotlist_app.command("import")
def hotlist_import(
    file: Annotated[
        Path, typer.Argument(help="Hotlist CSV (kind,value,reason,owner,legal_basis,...).")
    ],
    purpose: Annotated[str, typer.Option("--purpose", help="Why (kept in the audit trail).")],
    store_values: Annotated[
        bool, typer.Option("--store-values", help="Keep the values, not only their keyed hashes.")
    ] = False,
    db: Db = None,
    as_json: Json = False,
) -> None:
    """Import hotlist entries in one audited transaction; values already listed are skipped."""
    from citywatch.store.db import make_engine, session_scope, upgrade
    from citywatch.surveillance.hotlist_files import import_entries, read_entries

    if not file.is_file():
        raise NotFoundError(f"file not found: {file}")
    entries, bad = read_entries(file)
    engine = make_engine(db)
    upgrade(engine)
    with session_scope(engine) as session:
        result = import_entries(
            session, entries, actor="cli", purpose=purpose, store_values=store_values
        )
    doc = {**result.as_dict(), "unreadable": [{"line": n, "reason": r} for n, r in bad]}
    if as_json:
        print_json(doc)
        return
    console.print(
        f"{result.created} entries created, {result.already_listed} already listed, "
        f"{len(result.refused)} refused, {len(bad)} unreadable"
    )


@hotlist_app.command("export")
def hotlist_export(
    out: Annotated[Path, typer.Option("--out", help="Output CSV.")],
    purpose: Annotated[str, typer.Option("--purpose", help="Why (kept in the audit trail).")],
    hotlist: Annotated[list[str], typer.Option("--list", help="Only this list (repeatable).")] = [],  # noqa: B006
    db: Db = None,
    as_json: Json = False,
) -> None:
    """Export the active entries (the export is audited as a search with its purpose)."""
    from citywatch.store.db import make_engine, session_scope, upgrade
    from citywatch.surveillance.hotlist_files import write_entries
    from citywatch.surveillance.hotlists import search_entries

    engine = make_engine(db)
    upgrade(engine)
    with session_scope(engine) as session:
        entries = search_entries(
            session, actor="cli", purpose=purpose, lists=hotlist or None, limit=10**9
        )
    write_entries(entries, out)
    if as_json:
        print_json({"entries": len(entries), "path": str(out)})
    else:
        console.print(f"{len(entries)} hotlist entries written to {out}")

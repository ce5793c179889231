"""``citywatch demo``: a working command centre on a bundled city, in one command.

1. builds the city pack if missing (:func:`citywatch.city.load_pack` does it);
2. imports the pack's bundled real incidents into the database (once: a file already imported
   for the pack is skipped; the import itself is idempotent anyway);
3. creates the demo accounts, with fresh random passwords printed at start.  The ``demo`` admin
   works only in demo mode (the API refuses it otherwise); the other demo accounts get new,
   never-shown passwords when the demo stops, so they cannot be used outside a running demo;
4. registers a demo fleet at the real station houses (two patrol cars, one foot patrol and one
   special-police unit each, so that the armed calls of the feed get their required team);
5. starts the service with a background feed of SIMULATED calls and units driving the roads
   (:mod:`citywatch.demo.feed`), and serves the dashboard at ``http://HOST:PORT/``.
"""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import typer
from fastapi import FastAPI
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session, sessionmaker

from citywatch.city import CityPack
from citywatch.cli_options import DbOption, PackName, ensure_port_free
from citywatch.console import console, print_table
from citywatch.demo.calls import SimulatedCalls, scaled_model
from citywatch.errors import CityWatchError, DataError

__all__ = [
    "BUNDLED_INCIDENTS",
    "DEMO_ACCOUNTS",
    "DEMO_SHIFTS",
    "FLEET_PER_STATION",
    "demo",
    "demo_calls",
    "ensure_accounts",
    "ensure_fleet",
    "import_bundled",
]

#: Real incidents bundled for each pack: (file under data/, importer source).
BUNDLED_INCIDENTS: dict[str, tuple[str, str]] = {
    "manhattan": ("manhattan/nypd_shootings_historic.csv", "nypd_shootings"),
}

#: Unit types registered at every station, with the call-sign suffix of each unit.
FLEET_PER_STATION: tuple[tuple[str, str], ...] = (
    ("RMP1", "patrol_car"),  # NYPD radio motor patrol
    ("RMP2", "patrol_car"),
    ("FOOT1", "foot"),
    # Special police (NYPD Emergency Service Unit) for the armed calls of the feed: the
    # requirement rules send one to every priority-1 shooting (requirements.toml).
    ("ESU1", "special_police"),
)


#: The shift shown on the roster board for each call sign (NYPD tours, labels only: the demo
#: keeps every unit on duty).
DEMO_SHIFTS: dict[str, str] = {
    "RMP1": "tour 2 (07-15)",
    "RMP2": "tour 3 (15-23)",
    "FOOT1": "tour 2 (07-15)",
    "ESU1": "tour 3 (15-23)",
}


@dataclass(frozen=True)
class DemoAccount:
    """A demo login; ``scope`` ``"first"`` means the pack's first station."""

    username: str
    role: str
    scope: str | None = None


#: The demo logins (``demo`` is the API's demo-mode admin).
DEMO_ACCOUNTS: tuple[DemoAccount, ...] = (
    DemoAccount("demo", "admin"),
    DemoAccount("demo-commander", "commander"),
    DemoAccount("demo-dispatcher", "dispatcher"),
    DemoAccount("demo-officer", "station_officer", "first"),
    DemoAccount("demo-analyst", "analyst"),
)


def import_bundled(engine: Engine, pack: CityPack) -> dict[str, Any] | None:
    """Import the pack's bundled real incidents unless this file was already imported for it.

    Returns
    -------
    dict or None
        The import report (``None`` when skipped or when the pack has no bundled incidents).
    """
    from citywatch.incidents.importer import file_sha256, import_file
    from citywatch.paths import data_dir
    from citywatch.store.models import ImportBatch

    if pack.name not in BUNDLED_INCIDENTS:
        return None
    relative, source = BUNDLED_INCIDENTS[pack.name]
    path = data_dir() / relative
    with engine.connect() as conn:
        done = conn.execute(
            select(ImportBatch.id).where(
                ImportBatch.file_sha256 == file_sha256(path),
                ImportBatch.pack == pack.name,
                ImportBatch.finished_at.is_not(None),
            )
        ).first()
    if done is not None:
        return None
    return import_file(path, source, db=engine, pack=pack, clip=True).to_dict()


def ensure_accounts(
    sessions: sessionmaker[Session], pack: CityPack, *, reveal: bool = True
) -> dict[str, str]:
    """Create the demo accounts or give them new random passwords.

    Parameters
    ----------
    sessions : sessionmaker
        Sessions on the migrated database.
    pack : CityPack
        The city (the station officer is scoped to its first station).
    reveal : bool
        Whether the passwords are returned (``False`` when the demo stops and locks them).

    Returns
    -------
    dict
        user name -> password (empty when ``reveal`` is false).
    """
    from citywatch.dispatch.accounts import create_user, find_user, mark_demo, set_password

    first_station = sorted(pack.stations, key=lambda s: (len(s.id), s.id))[0].id
    passwords = {}
    from citywatch.store.db import writing

    with writing(sessions) as session:
        for account in DEMO_ACCOUNTS:
            password = secrets.token_urlsafe(12)
            if find_user(session, account.username) is None:
                scope = first_station if account.scope == "first" else account.scope
                create_user(
                    session,
                    account.username,
                    account.role,
                    password=password,
                    scope=scope,
                    demo=True,
                    actor="demo",
                )
            else:
                mark_demo(session, account.username)
                set_password(session, account.username, password, actor="demo")
            passwords[account.username] = password
    return passwords if reveal else {}


def ensure_fleet(service: Any) -> int:
    """Register the demo fleet at every station of the pack (existing units are kept).

    Returns
    -------
    int
        Number of units created now.
    """
    from citywatch.dispatch.accounts import Principal, Role
    from citywatch.store.dispatch_models import Unit

    who = Principal("demo", Role.ADMIN)
    with service.sessions() as session:
        existing = set(session.scalars(select(Unit.id)))
    created = 0
    for station in service.pack.stations:
        for suffix, unit_type in FLEET_PER_STATION:
            uid = f"{station.id}-{suffix}"
            if uid not in existing:
                service.create_unit(
                    who,
                    id=uid,
                    unit_type=unit_type,
                    station=station.id,
                    shift=DEMO_SHIFTS.get(suffix),
                )
                created += 1
    return created


def demo_calls(db: str | None, pack: CityPack, rate_per_hour: float, seed: int) -> SimulatedCalls:
    """The simulated calls of the demo: the simulator's generator fitted to the stored incidents
    of the pack (imported incidents located inside the city, not live calls), starting now.

    Raises
    ------
    DataError
        If the database holds no usable incident of the pack.
    """
    from datetime import UTC, datetime

    from citywatch.sim.demand import load_history
    from citywatch.sim.scenario import Demand

    try:
        history, dropped = load_history(Demand(kind="synthetic", database=db or "default"), pack)
    except CityWatchError as exc:
        raise DataError(
            f"no usable incidents of {pack.name} to drive the simulated feed ({exc.message}); "
            "import some (citywatch incidents import) or start with --no-feed"
        ) from exc
    # Calls taken live (earlier demos' simulated ones included) are not history to fit.
    live = history["source"] == "live"
    if live.any():
        dropped["calls taken by the live service"] = int(live.sum())
        history = history[~live]
    if dropped:
        left_out = ", ".join(f"{n} {reason}" for reason, n in dropped.items())
        console.print(
            f"Simulated feed fitted to {len(history)} real incidents (left out: {left_out})."
        )
    model = scaled_model(history, pack.timezone, rate_per_hour)
    return SimulatedCalls(model, datetime.now(UTC), seed)


def demo(
    pack: PackName = "manhattan",
    host: Annotated[str, typer.Option(help="Interface to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=1, max=65535, help="TCP port.")] = 8000,
    no_feed: Annotated[
        bool, typer.Option("--no-feed", help="No simulated calls or moving units.")
    ] = False,
    db: DbOption = None,
    rate: Annotated[
        float, typer.Option(min=0.1, help="Mean simulated calls per hour (whole-day average).")
    ] = 90.0,
    seed: Annotated[int, typer.Option(help="Seed of the simulated feed.")] = 7,
) -> None:
    """Build the demo city pack if missing, import its bundled incidents, create demo accounts
    and a fleet, and start the service with the dashboard and a SIMULATED live feed."""
    ensure_port_free(host, port)  # before minutes of pack building and importing
    import uvicorn

    from citywatch.api.app import create_app
    from citywatch.api.dashboard import extend_lifespan
    from citywatch.api.settings import Settings
    from citywatch.city import load_pack
    from citywatch.demo.feed import DemoFeed, FeedConfig, attach_feed
    from citywatch.store.db import make_engine, upgrade

    console.print(f"Loading city pack [bold]{pack}[/bold] (built on first use)...")
    city = load_pack(pack)
    engine = make_engine(db)
    upgrade(engine)
    report = import_bundled(engine, city)
    if report is not None:
        console.print(
            f"Imported {report['imported']} real incidents from {Path(report['file']).name} "
            f"({report['rejected']} outside {city.name} or invalid, listed in "
            f"{report['rejected_path']})."
        )
    # Fit the feed before changing anything else, so that a city without incidents fails early.
    calls = None if no_feed else demo_calls(db, city, rate, seed)
    app = create_app(
        Settings(pack=pack, db_url=db, demo=True, migrate=False).with_secret_from_env()
    )
    service = app.state.service
    created = ensure_fleet(service)
    console.print(f"Demo fleet: {created} units registered now at {len(city.stations)} stations.")
    if calls is not None:
        attach_feed(app, DemoFeed(service, calls, FeedConfig(seed=seed)))
    passwords = ensure_accounts(service.sessions, city)
    print_table(
        "Demo logins (valid while this demo runs)",
        ["user", "role", "password"],
        [[a.username, a.role, passwords[a.username]] for a in DEMO_ACCOUNTS],
    )
    feed_note = "no feed" if no_feed else f"SIMULATED feed, about {rate:g} calls per hour"
    console.print(
        f"[bold green]Command centre:[/bold green] http://{host}:{port}/  ({feed_note}; "
        f"API docs at /docs).  Press Ctrl+C to stop."
    )

    @asynccontextmanager
    async def lock_accounts_at_exit(_: FastAPI) -> AsyncIterator[None]:
        # In the lifespan, not a finally: uvicorn re-raises SIGTERM after its shutdown.
        yield
        ensure_accounts(service.sessions, city, reveal=False)
        console.print("Demo stopped; the demo passwords no longer work.")

    extend_lifespan(app, lock_accounts_at_exit)
    uvicorn.run(app, host=host, port=port)

"""``citywatch serve``, ``citywatch users`` and ``citywatch audit``."""

from __future__ import annotations

import os
import secrets
import sys
from dataclasses import replace
from typing import Annotated, Any

import typer
from sqlalchemy.orm import Session, sessionmaker

from citywatch.cli_options import DbOption, JsonOption, PackName, ensure_port_free
from citywatch.console import console, print_json, print_table
from citywatch.dispatch.core import STALE_AFTER_S
from citywatch.errors import DataError, ValidationError

__all__ = ["audit_app", "serve", "users_app"]

users_app = typer.Typer(help="Manage user accounts.", no_args_is_help=True)
audit_app = typer.Typer(help="Inspect and verify the audit trail.", no_args_is_help=True)


def _sessions(db: str | None) -> sessionmaker[Session]:
    from citywatch.store.db import make_engine, session_factory, upgrade

    engine = make_engine(db)
    upgrade(engine)
    return session_factory(engine)


def serve(
    pack: PackName,
    db: DbOption = None,
    host: Annotated[str, typer.Option(help="Interface to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=1, max=65535, help="TCP port.")] = 8000,
    workers: Annotated[
        int, typer.Option(min=1, help="Worker processes (more than one needs PostgreSQL).")
    ] = 1,
    demo: Annotated[
        bool, typer.Option("--demo", help="Demo mode: enable the 'demo' admin account.")
    ] = False,
    stale_after: Annotated[
        float, typer.Option(min=1, help="Seconds after which an AVL position is stale.")
    ] = STALE_AFTER_S,
    advisories: Annotated[
        list[str] | None,
        typer.Option(
            "--advisories",
            help="Near-repeat advisories for this category (burglary, robbery, theft); "
            "repeatable; off by default.",
        ),
    ] = None,
    forecast_dir: Annotated[
        str | None,
        typer.Option("--forecast-dir", help="Folder of forecast predict --geojson outputs."),
    ] = None,
    access_log: Annotated[
        bool,
        typer.Option(
            "--access-log/--no-access-log",
            help="Log every request (a fleet's AVL reports are hundreds a second).",
        ),
    ] = True,
) -> None:
    """Start the dispatch service (REST under /api/v1, WebSocket /api/v1/events, docs at /docs)."""
    ensure_port_free(host, port)
    import uvicorn

    from citywatch.analytics.advisories import AdvisoryConfig
    from citywatch.api.app import create_app
    from citywatch.api.security import DEMO_USER
    from citywatch.api.settings import ENV_SETTINGS, Settings
    from citywatch.city import load_pack
    from citywatch.dispatch.accounts import create_user, find_user, mark_demo, set_password
    from citywatch.dispatch.core import DispatchConfig

    settings = Settings(
        pack=pack,
        db_url=db,
        demo=demo,
        dispatch=DispatchConfig(stale_after_s=stale_after),
        advisories=AdvisoryConfig(categories=tuple(advisories or ())),
        forecast_dir=forecast_dir,
    ).with_secret_from_env()
    sessions = _sessions(db)
    if workers > 1 and sessions.kw["bind"].dialect.name != "postgresql":
        raise ValidationError(
            "several workers need PostgreSQL (--db postgresql://...)", field="workers"
        )
    load_pack(pack)  # build a bundled pack once here, not in every worker
    if demo:
        password = secrets.token_urlsafe(12)
        from citywatch.store.db import writing

        with writing(sessions) as session:
            if find_user(session, DEMO_USER) is None:
                create_user(session, DEMO_USER, "admin", password=password, demo=True, actor="demo")
            else:
                mark_demo(session, DEMO_USER)
                set_password(session, DEMO_USER, password, actor="demo")
        console.print(
            f"[bold]Demo mode.[/bold] Log in at http://{host}:{port}/docs "
            "(POST /api/v1/auth/token); the demo account is refused outside demo mode.",
            markup=True,
        )
        console.print(
            f"  user:     {DEMO_USER}\n  password: {password}", markup=False, soft_wrap=True
        )
    settings = replace(settings, migrate=False)
    # uvloop and httptools (uvicorn[standard]) named, not left to "auto": without them the
    # HTTP layer of a request costs several times more CPU, and a missing one should fail here.
    server: dict[str, Any] = {
        "host": host,
        "port": port,
        "loop": "uvloop",
        "http": "httptools",
        "ws": "websockets-sansio",
        "access_log": access_log,
    }
    if workers == 1:
        uvicorn.run(create_app(settings), **server)
    else:
        os.environ[ENV_SETTINGS] = settings.to_env()
        uvicorn.run("citywatch.api.app:worker_app", factory=True, workers=workers, **server)


@users_app.command("add")
def users_add(
    username: Annotated[str, typer.Argument(help="User name.")],
    role: Annotated[
        str,
        typer.Option(
            help="admin, commander, dispatcher, station_officer, analyst, unit_device, "
            "sensor_feed (a recognition system: posts sightings only, with an API token)."
        ),
    ],
    scope: Annotated[
        str | None, typer.Option(help="Station or bureau id (station officers).")
    ] = None,
    unit: Annotated[str | None, typer.Option(help="Unit id (unit devices).")] = None,
    password_stdin: Annotated[
        bool, typer.Option("--password-stdin", help="Read the password from standard input.")
    ] = False,
    db: DbOption = None,
    json_: JsonOption = False,
) -> None:
    """Create an account (the password is prompted for, or read with --password-stdin)."""
    from citywatch.dispatch.accounts import create_user

    password: str | None = None
    if password_stdin:
        password = sys.stdin.readline().rstrip("\n")
    elif role not in ("unit_device", "sensor_feed"):
        password = typer.prompt("Password", hide_input=True, confirmation_prompt=True)
    from citywatch.store.db import writing

    with writing(_sessions(db)) as session:
        user = create_user(session, username, role, password=password, scope=scope, unit_id=unit)
        out = {
            "username": user.username,
            "role": user.role,
            "scope": user.scope,
            "unit_id": user.unit_id,
        }
    if json_:
        print_json(out)
    else:
        console.print(f"Created user {username} ({role}).")


@users_app.command("list")
def users_list(db: DbOption = None, json_: JsonOption = False) -> None:
    """List accounts."""
    from citywatch.dispatch.accounts import list_users

    with _sessions(db)() as session:
        rows = [
            {
                "username": u.username,
                "role": u.role,
                "scope": u.scope,
                "unit_id": u.unit_id,
                "disabled": u.disabled,
                "demo": u.is_demo,
                "created_at": u.created_at,
            }
            for u in list_users(session)
        ]
    if json_:
        print_json(rows)
    else:
        print_table(
            "Users",
            ["user", "role", "scope", "unit", "disabled", "demo", "created"],
            [list(r.values()) for r in rows],
        )


@users_app.command("disable")
def users_disable(username: str, db: DbOption = None, json_: JsonOption = False) -> None:
    """Disable an account and revoke its API and refresh tokens (effective at once)."""
    from citywatch.dispatch.accounts import disable_user
    from citywatch.store.db import writing

    with writing(_sessions(db)) as session:
        disable_user(session, username)
    if json_:
        print_json({"username": username, "disabled": True})
    else:
        console.print(f"Disabled user {username}; its API tokens are revoked.")


@users_app.command("unlock")
def users_unlock(username: str, db: DbOption = None, json_: JsonOption = False) -> None:
    """End an account's lockout after repeated failed logins (audited)."""
    from citywatch.dispatch.accounts import unlock_user
    from citywatch.store.db import writing

    with writing(_sessions(db)) as session:
        unlock_user(session, username)
    if json_:
        print_json({"username": username, "locked": False})
    else:
        console.print(f"Unlocked user {username}.")


@users_app.command("token")
def users_token(
    username: str,
    name: Annotated[str, typer.Option(help="A label for the token, e.g. the device.")] = "device",
    db: DbOption = None,
    json_: JsonOption = False,
) -> None:
    """Issue an API token for a device account (shown once; only its hash is stored)."""
    from citywatch.dispatch.accounts import create_token
    from citywatch.store.db import writing

    with writing(_sessions(db)) as session:
        token = create_token(session, username, name)
    if json_:
        print_json({"username": username, "name": name, "token": token})
    else:
        print(token)


@audit_app.command("verify")
def audit_verify(db: DbOption = None, json_: JsonOption = False) -> None:
    """Check the audit chain with its key ($CITYWATCH_AUDIT_HOME, default var/audit) and hold it
    against the signed checkpoints: OK with what was checked, or the first broken record (exit
    status 1)."""
    from citywatch.dispatch.audit import AuditTrail, audit_home, verify_chain

    trail = AuditTrail.open(audit_home(), create=False)
    with _sessions(db)() as session:
        check = verify_chain(session, trail)
    if json_:
        print_json(check.as_dict())
    if not check.ok:
        raise DataError(f"audit chain broken at record {check.broken_seq}: {check.reason}")
    if not json_:
        console.print(
            f"OK: {check.records} audit records, {check.checkpoints} checkpoints, key "
            f"{check.key_id}; hash chain intact ({check.unanchored} records after the newest "
            "checkpoint)."
        )

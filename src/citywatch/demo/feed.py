"""The demo's background feed: simulated calls, and units driving along the roads.

Everything the feed does goes through the live :class:`~citywatch.dispatch.service.DispatchService`
as the account ``sim-feed`` (so it is audited, timed and broadcast like any dispatcher's action):

* calls arrive from the simulator's generator (:class:`~citywatch.demo.calls.SimulatedCalls`);
* a call nobody has dispatched after ``auto_dispatch_s`` gets the recommended team (the person at
  the dashboard has that long to dispatch it themselves);
* a dispatched unit goes en route and drives the fastest road route to the incident at its mode's
  speed, posting AVL positions; on arrival it is on scene, and after ``on_scene_s`` the incident is
  cleared and the unit drives back to its station, where it becomes available;
* a share of the available units patrol: they drive to random road nodes near their station.

Time is real time: the units move at road speed, so the response-time KPIs stay meaningful.
"""

from __future__ import annotations

import asyncio
import logging
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import numpy as np
import numpy.typing as npt
from fastapi import FastAPI

from citywatch.api.dashboard import run_while_serving
from citywatch.city.network import haversine_m
from citywatch.demo.calls import DemoCall, SimulatedCalls
from citywatch.dispatch.accounts import Principal, Role
from citywatch.dispatch.lifecycle import IncidentStatus, UnitStatus
from citywatch.dispatch.service import DispatchService
from citywatch.errors import CityWatchError, ValidationError

__all__ = ["FEED_USER", "DemoFeed", "FeedConfig", "Leg", "attach_feed"]

log = logging.getLogger("citywatch.demo.feed")

#: The actor of every change the feed makes (shown in incident timelines).
FEED_USER = "sim-feed"


@dataclass(frozen=True)
class FeedConfig:
    """How the feed behaves.

    Parameters
    ----------
    tick_s : float
        Seconds between steps; units going to or from an incident post a position every step.
    idle_report_s : float
        Seconds between the positions a unit waiting at its station reports (an AVL device keeps
        reporting while parked, so the unit is not flagged stale).
    patrol_report_s : float
        Seconds between the positions of a patrolling unit (fewer writes; AVL units commonly
        report every 5-30 s).
    auto_dispatch_s : float
        A call still undispatched after this long gets the recommended unit.
    on_scene_s : float
        Time a unit spends on scene before the incident is cleared.
    patrol_share : float
        Share of the available units that patrol (the others wait at their station).
    patrol_radius_m : float
        Patrol targets are road nodes within this distance of the unit's station.
    seed : int
        Seed of the random generator of the patrol targets.
    initial_calls : int
        Calls created at the first step, so that the map is not empty at start.
    """

    tick_s: float = 2.0
    patrol_report_s: float = 6.0
    idle_report_s: float = 60.0
    auto_dispatch_s: float = 45.0
    on_scene_s: float = 240.0
    patrol_share: float = 0.5
    patrol_radius_m: float = 1500.0
    seed: int = 7
    initial_calls: int = 6

    def __post_init__(self) -> None:
        for name in (
            "tick_s",
            "patrol_report_s",
            "idle_report_s",
            "auto_dispatch_s",
            "on_scene_s",
            "patrol_radius_m",
        ):
            if not getattr(self, name) > 0:
                raise ValidationError(f"{name} must be positive", field=name)
        if not 0 <= self.patrol_share <= 1:
            raise ValidationError("patrol_share must be within 0..1", field="patrol_share")


@dataclass
class Leg:
    """A unit driving a road route at constant speed, from ``start`` for ``seconds``.

    ``purpose`` is ``incident`` (to ``incident_id``), ``station`` or ``patrol``.
    """

    purpose: str
    coords: npt.NDArray[np.float64]
    seconds: float
    start: datetime
    incident_id: str | None = None
    reported_at: datetime | None = None
    _along: npt.NDArray[np.float64] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        step = haversine_m(
            self.coords[:-1, 0], self.coords[:-1, 1], self.coords[1:, 0], self.coords[1:, 1]
        )
        self._along = np.concatenate([[0.0], np.cumsum(step)])

    def done(self, now: datetime) -> bool:
        """Whether the unit has reached the end of the route."""
        return (now - self.start).total_seconds() >= self.seconds

    def position(self, now: datetime) -> tuple[float, float]:
        """Where the unit is at ``now``: the point that far along the route's length."""
        t = (now - self.start).total_seconds()
        fraction = 1.0 if self.seconds <= 0 else min(max(t / self.seconds, 0.0), 1.0)
        target = fraction * self._along[-1]
        lon = float(np.interp(target, self._along, self.coords[:, 0]))
        lat = float(np.interp(target, self._along, self.coords[:, 1]))
        return lon, lat


class DemoFeed:
    """Simulated calls and unit movement over a live dispatch service.

    Parameters
    ----------
    service : DispatchService
        The live service (its clock is the feed's clock).
    calls : SimulatedCalls
        Where and when the calls come from.
    config : FeedConfig, optional
    """

    def __init__(
        self, service: DispatchService, calls: SimulatedCalls, config: FeedConfig | None = None
    ) -> None:
        self.service = service
        self.calls = calls
        self.config = config or FeedConfig()
        self.who = Principal(FEED_USER, Role.ADMIN)
        self.rng = np.random.default_rng(self.config.seed)
        self.legs: dict[str, Leg] = {}
        self.on_scene_since: dict[str, datetime] = {}
        self.last_step: datetime | None = None
        self.calls_created = 0
        self.calls_refused = 0
        self._node_lonlat = np.column_stack([service.pack.network.lon, service.pack.network.lat])
        self._patrol_nodes: dict[str, npt.NDArray[np.int64]] = {}
        self.idle_reported: dict[str, datetime] = {}

    def describe(self) -> dict[str, Any]:
        """What the dashboard shows about the feed (it is labelled SIMULATED)."""
        return {
            "simulated": True,
            "rate_per_hour": self.calls.rate_per_hour,
            "auto_dispatch_s": self.config.auto_dispatch_s,
            "on_scene_s": self.config.on_scene_s,
            "calls_created": self.calls_created,
            "calls_refused": self.calls_refused,
            "actor": FEED_USER,
        }

    # ------------------------------------------------------------------ one step
    def step(self, now: datetime | None = None) -> None:
        """Advance the feed to ``now`` (the service's clock by default)."""
        now = now or self.service.clock()
        if self.last_step is None:
            self._new_calls(self.calls.backlog(self.config.initial_calls))
        self.last_step = now
        self._new_calls(self.calls.due(now))
        self._auto_dispatch(now)
        for unit in self.service.list_units(self.who):
            try:
                self._advance(unit, now)
            except CityWatchError as exc:
                # Someone changed the unit or its incident under us: forget the plan, re-plan.
                log.info("feed: unit %s: %s", unit["id"], exc.message)
                self.legs.pop(unit["id"], None)

    def _new_calls(self, calls: list[DemoCall]) -> None:
        for call in calls:
            try:
                self.service.create_incident(
                    self.who,
                    category=call.category,
                    lon=call.lon,
                    lat=call.lat,
                    caller_notes="SIMULATED call (demo feed)",
                )
            except CityWatchError as exc:
                # A real incident location farther than the snapping limit from any road.
                self.calls_refused += 1
                log.warning("feed: simulated call refused: %s", exc.message)
            else:
                self.calls_created += 1

    def _auto_dispatch(self, now: datetime) -> None:
        waiting = self.service.list_incidents(self.who, status=IncidentStatus.RECEIVED, limit=1000)
        limit = timedelta(seconds=self.config.auto_dispatch_s)
        for incident in waiting:
            if now - incident["status_at"] < limit:
                continue
            try:
                rec = self.service.recommend(self.who, incident["id"], k=1)
                team = list(rec.team) or [c.unit_id for c in rec.candidates[:1]]
                if team:  # the whole recommended team, in one action
                    self.service.assign_many(self.who, incident["id"], team)
            except CityWatchError as exc:
                log.info("feed: auto-dispatch of %s: %s", incident["id"], exc.message)

    # ------------------------------------------------------------------ units
    def _advance(self, unit: dict[str, Any], now: datetime) -> None:
        uid, status = unit["id"], unit["status"]
        if status != UnitStatus.ON_SCENE:
            self.on_scene_since.pop(uid, None)
        leg = self.legs.get(uid)
        here = (unit["located"]["lon"], unit["located"]["lat"])
        if status in (UnitStatus.DISPATCHED, UnitStatus.EN_ROUTE):
            if leg is None or leg.purpose != "incident" or leg.incident_id != unit["incident_id"]:
                incident = self.service.get_incident(self.who, unit["incident_id"])
                leg = self._plan(
                    uid, "incident", here, (incident["lon"], incident["lat"]), unit, now
                )
                leg.incident_id = unit["incident_id"]
                if status == UnitStatus.DISPATCHED:
                    self.service.set_unit_status(self.who, uid, UnitStatus.EN_ROUTE)
            self._drive(uid, leg, now)
            if leg.done(now):
                self.service.set_unit_status(self.who, uid, UnitStatus.ON_SCENE)
                self.legs.pop(uid, None)
                self.on_scene_since[uid] = now
        elif status == UnitStatus.ON_SCENE:
            since = self.on_scene_since.setdefault(uid, now)
            if (now - since).total_seconds() >= self.config.on_scene_s:
                self.on_scene_since.pop(uid, None)
                incident = self.service.get_incident(self.who, unit["incident_id"])
                if incident["status"] == IncidentStatus.ON_SCENE:
                    self.service.set_incident_status(
                        self.who, unit["incident_id"], IncidentStatus.CLEARED
                    )
                else:
                    self.service.set_unit_status(self.who, uid, UnitStatus.RETURNING)
        elif status == UnitStatus.RETURNING:
            if leg is None or leg.purpose != "station":
                leg = self._plan(uid, "station", here, self._station_of(unit), unit, now)
            self._drive(uid, leg, now)
            if leg.done(now):
                self.service.set_unit_status(self.who, uid, UnitStatus.AVAILABLE)
                self.legs.pop(uid, None)
        elif status == UnitStatus.AVAILABLE and self._patrols(uid):
            if leg is None or leg.purpose != "patrol" or leg.done(now):
                if leg is not None and leg.purpose == "patrol":
                    here = leg.position(now)
                leg = self._plan(uid, "patrol", here, self._patrol_target(unit), unit, now)
            self._drive(uid, leg, now, every_s=self.config.patrol_report_s)
        else:
            self.legs.pop(uid, None)
            last = self.idle_reported.get(uid)
            if last is None or (now - last).total_seconds() >= self.config.idle_report_s:
                self.service.update_position(self.who, uid, here[0], here[1], now)
                self.idle_reported[uid] = now

    def _patrols(self, unit_id: str) -> bool:
        # A stable choice per unit (not the salted built-in hash): the same units patrol
        # after a restart.
        digest = sum((i + 1) * ord(c) for i, c in enumerate(unit_id)) % 1000
        return digest < self.config.patrol_share * 1000

    def _station_of(self, unit: dict[str, Any]) -> tuple[float, float]:
        station = self.service.stations[unit["station"]]
        return station.lon, station.lat

    def _patrol_target(self, unit: dict[str, Any]) -> tuple[float, float]:
        sid = unit["station"]
        if sid not in self._patrol_nodes:
            lon, lat = self._station_of(unit)
            d = haversine_m(lon, lat, self._node_lonlat[:, 0], self._node_lonlat[:, 1])
            near = np.flatnonzero(d <= self.config.patrol_radius_m)
            self._patrol_nodes[sid] = near if len(near) else np.array([int(np.argmin(d))])
        node = int(self.rng.choice(self._patrol_nodes[sid]))
        return float(self._node_lonlat[node, 0]), float(self._node_lonlat[node, 1])

    def _plan(
        self,
        unit_id: str,
        purpose: str,
        origin: tuple[float, float],
        target: tuple[float, float],
        unit: dict[str, Any],
        now: datetime,
    ) -> Leg:
        route = self.service.router.route(origin, target, unit["mode"])
        coords = np.asarray(route.coords, dtype=np.float64)
        if len(coords) < 2:
            coords = np.array([origin, target], dtype=np.float64)
        leg = Leg(purpose, coords, float(route.seconds), now)
        self.legs[unit_id] = leg
        return leg

    def _drive(self, unit_id: str, leg: Leg, now: datetime, every_s: float = 0.0) -> None:
        due = leg.reported_at is None or (now - leg.reported_at).total_seconds() >= every_s
        if not (due or leg.done(now)):
            return
        lon, lat = leg.position(now)
        if math.isfinite(lon) and math.isfinite(lat):
            self.service.update_position(self.who, unit_id, lon, lat, now)
            leg.reported_at = now

    # ------------------------------------------------------------------ running
    async def run(self, clock: Callable[[], datetime] | None = None) -> None:
        """Step every ``tick_s`` seconds until cancelled (each step runs in a worker thread)."""
        while True:
            try:
                await asyncio.to_thread(self.step, clock() if clock else None)
            except Exception:  # the feed must not take the service down; the error is logged
                log.exception("demo feed step failed")
            await asyncio.sleep(self.config.tick_s)


def attach_feed(app: FastAPI, feed: DemoFeed) -> None:
    """Run ``feed`` in the background while ``app`` is up, and show it on the dashboard.

    Parameters
    ----------
    app : fastapi.FastAPI
        An application from :func:`citywatch.api.app.create_app`.
    feed : DemoFeed
        The feed; it starts after the application's own start-up (event bus listening).
    """

    run_while_serving(app, feed.run, "citywatch-demo-feed")
    app.state.feed = feed

"""Simulation scenarios: a TOML file naming the city, fleet, demand, policy and time models.

See ``docs/simulate.md`` for the full format; ``data/scenarios/`` holds worked examples.  Every
table is checked for unknown keys, so a misspelt option is an error and never silently ignored.
Relative paths inside a scenario are relative to the scenario file.
"""

from __future__ import annotations

import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from pathlib import Path
from typing import Any, Literal
from zoneinfo import ZoneInfo

import numpy as np
import numpy.typing as npt

from citywatch.dispatch.policy import STATION_FIRST_THRESHOLD_S, PolicyName, parse_policy_name
from citywatch.domain import PRIORITY_DEFAULT
from citywatch.errors import ValidationError
from citywatch.tomlkeys import check_keys

__all__ = [
    "DAYS",
    "RELOCATIONS",
    "Demand",
    "Dist",
    "FleetGroup",
    "Scenario",
    "Shift",
    "TimeModel",
    "TimeRule",
    "load_scenario",
    "parse_scenario",
]

DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
DistKind = Literal["fixed", "exponential", "lognormal"]
IdleKind = Literal["station", "posts", "patrol"]
Relocation = Literal["return_to_post", "move_up"]
#: What a freed unit may do, by the name a scenario's ``[dispatch] relocation`` gives.
RELOCATIONS: tuple[Relocation, ...] = ("return_to_post", "move_up")


def _check_keys(table: Mapping[str, Any], allowed: set[str], where: str) -> None:
    check_keys(table, allowed, where, ValidationError)


def _positive(value: Any, where: str, *, allow_zero: bool = False) -> float:
    try:
        x = float(value)
    except (TypeError, ValueError):
        raise ValidationError(f"{where} must be a number, not {value!r}", field=where) from None
    if not np.isfinite(x) or x < 0 or (x == 0 and not allow_zero):
        raise ValidationError(f"{where} must be {'≥' if allow_zero else '>'} 0", field=where)
    return x


@dataclass(frozen=True)
class Dist:
    """A duration distribution in seconds: ``fixed``, ``exponential`` or ``lognormal``."""

    kind: DistKind
    mean_s: float
    sd_s: float = 0.0

    def sample(self, rng: np.random.Generator, n: int) -> npt.NDArray[np.float64]:
        """Draw ``n`` durations."""
        if self.kind == "fixed":
            return np.full(n, self.mean_s)
        if self.kind == "exponential":
            return rng.exponential(self.mean_s, n)
        # Lognormal with the given mean and standard deviation of the duration itself.
        sigma2 = np.log1p((self.sd_s / self.mean_s) ** 2)
        mu = np.log(self.mean_s) - sigma2 / 2
        return rng.lognormal(mu, np.sqrt(sigma2), n)

    @classmethod
    def parse(cls, raw: Mapping[str, Any], where: str, extra: set[str] = frozenset()) -> Dist:  # type: ignore[assignment]
        """Read ``{dist = ..., mean_s = ..., sd_s = ...}``."""
        _check_keys(raw, {"dist", "mean_s", "sd_s"} | extra, where)
        kind = raw.get("dist", "lognormal")
        if kind not in ("fixed", "exponential", "lognormal"):
            raise ValidationError(
                f"{where}: dist must be fixed, exponential or lognormal, not {kind!r}", field=where
            )
        mean = _positive(raw.get("mean_s"), f"{where}.mean_s", allow_zero=kind == "fixed")
        sd = _positive(raw.get("sd_s", 0.0), f"{where}.sd_s", allow_zero=True)
        if kind == "lognormal" and sd == 0:
            raise ValidationError(f"{where}: a lognormal needs sd_s > 0", field=where)
        return cls(kind, mean, sd)


@dataclass(frozen=True)
class TimeRule:
    """A duration distribution for some categories and/or priorities (empty: any)."""

    categories: frozenset[str]
    priorities: frozenset[int]
    dist: Dist


@dataclass(frozen=True)
class TimeModel:
    """Durations by category and priority: the first matching rule, else the default."""

    default: Dist
    rules: tuple[TimeRule, ...] = ()

    def sample(
        self, rng: np.random.Generator, categories: Sequence[str], priorities: Sequence[int]
    ) -> npt.NDArray[np.float64]:
        """One duration per incident (vectorised per rule, so the draw order is fixed)."""
        n = len(categories)
        cats = np.asarray(categories, dtype=object)
        pris = np.asarray(priorities, dtype=np.int64)
        out = np.empty(n)
        todo = np.ones(n, dtype=bool)
        for rule in self.rules:
            hit = todo.copy()
            if rule.categories:
                hit &= np.isin(cats, list(rule.categories))
            if rule.priorities:
                hit &= np.isin(pris, list(rule.priorities))
            out[hit] = rule.dist.sample(rng, int(hit.sum()))
            todo &= ~hit
        out[todo] = self.default.sample(rng, int(todo.sum()))
        return out

    @classmethod
    def parse(cls, raw: Mapping[str, Any] | None, where: str, default: Dist) -> TimeModel:
        """Read ``[where.default]`` and ``[[where.rules]]``."""
        if raw is None:
            return cls(default)
        _check_keys(raw, {"default", "rules"}, where)
        base = Dist.parse(raw["default"], f"{where}.default") if "default" in raw else default
        rules = []
        for i, r in enumerate(raw.get("rules", [])):
            w = f"{where}.rules[{i}]"
            rules.append(
                TimeRule(
                    frozenset(str(c) for c in r.get("categories", [])),
                    frozenset(int(p) for p in r.get("priorities", [])),
                    Dist.parse(r, w, {"categories", "priorities"}),
                )
            )
        return cls(base, tuple(rules))


@dataclass(frozen=True)
class Shift:
    """A daily shift: on duty from ``start`` for ``length`` on the given weekdays (local time)."""

    name: str
    start: time
    length: timedelta
    days: frozenset[int]

    def intervals(
        self, begin: datetime, end: datetime, tz: ZoneInfo
    ) -> list[tuple[datetime, datetime]]:
        """On-duty intervals overlapping ``[begin, end)``, of shifts starting on the listed days."""
        out = []
        day = (begin.astimezone(tz) - timedelta(days=2)).date()
        while datetime.combine(day, self.start, tz) < end:
            if day.weekday() in self.days:
                on = datetime.combine(day, self.start, tz)
                off = on + self.length
                if off > begin:
                    out.append((on, off))
            day += timedelta(days=1)
        return out


@dataclass(frozen=True)
class FleetGroup:
    """``count`` units of one type per listed station, waiting at the station, posts or patrol."""

    stations: tuple[str, ...]
    unit_type: str
    count: int
    idle: IdleKind = "station"
    points: tuple[tuple[float, float], ...] = ()
    dwell_s: float = 120.0
    shift: str | None = None


@dataclass(frozen=True)
class Demand:
    """Where incidents come from.

    ``replay``: the incidents of ``files`` / ``database`` received in the simulated window,
    thinned at random when ``scale`` < 1.  ``synthetic``: a non-homogeneous Poisson stream by
    zone and hour of week fitted from them (between ``fit_start`` and ``fit_end``), times
    ``scale``.  ``poisson``: a homogeneous stream of ``rate_per_hour`` at the given points (for
    checks against queueing theory), or at road network nodes inside the city drawn uniformly
    (``points = "network"``, for a city without incident data).
    """

    kind: Literal["replay", "synthetic", "poisson"]
    files: tuple[tuple[Path, str], ...] = ()
    database: str | None = None
    fit_start: datetime | None = None
    fit_end: datetime | None = None
    categories: tuple[str, ...] = ()
    scale: float = 1.0
    model: Literal["separable", "full"] = "separable"
    rate_per_hour: float = 0.0
    points: tuple[tuple[float, float], ...] = ()
    on_network: bool = False
    category: str = "other"
    priority: int = PRIORITY_DEFAULT
    #: A risk surface (``forecast predict --geojson`` or ``--csv``): incident locations are
    #: drawn from it instead (times, categories and priorities as the demand kind says).
    surface: Path | None = None


@dataclass(frozen=True)
class Scenario:
    """A parsed scenario file; build with :func:`load_scenario` or :func:`parse_scenario`."""

    name: str
    pack: str
    start: datetime
    end: datetime
    demand: Demand
    fleet: tuple[FleetGroup, ...]
    shifts: Mapping[str, Shift]
    policy: PolicyName = "nearest"
    threshold_s: float = STATION_FIRST_THRESHOLD_S
    limit_s: float | None = None
    requirements: Path | None = None
    queue: bool = True
    #: What a unit does when it clears a scene: ``return_to_post``, or ``move_up`` (DMEXCLP:
    #: :mod:`citywatch.sim.moveup`).
    relocation: Relocation = "return_to_post"
    call_handling: TimeModel = field(default_factory=lambda: TimeModel(Dist("fixed", 0.0)))
    on_scene: TimeModel = field(default_factory=lambda: TimeModel(Dist("fixed", 1800.0)))
    congestion: tuple[float, ...] = (1.0,) * 24
    replications: int = 5
    seed: int = 0
    source: Path | None = None

    @property
    def duration_s(self) -> float:
        """Length of the simulated window in seconds."""
        return (self.end - self.start).total_seconds()


def _datetime(value: Any, tz: ZoneInfo, where: str) -> datetime:
    if isinstance(value, datetime):
        return value if value.tzinfo is not None else value.replace(tzinfo=tz)
    if isinstance(value, date):
        return datetime.combine(value, time(0), tz)
    raise ValidationError(f"{where} must be a TOML date or date-time, not {value!r}", field=where)


def _points(raw: Any, where: str) -> tuple[tuple[float, float], ...]:
    try:
        pts = tuple((float(p[0]), float(p[1])) for p in raw)
    except (TypeError, ValueError, IndexError):
        raise ValidationError(f"{where} must be a list of [lon, lat] pairs", field=where) from None
    if not pts:
        raise ValidationError(f"{where} must list at least one [lon, lat] point", field=where)
    return pts


def _hhmm(value: Any, where: str) -> time:
    try:
        h, m = (int(x) for x in str(value).split(":"))
        return time(h, m)
    except ValueError:
        raise ValidationError(f"{where} must be HH:MM, not {value!r}", field=where) from None


def _shifts(raw: Mapping[str, Any]) -> dict[str, Shift]:
    out = {}
    for name, t in raw.items():
        where = f"shifts.{name}"
        _check_keys(t, {"start", "end", "days"}, where)
        start, end = _hhmm(t.get("start"), f"{where}.start"), _hhmm(t.get("end"), f"{where}.end")
        minutes = (end.hour * 60 + end.minute - start.hour * 60 - start.minute) % (24 * 60)
        days = t.get("days", list(DAYS))
        bad = [d for d in days if d not in DAYS]
        if bad:
            raise ValidationError(f"{where}.days: unknown day(s) {bad}; use {', '.join(DAYS)}")
        out[name] = Shift(
            name,
            start,
            timedelta(minutes=minutes or 24 * 60),
            frozenset(DAYS.index(d) for d in days),
        )
    return out


def _fleet(
    raw: Sequence[Mapping[str, Any]], stations: Sequence[str] | None, shifts: Mapping[str, Shift]
) -> tuple[FleetGroup, ...]:
    groups = []
    for i, g in enumerate(raw):
        where = f"fleet[{i}]"
        _check_keys(
            g, {"stations", "unit_type", "count", "idle", "points", "dwell_s", "shift"}, where
        )
        st = g.get("stations", "all")
        if st == "all":
            if stations is None:
                raise ValidationError(f"{where}: stations = 'all' needs the city pack's stations")
            ids = tuple(stations)
        else:
            ids = tuple(str(s) for s in st)
            if stations is not None:
                unknown = sorted(set(ids) - set(stations))
                if unknown:
                    raise ValidationError(f"{where}: unknown station(s) {unknown}", field=where)
        idle = g.get("idle", "station")
        if idle not in ("station", "posts", "patrol"):
            raise ValidationError(f"{where}.idle must be station, posts or patrol", field=where)
        points = _points(g.get("points"), f"{where}.points") if idle != "station" else ()
        shift = g.get("shift")
        if shift is not None and shift not in shifts:
            raise ValidationError(f"{where}: unknown shift {shift!r}", field=where)
        count = int(g.get("count", 1))
        if count < 1:
            raise ValidationError(f"{where}.count must be at least 1", field=where)
        if "unit_type" not in g:
            raise ValidationError(f"{where}: unit_type is required", field=where)
        groups.append(
            FleetGroup(
                ids,
                str(g["unit_type"]),
                count,
                idle,
                points,
                _positive(g.get("dwell_s", 120.0), f"{where}.dwell_s"),
                shift,
            )
        )
    if not groups:
        raise ValidationError("the scenario has no [[fleet]] units")
    return tuple(groups)


def _demand(raw: Mapping[str, Any], base: Path, tz: ZoneInfo) -> Demand:
    _check_keys(
        raw,
        {
            "kind",
            "files",
            "database",
            "fit_start",
            "fit_end",
            "categories",
            "scale",
            "model",
            "rate_per_hour",
            "points",
            "category",
            "priority",
            "surface",
        },
        "demand",
    )
    kind = raw.get("kind", "synthetic")
    if kind not in ("replay", "synthetic", "poisson"):
        raise ValidationError("demand.kind must be replay, synthetic or poisson", field="demand")
    files = []
    for f in raw.get("files", []):
        _check_keys(f, {"path", "source"}, "demand.files")
        files.append((base / str(f["path"]), str(f.get("source", "canonical"))))
    demand = Demand(
        kind=kind,
        files=tuple(files),
        database=raw.get("database"),
        fit_start=_datetime(raw["fit_start"], tz, "demand.fit_start")
        if "fit_start" in raw
        else None,
        fit_end=_datetime(raw["fit_end"], tz, "demand.fit_end") if "fit_end" in raw else None,
        categories=tuple(raw.get("categories", ())),
        scale=_positive(raw.get("scale", 1.0), "demand.scale"),
        model=raw.get("model", "separable"),
        rate_per_hour=float(raw.get("rate_per_hour", 0.0)),
        points=_points(raw["points"], "demand.points")
        if "points" in raw and raw["points"] != "network"
        else (),
        on_network=raw.get("points") == "network",
        category=str(raw.get("category", "other")),
        priority=int(raw.get("priority", PRIORITY_DEFAULT)),
        surface=base / str(raw["surface"]) if "surface" in raw else None,
    )
    if demand.model not in ("separable", "full"):
        raise ValidationError("demand.model must be separable or full", field="demand")
    if kind == "poisson" and (
        demand.rate_per_hour <= 0 or not (demand.points or demand.on_network)
    ):
        raise ValidationError("poisson demand needs rate_per_hour > 0 and points", field="demand")
    if kind != "poisson" and not (files or demand.database):
        raise ValidationError(f"{kind} demand needs files or a database", field="demand")
    if kind == "replay" and demand.scale > 1:
        raise ValidationError(
            "replay can only thin (scale <= 1); use kind = 'synthetic' to scale demand up",
            field="demand.scale",
        )
    return demand


def parse_scenario(
    doc: Mapping[str, Any],
    base: Path,
    *,
    timezone: str,
    stations: Sequence[str] | None = None,
    source: Path | None = None,
) -> Scenario:
    """Build a :class:`Scenario` from a parsed TOML document.

    Parameters
    ----------
    doc : mapping
        The TOML document.
    base : Path
        Folder that relative paths are relative to.
    timezone : str
        The city pack's time zone (for local dates, shifts and hours).
    stations : sequence of str, optional
        The pack's station ids, to expand ``stations = "all"`` and check station names.
    source : Path, optional
        The file the document came from.

    Raises
    ------
    ValidationError
        For any missing, unknown or invalid setting.
    """
    _check_keys(
        doc,
        {
            "scenario",
            "demand",
            "dispatch",
            "call_handling",
            "on_scene",
            "travel",
            "shifts",
            "fleet",
        },
        "scenario file",
    )
    tz = ZoneInfo(timezone)
    head = doc.get("scenario", {})
    _check_keys(head, {"name", "pack", "start", "end", "days", "replications", "seed"}, "scenario")
    if "start" not in head:
        raise ValidationError("scenario.start is required", field="scenario.start")
    start = _datetime(head["start"], tz, "scenario.start")
    if "end" in head:
        end = _datetime(head["end"], tz, "scenario.end")
    else:
        end = start + timedelta(days=_positive(head.get("days", 7), "scenario.days"))
    if end <= start:
        raise ValidationError("scenario.end must be after scenario.start", field="scenario.end")
    shifts = _shifts(doc.get("shifts", {}))
    disp = doc.get("dispatch", {})
    _check_keys(
        disp,
        {"policy", "threshold_s", "limit_s", "requirements", "queue", "relocation"},
        "dispatch",
    )
    relocation = disp.get("relocation", "return_to_post")
    if relocation not in RELOCATIONS:
        raise ValidationError(
            f"dispatch.relocation must be one of {', '.join(RELOCATIONS)}, not {relocation!r}",
            field="dispatch.relocation",
        )
    policy = parse_policy_name(disp.get("policy", "nearest"), "dispatch.policy")
    travel = doc.get("travel", {})
    _check_keys(travel, {"congestion"}, "travel")
    congestion = tuple(float(x) for x in travel.get("congestion", [1.0] * 24))
    if len(congestion) != 24 or not all(c > 0 for c in congestion):
        raise ValidationError("travel.congestion must list 24 positive factors, one per hour")
    reps = int(head.get("replications", 5))
    if reps < 1:
        raise ValidationError("scenario.replications must be at least 1")
    return Scenario(
        name=str(head.get("name", source.stem if source else "scenario")),
        pack=str(head.get("pack", "manhattan")),
        start=start.astimezone(tz),
        end=end.astimezone(tz),
        demand=_demand(doc.get("demand", {}), base, tz),
        fleet=_fleet(doc.get("fleet", []), stations, shifts),
        shifts=shifts,
        policy=policy,
        threshold_s=_positive(
            disp.get("threshold_s", STATION_FIRST_THRESHOLD_S), "dispatch.threshold_s"
        ),
        limit_s=_positive(disp["limit_s"], "dispatch.limit_s") if "limit_s" in disp else None,
        requirements=base / disp["requirements"] if "requirements" in disp else None,
        queue=bool(disp.get("queue", True)),
        relocation=relocation,
        call_handling=TimeModel.parse(
            doc.get("call_handling"), "call_handling", Dist("fixed", 0.0)
        ),
        on_scene=TimeModel.parse(doc.get("on_scene"), "on_scene", Dist("lognormal", 1800.0, 900.0)),
        congestion=congestion,
        replications=reps,
        seed=int(head.get("seed", 0)),
        source=source,
    )


def load_scenario(path: str | Path) -> Scenario:
    """Read a scenario TOML file (its city pack is loaded to resolve time zone and stations).

    Raises
    ------
    NotFoundError
        If the file or its city pack does not exist.
    ValidationError
        If the file is not valid TOML or has an invalid setting.
    """
    from citywatch.city import load_pack
    from citywatch.errors import NotFoundError

    p = Path(path)
    if not p.is_file():
        raise NotFoundError(f"no scenario file {p}")
    try:
        doc = tomllib.loads(p.read_text("utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise ValidationError(f"{p}: not valid TOML: {exc}") from exc
    pack_name = str(doc.get("scenario", {}).get("pack", "manhattan"))
    local = p.parent / pack_name
    # A pack folder next to the scenario wins; otherwise keep the name, so that worker
    # processes load (or rebuild) the bundled pack the same way.
    pack_ref = str(local.resolve()) if (local / "city.toml").exists() else pack_name
    pack = load_pack(pack_ref)
    doc = {**doc, "scenario": {**doc.get("scenario", {}), "pack": pack_ref}}
    return parse_scenario(
        doc, p.parent, timezone=pack.timezone, stations=[s.id for s in pack.stations], source=p
    )

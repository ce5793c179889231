"""Recommendation policies against brute force with a deterministic fake road network."""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

import citywatch.dispatch.policy as policy_module
from citywatch.dispatch.policy import (
    Fleet,
    IncidentView,
    Policy,
    Reason,
    RequirementRules,
    UnitView,
    load_requirements,
    nearest,
    recommend,
    router_travel,
    station_first,
)
from citywatch.errors import DataError, ValidationError
from citywatch.incidents.taxonomy import load_taxonomy

# Speeds (m/s) of the fake network per mode.
SPEEDS = {"car": 10.0, "motorcycle": 9.0, "bicycle": 5.0, "foot": 1.4}
M_PER_DEG = 111_000.0


class FakeTravel:
    """Manhattan-metric travel on a grid with a river at lon 0.5 crossed only by a bridge at lat 0.

    Straight-line proximity is deliberately misleading across the river: a unit just across the
    water must detour over the bridge.  Records every call so tests can check the batching.
    """

    def __init__(self) -> None:
        self.calls: list[tuple[str, int]] = []

    @staticmethod
    def one(src: tuple[float, float], target: tuple[float, float], mode: str) -> float:
        (x0, y0), (x1, y1) = src, target
        if (x0 < 0.5) != (x1 < 0.5):
            metres = (abs(x0 - x1) + abs(y0) + abs(y1)) * M_PER_DEG
        else:
            metres = (abs(x0 - x1) + abs(y0 - y1)) * M_PER_DEG
        return metres

    def __call__(
        self, sources: np.ndarray, mode: str, target: tuple[float, float], limit_s: float | None
    ) -> tuple[np.ndarray, np.ndarray]:
        self.calls.append((mode, len(sources)))
        metres = np.array([self.one((x, y), target, mode) for x, y in sources])
        seconds = metres / SPEEDS[mode]
        if limit_s is not None:
            seconds[seconds > limit_s] = math.inf
        return seconds, metres


def unit(uid: str, lon: float, lat: float, **kw: object) -> UnitView:
    defaults: dict[str, object] = {"unit_type": "patrol_car", "mode": "car", "station": "A"}
    defaults.update(kw)
    return UnitView(id=uid, lon=lon, lat=lat, **defaults)  # type: ignore[arg-type]


def incident(lon: float = 0.6, lat: float = 0.01, **kw: object) -> IncidentView:
    defaults: dict[str, object] = {"category": "theft", "priority": 3, "station": "A"}
    defaults.update(kw)
    return IncidentView(id="i1", lon=lon, lat=lat, **defaults)  # type: ignore[arg-type]


def random_units(rng: np.random.Generator, n: int) -> list[UnitView]:
    types = [
        ("patrol_car", "car"),
        ("motorcycle", "motorcycle"),
        ("foot", "foot"),
        ("bicycle", "bicycle"),
        ("mounted", "bicycle"),
        ("special_police", "car"),
    ]
    out = []
    for i in range(n):
        t, mode = types[int(rng.integers(len(types)))]
        status = "available" if rng.random() < 0.8 else "dispatched"
        out.append(
            unit(
                f"u{i}",
                float(rng.random()),
                float(rng.random() * 0.2 - 0.1),
                unit_type=t,
                mode=mode,
                station=str(rng.integers(3)),
                status=status,
            )
        )
    return out


@pytest.mark.parametrize("seed", range(5))
def test_nearest_equals_brute_force(seed: int) -> None:
    rng = np.random.default_rng(seed)
    units = random_units(rng, 200)
    inc = incident(float(rng.random()), float(rng.random() * 0.2 - 0.1))
    travel = FakeTravel()
    rec = recommend(inc, units, travel, nearest(), k=10)
    brute = sorted(
        (FakeTravel.one((u.lon, u.lat), (inc.lon, inc.lat), u.mode) / SPEEDS[u.mode], u.id)
        for u in units
        if u.status == "available"
    )
    assert [c.unit_id for c in rec.candidates] == [uid for _, uid in brute[:10]]
    for c, (t, _) in zip(rec.candidates, brute, strict=False):
        assert c.eta_s == pytest.approx(t)
    assert rec.status == "ok" and rec.team == (brute[0][1],)
    # Exact, not shortlisted: one call per mode with every available unit of that mode.
    per_mode: dict[str, int] = {}
    for u in units:
        if u.status == "available":
            per_mode[u.mode] = per_mode.get(u.mode, 0) + 1
    # Each round of the bounded search asks every mode once with all its units.
    rounds = len(travel.calls) // len(per_mode)
    assert 1 <= rounds <= len(policy_module.SEARCH_LIMITS_S)
    assert sorted(travel.calls) == sorted(list(per_mode.items()) * rounds)


def test_straight_line_nearest_across_river_loses() -> None:
    # u_close is 200 m away in a straight line but across the river, 10 km by road.
    units = [unit("u_close", 0.498, 0.045), unit("u_far", 0.56, 0.045)]
    rec = recommend(incident(0.502, 0.045), units, FakeTravel(), nearest())
    assert [c.unit_id for c in rec.candidates] == ["u_far", "u_close"]
    assert rec.candidates[1].metres == pytest.approx((0.004 + 0.09) * M_PER_DEG)


def test_mode_speeds_rank_a_far_car_before_a_near_walker() -> None:
    units = [unit("walker", 0.6, 0.02, unit_type="foot", mode="foot"), unit("car", 0.6, 0.05)]
    rec = recommend(incident(0.6, 0.01), units, FakeTravel(), nearest())
    # walker: 1110 m at 1.4 m/s = 793 s; car: 4440 m at 10 m/s = 444 s.
    assert [c.unit_id for c in rec.candidates] == ["car", "walker"]
    assert rec.candidates[0].eta_s == pytest.approx(444.0)


def test_station_first_prefers_own_station_within_threshold() -> None:
    units = [unit("own", 0.6, 0.03, station="A"), unit("other", 0.6, 0.015, station="B")]
    inc = incident(0.6, 0.01, station="A")
    # own: 2220 m = 222 s, other: 555 m = 55.5 s.
    assert recommend(inc, units, FakeTravel(), nearest()).team == ("other",)
    rec = recommend(inc, units, FakeTravel(), station_first(300))
    assert [c.unit_id for c in rec.candidates] == ["own", "other"]
    assert "own station A" in rec.candidates[0].reason
    # With a threshold the own unit cannot meet, every unit is ranked by travel time.
    rec = recommend(inc, units, FakeTravel(), station_first(200))
    assert [c.unit_id for c in rec.candidates] == ["other", "own"]
    assert "no unit of station A within 200 s" in rec.candidates[0].reason


def test_robbery_in_progress_needs_two_units() -> None:
    units = [unit(f"u{i}", 0.6, 0.01 + 0.01 * i) for i in range(1, 4)]
    rec = recommend(incident(category="robbery", priority=1), units, FakeTravel(), nearest(), k=1)
    assert rec.requirement.units == 2 and "robbery in progress" in rec.requirement.rules
    assert rec.team == ("u1", "u2") and len(rec.candidates) == 2
    # Priority 3 robbery is not "in progress": one unit.
    rec = recommend(incident(category="robbery", priority=3), units, FakeTravel(), nearest())
    assert rec.team == ("u1",)


def test_violent_incident_requires_special_police_in_team() -> None:
    units = [
        unit("car1", 0.6, 0.02),
        unit("car2", 0.6, 0.03),
        unit("swat", 0.6, 0.09, unit_type="special_police"),
    ]
    rec = recommend(incident(category="shooting", priority=1), units, FakeTravel(), nearest(), k=2)
    assert rec.status == "ok"
    assert rec.team == ("car1", "swat")
    assert [c.unit_id for c in rec.candidates] == ["car1", "car2", "swat"]
    assert "required type special_police" in rec.candidates[2].reason
    rec = recommend(incident(category="shooting", priority=1), units[:2], FakeTravel(), nearest())
    assert rec.status == "short" and "no special_police unit" in (rec.reason or "")
    assert rec.team == ("car1", "car2")


def test_market_prefers_motorcycle_within_slack() -> None:
    units = [
        unit("car", 0.6, 0.02),
        unit("moto", 0.6, 0.04, unit_type="motorcycle", mode="motorcycle"),
    ]
    # car 111 s, moto 3330 m / 9 = 370 s: too slow even with the 90 s preference.
    plain = incident(place_kinds=frozenset())
    market = incident(place_kinds=frozenset({"market"}))
    assert recommend(market, units, FakeTravel(), nearest()).team == ("car",)
    units[1] = unit("moto", 0.6, 0.02, unit_type="motorcycle", mode="motorcycle")
    # moto now 1110 / 9 = 123 s, 12 s slower than the car: preferred in a market only.
    assert recommend(plain, units, FakeTravel(), nearest()).team == ("car",)
    rec = recommend(market, units, FakeTravel(), nearest())
    assert rec.team == ("moto",) and "preferred type motorcycle" in rec.candidates[0].reason


def test_reasons_when_nothing_suitable() -> None:
    busy = [
        unit("u1", 0.6, 0.02, status="on_scene"),
        unit("u2", 0.6, 0.02, status="out_of_service"),
    ]
    rec = recommend(incident(), busy, FakeTravel(), nearest())
    assert (
        rec.status == "none_available"
        and rec.candidates == ()
        and "no unit is available" in (rec.reason or "")
    )

    stale = [unit("u1", 0.6, 0.02, position_stale=True)]
    rec = recommend(incident(), stale, FakeTravel(), nearest(allow_stale=False))
    assert rec.status == "all_stale" and rec.candidates == ()
    rec = recommend(incident(), stale, FakeTravel(), nearest())
    assert rec.status == "all_stale" and rec.team == ("u1",)
    assert "position stale" in rec.candidates[0].reason

    far = [unit("u1", 0.6, 0.09)]  # 8880 m = 888 s
    travel = FakeTravel()
    rec = recommend(incident(), far, travel, nearest(limit_s=600))
    assert rec.status == "none_within_limit" and "within 600 s" in (rec.reason or "")
    assert travel.calls == [("car", 1)]
    assert recommend(incident(), far, FakeTravel(), nearest(limit_s=900)).team == ("u1",)


def test_invalid_arguments() -> None:
    with pytest.raises(ValidationError, match="k must be"):
        recommend(incident(), [], FakeTravel(), nearest(), k=0)
    with pytest.raises(ValidationError, match="threshold"):
        station_first(0)
    with pytest.raises(ValidationError, match="unknown unit type 'tank'"):
        load_requirements().mode_of("tank")


def test_bundled_unit_types_and_bad_rules_file(tmp_path: Path) -> None:
    rules = load_requirements()
    assert rules.mode_of("special_police") == "car" and rules.mode_of("mounted") == "bicycle"
    assert set(rules.unit_modes) == {
        "patrol_car",
        "motorcycle",
        "foot",
        "bicycle",
        "mounted",
        "special_police",
    }
    bad = tmp_path / "r.toml"
    bad.write_text('[unit_types.car]\nmode="car"\n[[rules]]\nname="x"\npreferred_types=["boat"]\n')
    with pytest.raises(DataError, match="unknown unit types"):
        load_requirements(bad)
    with pytest.raises(DataError, match="cannot read"):
        load_requirements(tmp_path / "missing.toml")


def test_rule_categories_exist_in_the_taxonomy() -> None:
    tax = load_taxonomy()
    rules = load_requirements().rules
    assert rules, "bundled rules are empty"
    for rule in rules:
        assert rule.categories <= set(tax.categories), rule.name


def test_router_travel_adapter() -> None:
    class Res:
        def __init__(self, n: int) -> None:
            self.seconds = np.arange(n, dtype=float)
            self.metres = np.arange(n, dtype=float) * 10

    class Router:
        def many_to_one(
            self, sources: np.ndarray, target: tuple[float, float], mode: str, limit_s: float | None
        ) -> Res:
            assert mode == "foot" and target == (1.0, 2.0) and limit_s == 5.0
            return Res(len(sources))

    seconds, metres = router_travel(Router())(np.zeros((3, 2)), "foot", (1.0, 2.0), 5.0)
    assert seconds.tolist() == [0, 1, 2] and metres.tolist() == [0, 10, 20]


def _codes(reasons: tuple[Reason, ...]) -> list[tuple[str, dict[str, object]]]:
    return [(r.code, dict(r.params)) for r in reasons]


def test_reasons_carry_stable_codes_with_the_english_text() -> None:
    units = [unit("own", 0.6, 0.03, station="A"), unit("other", 0.6, 0.015, station="B")]
    inc = incident(0.6, 0.01, station="A")
    rec = recommend(inc, units, FakeTravel(), station_first(300))
    assert _codes(rec.candidates[0].reasons) == [
        ("own_station", {"station": "A", "threshold_s": 300})
    ]
    assert _codes(rec.candidates[1].reasons) == [("other_station", {"station": "A"})]
    assert rec.candidates[0].reason == "own station A, which can arrive within 300 s"
    assert rec.candidates[1].reason == "other station, after own station A"
    rec = recommend(inc, units, FakeTravel(), station_first(200))
    assert _codes(rec.candidates[0].reasons) == [
        ("own_station_too_slow", {"station": "A", "threshold_s": 200})
    ]
    assert rec.as_dict()["candidates"][0]["reasons"] == [
        {
            "code": "own_station_too_slow",
            "params": {"station": "A", "threshold_s": 200},
            "text": "no unit of station A within 200 s: by travel time",
        }
    ]

    market = [
        unit("moto", 0.6, 0.02, unit_type="motorcycle", mode="motorcycle", position_stale=True)
    ]
    rec = recommend(incident(place_kinds=frozenset({"market"})), market, FakeTravel(), nearest())
    assert rec.status == "all_stale"
    assert _codes(rec.reasons) == [("all_candidates_stale", {})]
    assert _codes(rec.candidates[0].reasons) == [
        ("by_travel_time", {}),
        ("preferred_type", {"slack_s": 90, "unit_type": "motorcycle"}),
        ("position_stale", {}),
    ]
    assert rec.candidates[0].reason == (
        "by road travel time; preferred type motorcycle (may be 90 s slower); "
        "position stale: located at its post or station"
    )

    cars = [unit("car1", 0.6, 0.02)]
    rec = recommend(incident(category="shooting", priority=1), cars, FakeTravel(), nearest())
    assert rec.status == "short"
    assert _codes(rec.reasons) == [
        ("required_type_missing", {"unit_types": ["special_police"]}),
        ("team_short", {"needed": 2, "suitable": 1}),
    ]
    assert rec.reason == "no special_police unit can be sent; 2 units needed, only 1 suitable"
    assert rec.as_dict()["reasons"][1] == {
        "code": "team_short",
        "params": {"needed": 2, "suitable": 1},
        "text": "2 units needed, only 1 suitable",
    }


def test_status_reasons_have_codes() -> None:
    busy = [unit("u1", 0.6, 0.02, status="on_scene")]
    rec = recommend(incident(), busy, FakeTravel(), nearest())
    assert _codes(rec.reasons) == [("none_available", {"in_service": 1})]
    stale = [unit("u1", 0.6, 0.02, position_stale=True), unit("u2", 0.6, 0.03, position_stale=True)]
    rec = recommend(incident(), stale, FakeTravel(), nearest(allow_stale=False))
    assert _codes(rec.reasons) == [("all_stale", {"available": 2})]
    assert rec.reason == "all 2 available units have stale positions"
    far = [unit("u1", 0.6, 0.09)]  # 888 s by car
    rec = recommend(incident(), far, FakeTravel(), nearest(limit_s=600))
    assert _codes(rec.reasons) == [("none_within_limit", {"available": 1, "limit_s": 600})]
    ok = recommend(incident(), far, FakeTravel(), nearest())
    assert ok.status == "ok" and ok.reasons == () and ok.reason is None
    assert ok.as_dict()["reasons"] == []
    with pytest.raises(ValueError, match="unknown reason code"):
        Reason.of("no_such_code")


# --------------------------------------------------------------------------- reference order
# recommend() sorts only the units it can show (np.argpartition per group).  The reference
# below is the plain definition, the stable sort of every reachable unit, which recommend()
# must reproduce exactly: ties, own-station groups, preferred slack, required types, limits.


def _reference(
    inc: IncidentView,
    units: list[UnitView],
    travel: Callable[..., tuple[np.ndarray, np.ndarray]],
    policy: Policy,
    k: int,
    rules: RequirementRules,
) -> tuple[str, list[tuple[str, float, float, str]], tuple[str, ...], list[str]]:
    req = rules.requirement_for(inc)
    free = [u for u in units if u.status == "available"]
    usable = free if policy.allow_stale else [u for u in free if not u.position_stale]
    if not free:
        return "none_available", [], (), ["none_available"]
    if not usable:
        return "all_stale", [], (), ["all_stale"]
    scored = []
    for mode in sorted({u.mode for u in usable}):
        group = [u for u in usable if u.mode == mode]
        src = np.array([(u.lon, u.lat) for u in group], dtype=float).reshape(-1, 2)
        secs, mets = travel(src, mode, (inc.lon, inc.lat), policy.limit_s)
        scored += [(u, float(t), float(m)) for u, t, m in zip(group, secs, mets, strict=True)]
    scored = [s for s in scored if math.isfinite(s[1])]
    if policy.limit_s is not None:
        scored = [s for s in scored if s[1] <= policy.limit_s]
    if not scored:
        return "none_within_limit", [], (), ["none_within_limit"]

    def key(s: tuple[UnitView, float, float]) -> tuple[float, float, str]:
        bonus = req.prefer_slack_s if s[0].unit_type in req.preferred_types else 0.0
        return (s[1] - bonus, s[1], s[0].id)

    ranked = sorted(scored, key=key)
    why = ["by_travel_time"] * len(ranked)
    if policy.name == "station_first" and inc.station is not None:
        assert policy.threshold_s is not None
        own = [s for s in ranked if s[0].station == inc.station]
        if any(s[1] <= policy.threshold_s for s in own):
            ranked = own + [s for s in ranked if s[0].station != inc.station]
            why = ["own_station"] * len(own) + ["other_station"] * (len(ranked) - len(own))
        else:
            why = ["own_station_too_slow"] * len(ranked)
    team = list(ranked[: req.units])
    codes = []
    if req.required_types and not any(s[0].unit_type in req.required_types for s in team):
        best = next((s for s in ranked if s[0].unit_type in req.required_types), None)
        if best is None:
            codes.append("required_type_missing")
        else:
            team = [*team[: req.units - 1], best]
    if len(team) < req.units:
        codes.append("team_short")
    team_ids = tuple(s[0].id for s in team)
    m = max(k, req.units)
    shown = list(zip(ranked[:m], why[:m], strict=True))
    shown_ids = {s[0].id for s, _ in shown}
    shown += [
        (s, w)
        for s, w in zip(ranked, why, strict=True)
        if s[0].id in team_ids and s[0].id not in shown_ids
    ]
    rows = [(s[0].id, s[1], s[2], w) for s, w in shown]
    if codes:
        return "short", rows, team_ids, codes
    if all(s[0].position_stale for s, _ in shown):
        return "all_stale", rows, team_ids, ["all_candidates_stale"]
    return "ok", rows, team_ids, []


class TiedTravel:
    """Travel in whole 30-second steps from a hash of the point, often tied, sometimes none."""

    def __call__(
        self, sources: np.ndarray, mode: str, target: tuple[float, float], limit_s: float | None
    ) -> tuple[np.ndarray, np.ndarray]:
        h = np.floor(np.abs(sources[:, 0] * 7919 + sources[:, 1] * 104729 + target[0]) * 10) % 23
        seconds = 30.0 * (h + len(mode))
        seconds[h == 22] = math.inf
        if limit_s is not None:
            seconds[seconds > limit_s] = math.inf
        return seconds, seconds * 8.5


@pytest.mark.parametrize("seed", range(40))
def test_partial_selection_equals_full_stable_sort(seed: int) -> None:
    rng = np.random.default_rng(seed)
    rules = load_requirements()
    types = ["patrol_car", "motorcycle", "foot", "bicycle", "special_police", "mounted"]
    n = int(rng.integers(1, 120))
    units = [
        UnitView(
            # a few duplicate ids, to pin the order of equal keys too
            f"u{int(rng.integers(0, n + 3)) if rng.random() < 0.1 else i}",
            (t := str(rng.choice(types, p=[0.5, 0.15, 0.1, 0.1, 0.05, 0.1]))),
            rules.mode_of(t),
            str(rng.choice(["A", "B", "C"])) if rng.random() < 0.9 else None,
            float(rng.choice(np.round(rng.random(20), 2))),
            float(rng.choice(np.round(rng.random(20), 2))),
            status="available" if rng.random() < 0.85 else "busy",
            position_stale=bool(rng.random() < 0.2),
        )
        for i in range(n)
    ]
    travel = TiedTravel() if seed % 2 else FakeTravel()
    fleet = Fleet(units)  # the same units, derived once: the same answers
    cases = [
        ("robbery", 1, frozenset()),
        ("shooting", 1, frozenset()),
        ("theft", 3, frozenset({"market"})),
        ("theft", 3, frozenset()),
    ]
    for category, priority, kinds in cases:
        inc = IncidentView(
            "i", category, priority, float(rng.random()), 0.01, str(rng.choice(["A", "B"])), kinds
        )
        for policy in (
            nearest(),
            nearest(limit_s=float(rng.choice([300.0, 700.0, 2000.0])), allow_stale=False),
            station_first(float(rng.choice([60.0, 300.0, 900.0]))),
            station_first(300.0, limit_s=900.0),
        ):
            for k in (1, 2, 5):
                rec = recommend(inc, units, travel, policy, k=k, rules=rules)
                status, rows, team, codes = _reference(inc, units, travel, policy, k, rules)
                assert rec.status == status
                assert [
                    (c.unit_id, c.eta_s, c.metres, c.reasons[0].code) for c in rec.candidates
                ] == rows
                assert rec.team == team
                assert [r.code for r in rec.reasons] == codes
                assert recommend(inc, fleet, travel, policy, k=k, rules=rules) == rec


class KeyedFake(FakeTravel):
    """FakeTravel that also answers by position key (an index into a table of points)."""

    def __init__(self, points: np.ndarray) -> None:
        super().__init__()
        self.points = points
        self.keyed = 0

    def by_key(
        self,
        keys: np.ndarray,
        mode: str,
        target: tuple[float, float],
        target_key: object,
        limit_s: float | None,
    ) -> tuple[np.ndarray, np.ndarray]:
        self.keyed += 1
        assert isinstance(target_key, int)
        return self(self.points[keys], mode, tuple(self.points[target_key]), limit_s)


def test_keyed_travel_used_only_when_every_key_is_known() -> None:
    rng = np.random.default_rng(3)
    pts = rng.random((50, 2))

    def car(i: int, key: int | None) -> UnitView:
        x, y = map(float, pts[i])
        return UnitView(f"u{i}", "patrol_car", "car", "A", x, y, position_key=key)

    units = [car(i, i) for i in range(40)]
    x, y = map(float, pts[45])
    inc = IncidentView("i", "theft", 3, x, y, position_key=45)
    keyed = KeyedFake(pts)
    plain = recommend(inc, units, FakeTravel(), nearest(), k=5)
    assert recommend(inc, units, keyed, nearest(), k=5) == plain
    rounds = keyed.keyed  # one keyed call per round of the bounded search
    assert rounds >= 1 and keyed.calls == [("car", 40)] * rounds
    # one unit without a key, or an incident without one: the coordinates are used
    units[7] = car(7, None)
    assert recommend(inc, units, keyed, nearest(), k=5) == plain
    assert recommend(IncidentView("i", "theft", 3, x, y), units, keyed, nearest(), k=5) == plain
    assert keyed.keyed == rounds


def _unbounded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(policy_module, "SEARCH_LIMITS_S", (None,))


@pytest.mark.parametrize("seed", range(40))
def test_bounded_search_equals_unbounded(seed: int, monkeypatch: pytest.MonkeyPatch) -> None:
    # The default search limits (widened only when the units reached cannot hold the answer)
    # give exactly the unbounded recommendation, for every policy, requirement and fleet size.
    rng = np.random.default_rng(seed)
    units = random_units(rng, int(rng.choice([3, 12, 60, 200])))
    inc = incident(
        float(rng.random()),
        float(rng.random() * 0.2 - 0.1),
        category=str(rng.choice(["theft", "robbery", "shooting", "assault"])),
        priority=int(rng.integers(1, 6)),
        station=str(rng.integers(3)),
        place_kinds=[frozenset(), frozenset({"market"}), frozenset({"urban_village"})][
            int(rng.integers(3))
        ],
    )
    pol = [nearest(), station_first(float(rng.choice([120.0, 300.0, 2000.0])))][
        int(rng.integers(2))
    ]
    k = int(rng.integers(1, 8))
    bounded = FakeTravel()
    got = recommend(inc, units, bounded, pol, k=k)
    with monkeypatch.context() as m:
        _unbounded(m)
        want = recommend(inc, units, FakeTravel(), pol, k=k)
    assert got == want


def test_one_registry_parses_policy_names() -> None:
    from citywatch.dispatch.policy import (
        POLICY_NAMES,
        STATION_FIRST_THRESHOLD_S,
        make_policy,
        parse_policy_name,
    )
    from citywatch.errors import ValidationError as Invalid

    assert POLICY_NAMES == ("nearest", "station_first")
    assert make_policy("station_first").threshold_s == STATION_FIRST_THRESHOLD_S == 300.0
    assert make_policy("station_first", threshold_s=120, limit_s=900).threshold_s == 120.0
    assert make_policy("nearest", threshold_s=120) == make_policy("nearest")
    with pytest.raises(Invalid, match=r"dispatch.policy must be nearest or station_first, not 'x'"):
        parse_policy_name("x", "dispatch.policy")

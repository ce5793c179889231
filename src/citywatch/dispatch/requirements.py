"""Incident requirements: how many units an incident needs, and which unit types are preferred
or required, by category, priority and the kinds of place it lies in.

The rules are data (``dispatch/data/requirements.toml``, or a deployment's own file given to
:func:`load_requirements`); :mod:`citywatch.dispatch.policy` ranks units against the
:class:`Requirement` they give.
"""

from __future__ import annotations

import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cache
from importlib.resources import files
from pathlib import Path
from typing import Any, Protocol

from citywatch.errors import DataError, ValidationError
from citywatch.routing import Mode
from citywatch.routing.speeds import parse_mode
from citywatch.tomlkeys import check_keys, read_toml

__all__ = ["IncidentFacts", "Requirement", "RequirementRules", "load_requirements"]


class IncidentFacts(Protocol):
    """What the rules read of an incident (:class:`citywatch.dispatch.policy.IncidentView`
    has them)."""

    @property
    def category(self) -> str: ...
    @property
    def priority(self) -> int | None: ...
    @property
    def place_kinds(self) -> frozenset[str]: ...


@dataclass(frozen=True, slots=True)
class Requirement:
    """What an incident needs: how many units, and which unit types are preferred or required.

    ``prefer_slack_s`` is how much slower (seconds) a preferred-type unit may be than another
    unit and still be ranked ahead of it.  ``required_types``: the suggested team must hold at
    least one unit of one of these types.
    """

    units: int = 1
    preferred_types: frozenset[str] = frozenset()
    required_types: frozenset[str] = frozenset()
    prefer_slack_s: float = 90.0
    rules: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class _Rule:
    name: str
    categories: frozenset[str]
    place_kinds: frozenset[str]
    max_priority: int | None
    units: int
    preferred_types: frozenset[str]
    required_types: frozenset[str]

    def matches(self, incident: IncidentFacts) -> bool:
        if self.categories and incident.category not in self.categories:
            return False
        if self.place_kinds and not (self.place_kinds & incident.place_kinds):
            return False
        return self.max_priority is None or (
            incident.priority is not None and incident.priority <= self.max_priority
        )


@dataclass(frozen=True)
class RequirementRules:
    """Unit types (with their travel modes) and the requirement rules, loaded from TOML."""

    unit_modes: Mapping[str, Mode]
    unit_labels: Mapping[str, str]
    default_units: int
    prefer_slack_s: float
    rules: tuple[_Rule, ...] = field(default=())

    def requirement_for(self, incident: IncidentFacts) -> Requirement:
        """Merge every rule that applies to ``incident`` into one :class:`Requirement`.

        Parameters
        ----------
        incident : IncidentView
            The incident.

        Returns
        -------
        Requirement
            Largest ``units`` of the matching rules; union of their preferred/required types.
        """
        matching = [r for r in self.rules if r.matches(incident)]
        return Requirement(
            units=max([self.default_units, *(r.units for r in matching)]),
            preferred_types=frozenset().union(*(r.preferred_types for r in matching)),
            required_types=frozenset().union(*(r.required_types for r in matching)),
            prefer_slack_s=self.prefer_slack_s,
            rules=tuple(r.name for r in matching),
        )

    def mode_of(self, unit_type: str) -> Mode:
        """The travel mode of a unit type; :class:`ValidationError` for an unknown type."""
        try:
            return self.unit_modes[unit_type]
        except KeyError:
            allowed = ", ".join(sorted(self.unit_modes))
            raise ValidationError(
                f"unknown unit type {unit_type!r}; known types: {allowed}", field="unit_type"
            ) from None


def _str_set(table: Mapping[str, Any], key: str, where: str) -> frozenset[str]:
    value = table.get(key, [])
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise DataError(f"{where}: {key} must be a list of strings")
    return frozenset(value)


_RULE_KEYS = (
    "name",
    "categories",
    "place_kinds",
    "max_priority",
    "units",
    "preferred_types",
    "required_types",
)


def _mode(value: Any, where: str) -> Mode:
    try:
        return parse_mode(str(value), "mode")
    except ValidationError as exc:
        raise DataError(f"{where}: {exc.message}") from None


def _parse_rules(doc: Mapping[str, Any], source: str) -> RequirementRules:
    check_keys(doc, ("unit_types", "default", "rules"), source)
    types = doc.get("unit_types")
    if not isinstance(types, dict) or not types:
        raise DataError(f"{source}: no [unit_types] table")
    for name, spec in types.items():
        check_keys(spec, ("mode", "label"), f"{source} [unit_types.{name}]")
    unit_types = set(types)
    default = doc.get("default", {})
    check_keys(default, ("units", "prefer_slack_s"), f"{source} [default]")
    rules = []
    for i, raw in enumerate(doc.get("rules", [])):
        where = f"{source}: rule {i + 1} ({raw.get('name', 'unnamed')})"
        check_keys(raw, _RULE_KEYS, where)
        rule = _Rule(
            name=str(raw.get("name", f"rule {i + 1}")),
            categories=_str_set(raw, "categories", where),
            place_kinds=_str_set(raw, "place_kinds", where),
            max_priority=raw.get("max_priority"),
            units=int(raw.get("units", 1)),
            preferred_types=_str_set(raw, "preferred_types", where),
            required_types=_str_set(raw, "required_types", where),
        )
        unknown = (rule.preferred_types | rule.required_types) - unit_types
        if unknown:
            raise DataError(f"{where}: unknown unit types {sorted(unknown)}")
        if rule.units < 1:
            raise DataError(f"{where}: units must be at least 1")
        rules.append(rule)
    return RequirementRules(
        unit_modes={
            name: _mode(t.get("mode"), f"{source} [unit_types.{name}]") for name, t in types.items()
        },
        unit_labels={name: str(t.get("label", name)) for name, t in types.items()},
        default_units=int(default.get("units", 1)),
        prefer_slack_s=float(default.get("prefer_slack_s", 90.0)),
        rules=tuple(rules),
    )


@cache
def _bundled_rules() -> RequirementRules:
    text = files("citywatch.dispatch").joinpath("data/requirements.toml").read_text("utf-8")
    return _parse_rules(tomllib.loads(text), "requirements.toml")


def load_requirements(path: str | Path | None = None) -> RequirementRules:
    """Load unit types and requirement rules from a TOML file (default: the bundled one).

    Parameters
    ----------
    path : str or Path, optional
        A TOML file in the format of ``citywatch/dispatch/data/requirements.toml``.

    Returns
    -------
    RequirementRules
        The parsed rules.

    Raises
    ------
    DataError
        If the file is missing, not TOML, or inconsistent.
    """
    if path is None:
        return _bundled_rules()
    return _parse_rules(read_toml(path, "dispatch requirements"), str(path))

"""The bilingual (Chinese/English) incident category taxonomy.

The taxonomy lives in the data file ``citywatch/incidents/data/taxonomy.toml``: stable snake_case
category codes with ``zh``/``en`` labels, a default priority, a criminal flag and an optional
parent, plus named groups (``two_robberies``, ``criminal``, ...) that statistics ask for.

Examples
--------
>>> tax = load_taxonomy()
>>> sorted(tax.expand("two_robberies"))
['robbery', 'snatching']
>>> tax.label("robbery", "zh")
'抢劫'
"""

from __future__ import annotations

import tomllib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any, Literal

from citywatch.domain import PRIORITY_RANGE
from citywatch.errors import DataError, ValidationError
from citywatch.tomlkeys import check_keys, read_toml

__all__ = ["CRIMINAL_GROUP", "Category", "Group", "Language", "Taxonomy", "load_taxonomy"]

Language = Literal["zh", "en"]

#: Name of the group that the loader derives from the categories' ``criminal`` flags.
CRIMINAL_GROUP = "criminal"


@dataclass(frozen=True, slots=True)
class Category:
    """One incident category: stable code, labels, default priority, criminal flag, parent.

    ``proactive`` marks offences that police mostly find on patrol rather than hear of from a
    victim or caller (drugs, weapons possession): their records follow where police look.
    """

    code: str
    zh: str
    en: str
    priority: int
    criminal: bool
    parent: str | None = None
    proactive: bool = False


@dataclass(frozen=True, slots=True)
class Group:
    """A named set of categories and groups (its members before expansion)."""

    code: str
    zh: str
    en: str
    members: tuple[str, ...]


class Taxonomy:
    """Categories and groups with expansion, labels and the criminal flag.

    Parameters
    ----------
    categories
        Categories by code.
    groups
        Groups by code; codes must not clash with category codes.
    """

    def __init__(self, categories: Mapping[str, Category], groups: Mapping[str, Group]) -> None:
        self.categories: dict[str, Category] = dict(categories)
        self.groups: dict[str, Group] = dict(groups)
        self._children: dict[str, list[str]] = {}
        for cat in self.categories.values():
            if cat.parent is not None:
                self._children.setdefault(cat.parent, []).append(cat.code)
        self._check()

    def _check(self) -> None:
        clash = set(self.categories) & set(self.groups)
        if clash:
            raise DataError(f"taxonomy codes used both as category and group: {sorted(clash)}")
        for cat in self.categories.values():
            lo, hi = PRIORITY_RANGE
            if not lo <= cat.priority <= hi:
                raise DataError(
                    f"category {cat.code!r}: priority must be {lo}..{hi}, not {cat.priority}"
                )
            if cat.parent is not None and cat.parent not in self.categories:
                raise DataError(f"category {cat.code!r}: unknown parent {cat.parent!r}")
        for group in self.groups.values():
            for member in group.members:
                if member not in self.categories and member not in self.groups:
                    raise DataError(f"group {group.code!r}: unknown member {member!r}")
        for code in self.groups:
            self._expand(code, ())  # raises on cycles

    @property
    def codes(self) -> list[str]:
        """All category codes, in file order."""
        return list(self.categories)

    def __contains__(self, code: object) -> bool:
        return code in self.categories or code in self.groups

    def category(self, code: str) -> Category:
        """Return the category ``code`` or raise :class:`ValidationError` naming the valid codes."""
        try:
            return self.categories[code]
        except KeyError:
            raise ValidationError(
                f"unknown incident category {code!r}; valid codes: {', '.join(self.codes)}",
                field="category",
            ) from None

    def _expand(self, code: str, seen: tuple[str, ...]) -> frozenset[str]:
        if code in seen:
            raise DataError(f"taxonomy group cycle: {' -> '.join((*seen, code))}")
        if code in self.categories:
            out = {code}
            for child in self._children.get(code, ()):
                out |= self._expand(child, (*seen, code))
            return frozenset(out)
        if code in self.groups:
            result: set[str] = set()
            for member in self.groups[code].members:
                result |= self._expand(member, (*seen, code))
            return frozenset(result)
        raise ValidationError(
            f"unknown category or group {code!r}; groups: {', '.join(self.groups)}",
            field="category",
        )

    def expand(self, code: str) -> frozenset[str]:
        """Category codes that ``code`` stands for.

        Parameters
        ----------
        code
            A category code (yields itself and its descendants) or a group code (yields the
            expansion of every member).

        Returns
        -------
        frozenset of str
            Category codes.

        Raises
        ------
        ValidationError
            If ``code`` is neither a category nor a group.
        """
        return self._expand(code, ())

    def expand_many(self, codes: Iterable[str]) -> frozenset[str]:
        """Union of :meth:`expand` over ``codes``."""
        out: set[str] = set()
        for code in codes:
            out |= self.expand(code)
        return frozenset(out)

    def label(self, code: str, lang: Language = "en") -> str:
        """Label of a category or group in ``lang`` (``"zh"`` or ``"en"``)."""
        if lang not in ("zh", "en"):
            raise ValidationError(f"unknown language {lang!r}; use 'zh' or 'en'", field="lang")
        item: Category | Group = self.groups[code] if code in self.groups else self.category(code)
        return item.zh if lang == "zh" else item.en

    def is_criminal(self, code: str) -> bool:
        """Whether category ``code`` is a criminal offence (刑事)."""
        return self.category(code).criminal

    def is_proactive(self, code: str) -> bool:
        """Whether category ``code`` is mostly found by police rather than reported to them."""
        return self.category(code).proactive

    def proactive_codes(self) -> frozenset[str]:
        """Every category mostly found by police rather than reported to them."""
        return frozenset(c.code for c in self.categories.values() if c.proactive)

    def priority(self, code: str) -> int:
        """Default dispatch priority of category ``code`` (1 highest .. 5 lowest)."""
        return self.category(code).priority


_CATEGORY_KEYS = ("zh", "en", "priority", "criminal", "parent", "proactive")


def _parse(data: Mapping[str, Any], origin: str) -> Taxonomy:
    check_keys(data, ("version", "categories", "groups"), origin)
    for code, spec in data.get("categories", {}).items():
        check_keys(spec, _CATEGORY_KEYS, f"{origin} [categories.{code}]")
    for code, spec in data.get("groups", {}).items():
        check_keys(spec, ("zh", "en", "members"), f"{origin} [groups.{code}]")
    try:
        categories = {
            code: Category(
                code=code,
                zh=str(spec["zh"]),
                en=str(spec["en"]),
                priority=int(spec["priority"]),
                criminal=bool(spec["criminal"]),
                parent=spec.get("parent"),
                proactive=bool(spec.get("proactive", False)),
            )
            for code, spec in data["categories"].items()
        }
        groups: dict[str, Group] = {}
        for code, spec in data.get("groups", {}).items():
            members = tuple(spec.get("members", ()))
            if code == CRIMINAL_GROUP:
                if members:
                    raise DataError(f"{origin}: group 'criminal' is derived; list no members")
                members = tuple(c.code for c in categories.values() if c.criminal)
            groups[code] = Group(code=code, zh=str(spec["zh"]), en=str(spec["en"]), members=members)
    except KeyError as exc:
        raise DataError(f"{origin}: missing key {exc.args[0]!r}") from None
    return Taxonomy(categories, groups)


@cache
def _load_bundled() -> Taxonomy:
    text = resources.files("citywatch.incidents").joinpath("data/taxonomy.toml").read_text("utf-8")
    return _parse(tomllib.loads(text), "taxonomy.toml")


def load_taxonomy(path: str | Path | None = None) -> Taxonomy:
    """Load the incident taxonomy.

    Parameters
    ----------
    path
        A taxonomy TOML file; ``None`` (default) loads the bundled taxonomy (cached).

    Returns
    -------
    Taxonomy
        The parsed and checked taxonomy.

    Raises
    ------
    DataError
        If the file is malformed (unknown parent or member, cycle, bad priority).
    """
    if path is None:
        return _load_bundled()
    path = Path(path)
    return _parse(read_toml(path, "taxonomy"), str(path))

"""Validate EIDO documents against NENA's schema, and read EIDO files for the importer.

The schema is the standard's own ``Schema/openapi.yaml`` and its NIEM components, shipped
unchanged in ``citywatch/incidents/data/eido``. Its ``$ref`` chains across files are resolved
with :mod:`referencing`, files loaded on first use; the schemas are OpenAPI 3.0 Schema
Objects, checked as JSON Schema draft 4 by :mod:`jsonschema`. ``format: date-time`` is checked
as an ISO 8601 date-time with a UTC offset.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime
from functools import cache
from pathlib import Path
from typing import Any, Final

import jsonschema
import pandas as pd
import yaml
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT4

from citywatch.errors import DataError, ValidationError, writes_to
from citywatch.incidents.eido import DEFAULT_AGENCY, EidoIncident, from_eido, to_eido
from citywatch.incidents.parsing import Parsed, combine_reasons
from citywatch.incidents.record import (
    Incident,
    check_records,
    first_reason,
    from_frame,
    to_frame,
)
from citywatch.incidents.taxonomy import Taxonomy

__all__ = [
    "EIDO_DIR",
    "SAMPLE",
    "eido_errors",
    "export_eido",
    "read_eido",
    "read_eido_documents",
    "validate_eido",
    "write_eido_file",
]

EIDO_DIR: Final = Path(__file__).parent / "data" / "eido"
SCHEMA: Final = EIDO_DIR / "Schema" / "openapi.yaml"
SAMPLE: Final = EIDO_DIR / "Samples" / "sample_call_transfer.json"
ROOT: Final = "EmergencyIncidentDataObjectType"
_SHOWN_ERRORS: Final = 3


def _repair(node: Any) -> Any:
    """Fix the schema's one typing slip: ``minItems: 1,`` (YAML reads the text ``"1,"``)."""
    if isinstance(node, dict):
        out = {k: _repair(v) for k, v in node.items()}
        for key in ("minItems", "maxItems"):
            if isinstance(out.get(key), str):
                out[key] = int(out[key].rstrip(", "))
        return out
    if isinstance(node, list):
        return [_repair(v) for v in node]
    return node


# cached: jsonschema does not keep what a registry retrieved between two validations
@cache
def _retrieve(uri: str) -> Resource[Any]:
    path = Path(uri.removeprefix("file://"))
    if EIDO_DIR.resolve() not in path.resolve().parents:
        raise DataError(f"EIDO schema reference outside the bundled schema: {uri}")
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    with path.open(encoding="utf-8") as fh:
        return Resource.from_contents(_repair(yaml.load(fh, Loader=loader)), DRAFT4)


def _is_datetime(value: object) -> bool:
    if not isinstance(value, str):
        return True
    try:
        return datetime.fromisoformat(value).tzinfo is not None
    except ValueError:
        return False


@cache
def _validator() -> jsonschema.protocols.Validator:
    registry: Registry[Any] = Registry(retrieve=_retrieve)  # type: ignore[call-arg]
    root = {"$ref": f"{SCHEMA.resolve().as_uri()}#/components/schemas/{ROOT}"}
    formats = jsonschema.FormatChecker(formats=())
    formats.checks("date-time")(_is_datetime)
    validator: jsonschema.protocols.Validator = jsonschema.Draft4Validator(
        root, registry=registry, format_checker=formats
    )
    return validator


def eido_errors(doc: Any) -> list[str]:
    """Every schema violation of ``doc``, as ``"path: message"`` texts (empty if valid)."""
    errors = sorted(_validator().iter_errors(doc), key=lambda e: list(map(str, e.absolute_path)))
    return [f"{'/'.join(map(str, e.absolute_path)) or '(root)'}: {e.message}" for e in errors]


def validate_eido(doc: Any) -> None:
    """Raise :class:`ValidationError` if ``doc`` does not conform to the EIDO schema."""
    errors = eido_errors(doc)
    if errors:
        shown = "; ".join(errors[:_SHOWN_ERRORS])
        more = f" (and {len(errors) - _SHOWN_ERRORS} more)" if len(errors) > _SHOWN_ERRORS else ""
        raise ValidationError(f"not a valid EIDO: {shown}{more}")


def export_eido(
    frame: pd.DataFrame,
    *,
    agency: str = DEFAULT_AGENCY,
    components: Mapping[str, Mapping[str, Any]] | None = None,
) -> list[dict[str, Any]]:
    """One schema-checked EIDO document per row of a canonical incidents frame.

    ``components``: per incident id, extra ``notes``, further ``callers`` and ``merges``, the
    ``number`` and the typed ``location_text`` (the console's records,
    :func:`citywatch.incidents.console_export.console_components`).

    Raises
    ------
    ValidationError
        If a document fails the schema (a defect in the converter, never expected).
    """
    docs = []
    extra = components or {}
    for incident in from_frame(frame):
        more = extra.get(incident.id, {})
        doc = to_eido(
            EidoIncident(
                incident,
                notes=tuple(more.get("notes", ())),
                merges=tuple(more.get("merges", ())),
                callers=tuple(more.get("callers", ())),
                agency=agency,
                number=more.get("number") or None,
                location_text=more.get("location_text") or None,
            )
        )
        validate_eido(doc)
        docs.append(doc)
    return docs


def write_eido_file(
    frame: pd.DataFrame,
    path: str | Path,
    components: Mapping[str, Mapping[str, Any]] | None = None,
) -> int:
    """Write the incidents of ``frame`` as a JSON array of EIDO documents; the count written.

    Raises
    ------
    DataError
        If the file cannot be written (a folder, a missing or read-only place), naming it.
    """
    docs = export_eido(frame, components=components)
    path = Path(path)
    with writes_to(path, "EIDO file"):
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("w", encoding="utf-8") as fh:
            json.dump(docs, fh, ensure_ascii=False, indent=1)
            fh.write("\n")
    return len(docs)


def read_eido_documents(path: str | Path) -> list[Any]:
    """The EIDO documents of a JSON file: one document, or an array of them.

    Raises
    ------
    DataError
        If the file cannot be read or is not JSON.
    """
    try:
        text = Path(path).read_text(encoding="utf-8-sig")
        data = json.loads(text)
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise DataError(f"cannot read EIDO file {path}: {exc}") from None
    return data if isinstance(data, list) else [data]


def _convert(docs: list[Any], taxonomy: Taxonomy) -> Iterator[tuple[EidoIncident | None, str]]:
    default = "other" if "other" in taxonomy.codes else taxonomy.codes[-1]
    for doc in docs:
        if eido_errors(doc):
            yield None, "invalid_eido"
            continue
        try:
            yield from_eido(doc, default_category=default), ""
        except DataError:
            yield None, "unreadable_eido"


def read_eido(
    path: Path, taxonomy: Taxonomy, _mapping: Path | None = None, _encoding: str | None = None
) -> Parsed:
    """Importer reader for ``--source eido``: one canonical row per EIDO document.

    A document that fails the schema is rejected as ``invalid_eido``, one whose values cannot
    be read (a date-time without offset, ...) as ``unreadable_eido``; the rejected-rows file
    holds the document's JSON.
    """
    docs = read_eido_documents(path)
    converted = list(_convert(docs, taxonomy))
    raw = pd.DataFrame({"eido": [json.dumps(d, ensure_ascii=False) for d in docs]}, dtype="string")
    placeholder = _placeholder()
    records = to_frame([item.incident if item else placeholder for item, _ in converted])
    unusable = pd.Series([bool(reason) for _, reason in converted], index=records.index)
    own = pd.Series([reason or pd.NA for _, reason in converted], index=records.index)
    repeated = records["id"].duplicated() & ~unusable
    reasons = combine_reasons(
        own.astype("string"),
        first_reason(records.index, [("duplicate_in_file", repeated)]),
        check_records(records, taxonomy),
    )
    return Parsed(records=records, raw=raw, reasons=reasons)


def _placeholder() -> Incident:
    """A stand-in record for a rejected document (never imported: its row has a reason)."""
    return Incident(
        id="",
        source="eido",
        source_id="",
        received_at=datetime.fromtimestamp(0, UTC),
        time_precision="exact",
        category="",
    )

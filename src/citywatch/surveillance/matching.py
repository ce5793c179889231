"""Keyed hashes of what recognition systems read, so that sightings match hotlist entries.

A plate, an e-bike tag or a subject reference is matched on its *value key*: the HMAC-SHA256,
under the service's sightings key, of the kind and the normalised value.  Sightings and hotlist
entries store that key and, only when the service is configured to keep values, the value
itself: without the key file nobody can test a guessed plate against the database (an unkeyed
hash of a plate is broken by enumerating the few billion plates; a keyed one is not).

Values may arrive *already hashed* by the recognition system (the Seattle feed's plates are
SHA-1 hex digests): such a value is keyed as it is (lower-case), in its own domain, so it
matches entries given with the same external hash and never a clear-text entry.

The key is 32 random bytes in a file (mode 0600) next to the audit key
(:func:`citywatch.dispatch.audit.audit_home`), or at ``$CITYWATCH_SIGHTINGS_KEY``.
"""

from __future__ import annotations

import hmac
import os
import re
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Final

from citywatch.dispatch.audit import audit_home, secret_key
from citywatch.domain import HOTLIST_REASONS, SIGHTING_KINDS
from citywatch.errors import ValidationError

__all__ = [
    "ENV_SIGHTINGS_KEY",
    "HotlistReason",
    "SightingKind",
    "ValueKey",
    "normalise",
    "sightings_key_path",
]

#: Environment variable naming the sightings key file.
ENV_SIGHTINGS_KEY: Final = "CITYWATCH_SIGHTINGS_KEY"
_KEY_FILE: Final = "sightings.key"
_HEX = re.compile(r"^[0-9a-f]{16,128}$")
_SPACING = re.compile(r"[\s\-_.·]+")


class SightingKind(StrEnum):
    """What was read (:data:`citywatch.domain.SIGHTING_KINDS`)."""

    PLATE = "plate"
    EBIKE_TAG = "ebike_tag"
    SUBJECT_REF = "subject_ref"


class HotlistReason(StrEnum):
    """Why a reference is on a hotlist (:data:`citywatch.domain.HOTLIST_REASONS`)."""

    STOLEN_VEHICLE = "stolen_vehicle"
    STOLEN_EBIKE = "stolen_ebike"
    WANTED_PERSON = "wanted_person"
    REPEAT_OFFENDER = "repeat_offender"


assert tuple(SightingKind) == SIGHTING_KINDS, "domain.SIGHTING_KINDS and SightingKind differ"
assert tuple(HotlistReason) == HOTLIST_REASONS, "domain.HOTLIST_REASONS and HotlistReason differ"


def normalise(kind: SightingKind, value: str, *, hashed: bool = False) -> str:
    """The canonical form of a read: plates and tags upper-case without spaces, dashes or dots
    (``"ab-123 c"`` and ``"AB123C"`` are one plate); subject references trimmed; hashes lower-case.

    Raises
    ------
    ValidationError
        For an empty value, or a "hashed" value that is not 16-128 hexadecimal digits.
    """
    text = value.strip()
    if hashed:
        text = text.lower()
        if not _HEX.match(text):
            raise ValidationError("a hashed value must be 16-128 hexadecimal digits", field="value")
        return text
    if kind is not SightingKind.SUBJECT_REF:
        text = _SPACING.sub("", text).upper()
    if not text:
        raise ValidationError("empty value", field="value")
    return text


def sightings_key_path() -> Path:
    """Where the sightings key lives: ``$CITYWATCH_SIGHTINGS_KEY`` or ``sightings.key`` in the
    audit home."""
    env = os.environ.get(ENV_SIGHTINGS_KEY)
    return Path(env) if env else audit_home() / _KEY_FILE


@dataclass(frozen=True)
class ValueKey:
    """The sightings key: computes value keys."""

    key: bytes = field(repr=False)

    @classmethod
    def open(cls, path: Path | None = None, *, create: bool = True) -> ValueKey:
        """The key in ``path`` (:func:`sightings_key_path` by default), created on first use.

        Raises
        ------
        DataError
            When the file is missing (and ``create`` is false) or holds no 32-byte hex key.
        """
        key = secret_key(path or sightings_key_path(), create=create, what="sightings key")
        return cls(key)

    def of(self, kind: SightingKind, value: str, *, hashed: bool = False) -> str:
        """The value key (64 hex digits) of a read; see :func:`normalise`."""
        return self.of_normal(kind, normalise(kind, value, hashed=hashed), hashed=hashed)

    def of_normal(self, kind: SightingKind, normal: str, *, hashed: bool = False) -> str:
        """The value key of an already normalised value."""
        domain = "h" if hashed else "c"
        message = f"{kind.value}\x1f{domain}\x1f{normal}".encode()
        return hmac.digest(self.key, message, "sha256").hex()  # one-shot: OpenSSL, no objects

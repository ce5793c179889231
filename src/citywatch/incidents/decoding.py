"""Turning an incident file's bytes into UTF-8 text the CSV parser can read.

Police exports come compressed or not, with or without a byte-order mark, and often not in
UTF-8 (Excel on Windows writes cp1252).  :func:`decode_csv` reads the bytes, decompresses by
magic number, and decodes:

* with an explicit encoding, as told; bytes that are invalid in it become U+FFFD and their rows
  are rejected as :data:`UNDECODABLE` (with their line in the rejected-rows file);
* by default (``"auto"``), as UTF-8 when the file is valid UTF-8; as cp1252 (Latin-1 for the
  five bytes cp1252 leaves undefined) when it holds no UTF-8 multi-byte sequence at all (a
  legacy 8-bit export); else as UTF-8 with the few broken rows rejected.

A file with NUL bytes is binary (a spreadsheet, a database), not CSV, and is refused.
"""

from __future__ import annotations

import bz2
import codecs
import gzip
import lzma
import re
import zipfile
from dataclasses import dataclass
from io import BytesIO
from pathlib import Path
from typing import Final

from citywatch.errors import DataError

__all__ = ["AUTO", "REPLACEMENT", "UNDECODABLE", "Decoded", "check_encoding", "decode_csv"]

#: The default encoding setting: detect UTF-8 or cp1252.
AUTO: Final = "auto"
#: What an undecodable byte becomes.
REPLACEMENT: Final = "\ufffd"
#: Reject reason of a row holding bytes invalid in the file's encoding.
UNDECODABLE: Final = "undecodable_text"

# A UTF-8 multi-byte sequence: in cp1252 text such byte pairs are very rare ("Ã©" and the like).
_UTF8_MULTIBYTE: Final = re.compile(
    rb"[\xc2-\xdf][\x80-\xbf]|[\xe0-\xef][\x80-\xbf]{2}|[\xf0-\xf4][\x80-\xbf]{3}"
)
_MAGIC: Final = (
    (b"\x1f\x8b", "gzip"),
    (b"BZh", "bz2"),
    (b"\xfd7zXZ\x00", "xz"),
    (b"PK\x03\x04", "zip"),
)


def _latin1(error: UnicodeError) -> tuple[str, int]:
    # cp1252 leaves five bytes undefined; Latin-1 gives each its C1 control character.
    assert isinstance(error, UnicodeDecodeError)
    return error.object[error.start : error.end].decode("latin-1"), error.end


_AS_LATIN1: Final = "citywatch-latin1"
codecs.register_error(_AS_LATIN1, _latin1)


@dataclass(frozen=True)
class Decoded:
    """UTF-8 bytes of a CSV and how they were obtained."""

    data: bytes
    encoding: str
    replaced: bool


def _decompress(raw: bytes, path: Path) -> bytes:
    kind = next((name for magic, name in _MAGIC if raw.startswith(magic)), None)
    try:
        if kind == "gzip":
            return gzip.decompress(raw)
        if kind == "bz2":
            return bz2.decompress(raw)
        if kind == "xz":
            return lzma.decompress(raw)
        if kind == "zip":
            with zipfile.ZipFile(BytesIO(raw)) as archive:
                names = [n for n in archive.namelist() if not n.endswith("/")]
                if len(names) != 1:
                    raise DataError(f"{path.name}: a zip file must hold exactly one CSV")
                return archive.read(names[0])
    except (OSError, EOFError, lzma.LZMAError, zipfile.BadZipFile) as exc:
        raise DataError(f"cannot read {path}: damaged {kind} file ({exc})") from None
    return raw


def check_encoding(encoding: str) -> str:
    """The codec's canonical name; :class:`DataError` naming examples if Python lacks it."""
    try:
        return codecs.lookup(encoding).name
    except LookupError:
        raise DataError(
            f"unknown text encoding {encoding!r} (e.g. utf-8, cp1252, latin-1, gb18030)",
            field="encoding",
        ) from None


def decode_csv(path: Path, encoding: str | None = None) -> Decoded:
    """Read ``path`` and return its text as UTF-8 bytes without a byte-order mark.

    Parameters
    ----------
    path : pathlib.Path
        The file, plain or gzip/bz2/xz/zip-compressed.
    encoding : str, optional
        A Python codec name, or ``None``/``"auto"`` to detect UTF-8 or cp1252.

    Returns
    -------
    Decoded
        ``replaced`` is true when some bytes were invalid (those rows hold U+FFFD).

    Raises
    ------
    DataError
        If the file cannot be read, is binary, or the encoding is unknown.
    """
    try:
        raw = _decompress(path.read_bytes(), path)
    except OSError as exc:
        raise DataError(f"cannot read {path}: {exc.strerror or exc}") from None
    if b"\x00" in raw[:65536]:
        raise DataError(
            f"{path.name} is not a text CSV (it holds NUL bytes: a spreadsheet or other binary "
            "file?); export it as CSV first"
        )
    auto = encoding is None or encoding == AUTO
    name = "utf-8" if auto else check_encoding(str(encoding))
    if name.replace("_", "-") in ("utf-8", "utf-8-sig"):
        try:
            text = raw.decode("utf-8-sig")
            return Decoded(text.encode(), "utf-8", replaced=False)
        except UnicodeDecodeError:
            if auto and _UTF8_MULTIBYTE.search(raw) is None:
                name = "cp1252"
    if name == "cp1252":
        text = raw.decode("cp1252", errors=_AS_LATIN1)
        return Decoded(text.encode(), "cp1252", replaced=False)
    text = raw.decode(name, errors="replace").removeprefix("\ufeff")
    return Decoded(text.encode(), name, replaced=REPLACEMENT in text)

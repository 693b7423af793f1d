"""The one CSV reader for files from the office: `staff import`, `aup import`, `leaver withdraw --from-csv`.

Excel on a UK PC writes Windows-1252 ("CSV") or UTF-8 with a BOM ("CSV UTF-8"); continental
settings use ';'. Headers are matched case- and space-insensitively, and a school can map its own
headers onto ours ([import.columns]).
"""

from __future__ import annotations

import csv
import io
import os
import stat
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from .errors import InputError

MAX_BYTES = 20 * 1024 * 1024  # the default of [import] max_bytes: a staff list is kilobytes


def read_bounded(p: Path, max_bytes: int = MAX_BYTES) -> bytes:
    """The bytes of a regular file of at most max_bytes. Devices (/dev/zero), FIFOs, sockets and directories
    are refused whatever stat says of their size, checked on the opened descriptor (no race with a rename),
    and at most max_bytes + 1 bytes are ever read."""
    try:
        # O_NONBLOCK: opening a FIFO with no writer returns at once (to be refused), instead of waiting.
        # (both POSIX only: 0 on Windows, which has no FIFOs to wait on)
        fd = os.open(p, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0))
    except FileNotFoundError:
        raise InputError(f"{p}: no such file") from None
    except IsADirectoryError:
        raise InputError(f"{p}: is a directory, not a CSV file") from None
    except OSError as exc:
        raise InputError(f"{p}: cannot read: {exc.strerror}") from None
    try:
        mode = os.fstat(fd).st_mode
        if stat.S_ISDIR(mode):
            raise InputError(f"{p}: is a directory, not a CSV file")
        if not stat.S_ISREG(mode):
            raise InputError(f"{p}: not a regular file (a device, pipe or socket); save the CSV to a file first")
        chunks: list[bytes] = []
        got = 0
        while got <= max_bytes:
            chunk = os.read(fd, min(1 << 20, max_bytes + 1 - got))
            if not chunk:
                break
            chunks.append(chunk)
            got += len(chunk)
    except OSError as exc:
        raise InputError(f"{p}: cannot read: {exc.strerror}") from None
    finally:
        os.close(fd)
    if got > max_bytes:
        raise InputError(
            f"{p}: more than {max_bytes} bytes: too large for a staff CSV (the limit is [import] max_bytes)"
        )
    return b"".join(chunks)


def norm_header(text: str) -> str:
    return "_".join(text.replace("\ufeff", "").strip().lower().replace("-", " ").replace("_", " ").split())


@dataclass(frozen=True)
class Row:
    line: int  # the line number in the file where the row starts (header is line 1)
    values: dict[str, str]  # our column name -> stripped value ('' when empty or absent)

    def get(self, key: str) -> str:
        return self.values.get(key, "")


@dataclass(frozen=True)
class Table:
    path: str
    encoding: str
    delimiter: str
    columns: list[str]  # our names of the columns present
    rows: list[Row]


def decode(data: bytes, path: str) -> tuple[str, str]:
    """The text and the encoding; a file that is not valid in its encoding is an InputError naming the
    byte offset and line of the first bad byte."""
    if data.startswith(b"\xef\xbb\xbf"):
        return _decode(data, 3, "utf-8", path), "utf-8-sig"
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        codec = "utf-16-le" if data.startswith(b"\xff\xfe") else "utf-16-be"
        if len(data) % 2:
            raise InputError(
                f"{path}: a UTF-16 file (it starts with a UTF-16 byte order mark) has an odd number of bytes "
                f"({len(data)}): cut short or damaged?",
                hint="save it again from Excel as 'CSV UTF-8'",
            )
        return _decode(data, 2, codec, path), "utf-16"
    try:
        return data.decode("utf-8"), "utf-8"
    except UnicodeDecodeError:
        pass
    return _decode(data, 0, "cp1252", path, also="UTF-8 or "), "windows-1252"


def _decode(data: bytes, skip: int, codec: str, path: str, also: str = "") -> str:
    try:
        return data[skip:].decode(codec)
    except UnicodeDecodeError as exc:
        offset = skip + exc.start
        line = data[skip:offset].decode(codec, "replace").count("\n") + 1
        name = {"cp1252": "Windows-1252", "utf-8": "UTF-8"}.get(codec, codec.upper())
        raise InputError(
            f"{path}: cannot read the file as {also}{name}: bad byte {data[offset : offset + 1]!r} at byte "
            f"offset {offset} (line {line})",
            hint="save it from Excel as 'CSV UTF-8'",
        ) from None


def sniff_delimiter(text: str) -> str:
    header = text.split("\n", 1)[0]
    counts = {d: header.count(d) for d in (",", ";", "\t")}
    best = max(counts, key=lambda d: counts[d])
    return best if counts[best] else ","


def read(
    path: str | Path,
    *,
    required: Iterable[str],
    optional: Iterable[str] = (),
    mapping: dict[str, str] | None = None,
    max_bytes: int = MAX_BYTES,
) -> Table:
    """Read a CSV; refuse a missing file, a missing required column, or an unknown column (naming it)."""
    p = Path(path)
    data = read_bounded(p, max_bytes)
    text, encoding = decode(data, str(p))
    if "\x00" in text:
        raise InputError(f"{p}: this is not a text CSV file (it holds NUL bytes); is it an .xlsx?")
    delimiter = sniff_delimiter(text)
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
    try:
        header = next(reader)
    except StopIteration:
        raise InputError(f"{p}: the file is empty") from None
    except csv.Error as exc:
        raise InputError(f"{p}: line 1: {exc}") from None

    required, optional = list(required), list(optional)
    known = set(required) | set(optional)
    # their header (normalised) -> our column
    aliases = {norm_header(theirs): ours for ours, theirs in (mapping or {}).items()}
    columns: list[str | None] = []
    for i, h in enumerate(header, 1):
        key = norm_header(h)
        ours = aliases.get(key, key)
        if not key:
            columns.append(None)  # a blank trailing column from Excel
            continue
        if ours not in known:
            raise InputError(
                f"{p}: line 1, column {i}: unknown column {h.strip()!r} (expected: {', '.join(required + optional)})",
                hint="map the school's own header in [import.columns] of the config",
            )
        if ours in columns:
            raise InputError(f"{p}: line 1, column {i}: column {h.strip()!r} appears twice")
        columns.append(ours)
    missing = [c for c in required if c not in columns]
    if missing:
        raise InputError(f"{p}: line 1: missing required column(s): {', '.join(missing)}")

    rows: list[Row] = []
    try:
        for fields in reader:
            line = reader.line_num
            if not any(f.strip() for f in fields):
                continue  # blank lines between blocks are common in hand-made files
            if len(fields) > len(columns) and any(f.strip() for f in fields[len(columns) :]):
                raise InputError(
                    f"{p}: line {line}: {len(fields)} fields but the header has {len(columns)} "
                    "(an unquoted comma in a value?)"
                )
            values = {c: (fields[i].strip() if i < len(fields) else "") for i, c in enumerate(columns) if c}
            rows.append(Row(line, values))
    except csv.Error as exc:
        raise InputError(f"{p}: line {reader.line_num}: {exc}") from None
    return Table(str(p), encoding, delimiter, [c for c in columns if c], rows)

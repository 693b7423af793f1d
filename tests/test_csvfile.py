"""The shared CSV reader: Excel's encodings and delimiters, headers, and errors that name the line."""

from __future__ import annotations

from pathlib import Path

import pytest

from aupctl import csvfile
from aupctl.errors import InputError

REQ = ["first_name", "last_name", "role"]
OPT = ["staff_code", "email"]


def _write(tmp_path: Path, data: bytes) -> Path:
    p = tmp_path / "in.csv"
    p.write_bytes(data)
    return p


@pytest.mark.parametrize(
    ("data", "encoding", "delimiter"),
    [
        ("First Name,Last Name,Role\nZoë,O'Brien,teacher\n".encode(), "utf-8", ","),
        ("\ufeffFIRST_NAME;last name;role\r\nZoë;O'Brien;teacher\r\n".encode(), "utf-8-sig", ";"),
        ("first_name\tlast_name\trole\nZoë\tO'Brien\tteacher\n".encode("cp1252"), "windows-1252", "\t"),
    ],
)
def test_encodings_and_delimiters(tmp_path: Path, data: bytes, encoding: str, delimiter: str) -> None:
    t = csvfile.read(_write(tmp_path, data), required=REQ, optional=OPT)
    assert (t.encoding, t.delimiter) == (encoding, delimiter)
    assert t.rows[0].values == {"first_name": "Zoë", "last_name": "O'Brien", "role": "teacher"}
    assert t.rows[0].line == 2


def test_mapping_and_quoted_commas(tmp_path: Path) -> None:
    data = b'Legal Forename,Legal Surname,Role,Staff Code\n"Smith, Jr",Jones,office,HB1\n\n,,,\nA,B,ta,HB2\n'
    t = csvfile.read(
        _write(tmp_path, data),
        required=REQ,
        optional=OPT,
        mapping={"first_name": "Legal Forename", "last_name": "legal surname"},
    )
    assert [r.get("first_name") for r in t.rows] == ["Smith, Jr", "A"]
    assert [r.line for r in t.rows] == [2, 5]


@pytest.mark.parametrize(
    ("data", "needle"),
    [
        (b"first_name,last_name\nA,B\n", "missing required column(s): role"),
        (b"first_name,last_name,role,shoe size\nA,B,c,9\n", "column 4: unknown column 'shoe size'"),
        (b"first_name,last_name,role,role\n", "appears twice"),
        (b"", "the file is empty"),
        (b"first_name,last_name,role\nA,B,c,d,e\n", "line 2: 5 fields"),
        (b"PK\x03\x04\x00\x00", "NUL"),
    ],
)
def test_bad_files_name_the_line(tmp_path: Path, data: bytes, needle: str) -> None:
    with pytest.raises(InputError) as exc:
        csvfile.read(_write(tmp_path, data), required=REQ, optional=OPT)
    assert needle in str(exc.value)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="no such file"):
        csvfile.read(tmp_path / "nope.csv", required=REQ)

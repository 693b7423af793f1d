"""Issue 13, no server: how a table fits its width, details as words, global options after the command."""

from __future__ import annotations

import json

from click.testing import CliRunner

from aupctl.commands import cli, global_first
from aupctl.commands.output import envelope, fit_widths, words


def test_the_widest_column_folds_first() -> None:
    heads = ["user", "detail"]
    texts = [["jsmith", "x" * 300], ["abrown", "short"]]
    folds = fit_widths(heads, texts, 120)
    assert folds[0] is None  # the narrow column keeps its width
    assert folds[1] is not None and 6 + 2 + folds[1] <= 120
    assert fit_widths(heads, texts, None) == [None, None]  # --wide
    assert fit_widths(heads, [["a", "b"]], 120) == [None, None]  # fits already


def test_no_column_folds_below_its_header() -> None:
    heads = ["a very long header", "another long header"]
    texts = [["y" * 200, "z" * 200]]
    folds = fit_widths(heads, texts, 30)  # cannot fit: each keeps its header (and tabulate's two spaces)
    assert folds == [len(heads[0]) + 2, len(heads[1]) + 2]


def test_details_are_words() -> None:
    text = words({"reason": "resigned", "groups": ["SIMS Users", "Finance"], "by": {"who": "ann", "n": 2}})
    assert text == "reason: resigned; groups: SIMS Users, Finance; by: (who: ann, n: 2)"
    assert "{" not in text and '"' not in text


def test_global_options_move_to_the_front() -> None:
    assert global_first(["access", "review", "--format", "json", "--wide"]) == [
        "--format",
        "json",
        "--wide",
        "access",
        "review",
    ]
    assert global_first(["log", "--format=csv"]) == ["--format=csv", "log"]
    assert global_first(["x", "--", "--wide"]) == ["x", "--", "--wide"]  # after -- it is an argument


def test_envelope_ok_and_error() -> None:
    ok = envelope("access review", 1, {"findings": []}, None)
    assert ok == {"version": 1, "command": "access review", "ok": True, "exit_code": 1, "findings": []}
    failed = envelope("staff show", 2, {}, {"message": "no such user", "hint": None})
    assert failed["ok"] is False and failed["error"]["message"] == "no such user"
    declined = envelope("access grant", 130, {}, None)  # "no" at the prompt: still says why it stopped
    assert declined["ok"] is False and declined["error"]["message"]


def test_a_bad_config_is_an_envelope(tmp_path) -> None:
    missing = tmp_path / "none.toml"
    res = CliRunner().invoke(cli, ["staff", "list", "--format", "json"], env={"AUPCTL_CONFIG": str(missing)})
    doc = json.loads(res.stdout)
    assert res.exit_code == doc["exit_code"] == 2
    assert doc["command"] == "staff list" and doc["ok"] is False and doc["error"]["message"]


# the output for a program cannot drive a terminal or break a row either (--format csv/json)
HOSTILE = "=cmd|' /C calc'!A0 \x1b[31mred\r\nline2\u202egnp.exe\x9b\x7f\u2066\u200e\u061c"


def _render(fmt: str, capsys) -> str:
    from aupctl.commands.context import Ctx
    from aupctl.commands.output import emit_json, render

    ctx = Ctx(None, fmt=fmt)
    rows = [{"username": "evil", "name": HOSTILE, "count": 3, "details": {"why": HOSTILE}}]
    render(ctx, rows, json_text=["details"])
    if fmt == "json":
        emit_json("x", 0, ctx.json_parts, None)
    return capsys.readouterr().out


def test_csv_output_has_no_raw_control_or_bidi_characters(capsys) -> None:
    import csv
    import io

    from aupctl import text

    out = _render("csv", capsys)
    assert not [c for c in out if text.unsafe(c) and c != "\n"], "raw control/bidi characters in --format csv"
    assert out.count("\n") == 2, "a value broke a line"
    (row,) = csv.DictReader(io.StringIO(out))
    assert row["name"] == "'" + text.shown(HOSTILE)  # escaped as the table shows it, and still no formula
    assert row["name"].startswith("'=cmd") and "\\x1b[31mred\\x0d\\x0aline2\\u202egnp.exe\\x9b\\x7f" in row["name"]
    assert row["count"] == "3"
    assert json.loads(row["details"]) == {"why": HOSTILE}  # JSON text in a cell still decodes to the value


def test_json_output_escapes_bidi_and_esc_and_decodes_back(capsys) -> None:
    from aupctl import text

    out = _render("json", capsys)
    assert not [c for c in out if text.unsafe(c) and c != "\n"], "raw control/bidi characters in --format json"
    assert "\\u202e" in out and "\\u001b" in out
    data = json.loads(out)["data"][0]
    assert data["name"] == HOSTILE and data["details"] == {"why": HOSTILE}


def test_csv_cell_is_the_one_cell_and_keeps_plain_text() -> None:
    from aupctl import text

    assert text.csv_cell("Ann O'Neill-Smith") == "Ann O'Neill-Smith"
    assert text.csv_cell("Zoë Ångström 李") == "Zoë Ångström 李"
    assert text.csv_cell("@SUM(1)") == "'@SUM(1)" and text.csv_cell("-2+3") == "'-2+3"
    assert text.csv_cell("\tx") == "\\x09x" and text.csv_cell("\r=1") == "\\x0d=1"  # escaped: no longer a formula
    assert text.csv_cell("\u202e=1") == "\\u202e=1"

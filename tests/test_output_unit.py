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

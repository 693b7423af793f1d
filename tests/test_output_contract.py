"""Issue 13: one JSON contract (the versioned envelope, validated against docs/schema/) and tables that fit
120 columns, for the sandbox school's main jobs on a real slapd."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from cli_helpers import run_main
from jsonschema import Draft202012Validator
from referencing import Registry, Resource

SCHEMA_DIR = Path(__file__).resolve().parent.parent / "docs" / "schema"

# (arguments, the envelope's part that must be there) for the school's main jobs
JOBS: list[tuple[tuple[str, ...], str | None]] = [
    (("staff", "list"), "data"),
    (("access", "review"), "findings"),
    (("access", "review", "--fix", "--dry-run"), "plan"),
    (("access", "list"), "data"),
    (("access", "systems"), "data"),
    (("aup", "status"), "data"),
    (("password", "audit"), "findings"),
    (("laptop", "list"), "data"),
    (("log",), "data"),
    (("tasks", "list"), "data"),
    (("doctor",), "data"),
    (("leaver", "list"), "data"),
    (("licence", "report"), "data"),
    (("evidence", "list"), "data"),
    (("report",), "data"),
]


@pytest.fixture(scope="module")
def school(openldap_sandbox):
    """The sandbox school with a leaver withdrawn, so the audit log, tasks and leaver list have rows (with
    long details) to show; its planted review findings are left to find."""
    cfg = openldap_sandbox.config_path
    staff = json.loads(run_main("--format", "json", "staff", "list", config=cfg)[1])["data"]
    who = staff[-1]["username"]
    reason = "resigned at the end of the autumn term to take up a post at another school in the trust"
    code, _, err = run_main("leaver", "withdraw", who, "--reason", reason, "--yes", config=cfg)
    assert code == 0, err
    return openldap_sandbox


def _validator() -> Draft202012Validator:
    resources = []
    for path in SCHEMA_DIR.glob("*.json"):
        schema = json.loads(path.read_text())
        resources.append((schema["$id"], Resource.from_contents(schema)))
    registry = Registry().with_resources(resources)
    envelope = json.loads((SCHEMA_DIR / "envelope.json").read_text())
    Draft202012Validator.check_schema(envelope)
    return Draft202012Validator(envelope, registry=registry)


def _envelope(out: str) -> dict:
    doc = json.loads(out)  # the whole of stdout is the one envelope
    errors = sorted(_validator().iter_errors(doc), key=str)
    assert not errors, "\n".join(f"{list(e.absolute_path)}: {e.message}" for e in errors)
    return doc


@pytest.mark.parametrize(("args", "part"), JOBS, ids=[" ".join(a) for a, _ in JOBS])
def test_every_command_json_is_the_envelope(school, args, part) -> None:
    code, out, err = run_main("--format", "json", *args, config=school.config_path)
    doc = _envelope(out)
    assert doc["command"] == " ".join(a for a in args if not a.startswith("-"))
    assert doc["exit_code"] == code and code in (0, 1), err
    assert doc["ok"] is True
    assert part in doc


def test_format_after_the_subcommand_is_the_same(school) -> None:
    before = run_main("--format", "json", "access", "review", config=school.config_path)
    after = run_main("access", "review", "--format", "json", config=school.config_path)
    also = run_main("access", "review", "--format=json", config=school.config_path)
    assert before[0] == after[0] == also[0] == 1  # the sandbox school has planted findings
    assert json.loads(before[1]) == json.loads(after[1]) == json.loads(also[1])
    assert json.loads(after[1])["findings"]


def test_review_and_review_fix_share_one_shape(school) -> None:
    plain = _envelope(run_main("access", "review", "--format", "json", config=school.config_path)[1])
    fix = _envelope(
        run_main("access", "review", "--fix", "--dry-run", "--format", "json", config=school.config_path)[1]
    )
    assert plain["findings"] == fix["findings"]  # the findings in the same place whatever the flags
    assert fix["plan"]["changes"] and "plan" not in plain


def test_a_failing_command_still_prints_the_envelope(school) -> None:
    code, out, err = run_main("--format", "json", "staff", "show", "nosuchperson", config=school.config_path)
    doc = _envelope(out)
    assert code == doc["exit_code"] == 2
    assert doc["ok"] is False and "nosuchperson" in doc["error"]["message"]
    assert "nosuchperson" in err  # the message on stderr as ever
    code, out, _ = run_main("--format", "json", "access", "review", "--bogus", config=school.config_path)
    doc = _envelope(out)
    assert code == doc["exit_code"] == 2 and doc["ok"] is False and "--bogus" in doc["error"]["message"]


def test_csv_of_a_plan_is_refused_with_a_message(school) -> None:
    code, out, err = run_main("--format", "csv", "access", "review", "--fix", "--dry-run", config=school.config_path)
    assert code == 2
    assert "--format csv has no rows for a plan" in err


# laptop list: the sandbox school has no laptops (they need sshd); access list: no approvals recorded yet
# report: a table run also writes the HTML into the working folder; evidence list: none recorded here
TABLES = [
    args for args, _ in JOBS if args not in (("laptop", "list"), ("access", "list"), ("report",), ("evidence", "list"))
] + [("access", "review", "--fix", "--dry-run")]


@pytest.mark.parametrize("args", TABLES, ids=[" ".join(a) for a in TABLES])
def test_tables_fit_120_columns(school, monkeypatch, args) -> None:
    monkeypatch.setenv("COLUMNS", "120")
    code, out, err = run_main(*args, config=school.config_path)
    assert code in (0, 1), err
    assert out.strip(), "no table to measure"
    widest = max(len(line) for line in out.splitlines())
    assert widest <= 120, f"{' '.join(args)}: {widest} columns:\n{out}"


def test_wide_keeps_each_row_on_one_line(school, monkeypatch) -> None:
    monkeypatch.setenv("COLUMNS", "120")
    code, folded, _ = run_main("log", config=school.config_path)
    code_wide, wide, _ = run_main("log", "--wide", config=school.config_path)
    assert code == code_wide == 0
    assert max(len(line) for line in wide.splitlines()) > 120  # the audit log's details are long
    assert len(wide.splitlines()) < len(folded.splitlines())


def test_log_details_are_words_not_json(school, monkeypatch) -> None:
    monkeypatch.setenv("COLUMNS", "120")
    _, out, _ = run_main("log", "--wide", config=school.config_path)
    assert '{"' not in out and '":' not in out
    data = json.loads(run_main("--format", "json", "log", config=school.config_path)[1])["data"]
    entry = next(e for e in data if e["details"])
    key = next(iter(entry["details"]))
    assert f"{key}: " in out

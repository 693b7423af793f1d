"""Shared fixtures: real directory servers, started through aupctl.sandbox (docs/sandbox.md).

Fixtures (each yields an aupctl.sandbox.SandboxInfo: .flavour .dir .config_path .urls .pid .bind_dn
.base_dn .bind_password .ca_file .admin_dn .admin_password, .connect(user=None, password=None) for a
bound ldap3 connection over verified TLS, .bind_name(username) for a seeded person's bind DN/UPN):

- ``openldap_sandbox`` (module): a fresh seeded slapd (detach=False) in a tmp dir; stopped after the module.
  About 0.05 s once the day's template is cached. Tests in one module share it: do not change what
  other tests read, or use ``fresh_openldap``.
- ``fresh_openldap`` (function): the same, one per test, for tests that change the directory.
- ``ad_sandbox`` (module): a fresh copy of the seeded Samba AD DC template (detach=False), about 0.5 s
  once the template is cached (about 10 s to build it the first time). Skipped only when not root or
  samba is not installed. AD's ports are fixed, so only one AD DC runs at a time: the fixture holds
  a lock (/tmp/aupctl-ad-fixture.lock, flock) across processes, e.g. pytest-xdist workers (use
  ``--dist loadfile`` so one module's AD tests stay in one worker).
- ``sandbox`` (module, params "openldap" / "ad", ids the same): for tests that must pass on both
  flavours. It reuses ``openldap_sandbox`` / ``ad_sandbox``, so a module never runs two AD DCs.
- ``env`` (module): ``(sandbox, config, directory, state)`` for the module's ``sandbox``; a module may
  define its own ``env`` (e.g. with signatures imported), which takes precedence.

Other layouts of the same school (docs/sandbox.md; ``info.layout`` says which):

- ``flat_openldap`` (module): OpenLDAP, layout "flat": everyone in ou=People (leavers in
  ou=Former,ou=People), inetOrgPerson + posixAccount, posixGroup groups with memberUid, one RFC 2307bis
  group (sims: groupOfNames + posixGroup), roles by group only (no ``ou`` in ``[roles.*]``), accounts
  made by hand (sandbox.school.HAND_MADE). ``fresh_flat_openldap`` (function): one per test.
- ``ad_nested`` (module): AD, layout "nested": staff in OU=<department>,OU=<site>,OU=Staff, system groups
  in OU=Applications (full DNs in the config), "All Pupils" with 2,000 members, SIMS Users > SIMS Office
  > SIMS Office (<site>) nesting. Takes the AD lock like ``ad_sandbox``: a module may use one of
  ``ad_sandbox`` / ``ad_nested`` / ``any_sandbox``, not two (only one AD DC runs at a time).
- ``any_sandbox`` (module, params "openldap-standard", "openldap-flat", "ad-standard", "ad-nested",
  ids the same): to run a job on every layout of both flavours. It starts its own sandbox per param
  (the previous one is stopped first), so do not mix it with ``sandbox``/``ad_sandbox``/``ad_nested``
  in one module. ``any_env`` (module): ``(sandbox, config, directory, state)`` for it.
  Layout-aware names: ``sb.person_dn(username, flavour, layout)``, ``hb.school(layout)``,
  ``hb.person_ou(person, layout)``.
- ``cli_env`` (function): ``cli_env(info)`` sets AUPCTL_CONFIG to info.config_path for the test
  (monkeypatch) and returns ``{"AUPCTL_CONFIG": ...}`` for ``CliRunner(env=...)``.
  ``sandbox_env(info)`` is the same dict without touching the environment.

Markers ``ad``, ``openldap``, ``ssh`` are applied here from the fixtures a test uses (and, for tests that
start their own server, from ``ad_slot``/``Sshd``/``sb.start("<flavour>")`` in the test's code), so
``pytest -m "not ad"`` runs everything but the AD tests. With CI=true (or AUPCTL_REQUIRE_SERVERS=1) a
server test that cannot run here fails instead of skipping (``cannot_run(why)``).

Helpers: ``ad_slot()`` (a context manager) takes the same AD lock, for a test that starts its own AD DC
(e.g. detach=True); it fails at once if this process already holds it. ``ad_unavailable()`` says why
AD cannot run here, or None.

- ``smtp_server`` (module): a real SMTP server on loopback (aupctl.sandbox.smtp.MailCatcher, aiosmtpd):
  STARTTLS with a throwaway CA (``.ca_file``), AUTH PLAIN/LOGIN checking ``.username``/``.password``
  (``.password_file`` holds it, 0600); ``.received`` collects every letter (``.message`` parses one),
  ``.reject`` is a set of recipients it answers 550, ``.stop()``/``.start()`` take it down and back on
  the same port, ``.mail_toml()`` is a [mail] section that reaches it.

The seeded school and its planted problems: aupctl.sandbox.school (PLANTED, PASSWORDS, ...).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result
from sandbox_helpers import ad_slot, ad_unavailable, cannot_run, sandbox_env  # noqa: F401 - re-exported

from aupctl import sandbox as sb

_invoke = CliRunner.invoke


def _invoke_without_internal_errors(self: CliRunner, *args: Any, **kwargs: Any) -> Result:
    """Every CLI run of the suite: an internal error (exit 70, a bug by the exit-code contract) fails the
    test that met it, whatever that test asserts, so `grep "internal error"` over a run finds nothing."""
    result = _invoke(self, *args, **kwargs)
    text = result.output + (result.stderr if result.stderr_bytes is not None else "")
    if result.exit_code == 70 or "internal error:" in text:
        raise AssertionError(f"aupctl met an internal error (exit {result.exit_code}):\n{text}")
    return result


CliRunner.invoke = _invoke_without_internal_errors  # type: ignore[method-assign]


def _start_openldap(directory: Path, layout: str = "standard") -> Iterator[sb.SandboxInfo]:
    # No skip without slapd: start() fails naming the package, and CI must not pass by skipping.
    info = sb.start("openldap", directory, detach=False, layout=layout)
    try:
        yield info
    finally:
        info.stop()


@pytest.fixture(scope="module")
def openldap_sandbox(tmp_path_factory: pytest.TempPathFactory) -> Iterator[sb.SandboxInfo]:
    yield from _start_openldap(tmp_path_factory.mktemp("openldap-sandbox"))


@pytest.fixture
def fresh_openldap(tmp_path: Path) -> Iterator[sb.SandboxInfo]:
    yield from _start_openldap(tmp_path / "sandbox")


@pytest.fixture(scope="module")
def ad_sandbox(tmp_path_factory: pytest.TempPathFactory) -> Iterator[sb.SandboxInfo]:
    yield from _start_ad(tmp_path_factory.mktemp("ad-sandbox"), "standard")


@pytest.fixture(scope="module")
def flat_openldap(tmp_path_factory: pytest.TempPathFactory) -> Iterator[sb.SandboxInfo]:
    yield from _start_openldap(tmp_path_factory.mktemp("flat-openldap"), layout="flat")


@pytest.fixture
def fresh_flat_openldap(tmp_path: Path) -> Iterator[sb.SandboxInfo]:
    yield from _start_openldap(tmp_path / "sandbox", layout="flat")


def _start_ad(directory: Path, layout: str) -> Iterator[sb.SandboxInfo]:
    why = ad_unavailable()
    if why:
        cannot_run(why)
    with ad_slot():
        info = sb.start("ad", directory, detach=False, layout=layout)
        try:
            yield info
        finally:
            info.stop()


@pytest.fixture(scope="module")
def ad_nested(tmp_path_factory: pytest.TempPathFactory) -> Iterator[sb.SandboxInfo]:
    yield from _start_ad(tmp_path_factory.mktemp("ad-nested"), "nested")


LAYOUT_IDS = ["openldap-standard", "openldap-flat", "ad-standard", "ad-nested"]


@pytest.fixture(scope="module", params=LAYOUT_IDS, ids=LAYOUT_IDS)
def any_sandbox(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[sb.SandboxInfo]:
    flavour, layout = request.param.split("-", 1)
    directory = tmp_path_factory.mktemp(request.param)
    if flavour == "ad":
        yield from _start_ad(directory, layout)
    else:
        yield from _start_openldap(directory, layout=layout)


@pytest.fixture(scope="module", params=["openldap", "ad"], ids=["openldap", "ad"])
def sandbox(request: pytest.FixtureRequest) -> sb.SandboxInfo:
    return request.getfixturevalue(f"{request.param}_sandbox")


@pytest.fixture
def cli_env(monkeypatch: pytest.MonkeyPatch) -> Callable[[sb.SandboxInfo], dict[str, str]]:
    def use(info: sb.SandboxInfo) -> dict[str, str]:
        env = sandbox_env(info)
        for key, value in env.items():
            monkeypatch.setenv(key, value)
        return env

    return use


@pytest.fixture(scope="module")
def env(sandbox: sb.SandboxInfo) -> Iterator[tuple]:
    """(sandbox, config, directory, state) of the module's sandbox, opened once. A module that needs
    something else (e.g. signatures imported first) defines its own `env`, which takes precedence."""
    yield from _open_env(sandbox)


def _open_env(info: sb.SandboxInfo) -> Iterator[tuple]:
    from aupctl.config import load
    from aupctl.directory import open_directory
    from aupctl.state import State

    cfg = load(str(info.config_path))
    d = open_directory(cfg)
    st = State(cfg.state.path)
    yield info, cfg, d, st
    st.close()
    d.close()


@pytest.fixture(scope="module")
def smtp_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """A real SMTP server on loopback (STARTTLS + AUTH), one per module; see the module docstring."""
    from aupctl.sandbox.smtp import MailCatcher

    catcher = MailCatcher(tmp_path_factory.mktemp("smtp")).start()
    try:
        yield catcher
    finally:
        catcher.stop()


@pytest.fixture(scope="module")
def any_env(any_sandbox: sb.SandboxInfo) -> Iterator[tuple]:
    """(sandbox, config, directory, state) for ``any_sandbox``'s layout, opened once per layout."""
    yield from _open_env(any_sandbox)


# --------------------------------------------------------------------------------------------------
# Markers from the servers a test uses

_FIXTURE_MARKS = {
    "openldap_sandbox": "openldap",
    "fresh_openldap": "openldap",
    "flat_openldap": "openldap",
    "fresh_flat_openldap": "openldap",
    "ad_sandbox": "ad",
    "ad_nested": "ad",
    "sshd": "ssh",
}
_PARAM_FIXTURES = ("sandbox", "any_sandbox")  # params "openldap"/"ad" or "<flavour>-<layout>"


def _code_marks(code: Any) -> set[str]:
    """Servers a test starts itself: ad_slot/ad_unavailable (AD), Sshd (ssh), sb.start("openldap"|"ad")."""
    marks: set[str] = set()
    names = set(code.co_names)
    if names & {"ad_slot", "ad_unavailable"}:
        marks.add("ad")
    if "Sshd" in names:
        marks.add("ssh")
    if "start" in names:
        consts = {c for c in code.co_consts if isinstance(c, str)}
        marks |= {"openldap", "ad"} & consts
    for const in code.co_consts:
        if hasattr(const, "co_names"):
            marks |= _code_marks(const)
    return marks


def _server_marks(item: pytest.Item) -> set[str]:
    marks = {_FIXTURE_MARKS[f] for f in getattr(item, "fixturenames", ()) if f in _FIXTURE_MARKS}
    callspec = getattr(item, "callspec", None)
    for name in _PARAM_FIXTURES:
        if callspec is not None and name in callspec.params:
            marks.add(str(callspec.params[name]).split("-", 1)[0])
    function = getattr(item, "function", None)
    if function is not None and hasattr(function, "__code__"):
        marks |= _code_marks(function.__code__)
    return marks & {"ad", "openldap", "ssh"}


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        for mark in sorted(_server_marks(item)):
            item.add_marker(getattr(pytest.mark, mark))


# --------------------------------------------------------------------------------------------------
# The state store on both backends (docs/trust.md "The shared database")
#
# - ``pg_cluster`` (session): a throwaway PostgreSQL cluster (aupctl.sandbox.postgres: initdb/pg_ctl as the
#   postgres user, loopback port, TLS on, fsync=off), about 1 s. With CI=true it FAILS if it cannot start.
# - ``store`` (function, params "sqlite" / "postgresql"): a fresh, empty store on each backend (a file in
#   tmp_path, or a database of its own on ``pg_cluster``), as a StoreSpec: ``.open()`` a State on it,
#   ``.state_toml()`` the [state] lines of a config naming it, ``.admin(sql)`` what someone with the
#   database's own rights does (triggers off). Keys and checkpoints land under tmp_path (XDG_CONFIG_HOME).


@pytest.fixture(scope="session")
def pg_cluster() -> Iterator[Any]:
    from aupctl.sandbox import postgres

    why = postgres.unavailable()
    if why:
        cannot_run(why)
    try:
        cluster = postgres.start_cluster()
    except (RuntimeError, OSError) as exc:
        cannot_run(f"cannot start a throwaway PostgreSQL cluster: {exc}")
    try:
        yield cluster
    finally:
        cluster.destroy()


class StoreSpec:
    def __init__(self, backend: str, tmp_path: Path, cluster: Any = None, database: str | None = None) -> None:
        self.backend = backend
        self.path = tmp_path / "state.db"
        self.cluster = cluster
        self.database = database
        self.namespace: str | None = None  # a config names no namespace: the schema is "aupctl"

    @property
    def url(self) -> str | None:
        return self.cluster.url.rsplit("/", 1)[0] + f"/{self.database}" if self.cluster is not None else None

    def open(self, **kwargs: Any) -> Any:
        from aupctl.state import State

        if self.cluster is None:
            return State(self.path, **kwargs)
        return State(url=self.url, namespace=self.namespace, ca_file=str(self.cluster.ca_file), **kwargs)

    def state_toml(self) -> str:
        if self.cluster is None:
            return f'path = "{self.path}"\n'
        return f'url = "{self.url}"\nca_file = "{self.cluster.ca_file}"\n'

    def admin(self, sql: str, params: tuple = ()) -> list[tuple]:
        """SQL as the store's owner who has turned its triggers off (what an attacker with its rights does)."""
        if self.cluster is None:
            import sqlite3

            db = sqlite3.connect(self.path)
            try:
                db.execute("PRAGMA recursive_triggers = OFF")
                names = [r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type='trigger'")]
                saved = {n: db.execute("SELECT sql FROM sqlite_master WHERE name=?", (n,)).fetchone()[0] for n in names}
                for n in names:
                    db.execute(f"DROP TRIGGER {n}")
                rows = db.execute(sql, params).fetchall()
                for s in saved.values():
                    db.execute(s)
                db.commit()
                return rows
            finally:
                db.close()
        with self.cluster.admin(self.database) as conn:
            conn.execute(f'SET search_path = "{self.namespace or "aupctl"}", public')
            conn.execute("SET session_replication_role = replica")  # row triggers off
            cur = conn.execute(sql.replace("?", "%s"), params)
            return cur.fetchall() if cur.description else []


@pytest.fixture(params=["sqlite", "postgresql"])
def store(request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> StoreSpec:
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))  # the audit key and checkpoints, not ~
    if request.param == "sqlite":
        return StoreSpec("sqlite", tmp_path)
    import uuid

    cluster = request.getfixturevalue("pg_cluster")
    monkeypatch.setenv("AUPCTL_STATE_PASSWORD", cluster.password)
    database = f"t{uuid.uuid4().hex[:12]}"  # a database per test: a config that names no namespace still gets its own
    with cluster.admin() as conn:
        conn.execute(f"CREATE DATABASE {database}")
    return StoreSpec("postgresql", tmp_path, cluster, database)

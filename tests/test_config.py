"""Config loading: every error names the file, the dotted key and what was expected."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from aupctl import config
from aupctl.errors import ConfigError

ROOT = Path(__file__).resolve().parent.parent

MINIMAL = """
[school]
name = "Test School"
aup_version = "2024-09"

[directory]
flavour = "openldap"
url = "ldaps://127.0.0.1:6360"
bind_dn = "cn=admin,dc=t,dc=test"
base_dn = "dc=t,dc=test"
staff_ou = "ou=Staff"
leavers_ou = "ou=Leavers"
groups_ou = "ou=Groups"
"""


def test_example_config_loads_and_documents_every_key() -> None:
    cfg = config.parse((ROOT / "config.example.toml").read_text(), "config.example.toml")
    assert cfg.directory.flavour == "ad"
    assert len(cfg.directory.url) == 2
    assert cfg.systems["sap"].group is None  # managed by hand
    assert cfg.licences and cfg.licences[0].seats == 40
    assert cfg.import_.columns["last_name"] == "Legal Surname"
    text = (ROOT / "config.example.toml").read_text()
    # every field of every section appears in the example with a comment
    import dataclasses

    sections = (config.School, config.Directory, config.Accounts, config.Access, config.Passwords, config.Laptops)
    for section in (*sections, config.Domain, config.Report, config.Estate, config.Mail, config.Notify):
        for f in dataclasses.fields(section):
            name = f.name.rstrip("_")  # from_ is the TOML key "from"
            assert (
                f"\n{name} =" in text or f"\n{name}=" in text or f"[{section.__name__.lower()}.{name}]" in text
            ), f"{section.__name__}.{f.name} is not documented in config.example.toml"


def test_minimal_config_gets_defaults() -> None:
    cfg = config.parse(MINIMAL, "t.toml")
    assert cfg.directory.url == ["ldaps://127.0.0.1:6360"]  # a string becomes a list of one
    assert cfg.accounts.max_length == 20
    assert cfg.passwords.max_age_days == 0
    assert cfg.dn("ou=Staff") == "ou=Staff,dc=t,dc=test"
    assert cfg.dn("ou=Staff,dc=t,dc=test") == "ou=Staff,dc=t,dc=test"
    assert cfg.group_dn("SIMS Users") == "cn=SIMS Users,ou=Groups,dc=t,dc=test"
    assert cfg.group_dn("a,b") == "cn=a\\,b,ou=Groups,dc=t,dc=test"


@pytest.mark.parametrize(
    ("extra", "needle"),
    [
        ("[directry]\nx = 1\n", "unknown key 'directry'"),
        ("[passwords]\nmin_lenght = 12\n", "unknown key 'passwords.min_lenght'"),
        ('[passwords]\nmin_length = "twelve"\n', "passwords.min_length must be a whole number"),
        ("[passwords]\nmin_length = -1\n", "passwords.min_length must not be negative"),
        ('[systems.sims]\ngroup = "SIMS"\n', "missing required key 'systems.sims.name'"),
        ('[roles.teacher]\nou = "ou=T"\nsystems = ["nope"]\n', "roles.teacher.systems names 'nope'"),
        (
            '[[licences]]\nproduct = "X"\nmatch = "X*"\nseats = 1\nexpires = "31/08/2027"\n',
            "licences[0].expires must be a date",
        ),
        ("[laptops]\nparallel = true\n", "laptops.parallel must be a whole number"),
    ],
)
def test_bad_keys_are_named(extra: str, needle: str) -> None:
    with pytest.raises(ConfigError) as exc:
        config.parse(MINIMAL + extra, "school.toml")
    assert needle in str(exc.value)
    assert "school.toml" in str(exc.value)


def test_bad_flavour_and_url() -> None:
    with pytest.raises(ConfigError, match=r"directory.flavour must be 'ad' or 'openldap'"):
        config.parse(MINIMAL.replace('"openldap"', '"novell"'), "t.toml")
    with pytest.raises(ConfigError, match=r"directory.url\[0\] must start with ldap"):
        config.parse(MINIMAL.replace("ldaps://127.0.0.1:6360", "127.0.0.1"), "t.toml")


def test_missing_section_and_bad_toml() -> None:
    with pytest.raises(ConfigError, match="missing required key 'directory'"):
        config.parse(MINIMAL.split("[directory]")[0], "t.toml")
    with pytest.raises(ConfigError, match="not valid TOML"):
        config.parse("[school\nname=", "t.toml")


def test_load_resolves_relative_paths_and_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    p = tmp_path / "aupctl.toml"
    p.write_text(
        MINIMAL.replace('groups_ou = "ou=Groups"', 'groups_ou = "ou=Groups"\nca_file = "ca.pem"')
        + '\n[state]\npath = "state.db"\n'
    )
    monkeypatch.setenv("AUPCTL_CONFIG", str(p))
    cfg = config.load(None)
    assert cfg.directory.ca_file == str(tmp_path / "ca.pem")
    assert cfg.state.path == str(tmp_path / "state.db")
    with pytest.raises(ConfigError, match="no config file at"):
        config.load(str(tmp_path / "missing.toml"))


def test_credentials_file_must_be_private(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from aupctl.credentials import bind_password

    monkeypatch.delenv("AUPCTL_BIND_PASSWORD", raising=False)
    pw = tmp_path / "bind.pw"
    pw.write_text("s3cret\n")
    os.chmod(pw, 0o644)
    with pytest.raises(ConfigError, match="can be read by others"):
        bind_password("cn=x", str(pw))
    os.chmod(pw, stat.S_IRUSR | stat.S_IWUSR)
    assert bind_password("cn=x", str(pw)) == "s3cret"
    monkeypatch.setenv("AUPCTL_BIND_PASSWORD", "from-env")
    assert bind_password("cn=x", str(pw)) == "from-env"


def test_no_keyring_backend_names_the_other_ways(monkeypatch: pytest.MonkeyPatch) -> None:
    import keyring
    from keyring.backends.fail import Keyring as FailKeyring

    from aupctl.credentials import bind_password

    monkeypatch.delenv("AUPCTL_BIND_PASSWORD", raising=False)
    monkeypatch.setattr(keyring, "get_keyring", lambda: FailKeyring())
    keyring.set_keyring(FailKeyring())
    with pytest.raises(ConfigError) as exc:
        bind_password("cn=x", None)
    text = str(exc.value)
    assert "AUPCTL_BIND_PASSWORD" in text and "bind_password_file" in text


def test_configuration_doc_names_every_key() -> None:
    import dataclasses

    doc = (ROOT / "docs" / "configuration.md").read_text()
    sections = {
        "school": config.School,
        "directory": config.Directory,
        "accounts": config.Accounts,
        "access": config.Access,
        "roles.NAME": config.Role,
        "systems.KEY": config.System,
        "passwords": config.Passwords,
        "laptops": config.Laptops,
        "domain": config.Domain,
        "estate": config.Estate,
        "[licences]": config.Licence,
        "mail": config.Mail,
        "notify": config.Notify,
        "state": config.State,
        "report": config.Report,
    }
    for title, cls in sections.items():
        assert f"## [{title}]" in doc, title
        for f in dataclasses.fields(cls):
            name = f.name.rstrip("_")  # from_ is the TOML key "from"
            assert f"`{name}`" in doc or "`update_commands.windows`" in doc and f.name == "update_commands", (
                f"docs/configuration.md does not document {title}.{f.name}"
            )


# -- config that fails at `config check`, not later (issue 11) --
@pytest.mark.parametrize(
    ("extra", "needle"),
    [
        ("timeout = nan\n", "directory.timeout must be a finite number"),
        ("timeout = inf\n", "directory.timeout must be a finite number"),
        ("timeout = 1e308\n", "directory.timeout must be from 0.1 to 600"),
        ("page_size = 0\n", "directory.page_size must be from 1 to 100,000"),
        ("page_size = 99999999999\n", "directory.page_size must be from 1 to 100,000"),
    ],
)
def test_numbers_are_bounded_and_finite(extra: str, needle: str) -> None:
    with pytest.raises(ConfigError) as exc:
        config.parse(MINIMAL + extra, "school.toml")
    assert needle in str(exc.value)


@pytest.mark.parametrize(
    ("section", "key", "bad"),
    [
        ("passwords", "stale_after_days", "0"),
        ("passwords", "min_length", "100000"),
        ("laptops", "parallel", "0"),
        ("laptops", "parallel", "100000"),
        ("laptops", "command_timeout", "1e300"),
        ("laptops", "checkin_every_days", "9223372036854775807"),
    ],
)
def test_every_number_has_a_range(section: str, key: str, bad: str) -> None:
    with pytest.raises(ConfigError) as exc:
        config.parse(MINIMAL + f"[{section}]\n{key} = {bad}\n", "school.toml")
    assert f"{section}.{key} must be from" in str(exc.value)


@pytest.mark.parametrize(
    ("old", "new", "key"),
    [
        ('base_dn = "dc=t,dc=test"', 'base_dn = "not a dn"', "directory.base_dn is not a DN"),
        ('base_dn = "dc=t,dc=test"', 'base_dn = ""', "directory.base_dn is empty"),
        ('staff_ou = "ou=Staff"', 'staff_ou = "Staff"', "directory.staff_ou is not a DN"),
        ('bind_dn = "cn=admin,dc=t,dc=test"', 'bind_dn = "admin"', "directory.bind_dn is not a DN"),
        ('url = "ldaps://127.0.0.1:6360"', 'url = "ldaps://"', "directory.url[0] must be ldaps://HOST"),
        ('url = "ldaps://127.0.0.1:6360"', 'url = "ldaps://dc1:99999"', "directory.url[0] must be ldaps://HOST"),
        ('url = "ldaps://127.0.0.1:6360"', 'url = "ldaps://dc1:port"', "directory.url[0] must be ldaps://HOST"),
    ],
)
def test_dns_are_parsed(old: str, new: str, key: str) -> None:
    with pytest.raises(ConfigError) as exc:
        config.parse(MINIMAL.replace(old, new), "school.toml")
    assert key in str(exc.value)


def test_ad_bind_may_be_a_upn_or_down_level_name() -> None:
    ad = MINIMAL.replace('flavour = "openldap"', 'flavour = "ad"')
    for bind in ("svc-aupctl@school.example", "SCHOOL\\\\svc-aupctl"):
        cfg = config.parse(ad.replace('bind_dn = "cn=admin,dc=t,dc=test"', f'bind_dn = "{bind}"'), "t.toml")
        assert cfg.directory.bind_dn.startswith(("svc", "SCHOOL"))


@pytest.mark.parametrize(
    "template",
    [
        "{username.__init__.__globals__}@school.example",
        "{username.__class__}@x.example",
        "{0}@school.example",
        "{username[0]}@school.example",
        "{username!r}@school.example",
        "{username:>99999999}@school.example",
        "{staff_code}@school.example",
        "{username}",
        "{username}@a@b",
        "{username",
    ],
)
def test_the_email_template_is_limited_to_known_fields(template: str) -> None:
    with pytest.raises(ConfigError) as exc:
        config.parse(MINIMAL + f'[accounts]\nemail = "{template}"\n', "school.toml")
    assert "accounts.email" in str(exc.value)


def test_the_safe_formatter_never_reaches_into_objects() -> None:
    from aupctl import templates

    assert templates.render("{first_name}.{last_name}@x.example", {"first_name": "jo", "last_name": "o'b"}) == (
        "jo.o'b@x.example"
    )
    assert templates.render("{{literal}}{username}", {"username": "a"}) == "{literal}a"
    for bad in ("{username.__class__}", "{username[0]}", "{username!s}", "{username:>5}", "{other}"):
        with pytest.raises(ValueError):
            templates.render(bad, {"username": "a"})


def test_a_value_the_directory_would_take_raw_refuses_control_characters() -> None:
    with pytest.raises(ConfigError) as exc:
        config.parse(MINIMAL.replace('"Test School"', '"Test\\u001b]0;PWNED\\u0007 School"'), "school.toml")
    assert "school.name holds a control character" in str(exc.value)


# -- the config contract (issue 10): role ou optional; warnings that do not fail --
def test_a_role_without_ou_goes_to_staff_ou() -> None:
    cfg = config.parse(MINIMAL + '[roles.teacher]\ngroups = ["Teachers"]\n[roles.ta]\nou = "ou=TAs,ou=Staff"\n', "t")
    assert cfg.roles["teacher"].ou is None
    assert cfg.role_ou("teacher") == ("ou=Staff,dc=t,dc=test", "directory.staff_ou")
    assert cfg.role_ou("ta") == ("ou=TAs,ou=Staff,dc=t,dc=test", "roles.ta.ou")
    assert config.warnings(cfg) == []


def test_warnings_name_their_key_and_do_not_fail() -> None:
    cfg = config.parse(
        MINIMAL
        + "[roles.cover]\n"
        + '[passwords]\nshared_account_patterns = ["^supply\\\\d*$", "supply*", "office"]\n'
        + '[systems.sims]\nname = "SIMS"\ngroup = "cn=SIMS,ou=Groups,dc=county,dc=example"\n'
        + '[systems.tt]\nname = "TT"\ngroup = "cn=TT,ou=Groups,dc=t,dc=test"\n',
        "t.toml",
    )
    found = config.warnings(cfg)
    assert len(found) == 3, found
    assert found[0].startswith("roles.cover has neither ou nor groups")
    assert found[1].startswith(
        "passwords.shared_account_patterns[0] = '^supply\\\\d*$' looks like a regular expression"
    )
    assert found[2].startswith("systems.sims.group") and "outside base_dn" in found[2]


def test_config_check_prints_warnings_and_exits_0(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from aupctl.commands import cli

    p = tmp_path / "school.toml"
    p.write_text(MINIMAL + "[roles.cover]\n")
    result = CliRunner().invoke(cli, ["--config", str(p), "config", "check"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert "warning: roles.cover has neither ou nor groups" in result.output and "1 warning(s)" in result.output
    bad = tmp_path / "bad.toml"
    bad.write_text(MINIMAL + "page_size = 0\n")
    result = CliRunner().invoke(cli, ["--config", str(bad), "config", "check"], catch_exceptions=False)
    assert result.exit_code == 2 and "directory.page_size" in result.output

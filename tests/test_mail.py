"""aupctl.mail against a real SMTP server on loopback (aiosmtpd: STARTTLS with a throwaway CA, AUTH):
addresses, MIME structure, escaping, templates a school overrides, TLS verification, and every failure
an exit 3 that names the server and its reply, never the password."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from aupctl import config
from aupctl.credentials import ENV_MAIL, mail_password
from aupctl.errors import EXIT_UNREACHABLE, ConfigError, InputError
from aupctl.mail import Letter, MailAuthError, MailError, Postbox, parse_address, render

BASE = """
[school]
name = "Hollybank Primary School"
aup_version = "2024-09"

[directory]
flavour = "openldap"
url = "ldaps://127.0.0.1:6360"
bind_dn = "cn=aupctl,dc=t,dc=test"
base_dn = "dc=t,dc=test"
staff_ou = "ou=Staff"
leavers_ou = "ou=Leavers"
groups_ou = "ou=Groups"
"""

HOSTILE = "<script>alert('x')</script> O'Brien & Zoë"


def settings_for(server, tmp_path: Path | None = None, **over: object) -> config.Mail:
    path = tmp_path / "aupctl.toml" if tmp_path else None
    text = BASE + server.mail_toml()
    if path is not None:
        path.write_text(text)
        cfg = config.load(str(path))
    else:
        cfg = config.parse(text, "t.toml")
    return dataclasses.replace(cfg.mail, **over) if over else cfg.mail


def letter(**over: object) -> Letter:
    base = dict(
        to=("Zoë Martin <zmartin@hollybank.test>",),
        cc=("ICT <ict@hollybank.test>",),
        subject="Your laptop HB-1 is due for its check-in",
        template="laptop-due",
        context={
            "name": HOSTILE,
            "tag": "HB-1",
            "due": "Monday 7 December 2026",
            "stage": "before",
            "days_left": 7,
            "days_late": -7,
            "technician": "ICT",
            "school": "Hollybank",
            "today": "2026-11-30",
            "clause": "1.4",
            "clause_text": "bring the laptop in",
        },
        attachments=(("members.csv", "name\nZoë\n".encode(), "text/csv"),),
        why="test",
        key="k",
    )
    base.update(over)
    return Letter(**base)  # type: ignore[arg-type]


# -- addresses --


@pytest.mark.parametrize(
    ("text", "name", "email"),
    [
        ("Mrs A Patel (Headteacher)", "Mrs A Patel (Headteacher)", ""),
        ("Mrs A Patel <apatel@hollybank.test>", "Mrs A Patel", "apatel@hollybank.test"),
        ('"Okafor, D" <d.okafor@hollybank.test>', "Okafor, D", "d.okafor@hollybank.test"),
        ("ict@hollybank.test", "", "ict@hollybank.test"),
        ("Okafor, D (Business Manager)", "Okafor, D (Business Manager)", ""),  # a plain name keeps working
        ("Zoë O'Brien <zob@hollybank.test>", "Zoë O'Brien", "zob@hollybank.test"),
    ],
)
def test_parse_address(text: str, name: str, email: str) -> None:
    a = parse_address(text)
    assert (a.name, a.email) == (name, email)


@pytest.mark.parametrize(
    "text", ["A <b@c", "a@b.test, c@d.test", "Mrs Patel apatel@x.test", "x <nope>", "x <a@b@c>", "", "x <a@-b.test>"]
)
def test_parse_address_refuses_broken_ones(text: str) -> None:
    with pytest.raises(ValueError):
        parse_address(text)


def test_config_mail_keys_and_approvers() -> None:
    ok = BASE + '\n[systems.sims]\nname = "SIMS"\napprovers = ["Mrs A Patel <apatel@hollybank.test>", "Mr D Okafor"]\n'
    cfg = config.parse(ok, "t.toml")
    assert cfg.mail.security == "starttls" and cfg.notify.laptop_days_before == 7 and cfg.notify.task_days == 14
    bad = BASE + '\n[systems.sims]\nname = "SIMS"\napprovers = ["Mrs A Patel <apatel"]\n'
    with pytest.raises(ConfigError, match=r"systems\.sims\.approvers\[0\]"):
        config.parse(bad, "t.toml")
    with pytest.raises(ConfigError, match="clear text"):
        config.parse(BASE + '\n[mail]\nhost = "smtp.test"\nfrom = "a@b.test"\nsecurity = "none"\n', "t.toml")
    insecure = config.parse(
        BASE + '\n[mail]\nhost = "x.test"\nfrom = "a@b.test"\nsecurity = "none"\nallow_insecure = true\n', "t.toml"
    )
    assert insecure.mail.security == "none"
    with pytest.raises(ConfigError, match="mail.from is missing"):
        config.parse(BASE + '\n[mail]\nhost = "smtp.test"\n', "t.toml")
    with pytest.raises(ConfigError, match="notify.technician"):
        config.parse(BASE + '\n[notify]\ntechnician = "Kofi Mensah"\n', "t.toml")


# -- render: MIME --


def test_render_has_both_alternatives_the_attachment_and_escaped_html(smtp_server) -> None:
    msg = render(letter(), settings_for(smtp_server))
    assert msg.get_content_type() == "multipart/mixed"
    alt, attached = msg.get_payload()
    assert alt.get_content_type() == "multipart/alternative"
    plain, html = alt.get_payload()
    assert plain.get_content_type() == "text/plain" and html.get_content_type() == "text/html"
    assert HOSTILE in plain.get_content()  # plain text is not HTML: shown as written
    body = html.get_content()
    assert "<script>" not in body and "&lt;script&gt;" in body and "O&#39;Brien &amp; Zoë" in body
    assert attached.get_filename() == "members.csv" and attached.get_content_type() == "text/csv"
    assert attached.get_payload(decode=True) == "name\nZoë\n".encode()  # bytes as given (base64)
    assert msg["To"] == "Zoë Martin <zmartin@hollybank.test>" and msg["Cc"] == "ICT <ict@hollybank.test>"
    assert msg["From"] == "Hollybank ICT <ict@hollybank.test>" and msg["Auto-Submitted"] == "auto-generated"
    assert "1.4" in plain.get_content() and "1.4" in body  # the clause is cited in both


@pytest.mark.parametrize(
    ("over", "needle"),
    [
        ({"subject": "a\nBcc: everyone@x.test"}, "one line"),
        ({"to": ()}, "no recipient"),
        ({"to": ("Mrs A Patel",)}, "no mail address"),
        ({"template": "../etc/passwd"}, "plain name"),
        ({"attachments": (("../x.csv", b"", "text/csv"),)}, "plain file name"),
    ],
)
def test_render_refuses_a_bad_letter(smtp_server, over: dict, needle: str) -> None:
    with pytest.raises(InputError, match=needle):
        render(letter(**over), settings_for(smtp_server))


def test_a_template_beside_the_config_overrides_the_shipped_one(smtp_server, tmp_path: Path) -> None:
    (tmp_path / "templates").mkdir()
    (tmp_path / "templates" / "laptop-due.txt").write_text("Hollybank says: bring {{ tag }} in, {{ name }}.\n")
    settings = settings_for(smtp_server, tmp_path)
    assert settings.templates == str(tmp_path / "templates")
    msg = render(letter(), settings)
    plain, html = msg.get_payload()[0].get_payload()
    assert plain.get_content().startswith("Hollybank says: bring HB-1 in")
    assert "check-in" in html.get_content()  # the .html was not overridden: the shipped one
    (tmp_path / "templates" / "laptop-due.html").write_text("{{ undefined_thing }}")
    with pytest.raises(ConfigError, match="laptop-due.html"):
        render(letter(), settings)


# -- Postbox against the real server --


def test_postbox_sends_over_starttls_with_auth(smtp_server) -> None:
    before = len(smtp_server.received)
    with Postbox(settings_for(smtp_server), smtp_server.password) as box:
        box.send(letter())
        box.send(letter(subject="second", cc=()))
    got = smtp_server.received[before:]
    assert len(got) == 2 and all(g.login == smtp_server.username for g in got)
    assert set(got[0].rcpt_tos) == {"zmartin@hollybank.test", "ict@hollybank.test"}
    assert got[1].rcpt_tos == ("zmartin@hollybank.test",)
    assert got[0].message["Subject"] == "Your laptop HB-1 is due for its check-in"


def test_wrong_password_is_exit_3_and_never_shows_the_password(smtp_server) -> None:
    secret = "Wrong-Pass-Do-Not-Print-77"
    with pytest.raises(MailAuthError) as err:
        Postbox(settings_for(smtp_server), secret).open()
    assert err.value.exit_code == EXIT_UNREACHABLE
    text = str(err.value)
    assert "127.0.0.1" in text and "535" in text and secret not in text
    assert secret not in repr(Postbox(settings_for(smtp_server), secret))


def test_untrusted_certificate_is_refused(smtp_server) -> None:
    settings = settings_for(smtp_server, ca_file=None)  # the system's CAs: the sandbox CA is not among them
    with pytest.raises(MailError, match="certificate is not trusted") as err:
        Postbox(settings, smtp_server.password).open()
    assert err.value.exit_code == EXIT_UNREACHABLE


def test_server_down_and_a_refused_recipient(smtp_server) -> None:
    from aupctl.sandbox.smtp import free_port

    down = settings_for(smtp_server, port=free_port())
    with pytest.raises(MailError, match=r"cannot reach mail server 127\.0\.0\.1:\d+") as err:
        Postbox(down, smtp_server.password).open()
    assert err.value.exit_code == EXIT_UNREACHABLE
    smtp_server.reject.add("zmartin@hollybank.test")
    try:
        with Postbox(settings_for(smtp_server), smtp_server.password) as box:
            with pytest.raises(MailError, match="550"):
                box.send(letter(cc=()))
    finally:
        smtp_server.reject.clear()


def test_security_none_needs_allow_insecure(smtp_server) -> None:
    with pytest.raises(ConfigError, match="allow_insecure"):
        Postbox(settings_for(smtp_server, security="none"), "x")


def test_mail_password_comes_from_env_file_or_keyring(
    smtp_server, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv(ENV_MAIL, "from-env")
    assert mail_password("h", "u", str(smtp_server.password_file)) == "from-env"
    monkeypatch.delenv(ENV_MAIL)
    assert mail_password("h", "u", str(smtp_server.password_file)) == smtp_server.password
    loose = tmp_path / "pw"
    loose.write_text("x\n")
    loose.chmod(0o644)
    with pytest.raises(ConfigError, match="can be read by others"):
        mail_password("h", "u", str(loose))
    monkeypatch.setenv("PYTHON_KEYRING_BACKEND", "keyring.backends.fail.Keyring")
    with pytest.raises(ConfigError, match="no mail password") as err:
        mail_password("smtp.test", "ict", None)
    assert ENV_MAIL in str(err.value)


def test_set_password_mail_needs_a_mail_login(tmp_path: Path) -> None:
    from cli_helpers import run_main

    path = tmp_path / "aupctl.toml"
    path.write_text(BASE)
    code, out, err = run_main("config", "set-password", "--mail", config=path, input="secret\n")
    assert code == 2 and "set [mail] host and username first" in err and "secret" not in out + err


def test_a_long_subject_with_brackets_arrives_as_written(smtp_server) -> None:
    subject = "Please sign the staff Acceptable Use Policy (2024-09) to get your access – Zoë"
    before = len(smtp_server.received)
    with Postbox(settings_for(smtp_server), smtp_server.password) as box:
        box.send(letter(subject=subject))
    got = smtp_server.received[before].message
    assert got["Subject"] == subject and got["Date"].endswith("+0000")  # UTC, not "-0000" (unknown)
    plain = got.get_body(("plain",))
    assert plain["Content-Transfer-Encoding"] in ("quoted-printable", "base64", "7bit")
    assert max(len(line) for line in smtp_server.received[before].data.split(b"\r\n")) <= 998


def test_an_approver_written_with_an_address_is_named_by_the_name_alone() -> None:
    from aupctl.access.grant import canonical_approver

    cfg = config.parse(
        BASE + '\n[systems.sims]\nname = "SIMS"\n'
        'approvers = ["Mrs A Patel <apatel@hollybank.test>", "Mrs A Patelson", "Okafor, D (Business Manager)"]\n',
        "t.toml",
    )
    assert canonical_approver(cfg, "sims", "mrs a patel") == "Mrs A Patel <apatel@hollybank.test>"
    assert (
        canonical_approver(cfg, "sims", "Mrs A Patel <apatel@hollybank.test>") == "Mrs A Patel <apatel@hollybank.test>"
    )
    assert canonical_approver(cfg, "sims", "Okafor") == "Okafor, D (Business Manager)"


def test_a_server_that_never_answers_times_out_and_no_server_is_a_config_error(smtp_server) -> None:
    import socket

    with socket.socket() as silent:  # accepts connections (the backlog) but never greets
        silent.bind(("127.0.0.1", 0))
        silent.listen(1)
        settings = settings_for(smtp_server, port=silent.getsockname()[1], timeout=0.5)
        with pytest.raises(MailError, match="timed out") as err:
            Postbox(settings, smtp_server.password).open()
    assert err.value.exit_code == EXIT_UNREACHABLE and "127.0.0.1" in str(err.value)
    with pytest.raises(ConfigError, match=r"set \[mail\] host"):
        Postbox(settings_for(smtp_server, host=""), "x")
    with pytest.raises(ConfigError, match="no mail password"):
        Postbox(settings_for(smtp_server), None)


def test_a_quoted_name_holding_angle_brackets_round_trips() -> None:
    from aupctl.mail import Address

    odd = Address("<script>alert('x')</script> \"Fi\" & Moss \\ x", "fmoss@hollybank.test")
    assert parse_address(odd.header()) == odd
    with pytest.raises(ValueError, match="quote a name"):
        parse_address("A <b> <c@d.test>")

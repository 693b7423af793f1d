"""Letter (what to send) and render (a Letter as a MIME message from the templates)."""

from __future__ import annotations

import email.policy
import email.utils
from collections.abc import Mapping
from dataclasses import dataclass, field
from email.message import EmailMessage
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import ConfigError, InputError
from .address import Address, parse_address

if TYPE_CHECKING:
    from ..config import Mail

SHIPPED = Path(__file__).resolve().parent / "templates"


@dataclass(frozen=True)
class Letter:
    to: tuple[str, ...]  # addresses, "Name <email>" allowed
    cc: tuple[str, ...] = ()
    subject: str = ""
    template: str = ""  # a template name such as "laptop-due": templates/NAME.txt and NAME.html
    context: Mapping[str, Any] = field(default_factory=dict)
    attachments: tuple[tuple[str, bytes, str], ...] = ()  # (filename, content, mime type)
    why: str = ""  # for the audit log
    key: str = ""  # the once-per-stage key for dedup; may be ""

    def __post_init__(self) -> None:
        # a list given by a caller is kept as a tuple: the letter stays hashable and unchanged
        for name in ("to", "cc", "attachments"):
            value = getattr(self, name)
            if isinstance(value, str):
                value = (value,)
            object.__setattr__(self, name, tuple(value))

    def recipients(self) -> list[Address]:
        return [_address(a, "to") for a in self.to] + [_address(a, "cc") for a in self.cc]


def _address(text: str, field_name: str) -> Address:
    try:
        addr = parse_address(text)
    except ValueError as exc:
        raise InputError(f"letter {field_name}: {text!r}: {exc}") from None
    if not addr.email:
        raise InputError(f"letter {field_name}: {text!r} has no mail address")
    return addr


def check(letter: Letter) -> None:
    """What a letter must hold before it is rendered: someone to send it to, a one-line subject, a template."""
    if not letter.to:
        raise InputError(f"letter {letter.subject!r} has no recipient")
    letter.recipients()
    if not letter.subject.strip() or any(ch in letter.subject for ch in "\r\n\x00"):
        raise InputError(f"letter subject {letter.subject!r} must be one line of text")
    if not letter.template or "/" in letter.template or "\\" in letter.template or letter.template.startswith("."):
        raise InputError(f"letter template {letter.template!r} must be a plain name such as 'laptop-due'")
    for filename, content, mime in letter.attachments:
        if not filename or "/" in filename or "\\" in filename or any(ord(c) < 0x20 for c in filename):
            raise InputError(f"attachment name {filename!r} must be a plain file name")
        if mime.count("/") != 1 or not all(mime.split("/")):
            raise InputError(f"attachment {filename!r}: {mime!r} is not a MIME type such as text/csv")
        if not isinstance(content, bytes | bytearray):
            raise InputError(f"attachment {filename!r}: the content must be bytes")


def _environment(folder: str | None) -> Any:
    """Jinja2, sandboxed, HTML autoescaped; a school's folder first, then the shipped templates."""
    import jinja2
    from jinja2.sandbox import SandboxedEnvironment

    paths = [folder] if folder and Path(folder).is_dir() else []
    return SandboxedEnvironment(
        loader=jinja2.FileSystemLoader([*paths, str(SHIPPED)], encoding="utf-8"),
        autoescape=jinja2.select_autoescape(enabled_extensions=("html",), default_for_string=False),
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
        trim_blocks=True,
        lstrip_blocks=True,
        finalize=_visible,
    )


def _visible(value: Any) -> Any:
    """A value as the letter shows it: a name from the directory holding ESC, a line break or a bidi override
    (U+202E) has them written as escapes (text.shown), so it cannot reorder the text or start a line of its own
    ("Bcc: ...") in what the reader sees. The values are names, dates and one-line notes: none spans lines."""
    from markupsafe import Markup

    from ..text import shown

    return shown(value) if isinstance(value, str) and not isinstance(value, Markup) else value


def _fill(env: Any, name: str, context: Mapping[str, Any], folder: str | None) -> str:
    import jinja2

    where = f"{folder} or the shipped templates" if folder else "the shipped templates"
    try:
        return str(env.get_template(name).render(dict(context)))
    except jinja2.TemplateNotFound:
        raise ConfigError(f"no mail template {name!r} in {where}") from None
    except jinja2.TemplateSyntaxError as exc:
        raise ConfigError(f"mail template {exc.filename or name}, line {exc.lineno}: {exc.message}") from None
    except jinja2.UndefinedError as exc:
        raise ConfigError(f"mail template {name}: {exc.message}") from None
    except jinja2.TemplateError as exc:
        raise ConfigError(f"mail template {name}: {exc}") from None


def render(letter: Letter, settings: Mail) -> EmailMessage:
    """The letter as a MIME message: text/plain and text/html alternatives from NAME.txt and NAME.html,
    then the attachments (multipart/mixed). InputError for a bad letter, ConfigError for a template."""
    check(letter)
    env = _environment(settings.templates)
    text = _fill(env, f"{letter.template}.txt", letter.context, settings.templates)
    html = _fill(env, f"{letter.template}.html", letter.context, settings.templates)
    msg = EmailMessage()
    sender = _sender(settings)
    msg["From"] = sender.header()
    msg["To"] = ", ".join(_address(a, "to").header() for a in letter.to)
    if letter.cc:
        msg["Cc"] = ", ".join(_address(a, "cc").header() for a in letter.cc)
    if settings.reply_to:
        msg["Reply-To"] = _address(settings.reply_to, "reply_to").header()
    msg["Subject"] = letter.subject
    msg["Date"] = email.utils.formatdate(usegmt=True)
    msg["Message-ID"] = email.utils.make_msgid(domain=sender.email.rpartition("@")[2])
    msg["Auto-Submitted"] = "auto-generated"  # RFC 3834: no out-of-office replies to a reminder
    msg.set_content(text)
    msg.add_alternative(html, subtype="html")
    for filename, content, mime in letter.attachments:
        maintype, subtype = mime.split("/")
        msg.add_attachment(bytes(content), maintype=maintype, subtype=subtype, filename=filename)
    # Headers folded only past RFC 5322's 998 (the bodies are already encoded in short lines): the default 78
    # folds a subject holding "(...)" before its first word, which some readers show with a leading space.
    msg.policy = email.policy.default.clone(max_line_length=998)
    return msg


def _sender(settings: Mail) -> Address:
    if not settings.from_:
        raise ConfigError('mail.from is not set: write the sender, e.g. "ICT Support <ict@school.example>"')
    try:
        addr = parse_address(settings.from_)
    except ValueError as exc:
        raise ConfigError(f"mail.from = {settings.from_!r}: {exc}") from None
    if not addr.email:
        raise ConfigError(f"mail.from = {settings.from_!r} has no address: write it as Name <address>")
    return addr

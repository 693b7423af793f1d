"""The object every command gets: the loaded config, the state store and the directory, opened lazily."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import click

if TYPE_CHECKING:
    from aupctl.config import Config, Trust
    from aupctl.directory import Directory
    from aupctl.state import State

    from .quiet import Hush


@dataclass
class Ctx:
    config_path: str | None
    fmt: str = "table"
    debug: bool = False
    wide: bool = False  # --wide: tables on one line per row, however wide
    # --format json: the parts of the one envelope the command prints at its end (output.emit_json)
    json_parts: dict[str, Any] = field(default_factory=dict, repr=False)
    quiet: bool = False
    hush: Hush | None = field(default=None, repr=False)  # --quiet: output held back until the end
    school: str | None = None  # --school / AUPCTL_SCHOOL: which of a trust's schools (docs/trust.md)
    _trust: Trust | None = field(default=None, repr=False)
    _config: Config | None = field(default=None, repr=False)
    _state: State | None = field(default=None, repr=False)
    _directory: Directory | None = field(default=None, repr=False)

    @property
    def trust(self) -> Trust:
        """The config file: one school, or a trust's [schools.KEY]."""
        if self._trust is None:
            from aupctl.config import load_trust

            self._trust = load_trust(self.config_path)
        return self._trust

    @property
    def config(self) -> Config:
        if self._config is None:
            self._config = self.trust.config(self.school)  # refused (exit 2) if a trust's school is not named
        return self._config

    @property
    def state(self) -> State:
        if self._state is None:
            from aupctl.schools import store_for

            self._state = store_for(self.config)  # the school's own store, with the config's audit key
        return self._state

    def may_change(self) -> None:
        """Refuse (exit 2) a change by someone who is not one of the school's technicians ([schools.KEY]
        technicians); a config of one school, or a school with none listed, lets anyone."""
        from aupctl.schools import check_technician

        check_technician(self.config, lambda: self.directory)

    def for_school(self, key: str | None) -> Ctx:
        """The same run for another of the trust's schools (--all-schools): its own config, store and
        directory, opened when first used; close() it after."""
        return Ctx(self.config_path, fmt=self.fmt, debug=self.debug, wide=self.wide, school=key, _trust=self.trust)

    @property
    def directory(self) -> Directory:
        if self._directory is None:
            from aupctl.directory import open_directory

            self._directory = open_directory(self.config)
        return self._directory

    @property
    def acted(self) -> bool:
        """Did this run record a change in the audit log?"""
        return self._state is not None and self._state.audited > 0

    def close(self) -> None:
        if self._directory is not None:
            self._directory.close()
        if self._state is not None:
            self._state.close()


pass_ctx = click.make_pass_decorator(Ctx)

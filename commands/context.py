"""The object every command gets: the loaded config, the state store and the directory, opened lazily."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import click

if TYPE_CHECKING:
    from aupctl.config import Config
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
    _config: Config | None = field(default=None, repr=False)
    _state: State | None = field(default=None, repr=False)
    _directory: Directory | None = field(default=None, repr=False)

    @property
    def config(self) -> Config:
        if self._config is None:
            from aupctl.config import load

            self._config = load(self.config_path)
        return self._config

    @property
    def state(self) -> State:
        if self._state is None:
            from aupctl.auditlog import attach
            from aupctl.state import open_store

            state = open_store(self.config.state)
            self._state = attach(state, self.config)  # with the config's audit key
        return self._state

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

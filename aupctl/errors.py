"""User-facing failures. Each kind carries the exit code cron and scripts rely on."""

from __future__ import annotations

# Exit codes are a contract (docs/output.md).
EXIT_OK = 0
EXIT_FINDINGS = 1
EXIT_USAGE = 2
EXIT_UNREACHABLE = 3
EXIT_PARTIAL = 4
EXIT_INTERNAL = 70  # an exception that is not an AupctlError: a bug (EX_SOFTWARE)
EXIT_INTERRUPTED = 130  # Ctrl-C, or "no" at a confirmation: nothing more was changed (128 + SIGINT)


class AupctlError(Exception):
    """A failure a technician can act on; the CLI prints the message and exits with `exit_code`."""

    exit_code = EXIT_USAGE

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return self.message if not self.hint else f"{self.message}\n  hint: {self.hint}"


class ConfigError(AupctlError):
    """The config file is missing, unreadable or wrong (names the file and key)."""


class InputError(AupctlError):
    """Bad input from the user: an argument, a CSV file, a date."""


class RefusedError(AupctlError):
    """A request the policy does not allow (e.g. a grant without approval); nothing changed."""


class NotFoundError(AupctlError):
    """A named account, system, laptop or task does not exist."""


class NoSuchAccount(NotFoundError):
    """No account with this username: the CLI adds the close ones the state store knows ("did you mean")."""

    def __init__(self, message: str, *, username: str, hint: str | None = None) -> None:
        super().__init__(message, hint=hint)
        self.username = username


class ConfirmationRequired(AupctlError):
    """A changing command with no terminal to ask and no --yes."""


class UnreachableError(AupctlError):
    """The directory or a host cannot be reached, or refused our credentials."""

    exit_code = EXIT_UNREACHABLE


class AuthError(UnreachableError):
    """The bind or SSH authentication was refused."""


class HostKeyError(UnreachableError):
    """An SSH host key that is unknown or differs from the pinned one."""


class PartialError(AupctlError):
    """A plan failed part-way; `done` changes were applied, the rest were not. Re-run to resume."""

    exit_code = EXIT_PARTIAL

    def __init__(self, message: str, *, done: int = 0, remaining: int = 0, hint: str | None = None) -> None:
        super().__init__(message, hint=hint)
        self.done = done
        self.remaining = remaining


class StoreError(AupctlError):
    """The state store cannot be used: not aupctl's, empty, damaged, full or read-only (names the file)."""


class StoreBusyError(AupctlError):
    """The state store is held by another run (locked past the busy timeout, or a bulk run's lease); try later."""

    exit_code = EXIT_UNREACHABLE


class UnrecordedError(PartialError):
    """A plan stopped because the state store failed; the message says what stands in the directory
    unrecorded. `aupctl log repair` (or any changing run) checks and records it."""

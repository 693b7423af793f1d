"""How passwords are stored, and the test of readable hashes against the deny list (policy 6.2).

parse_user_password and weak_scheme read one userPassword value; _HashTester sends HashJobs in bounded
batches to worker processes on every core, each trying the deny list's common candidates and the
person's own (aupctl.passwords.denylist). A job's secret fields never appear in a repr; the answer is
only "guessed or not" and how many hashes it took.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import hashlib
import multiprocessing
import os
import signal
import sys
import warnings
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from .denylist import personal_candidates

# Schemes whose hashes we can compute (and so test); salted ones need the work per account.
UNSALTED = {"SHA": (hashlib.sha1, 20), "MD5": (hashlib.md5, 16)}
SALTED = {
    "SSHA": (hashlib.sha1, 20),
    "SMD5": (hashlib.md5, 16),
    "SSHA256": (hashlib.sha256, 32),
    "SSHA512": (hashlib.sha512, 64),
}
# crypt(3) hashes cost far more than a salted SHA-1 (DES ~20x, md5crypt ~250x, sha512crypt/bcrypt
# thousands of times): (own-name candidates, common candidates) tried for each, likeliest first.
CRYPT_BUDGET = {"des": (400, 2000), "md5": (50, 300), "slow": (10, 40)}
BATCH = 32  # accounts per task sent to a worker


@dataclass(frozen=True)
class HashJob:
    """What a worker needs to test one account: never sent back, never logged."""

    key: int
    scheme: str  # "CLEARTEXT", "SHA", "SSHA", "CRYPT", ...
    payload: bytes = field(repr=False)  # the digest (or cleartext, or crypt string): never in a repr
    salt: bytes = field(repr=False)
    given: str
    surname: str
    username: str


def parse_user_password(value: Any) -> tuple[str, bytes, bytes] | None:
    """One userPassword value -> (scheme, payload, salt); scheme CLEARTEXT when no {SCHEME} prefix.

    None for a scheme we cannot test ({SASL}, {PBKDF2...}, {ARGON2}...)."""
    raw = value if isinstance(value, bytes) else str(value).encode("utf-8")
    if not raw.startswith(b"{") or b"}" not in raw:
        return "CLEARTEXT", raw, b""
    end = raw.index(b"}")
    scheme = raw[1:end].decode("ascii", "replace").upper()
    body = raw[end + 1 :]
    if scheme == "CRYPT":
        return "CRYPT", body, b""
    algo = UNSALTED.get(scheme) or SALTED.get(scheme)
    if algo is None:
        return None
    try:
        decoded = base64.b64decode(body, validate=False)
    except (binascii.Error, ValueError):
        return None
    size = algo[1]
    if len(decoded) < size:
        return None
    return scheme, decoded[:size], decoded[size:]


def weak_scheme(scheme: str, payload: bytes) -> str | None:
    """Why a storage scheme is weak, or None."""
    if scheme in UNSALTED:
        return f"{{{scheme}}} is an unsalted fast hash: one lookup table cracks every such password at once"
    if scheme == "CRYPT" and not payload.startswith(b"$") and len(payload) == 13:
        return "{CRYPT} with DES uses only the first 8 characters and is cracked in minutes"
    return None


# -- the worker side: runs in other processes --

_COMMON: list[bytes] = []
_COMMON_SET: frozenset[bytes] = frozenset()
_UNSALTED_DIGESTS: dict[str, frozenset[bytes]] = {}
_TODAY: dt.date = dt.date.today()


def _init_worker(common: list[bytes], today: dt.date) -> None:
    global _COMMON, _COMMON_SET, _TODAY
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's to handle (it ends the pool)
    _COMMON, _COMMON_SET, _TODAY = common, frozenset(common), today
    _UNSALTED_DIGESTS.clear()


def _unsalted_digests(scheme: str) -> frozenset[bytes]:
    if scheme not in _UNSALTED_DIGESTS:
        fn = UNSALTED[scheme][0]
        _UNSALTED_DIGESTS[scheme] = frozenset(fn(c).digest() for c in _COMMON)
    return _UNSALTED_DIGESTS[scheme]


def _crypt(word: bytes, setting: str) -> str | None:
    if sys.platform == "win32":  # no crypt module on Windows: {CRYPT} hashes are reported as untested
        return None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        import crypt  # deprecated in 3.11, gone in 3.13: then {CRYPT} hashes are reported as untested

        try:
            return crypt.crypt(word.decode("utf-8", "replace"), setting)
        except (OSError, ValueError):
            return None


def _test_one(job: HashJob) -> tuple[bool, int]:
    """(guessed, hash computations) for one account."""
    mine = personal_candidates(job.given, job.surname, job.username, _TODAY)
    if job.scheme == "CLEARTEXT":
        return job.payload in _COMMON_SET or job.payload in set(mine), 0
    if job.scheme in UNSALTED:
        fn = UNSALTED[job.scheme][0]
        if job.payload in _unsalted_digests(job.scheme):
            return True, 0
        for n, c in enumerate(mine, 1):
            if fn(c).digest() == job.payload:
                return True, n
        return False, len(mine)
    if job.scheme in SALTED:
        fn, salt, target = SALTED[job.scheme][0], job.salt, job.payload
        count = 0
        for pool in (mine, _COMMON):
            for c in pool:
                count += 1
                if fn(c + salt).digest() == target:
                    return True, count
        return False, count
    if job.scheme == "CRYPT":
        setting = job.payload.decode("ascii", "replace")
        kind = "md5" if setting.startswith("$1$") else "slow" if setting.startswith("$") else "des"
        own, common = CRYPT_BUDGET[kind]
        pool = mine[:own] + _COMMON[:common]
        for n, c in enumerate(pool, 1):
            if _crypt(c, setting) == setting:
                return True, n
        return False, len(pool)
    return False, 0


def _test_batch(jobs: list[HashJob]) -> list[tuple[int, bool, int]]:
    out = []
    for job in jobs:
        guessed, count = _test_one(job)
        out.append((job.key, guessed, count))
    return out


class _HashTester:
    """Batches of jobs to a process pool, at most a few in flight (bounded memory), results by key."""

    def __init__(self, common: list[bytes], today: dt.date, workers: int | None) -> None:
        self.common, self.today = common, today
        if workers is None:  # every core this process may use
            workers = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
        self.workers = max(1, workers)
        self.pool: Any = None
        self.batch: list[HashJob] = []
        self.pending: deque[Any] = deque()
        self.guessed: set[int] = set()
        self.computations = 0
        self.tested = 0

    def add(self, job: HashJob) -> None:
        self.batch.append(job)
        if len(self.batch) >= BATCH:
            self._send()

    def _send(self) -> None:
        if not self.batch:
            return
        if self.pool is None:
            ctx = multiprocessing.get_context("fork") if "fork" in multiprocessing.get_all_start_methods() else None
            self.pool = (ctx or multiprocessing).Pool(
                processes=self.workers, initializer=_init_worker, initargs=(self.common, self.today)
            )
        self.pending.append(self.pool.apply_async(_test_batch, (self.batch,)))
        self.tested += len(self.batch)
        self.batch = []
        while len(self.pending) > self.workers * 4:
            self._collect(self.pending.popleft())

    def _collect(self, result: Any) -> None:
        for key, guessed, count in result.get():
            self.computations += count
            if guessed:
                self.guessed.add(key)

    def finish(self) -> set[int]:
        self._send()
        while self.pending:
            self._collect(self.pending.popleft())
        self.close()
        return self.guessed

    def close(self) -> None:
        if self.pool is not None:
            self.pool.terminate()
            self.pool.join()
            self.pool = None

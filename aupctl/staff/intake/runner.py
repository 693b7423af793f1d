"""`staff import`, stage 3 (`plan.apply`): new accounts are made in batches (batch_size).

The batch's credential lines are written and fsynced and each person marked 'creating' first; then the
people are made. OpenLDAP: each in ONE add carrying the (hashed) first password, change-at-first-logon
and no lock, the batch's adds sent together on one connection (directory/pipeline.py). AD: a few
connections side by side, each person in order: created disabled, password set, then flagged to change
it at first logon and enabled (one request). Then one request per group adds the batch's people; then
each is recorded (role, 'done', an audit entry). An account is never enabled without its password, and
a re-run finishes what a killed one left.
"""

from __future__ import annotations

from functools import partial
from typing import Any

import ldap3

from ... import passphrase
from ...config import Config
from ...directory import (
    UAC_ACCOUNTDISABLE,
    UAC_NORMAL_ACCOUNT,
    Account,
    Directory,
    DirectoryError,
    group_name,
    open_directory,
    pipeline,
)
from ...errors import AupctlError, RefusedError, UnreachableError
from ...plan import Change
from ...records import provisioned
from ...records.roles import set_role
from ...state import State, now_iso
from .plan import Entry, Intake, credential_in, plan_intake
from .read import Person

WORKERS = 3  # connections making accounts side by side
BATCH = 25  # accounts per batch: one progress step, one journal entry and one fsync of the credentials file each
PIPELINED_BATCH = 100  # where a batch's adds go out together (OpenLDAP): fewer, fuller group changes and round trips


def build(
    cfg: Config,
    directory: Directory,
    state: State,
    people: list[Person],
    *,
    credentials_out: str | None = None,
    source: str = "",
    known: tuple[list[Account], set[str]] | None = None,
) -> Intake:
    """The whole plan for these people (touches nothing): plan_intake's changes after the batches that
    make the new accounts, which run on a Runner (closed by Intake.close). known: as plan_intake's."""
    intake = plan_intake(cfg, directory, state, people, credentials_out=credentials_out, source=source, known=known)
    runner = intake.runner = Runner(cfg, directory, state, intake)
    intake.plan.changes[0:0] = runner.batch_changes()
    return intake


def batch_size(fl: Any) -> int:
    return PIPELINED_BATCH if fl.pipelined_writes else BATCH


_PIPE_OP = {ldap3.MODIFY_ADD: pipeline.MODIFY_ADD, ldap3.MODIFY_DELETE: pipeline.MODIFY_DELETE}


class Runner:
    """Runs the batches. Where the flavour makes an account in one request (OpenLDAP), a batch's adds are
    pipelined on the main connection; otherwise on a few connections of its own (opened on first use), one
    person per connection at a time, so a batch's people are made side by side while each one's steps stay
    in order.

    (Not ldap3's ASYNC strategy: it reads and writes one TLS socket from two threads, which OpenSSL does not
    allow, and it was seen to lose answers under load.)"""

    def __init__(self, cfg: Config, directory: Directory, state: State, intake: Intake) -> None:
        self.cfg = cfg
        self.directory = directory
        self.state = state
        self.intake = intake
        self.fl = directory.flavour
        self.pool: list[Directory] = []
        self.executor: Any = None
        self.one_request = True  # until the flavour or the server says otherwise
        self.groups_read: dict[str, Any] = {}  # role group DN -> its Group (schema, stand-in members)

    def batch_changes(self) -> list[Change]:
        """One change per batch of the accounts to make or finish."""
        intake = self.intake
        out: list[Change] = []
        pipelined = [e for e in intake.entries if e.steps]
        size = batch_size(self.directory.flavour)
        for i in range(0, len(pipelined), size):
            batch = pipelined[i : i + size]
            made = sum(1 for e in batch if e.action == "create")
            finished = len(batch) - made
            what = ", ".join(e.username for e in batch[:6]) + (" …" if len(batch) > 6 else "")
            label = " and ".join(
                x for x in (f"create {made} account(s)" if made else "", f"finish {finished}" if finished else "") if x
            )
            out.append(
                Change(
                    "create-accounts",
                    f"batch {i // size + 1}",
                    f"{label}: {what}",
                    run=partial(self.run_batch, batch),
                    details={"usernames": [e.username for e in batch], "run": intake.run_id},
                    audit=False,  # each account gets its own audit entry as it is completed
                )
            )
        return out

    def _workers(self, wanted: int) -> list[Directory]:
        while len(self.pool) < min(wanted, WORKERS):
            self.pool.append(open_directory(self.cfg))
        return self.pool[: max(1, min(wanted, WORKERS))]

    def close(self) -> None:
        if self.executor is not None:
            self.executor.shutdown(wait=True)
            self.executor = None
        for d in self.pool:
            d.close()
        self.pool = []

    def _person(self, d: Directory, e: Entry, password: str | None) -> None:
        """One person's steps, in order: created disabled, password, change at first logon, enabled."""
        fl = d.flavour
        if "add" in e.steps:
            assert e.new_entry is not None
            d.add(e.dn, e.new_entry[0], e.new_entry[1])
        if "password" in e.steps:
            assert password is not None
            fl.set_password(d, e.dn, password)
        # Flagged to change at first logon and enabled in one atomic request, after the password is set.
        changes: dict[str, Any] = {}
        if "force" in e.steps:
            changes.update(fl.force_change_changes())
        if "enable" in e.steps:
            changes.update(fl.enable_changes(_uac_of(e)))
        if changes:
            d.modify(e.dn, changes)

    def _people(self, todo: list[Entry], passwords: dict[str, str], failed: dict[str, str]) -> None:
        from concurrent.futures import ThreadPoolExecutor

        if not todo:
            return
        workers = self._workers(len(todo))
        chunks = [todo[i :: len(workers)] for i in range(len(workers))]
        lost: list[UnreachableError] = []

        def work(d: Directory, chunk: list[Entry]) -> None:
            for e in chunk:
                if lost:
                    return
                try:
                    self._person(d, e, passwords.get(e.username))
                except UnreachableError as exc:
                    lost.append(exc)
                    failed[e.username] = exc.message
                    return
                except AupctlError as exc:
                    failed[e.username] = exc.message

        if self.executor is None:
            self.executor = ThreadPoolExecutor(WORKERS, thread_name_prefix="intake")
        futures = [self.executor.submit(work, d, c) for d, c in zip(workers, chunks, strict=True)]
        try:
            for f in futures:
                f.result()
        except BaseException:  # Ctrl-C: let each connection finish the person it is on, so none is left half-made
            lost.append(UnreachableError("interrupted"))
            for f in futures:
                f.result()
            raise
        if lost:
            raise lost[0]

    def run_batch(self, batch: list[Entry]) -> dict[str, Any]:
        state = self.state
        failed: dict[str, str] = {}
        passwords: dict[str, str] = {}
        done: list[Entry] = []
        recorded = False

        def live(step: str) -> list[Entry]:
            return [e for e in batch if step in e.steps and e.username not in failed]

        try:
            # 1. the credential lines, fsynced, and the 'creating' marks, before the directory is touched
            fresh = live("credential")
            if fresh:
                creds = self.intake.credentials
                if creds is None:
                    raise RefusedError("new accounts need --credentials-out FILE for their passwords")
                rows = []
                for e in fresh:
                    passwords[e.username] = passphrase.generate()
                    rows.append(
                        [
                            e.username,
                            passwords[e.username],
                            e.person.display_name,
                            e.email,
                            e.person.role,
                            e.person.staff_code,
                            e.dn,
                            now_iso(),
                        ]
                    )
                creds.write(rows)
                provisioned.mark_creating(
                    state,
                    [provisioned.Creating(e.username, e.dn, e.person.staff_code or None, e.person.role) for e in fresh],
                    credentials_file=creds.path,
                    run_id=self.intake.run_id,
                )
            for e in live("password"):
                if e.username not in passwords and e.old_password_from:
                    old = credential_in(e.old_password_from, e.username)
                    if old is None:
                        failed[e.username] = f"the password in {e.old_password_from} can no longer be read"
                    else:
                        passwords[e.username] = old
            todo = [e for e in batch if e.username not in failed]
            done, recorded = self._make(batch, todo, passwords, failed)
        finally:
            # 4. the record: role, 'done', and one audit entry per finished account
            if not recorded:
                self._record(done)
        if failed:
            lines = "; ".join(f"{u}: {why}" for u, why in failed.items())
            raise DirectoryError(f"{len(failed)} account(s) in this batch were not finished: {lines}")
        return {"accounts": [e.username for e in done]}

    def _make(
        self, batch: list[Entry], todo: list[Entry], passwords: dict[str, str], failed: dict[str, str]
    ) -> tuple[list[Entry], bool]:
        """Steps 2 and 3: the accounts, then their groups. Returns who is finished, and whether their record
        (step 4) is already written."""

        def members() -> dict[str, list[Entry]]:
            out: dict[str, list[Entry]] = {}
            for e in batch:
                if e.username not in failed:
                    for g in e.groups:
                        out.setdefault(g, []).append(e)
            return out

        # 2. each person's account: in one add each, all sent together (OpenLDAP), else the long way, side by
        # side on a few connections
        sent = self._send_ready_adds(todo, passwords)
        slow: list[Entry] | None = None
        grouped = False
        if sent is not None and todo:
            # The record is written while the server makes the accounts, in one short transaction committed
            # only when the directory has made the whole batch in one add each and added it to its groups; else
            # it is rolled back (before any long way, which holds no lock) and written for those finished.
            try:
                with self.state.transaction():
                    self._record(todo)
                    slow = self._ready_adds_answered(todo, sent)
                    if slow:
                        raise _NotAll
                    # 3. groups: one request per group for the whole batch
                    grouped = True
                    self._add_groups(members(), failed)
                    if any(e.username in failed for e in todo):
                        raise _NotAll
                return todo, True
            except _NotAll:
                pass
        if slow is None:
            slow = self._ready_adds_answered(todo, sent)
        self._people(slow, passwords, failed)
        if not grouped:
            self._add_groups(members(), failed)  # 3. groups: one request per group for the whole batch
        return [e for e in batch if e.username not in failed], False

    def _send_ready_adds(self, todo: list[Entry], passwords: dict[str, str]) -> _Sent | None:
        """Where the flavour can (OpenLDAP), each new person is created in ONE add that carries the password,
        change-at-first-logon and no lock, so there is never an open account without a password; the batch's
        adds are sent together (answers read by _ready_adds_answered)."""
        if not self.one_request:
            return None
        quick: list[Entry] = []
        ops: list[bytes] = []
        hashes: dict[int, str] = {}  # id(entry) -> the userPassword value sent
        for e in todo:
            if (
                e.new_entry is None
                or e.username not in passwords
                or not {"add", "password", "force", "enable"} <= set(e.steps)
            ):
                continue
            ready = self.fl.ready_user(e.new_entry[1], passwords[e.username])
            if ready is None:
                self.one_request = False
                return None
            quick.append(e)
            hashes[id(e)] = ready["userPassword"]
            ops.append(pipeline.add_request(e.dn, e.new_entry[0], ready))
        if not quick:
            return None
        return quick, pipeline.Pipeline(self.directory).send(ops, "creating accounts"), hashes

    def _ready_adds_answered(self, todo: list[Entry], sent: _Sent | None) -> list[Entry]:
        """The people still to be made the long way: other flavours, finishes, and any add the server refused
        (their own requests then say why)."""
        if sent is None:
            return todo
        quick, pending, sent_values = sent
        results = pending.wait()
        refused = {id(e) for e, r in zip(quick, results, strict=True) if not r.ok}
        # entryAlreadyExists after a dropped connection's resend: the first add went through if the entry holds
        # exactly the value this run sent (a salted hash, unique to it: made whole, in one add); anything else
        # goes the long way. (A plain compare: slapd does not treat it as a login without the ppolicy control.)
        again = [e for e, r in zip(quick, results, strict=True) if r.name == "entryAlreadyExists"]
        if again:
            ops = [pipeline.compare_request(e.dn, "userPassword", sent_values[id(e)]) for e in again]
            answers = pipeline.Pipeline(self.directory).run(ops, "checking accounts already made")
            refused -= {id(e) for e, r in zip(again, answers, strict=True) if r.name == "compareTrue"}
        if any(r.name in ("constraintViolation", "undefinedAttributeType", "objectClassViolation") for r in results):
            self.one_request = False  # e.g. a ppolicy that will not take a hashed password: the long way from now on
        made = {id(e) for e in quick} - refused
        return [e for e in todo if id(e) not in made]

    def _group_adds(self, gdn: str, who: list[Entry]) -> list[tuple[str, str, list[Any]]] | None:
        """(op, attribute, values) that add the batch to one group in its schema (member / uniqueMember DNs,
        memberUid usernames, both for RFC 2307bis; the placeholder out once real members are in); None when
        the group cannot be read (left to add_member, which says why)."""
        schema = self.fl.groups
        group = self.groups_read.get(gdn) or schema.read(self.directory, gdn)  # read once a run, not a batch
        if group is None:
            return None
        self.groups_read[gdn] = group
        return schema.batch_add_ops(group, [(e.dn, e.username) for e in who])

    def _add_groups(self, members: dict[str, list[Entry]], failed: dict[str, str]) -> None:
        """One modify per group for the batch (in the group's own schema); the groups' requests sent together
        where the flavour allows. A group that refuses (a member already there after a re-run) is done again
        member by member, idempotently."""
        if not members:
            return
        if not self.fl.pipelined_writes:
            for gdn, who in members.items():
                self._add_members(gdn, who, failed)
            return
        groups, ops = [], []
        for g in members:
            adds = self._group_adds(g, members[g])
            if adds is None:
                self._add_members(g, members[g], failed, tried=True)
                continue
            groups.append(g)
            ops.append(pipeline.modify_request(g, [(_PIPE_OP[op], attr, vals) for op, attr, vals in adds]))
        results = pipeline.Pipeline(self.directory).run(ops, "adding the new accounts to their groups") if ops else []
        for gdn, r in zip(groups, results, strict=True):
            if not r.ok:
                self._add_members(gdn, members[gdn], failed, tried=True)

    def _add_members(self, gdn: str, who: list[Entry], failed: dict[str, str], *, tried: bool = False) -> None:
        if not tried:
            adds = self._group_adds(gdn, who)
            try:
                if adds is not None:
                    changes: dict[str, list[tuple[str, list[Any]]]] = {}
                    for op, attr, vals in adds:
                        changes.setdefault(attr, []).append((op, vals))
                    self.directory.modify(gdn, changes)
                    return
            except UnreachableError:
                raise
            except AupctlError:
                pass
        # One of them is a member already (a re-run): add them one at a time, idempotently.
        for e in who:
            try:
                self.fl.add_member(self.directory, gdn, e.dn, e.username)
            except UnreachableError:
                raise
            except AupctlError as exc:
                failed[e.username] = f"adding to {group_name(gdn)}: {exc.message}"

    def _record(self, done: list[Entry]) -> None:
        if not done:
            return
        creds = self.intake.credentials
        with self.state.transaction():
            for e in done:
                set_role(self.state, e.username, e.person.role, source="created")
                provisioned.mark_done(self.state, e.username)
                self.state.audit(
                    "create-account" if e.action == "create" else "finish-account",
                    e.username,
                    {
                        "dn": e.dn,
                        "role": e.person.role,
                        "staff_code": e.person.staff_code,
                        "start_date": e.person.start_date,
                        "groups": e.groups,
                        "line": e.person.line,
                        "run": self.intake.run_id,
                        "credentials_file": creds.path if creds is not None and "credential" in e.steps else None,
                        "note": e.note,
                    },
                )


_Sent = tuple[list[Entry], pipeline.Pending, dict[int, str]]  # the adds sent, their answers to come, values sent


class _NotAll(Exception):
    """Not every account of the batch was finished: roll back the record written ahead."""


def _uac_of(e: Entry) -> Account:
    """enable_changes needs the account's current flags; a new one was created disabled and normal."""
    if e.account is not None:
        return e.account
    return Account(dn=e.dn, username=e.username, uac=UAC_NORMAL_ACCOUNT | UAC_ACCOUNTDISABLE)

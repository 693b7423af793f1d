"""Access to restricted systems (policy 1.3, 9.1). One module per job, used by commands/access.py and
commands/aup.py (import from the module: `from aupctl.access.grant import grant_plan`):

- grant.py: grant and revoke (approver names, --until), refused by eligibility.py's rule
- adopt.py: today's members become the starting record
- members.py: each system group's effective members and every account involved, read once
- review.py: each system's effective members against the approvals, and the --fix plan
- listing.py: `access list` and `access systems`
- aup.py: AUP signatures (sign, import, status) and the grants that waited for them
- tasks.py: the change that opens a task for what is done by hand
"""

"""Passwords (policy 6.2): the deny list and candidate checks (denylist), the hash tests (hashes), the
audit of every account (audit) and a reset to a generated passphrase (reset)."""

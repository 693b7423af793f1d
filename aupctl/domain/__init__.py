"""`domain audit`: the directory's own settings and its admin accounts (policy 6.2 and 6.1).

- policy.py: the password and lockout policies (AD's domain policy and fine-grained policies, OpenLDAP's
  ppolicy entries) against the school's config and Cyber Essentials (pure: unit-tested without a server)
- admins.py: the privileged groups (AD's found by well-known SID, not by their localised names; the
  config's on both flavours), their members resolved through nested groups, and each admin account read
- audit.py: the audit itself: those, the Kerberos checks on AD, and the count of admin accounts since
  the last run
"""

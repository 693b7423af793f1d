"""School laptops: the inventory (state store), SSH with pinned host keys, per-OS probes and audits.

paramiko is imported only inside this package (ssh.py), and only when a laptop is contacted, so
`aupctl --help` and the other commands stay fast.
"""

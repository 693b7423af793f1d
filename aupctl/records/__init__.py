"""The records aupctl keeps in the state store: the only SQL outside state.py and auditlog.py.

approvals (who may use which system), signatures (AUP declarations), roles (recorded by aupctl), tasks
(work to do by hand); house-b adds leavers, provisioned and devices. Records know rows, not rules: no
directory code is imported here, and the rules that read the records live in the jobs and eligibility.py.
"""

"""Staff leavers (policy 4.2, 9.2, 1.4, 7.2.3): schedule (waves from CSV, run-due, cancel, list),
withdraw and restore, each a list of small named steps computed from what the directory holds now."""

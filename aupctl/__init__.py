"""aupctl: turn a school's staff Acceptable Use Policy into jobs a technician can run."""

__version__ = "0.1.0"

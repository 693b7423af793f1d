"""Packages are found, not listed: a new subpackage of aupctl/ or commands/ is in the wheel by itself.

Everything else is in setup.cfg. This file exists because setup.cfg's `packages = find:` cannot also
add commands/ (which the design keeps at the top level) under its installed name, aupctl.commands.
"""

from setuptools import find_packages, setup

# exclude: a developer's aupctl/commands symlink to ../commands must not add the package twice
engine = find_packages(include=["aupctl", "aupctl.*"], exclude=["aupctl.commands", "aupctl.commands.*"])
cli = ["aupctl.commands"] + [f"aupctl.commands.{p}" for p in find_packages("commands")]
setup(packages=engine + cli, package_dir={"aupctl.commands": "commands"})

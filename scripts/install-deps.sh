#!/usr/bin/env bash
# Install what aupctl's tests and demo need on a fresh Debian/Ubuntu machine: the servers (slapd,
# Samba AD DC, sshd) from apt, then aupctl itself with its test extras. Safe to run again.
set -euo pipefail
need=()
command -v slapd >/dev/null 2>&1 || need+=(slapd)
command -v ldapsearch >/dev/null 2>&1 || need+=(ldap-utils)
command -v samba >/dev/null 2>&1 || need+=(samba)
command -v samba-tool >/dev/null 2>&1 || need+=(samba)
command -v wbinfo >/dev/null 2>&1 || need+=(winbind)
command -v sshd >/dev/null 2>&1 || [ -x /usr/sbin/sshd ] || need+=(openssh-server)
command -v ssh-keygen >/dev/null 2>&1 || need+=(openssh-client)
command -v openssl >/dev/null 2>&1 || need+=(openssl)
command -v sqlite3 >/dev/null 2>&1 || need+=(sqlite3)
command -v groff >/dev/null 2>&1 || need+=(groff-base)  # tests/test_reference.py renders docs/aupctl.1
command -v sudo >/dev/null 2>&1 || need+=(sudo)  # tests/test_store_guard.py: the actor under sudo
ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || need+=(postgresql)  # the shared store (a throwaway cluster per test session)
command -v chromium >/dev/null 2>&1 || need+=(chromium)  # the governors' report: rendered, printed to PDF
command -v pdftotext >/dev/null 2>&1 || need+=(poppler-utils)  # the report's PDF text, checked by its tests
if [ ${#need[@]} -gt 0 ]; then
  if [ "$(id -u)" -ne 0 ]; then
    echo "missing packages: ${need[*]} — run as root, or: sudo apt-get install ${need[*]}" >&2
    exit 2
  fi
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq "${need[@]}" >/dev/null
fi
python3 -m pip install -q --disable-pip-version-check -e ".[test,postgresql,report]" 2>&1 | grep -v "Running pip as the 'root' user" || true

# School laptops (policy 1.4, 6.7, 6.8): this machine, through its own sshd on loopback, plays a laptop.
# docs/laptops.md. (The sshd and its throwaway login account come from tests/ssh_fixtures.py; needs root.)

read -r LAPTOP_PORT LAPTOP_KEY LAPTOP_USER LAPTOP_FP < <(python3 "$here/../tests/ssh_fixtures.py" start "$DEMO_DIR")
python3 - "$AUPCTL_CONFIG" "$LAPTOP_USER" "$LAPTOP_KEY" <<'PY'
import sys
path, user, key = sys.argv[1:]
text = open(path).read().replace('ssh_user = "aupctl"', f'ssh_user = "{user}"\nssh_key = "{key}"', 1)
if "[laptops.update_commands]" not in text:  # harmless stand-ins for apt-get upgrade and freshclam
    text += '\n[laptops.update_commands]\nlinux = ["echo apt-get -y upgrade would run here", "echo freshclam would run here"]\n'
open(path, "w").write(text)
PY
teacher=$(python3 -c 'from aupctl.sandbox import school as hb; print(hb.school().staff[0].username)')

step "aupctl laptop enrol 127.0.0.1 --port $LAPTOP_PORT --asset-tag HB-LT-0042 --assign $teacher --fingerprint $LAPTOP_FP --yes"
aupctl laptop enrol 127.0.0.1 --port "$LAPTOP_PORT" --asset-tag HB-LT-0042 --assign "$teacher" --fingerprint "$LAPTOP_FP" --yes
step "aupctl laptop list"
aupctl laptop list
step "aupctl laptop checkin HB-LT-0042 --update --yes   # findings remain on this machine: exit 1"
aupctl laptop checkin HB-LT-0042 --update --yes || true
step "aupctl laptop show HB-LT-0042"
aupctl laptop show HB-LT-0042
step "aupctl laptop audit   # what cron runs at lunchtime on school days; exit 1 on findings"
aupctl laptop audit || true
step "aupctl laptop audit --no-probe   # from the records alone, contacting no laptop"
aupctl laptop audit --no-probe || true
step "aupctl licence report"
aupctl licence report || true
step "aupctl laptop list --user $teacher   # what the leavers job reads to open 'collect the laptop'"
aupctl laptop list --user "$teacher"

python3 "$here/../tests/ssh_fixtures.py" stop "$DEMO_DIR"

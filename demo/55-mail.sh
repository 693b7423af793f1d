# Mail (docs/notify.md): a throwaway SMTP server on loopback (STARTTLS with its own CA, AUTH) stands in for
# the school's; every letter it takes lands in $DEMO_DIR/mail/NNNN.eml. It serves the recertification's
# letters (60) and the reminders (65), and is stopped when the demo ends.
rm -rf "$DEMO_DIR/mail" "$DEMO_DIR/smtp/port"
aupctl sandbox mail --dir "$DEMO_DIR" > "$DEMO_DIR/smtp.log" 2>&1 &
SMTP_PID=$!
trap 'kill "$SMTP_PID" 2>/dev/null || true; wait "$SMTP_PID" 2>/dev/null || true' EXIT
for _ in $(seq 1 100); do [ -s "$DEMO_DIR/smtp/port" ] && break; sleep 0.1; done
[ -s "$DEMO_DIR/smtp/port" ] || { cat "$DEMO_DIR/smtp.log"; exit 1; }
cat "$DEMO_DIR/smtp.log"
if ! grep -q '^\[mail\]' "$AUPCTL_CONFIG"; then
  cat >> "$AUPCTL_CONFIG" <<TOML

[mail]
host = "127.0.0.1"
port = $(cat "$DEMO_DIR/smtp/port")
security = "starttls"
username = "aupctl-sandbox"
password_file = "smtp/password"   # 0600; or AUPCTL_MAIL_PASSWORD, or the keyring
ca_file = "smtp/ca.pem"           # the sandbox's own CA: the certificate is verified
from = "Hollybank ICT <ict@hollybank.test>"
reply_to = "ICT Support <ict@hollybank.test>"

[notify]
technician = "Kofi Mensah <kmensah@hollybank.test>"
laptop_days_before = 7
task_days = 14
TOML
fi
step "# the approvers get their addresses in [systems.*] approvers (Name <address>), so they can be mailed"
python3 - "$AUPCTL_CONFIG" <<'PY'
import sys
from pathlib import Path

path = Path(sys.argv[1])
text = path.read_text(encoding="utf-8")
for name, address in (
    ("Mrs A Patel (Headteacher)", "apatel@hollybank.test"),
    ("Mr D Okafor (School Business Manager)", "dokafor@hollybank.test"),
    ("Mrs R Hughes (Deputy Headteacher)", "rhughes@hollybank.test"),
):
    text = text.replace(f'"{name}"', f'"{name} <{address}>"')
path.write_text(text, encoding="utf-8")
PY
grep -m 2 '^approvers' "$AUPCTL_CONFIG"
step "aupctl doctor | grep mail   # the mail server answers, over verified TLS, with the password"
aupctl doctor | grep -i mail || true

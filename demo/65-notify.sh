# Reminders by email (policy 1.3, 1.4, 9.1): docs/notify.md. A throwaway SMTP server on loopback
# (STARTTLS with its own CA, AUTH) stands in for the school's; every letter lands in $DEMO_DIR/mail/.
rm -rf "$DEMO_DIR/mail" "$DEMO_DIR/smtp/port"
python3 -m aupctl.sandbox.smtp --dir "$DEMO_DIR" > "$DEMO_DIR/smtp.log" 2>&1 &
SMTP_PID=$!
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

step "aupctl notify --dry-run   # the day's letters: the new starters' access waits for their AUP signature"
aupctl notify --dry-run || echo "(exit $?: someone cannot be reached)"
step "aupctl notify --yes"
aupctl notify --yes || echo "(exit $?: someone cannot be reached)"
step "aupctl notify --yes   # again the same day: nothing is sent twice"
aupctl notify --yes || echo "(exit $?: someone cannot be reached)"
step "ls $DEMO_DIR/mail | head -n 3; the first letter, as its text part reads"
ls "$DEMO_DIR/mail" | head -n 3
python3 - "$DEMO_DIR/mail" <<'PY'
import email, email.policy, pathlib, sys
first = sorted(pathlib.Path(sys.argv[1]).glob("*.eml"))[0]
msg = email.message_from_bytes(first.read_bytes(), policy=email.policy.default)
for h in ("From", "To", "Subject"):
    print(f"{h}: {msg[h]}")
print("Parts:", ", ".join(p.get_content_type() for p in msg.walk() if not p.is_multipart()))
print()
print(msg.get_body(("plain",)).get_content().strip())
PY
step "aupctl log --since today | grep send-mail | head -n 3   # each letter is in the audit log: to, subject, why"
aupctl log --since "$(date +%F)" | grep send-mail | head -n 3 || true
kill "$SMTP_PID" 2>/dev/null || true
wait "$SMTP_PID" 2>/dev/null || true

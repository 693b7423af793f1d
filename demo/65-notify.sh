# Reminders by email (policy 1.3, 1.4, 9.1): docs/notify.md. A throwaway SMTP server on loopback
# (STARTTLS with its own CA, AUTH) stands in for the school's; every letter lands in $DEMO_DIR/mail/.
# The SMTP server and [mail]/[notify] are set up by 55-mail.sh; the recertification's letters are in
# $DEMO_DIR/mail already, so the reminders' are counted from here.
sent_before=$( (ls "$DEMO_DIR/mail" 2>/dev/null || true) | wc -l)
step "aupctl notify --dry-run   # the day's letters: the new starters' access waits for their AUP signature"
aupctl notify --dry-run || echo "(exit $?: someone cannot be reached)"
step "aupctl notify --yes"
aupctl notify --yes || echo "(exit $?: someone cannot be reached)"
step "aupctl notify --yes   # again the same day: nothing is sent twice"
aupctl notify --yes || echo "(exit $?: someone cannot be reached)"
step "ls $DEMO_DIR/mail | tail -n +$((sent_before + 1)) | head -n 3; the first reminder, as its text part reads"
ls "$DEMO_DIR/mail" | tail -n +$((sent_before + 1)) | head -n 3
python3 - "$DEMO_DIR/mail" "$sent_before" <<'PY'
import email, email.policy, pathlib, sys
first = sorted(pathlib.Path(sys.argv[1]).glob("*.eml"))[int(sys.argv[2])]
msg = email.message_from_bytes(first.read_bytes(), policy=email.policy.default)
for h in ("From", "To", "Subject"):
    print(f"{h}: {msg[h]}")
print("Parts:", ", ".join(p.get_content_type() for p in msg.walk() if not p.is_multipart()))
print()
print(msg.get_body(("plain",)).get_content().strip())
PY
step "aupctl log --since today | grep send-mail | head -n 3   # each letter is in the audit log: to, subject, why"
aupctl log --since "$(date +%F)" | grep send-mail | head -n 3 || true

# Password hygiene (policy 6.2): docs/passwords.md.

step "aupctl password audit   # the sandbox school's planted problems (exit 1: findings)"
aupctl password audit || true

step "echo 'Summer2024!' | aupctl password check   # a season and a year: weak (exit 1)"
echo 'Summer2024!' | aupctl password check || true
step "echo 'velvet harbor timber' | aupctl password check mbennett   # three random words"
echo 'velvet harbor timber' | aupctl password check mbennett

step "aupctl password reset mbennett --credentials-out $DEMO_DIR/mbennett-reset.csv --yes"
aupctl password reset mbennett --credentials-out "$DEMO_DIR/mbennett-reset.csv" --yes
ls -l "$DEMO_DIR/mbennett-reset.csv"
step "aupctl log --user mbennett   # the reset is recorded; the password is not"
aupctl log --user mbennett

step "aupctl --format json password audit --no-hash-check --changed-before $(date -u +%F)   # after an incident"
{ aupctl --format json password audit --no-hash-check --changed-before "$(date -u +%F)" || true; } | python3 -c '
import json, sys
rows = [r for r in json.load(sys.stdin)["findings"] if r["check"] == "not-changed-since"]   # the JSON envelope (docs/output.md)
print(f"{len(rows)} account(s) with a password not changed since today, e.g. {rows[0]['"'"'subject'"'"']}")'

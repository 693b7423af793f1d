# Termly recertification by the approvers (policy 1.3): docs/recertification.md.
# A campaign over SIMS and Target Tracker, due today so the demo can close it. [mail] is set (55-mail.sh):
# each approver is mailed their decisions file through the sandbox's SMTP server.
recert_dir="$DEMO_DIR/recertify"
step "aupctl access recertify start --system sims --system target_tracker --due today --out $recert_dir --yes"
aupctl access recertify start --system sims --system target_tracker --due "$(date +%F)" --out "$recert_dir" --yes \
  || echo "(exit $?: not every approver could be mailed: \`aupctl notify --yes\` sends the rest)"
step "ls $recert_dir   # one decisions file per approver"
ls "$recert_dir"
step "ls $DEMO_DIR/mail   # the letters the SMTP server took: one per approver, their file attached"
python3 - "$DEMO_DIR/mail" <<'PY'
import email, email.policy, pathlib, sys
for path in sorted(pathlib.Path(sys.argv[1]).glob("*.eml")):
    msg = email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
    files = ", ".join(p.get_filename() for p in msg.iter_attachments())
    print(f"{path.name}  to {msg['To']}  \"{msg['Subject']}\"  attached: {files or 'nothing'}")
PY

step "# the headteacher fills in her file: keep the first SIMS member, remove the second, the rest left blank"
head_file=$(ls "$recert_dir"/*mrs-a-patel*.csv)
python3 - "$head_file" "$DEMO_DIR/returned.csv" <<'PY'
import csv, sys
with open(sys.argv[1], encoding="utf-8-sig", newline="") as fh:
    rows = list(csv.DictReader(fh))
sims = [r for r in rows if r["system"] == "sims" and not r["via"]]
sims[0]["decision"], sims[0]["note"] = "keep", "still the data lead"
sims[1]["decision"], sims[1]["note"] = "remove", "no longer needs SIMS"
with open(sys.argv[2], "w", encoding="utf-8", newline="") as fh:
    w = csv.DictWriter(fh, fieldnames=list(rows[0]))
    w.writeheader()
    w.writerows(rows)
print(f"keep {sims[0]['username']}, remove {sims[1]['username']}")
PY
step "aupctl access recertify apply returned.csv --yes"
aupctl access recertify apply "$DEMO_DIR/returned.csv" --yes
step "aupctl access recertify apply returned.csv --yes   # the same file again: nothing to do"
aupctl access recertify apply "$DEMO_DIR/returned.csv" --yes
step "# a row for someone the campaign never asked about: refused, nothing changed"
printf 'system,username,approver,decision\nsims,nobody-here,Mrs A Patel,remove\n' > "$DEMO_DIR/bad-decisions.csv"
aupctl access recertify apply "$DEMO_DIR/bad-decisions.csv" --yes || echo "(exit $?: refused, nothing changed)"
step "aupctl access recertify status"
aupctl access recertify status
step "aupctl access recertify close --yes   # the due date: what nobody decided is reported and kept"
aupctl access recertify close --yes | tail -n 3 || echo "(exit $?: members nobody decided about, kept and listed)"

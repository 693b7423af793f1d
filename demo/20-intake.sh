# The September intake: new staff from the office's CSV ($DEMO_DIR/intake.csv, written by the sandbox).
creds="$DEMO_DIR/september-credentials.csv"
rm -f "$creds"

step "head -n 4 $DEMO_DIR/intake.csv   # as the office exported it"
head -n 4 "$DEMO_DIR/intake.csv"

step "aupctl staff import $DEMO_DIR/intake.csv --dry-run   # the exact plan; nothing changes"
aupctl staff import "$DEMO_DIR/intake.csv" --dry-run

step "aupctl staff import $DEMO_DIR/intake.csv --yes   # no --credentials-out: refused (exit 2), nothing changed"
aupctl staff import "$DEMO_DIR/intake.csv" --yes || echo "(exit $?: refused, nothing changed)"

step "aupctl staff import $DEMO_DIR/intake.csv --credentials-out $creds --yes"
aupctl staff import "$DEMO_DIR/intake.csv" --credentials-out "$creds" --yes

step "ls -l $creds   # readable only by you; the passwords are nowhere else"
ls -l "$creds"
step "cut -d, -f1,3,5 $creds | sed -n 1,4p   # who to hand a password to (the passwords stay in the file)"
cut -d, -f1,3,5 "$creds" | sed -n '1,4p'

step "aupctl access list sims | sed -n 1,6p   # their SIMS access waits for a signed AUP"
aupctl access list sims | sed -n '1,6p'

step "aupctl aup sign zmartin --yes   # Zoé signs the AUP: her waiting grants are applied"
aupctl aup sign zmartin --yes

step "aupctl staff import $DEMO_DIR/intake.csv --yes   # the same file again: nothing to do"
aupctl staff import "$DEMO_DIR/intake.csv" --yes

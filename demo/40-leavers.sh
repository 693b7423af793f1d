# Staff leavers (policy 4.2, 9.2, 1.4, 7.2.3): withdraw, the July wave, cron, undo. docs/leavers.md.

step "aupctl leaver withdraw skhan --reason 'suspended pending investigation' --dry-run"
aupctl leaver withdraw skhan --reason "suspended pending investigation" --dry-run
step "aupctl leaver withdraw skhan --reason 'suspended pending investigation' --yes"
aupctl leaver withdraw skhan --reason "suspended pending investigation" --yes
step "aupctl staff show skhan   # disabled, no groups, in ou=Leavers, description stamped"
aupctl staff show skhan
step "aupctl tasks list --open   # by-hand systems (SAP), the laptop, the mailbox (7.2.3)"
aupctl tasks list --open
step "aupctl leaver withdraw skhan --yes   # again: nothing is done twice"
aupctl leaver withdraw skhan --yes

july=$(python3 -c 'import datetime as d; t=d.date.today(); print(d.date(t.year + 1, 7, 22))')
cat > "$DEMO_DIR/leavers-july.csv" <<CSV
username,staff_code,leaving_date,reason
pharrison,,$july,end of contract
,HB0046,$july,retirement
CSV
step "cat $DEMO_DIR/leavers-july.csv"
cat "$DEMO_DIR/leavers-july.csv"
step "aupctl leaver withdraw --from-csv $DEMO_DIR/leavers-july.csv --yes   # future dates: scheduled"
aupctl leaver withdraw --from-csv "$DEMO_DIR/leavers-july.csv" --yes
step "aupctl leaver list --scheduled"
aupctl leaver list --scheduled
step "aupctl leaver run-due --dry-run   # what cron does each morning: nothing is due today"
aupctl leaver run-due --dry-run
step "aupctl leaver cancel pharrison --yes   # HR: the contract was extended"
aupctl leaver cancel pharrison --yes

step "aupctl leaver restore skhan --credentials-out $DEMO_DIR/skhan-password.csv --yes   # the suspension is lifted"
aupctl leaver restore skhan --credentials-out "$DEMO_DIR/skhan-password.csv" --yes
step "ls -l $DEMO_DIR/skhan-password.csv   # 0600; the password is in nowhere else"
ls -l "$DEMO_DIR/skhan-password.csv"
step "aupctl staff show skhan"
aupctl staff show skhan
step "aupctl leaver list"
aupctl leaver list

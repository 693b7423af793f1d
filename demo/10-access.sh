# Access to restricted systems (policy 1.3) and AUP declarations (policy 8.1, 9.1): docs/access.md.

step "aupctl aup import $DEMO_DIR/aup-signatures.csv --yes   # the office's list of signed declarations"
aupctl aup import "$DEMO_DIR/aup-signatures.csv" --yes | tail -n 4
step "aupctl aup status --unsigned"
aupctl aup status --unsigned

step "aupctl access systems"
aupctl access systems
step "aupctl access adopt --approved-by 'Mrs A Patel (Headteacher)' --yes   # today's members become the starting record"
aupctl access adopt --approved-by "Mrs A Patel (Headteacher)" --yes | tail -n 4

step "aupctl access grant zclarke raise --approved-by 'Mrs A Patel' --reason 'Year 2 assessment lead' --yes"
aupctl access grant zclarke raise --approved-by "Mrs A Patel" --reason "Year 2 assessment lead" --yes
step "aupctl access grant wgreen sims --approved-by 'Mrs A Patel' --yes   # a teaching assistant: refused, exit 2"
aupctl access grant wgreen sims --approved-by "Mrs A Patel" --yes || echo "(exit $?: refused, nothing changed)"
step "aupctl access grant oshaw raise --approved-by 'Mrs A Patel' --yes   # no signed AUP: refused"
aupctl access grant oshaw raise --approved-by "Mrs A Patel" --yes || echo "(exit $?: refused, nothing changed)"
step "aupctl access grant skhan sap --approved-by 'Mr D Okafor' --reason 'finance officer' --yes   # SAP is managed by hand"
aupctl access grant skhan sap --approved-by "Mr D Okafor" --reason "finance officer" --yes
step "aupctl tasks list --open"
aupctl tasks list --open

step "# someone adds jsmith to 'RAISE Online Users' by hand, outside aupctl"
python3 - <<'PY'
import ldap3
from aupctl.config import load
from aupctl.directory import open_directory

cfg = load()
d = open_directory(cfg)
acct = d.flavour.find_user(d, "jsmith")
d.conn.modify(cfg.group_dn("RAISE Online Users"), {"member": [(ldap3.MODIFY_ADD, [acct.dn])]})
print(d.conn.result["description"])
PY

step "aupctl access review   # exit 1: findings"
aupctl access review || echo "(exit $?: findings)"
step "aupctl access review --fix --yes"
aupctl access review --fix --yes || echo "(exit $?: the findings above, now fixed)"
step "aupctl access list raise"
aupctl access list raise

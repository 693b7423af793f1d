# The domain's own settings and admin accounts (policy 6.2, 6.1): docs/domain.md.

step "aupctl domain audit   # password policy against Cyber Essentials, the admin accounts (exit 1: findings)"
aupctl domain audit || true

# Someone gains admin rights between two runs: a teacher is put in IT Admins (a privileged group in the config).
admin_member() {  # add|remove USERNAME: as anyone with write access to the group would, straight over LDAP
  python3 - "$DEMO_DIR" "$1" "$2" <<'PY'
import sys
from pathlib import Path
import ldap3
from aupctl import sandbox as sb
from aupctl.sandbox import school as hb
info = sb.info_from(Path(sys.argv[1]))
group = f"cn={hb.IT_ADMINS},ou=Groups,{info.base_dn}"
op = ldap3.MODIFY_ADD if sys.argv[2] == "add" else ldap3.MODIFY_DELETE
conn = info.connect()
assert conn.modify(group, {"member": [(op, [sb.person_dn(sys.argv[3], info.flavour, info.layout)])]}), conn.result
PY
}
teacher=$(python3 -c 'from aupctl.sandbox import school as hb; print(hb.school().staff[0].username)')
admin_member add "$teacher"
step "aupctl --format json domain audit   # after $teacher was put in IT Admins: the count and who was added"
{ aupctl --format json domain audit || true; } | python3 -c '
import json, sys
doc = json.load(sys.stdin)   # the JSON envelope (docs/output.md)
count = doc["data"]["admin_count"]
print(f"admin accounts: {count['"'"'previous'"'"']} at the last run, {count['"'"'now'"'"']} now; added: {count['"'"'added'"'"']}")
for f in doc["findings"]:
    if f["check"] == "admin-accounts-added":
        print(f["severity"], f["check"], f["detail"][:110] + "...")'
admin_member remove "$teacher"

# Joiners, movers and leavers from the MIS (policy 1.1, 1.3, 4.2, 9.2): docs/mis-sync.md.
# The sandbox school's staff as a SIMS staff report would export them, with one of each kind of change.
export_csv="$DEMO_DIR/mis-staff.csv"
sync_creds="$DEMO_DIR/mis-new-staff.csv"
rm -f "$sync_creds"
python3 - "$export_csv" <<'PY'
import csv, datetime as dt, sys, zlib
from aupctl.config import load
from aupctl.directory import open_directory
from aupctl.eligibility import is_leaver
from aupctl.records.roles import recorded_roles
from aupctl.roles import RoleResolver
from aupctl.staff.sync import PROFILES
from aupctl.state import open_state

cfg = load()
d = open_directory(cfg)
st = open_state(cfg.state.path)
resolve = RoleResolver(cfg, recorded_roles(st))
staff = []
for a in d.flavour.iter_accounts(d, base=cfg.directory.base_dn, with_groups=True):
    role = resolve(a).role
    if role and role != "governor" and not is_leaver(cfg, a) and not a.disabled and a.given_name and a.surname:
        staff.append((a, role))
staff.sort(key=lambda x: x[0].username)
today = dt.date.today()
h = PROFILES["sims"]
rows = []
teachers = [a for a, r in staff if r == "teacher"]
tas = [a for a, r in staff if r == "ta"]
mover, married, future, past, missing = teachers[0], teachers[1], teachers[2], tas[0], tas[1]
for a, role in staff:
    if a.dn == missing.dn:
        continue  # not in the MIS: listed, never disabled
    r = {h["person_id"]: str(100000 + zlib.crc32(a.username.encode()) % 900000), h["legal_first"]: a.given_name, h["legal_last"]: a.surname,
         h["staff_code"]: a.staff_code, h["email"]: a.email, h["role"]: role}
    if a.dn == mover.dn:
        r[h["role"]] = "Office Manager"
    if a.dn == married.dn:
        r[h["legal_last"]] = "Fairweather"
        r[h["email"]] = ""
    if a.dn == future.dn:
        r[h["end_date"]] = (today + dt.timedelta(days=40)).strftime("%d/%m/%Y")
    if a.dn == past.dn:
        r[h["end_date"]] = (today - dt.timedelta(days=1)).strftime("%d/%m/%Y")
    rows.append(r)
rows.append({h["person_id"]: "19001", h["legal_first"]: "Imogen", h["legal_last"]: "Achterberg",
             h["role"]: "Class Teacher", h["start_date"]: (today + dt.timedelta(days=5)).strftime("%d/%m/%Y")})
rows.append({h["person_id"]: "19002", h["legal_first"]: "Tomasz", h["legal_last"]: "Wiśniewski",
             h["role"]: "Class Teacher", h["start_date"]: (today + dt.timedelta(days=70)).strftime("%d/%m/%Y")})
with open(sys.argv[1], "w", encoding="utf-8", newline="") as fh:
    w = csv.DictWriter(fh, fieldnames=list(h.values()))
    w.writeheader()
    w.writerows(rows)
print(f"{len(rows)} staff; mover {mover.username}, marriage {married.username}, leavers {future.username} "
      f"(future) and {past.username} (past), missing {missing.username}")
PY
cat >> "$AUPCTL_CONFIG" <<'TOML'

[mis]
profile = "sims"
max_leavers = 0.10
ignore = ["aupctl*", "svc-*", "admin*", "Administrator", "Guest", "krbtgt"]

[mis.roles]
"*Teacher*" = "teacher"
"Office*" = "office"
TOML

step "aupctl staff sync $export_csv --dry-run   # the plan: joiners, movers, leavers, not in the MIS"
aupctl staff sync "$export_csv" --dry-run || echo "(exit $?: something waits for a person)"
step "aupctl staff sync $export_csv --credentials-out $sync_creds --yes"
aupctl staff sync "$export_csv" --credentials-out "$sync_creds" --yes || echo "(exit $?: something waits for a person)"
step "aupctl staff sync $export_csv --yes   # the same export again: nothing to do"
aupctl staff sync "$export_csv" --yes || echo "(exit $?: the not-in-MIS list still waits for a person)"
step "head -n 40 $export_csv > truncated.csv; aupctl staff sync truncated.csv --yes   # a truncated export: refused"
head -n 40 "$export_csv" > "$DEMO_DIR/truncated.csv"
aupctl staff sync "$DEMO_DIR/truncated.csv" --yes || echo "(exit $?: refused, nothing changed)"

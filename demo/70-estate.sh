# The estate (policy 1.4, 6.7): every computer the directory knows, not only the laptops enrolled for SSH.
# docs/estate.md. A few computers are added to the sandbox first: device entries on OpenLDAP, computer
# objects on AD (as a domain join makes them: OS, version and last logon set).
python3 - "$DEMO_DIR" <<'PY'
import datetime as dt
import sys
from pathlib import Path

from ldap3 import MODIFY_REPLACE

from aupctl import sandbox as sb
from aupctl.directory.values import to_filetime

info = sb.info_from(Path(sys.argv[1]))
conn = info.connect(info.admin_dn, info.admin_password)
now = dt.datetime.now(dt.UTC)
computers = [  # name, OS, version, days since last logon
    ("HB-LT-0042", "Windows 11 Education", "10.0 (26100)", 1),
    ("HB-LT-0043", "Windows 10 Pro", "10.0 (19045)", 3),
    ("HB-OFFICE-01", "Windows 11 Education", "10.0 (26200)", 150),
    ("HB-SRV-01", "Windows Server 2012 R2 Standard", "6.3 (9600)", 0),
    ("HB-MAC-ART1", "macOS", "15.7.2", 8),
]
if info.flavour == "ad":
    for name, os_name, version, days in computers:
        dn = f"CN={name},CN=Computers,{info.base_dn}"
        conn.add(dn, ["computer"], {"sAMAccountName": f"{name}$", "userAccountControl": "4096"})
        conn.modify(dn, {
            "operatingSystem": [(MODIFY_REPLACE, [os_name])],
            "operatingSystemVersion": [(MODIFY_REPLACE, [version])],
            "lastLogonTimestamp": [(MODIFY_REPLACE, [str(to_filetime(now - dt.timedelta(days=days)))])],
        })
else:  # OpenLDAP has no last-logon attribute: the OS (and version) go in description, the default mapping
    conn.add(f"ou=Devices,{info.base_dn}", ["organizationalUnit"], {"ou": "Devices"})
    for name, os_name, version, _ in computers:
        conn.add(f"cn={name},ou=Devices,{info.base_dn}", ["device"], {"cn": name, "description": f"{os_name} {version}"})
conn.unbind()
PY
step "aupctl estate list"
aupctl estate list
step "aupctl estate list --os 'windows 1*'"
aupctl estate list --os 'windows 1*'
step "aupctl estate audit --no-probe   # what cron runs weekly; exit 1 on findings"
aupctl estate audit --no-probe || true

# aupctl Linux probe: read-only; prints sections between "@@aupctl" markers for linux.py to parse.
# Runs as the aupctl account with /bin/sh; every part is optional and a missing tool prints nothing.
export LC_ALL=C LANG=C
echo "@@aupctl-probe linux 1"
sec() { echo "@@section $1"; }
sec hostname; hostname 2>/dev/null || uname -n
sec serial; cat /sys/class/dmi/id/product_serial 2>/dev/null
sec os-release; cat /etc/os-release 2>/dev/null || cat /usr/lib/os-release 2>/dev/null
sec kernel; uname -r
if command -v dpkg-query >/dev/null 2>&1; then
  sec packages-dpkg; dpkg-query -W -f='${db:Status-Abbrev}\t${Package}\t${Version}\n' 2>/dev/null
  sec manual; apt-mark showmanual 2>/dev/null
  sec last-update; grep -h ' upgrade ' /var/log/dpkg.log 2>/dev/null | tail -n 1
  sec status-mtime; date -u -r /var/lib/dpkg/status +%Y-%m-%dT%H:%M:%SZ 2>/dev/null
  sec pending-apt; apt-get -s -o Debug::NoLocking=1 upgrade 2>/dev/null | grep '^Inst '
elif command -v rpm >/dev/null 2>&1; then
  sec packages-rpm; rpm -qa --qf '%{NAME}\t%{VERSION}-%{RELEASE}\n' 2>/dev/null
  sec last-update; rpm -qa --last 2>/dev/null | head -n 1
  if command -v dnf >/dev/null 2>&1; then
    sec pending-dnf; dnf -q -C check-update 2>/dev/null; echo "@@exit $?"
    sec pending-dnf-security; dnf -q -C updateinfo list --security 2>/dev/null
  fi
fi
sec clamav-version; clamscan --version 2>/dev/null || clamdscan --version 2>/dev/null || freshclam --version 2>/dev/null
sec clamav-db
for f in /var/lib/clamav/daily.cld /var/lib/clamav/daily.cvd; do
  [ -r "$f" ] && { echo "$f"; head -c 512 "$f" | tr -d '\000' | head -n 1; echo; break; }
done
sec freshclam-log; grep -h -E 'daily\.(cld|cvd)' /var/log/clamav/freshclam.log 2>/dev/null | tail -n 1
sec clamav-running; for p in clamd clamonacc; do pgrep -x "$p" >/dev/null 2>&1 && echo "$p"; done
sec root-source; findmnt -n -o SOURCE,FSTYPE / 2>/dev/null
sec lsblk; lsblk -J -o NAME,TYPE,FSTYPE,MOUNTPOINT 2>/dev/null
echo "@@end"

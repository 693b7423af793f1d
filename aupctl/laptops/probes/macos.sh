# aupctl macOS probe: read-only; prints sections between "@@aupctl" markers for macos.py to parse.
# Runs as the aupctl account with /bin/sh. softwareupdate -l asks Apple's servers and can take a minute.
export LC_ALL=C LANG=C
echo "@@aupctl-probe macos 1"
sec() { echo "@@section $1"; }
sec hostname; scutil --get ComputerName 2>/dev/null || hostname
sec sw_vers; sw_vers
sec softwareupdate; softwareupdate -l 2>&1
sec fdesetup; fdesetup status 2>&1
XP=/Library/Apple/System/Library/CoreServices/XProtect.bundle
[ -d "$XP" ] || XP=/System/Library/CoreServices/XProtect.bundle
sec xprotect-version; defaults read "$XP/Contents/Info.plist" CFBundleShortVersionString 2>/dev/null
sec xprotect-date; stat -f %Sm -t %Y-%m-%dT%H:%M:%S "$XP/Contents/Info.plist" 2>/dev/null
sec system_profiler; system_profiler -json SPHardwareDataType SPApplicationsDataType SPInstallHistoryDataType 2>/dev/null
echo "@@end"

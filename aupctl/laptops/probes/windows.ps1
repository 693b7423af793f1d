# aupctl Windows probe: read-only; prints ONE line of JSON for windows.py to parse.
# Run by aupctl through OpenSSH as: powershell -NoProfile -NonInteractive -Command - (script on stdin).
# To capture for tests: powershell -NoProfile -File windows.ps1 > capture.json
$ErrorActionPreference = 'Stop'
$ProgressPreference = 'SilentlyContinue'
$out = [ordered]@{ probe = 'aupctl-windows'; version = 1; errors = [ordered]@{} }
function When($d) { if ($d) { ([datetime]$d).ToUniversalTime().ToString('yyyy-MM-ddTHH:mm:ssZ') } else { $null } }

try {
  $os = Get-CimInstance Win32_OperatingSystem
  $out.os = [ordered]@{ caption = $os.Caption; version = $os.Version; build = $os.BuildNumber;
    hostname = $os.CSName; installed = (When $os.InstallDate); last_boot = (When $os.LastBootUpTime) }
} catch { $out.errors.os = "$_" }
try { $out.serial = (Get-CimInstance Win32_BIOS).SerialNumber } catch { $out.errors.bios = "$_" }
try {
  $out.hotfixes = @(Get-HotFix | ForEach-Object { [ordered]@{ id = $_.HotFixID; description = $_.Description;
    installed_on = (When $_.InstalledOn) } })
} catch { $out.errors.hotfixes = "$_" }
try {
  $mp = Get-MpComputerStatus
  $out.defender = [ordered]@{ product_version = $mp.AMProductVersion; running_mode = "$($mp.AMRunningMode)";
    antivirus_enabled = [bool]$mp.AntivirusEnabled; realtime = [bool]$mp.RealTimeProtectionEnabled;
    signature_version = $mp.AntivirusSignatureVersion; signature_updated = (When $mp.AntivirusSignatureLastUpdated);
    signature_age_days = $mp.AntivirusSignatureAge }
} catch { $out.errors.defender = "$_" }
try {  # third-party antivirus registered with Security Center (client editions only)
  $out.av_products = @(Get-CimInstance -Namespace root/SecurityCenter2 -ClassName AntiVirusProduct |
    ForEach-Object { [ordered]@{ name = $_.displayName; state = [int]$_.productState; updated = $_.timestamp } })
} catch { $out.errors.av_products = "$_" }
try {
  $out.bitlocker = @(Get-BitLockerVolume | ForEach-Object { [ordered]@{ mount = $_.MountPoint;
    type = "$($_.VolumeType)"; status = "$($_.VolumeStatus)"; protection = "$($_.ProtectionStatus)";
    percent = $_.EncryptionPercentage; method = "$($_.EncryptionMethod)" } })
} catch { $out.errors.bitlocker = "$_" }
$out.system_drive = $env:SystemDrive
try {
  $keys = 'HKLM:\SOFTWARE\Microsoft\Windows\CurrentVersion\Uninstall\*',
          'HKLM:\SOFTWARE\WOW6432Node\Microsoft\Windows\CurrentVersion\Uninstall\*'
  $out.software = @(Get-ItemProperty -Path $keys -ErrorAction SilentlyContinue |
    Where-Object { $_.DisplayName } | ForEach-Object { [ordered]@{ name = $_.DisplayName;
      version = "$($_.DisplayVersion)"; publisher = "$($_.Publisher)"; system = ($_.SystemComponent -eq 1) } })
} catch { $out.errors.software = "$_" }
try {
  $searcher = (New-Object -ComObject Microsoft.Update.Session).CreateUpdateSearcher()
  $found = $searcher.Search("IsInstalled=0 and IsHidden=0 and Type='Software'").Updates
  $titles = @(); $security = 0
  foreach ($u in $found) {
    $titles += $u.Title
    if ($u.MsrcSeverity -or ($u.Categories | Where-Object { $_.Name -eq 'Security Updates' })) { $security++ }
  }
  $out.pending = [ordered]@{ count = $found.Count; security = $security; titles = $titles }
} catch { $out.errors.pending = "$_" }
# ASCII only (\uXXXX for the rest), whatever the console's code page: program names like "Zoë" survive.
$json = $out | ConvertTo-Json -Depth 5 -Compress
[regex]::Replace($json, '[^\x00-\x7F]', { param($m) '\u{0:x4}' -f [int][char]$m.Value })

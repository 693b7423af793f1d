"""docs/report-screenshot.png: the sandbox school's termly report, as a governor sees it (make docs).

Starts a throwaway OpenLDAP sandbox school, runs a few of the demo's jobs on it (AUP signatures, adopt,
a grant, an access review, the password, domain, estate and laptop audits, a leaver, evidence), writes the report and screenshots its
first page with headless Chromium. Without slapd or Chromium it says so and changes nothing (exit 0), so
`make docs` works on any machine.
"""

from __future__ import annotations

import datetime as dt
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "docs" / "report-screenshot.png"
sys.path.insert(0, str(ROOT))


def main() -> int:
    from aupctl.report.render import browser_args, find_browser

    try:
        browser = find_browser(None)
    except Exception as exc:  # noqa: BLE001 - any reason to skip is said and skipped
        print(f"skipping {OUT.relative_to(ROOT)}: {exc}")
        return 0
    if shutil.which("slapd") is None and not Path("/usr/sbin/slapd").exists():
        print(f"skipping {OUT.relative_to(ROOT)}: no slapd for the sandbox school (apt-get install slapd)")
        return 0
    from aupctl import sandbox as sb

    with tempfile.TemporaryDirectory(prefix="aupctl-docs-report-") as tmp:
        info = sb.start("openldap", Path(tmp) / "sandbox", detach=False)
        try:
            env = {**os.environ, "AUPCTL_CONFIG": str(info.config_path), "PYTHONPATH": str(ROOT)}

            def aupctl(*args: str) -> None:
                done = subprocess.run([sys.executable, "-m", "aupctl.commands", *args], env=env,
                                      capture_output=True, text=True, timeout=300)  # fmt: skip
                if done.returncode not in (0, 1):
                    raise SystemExit(f"aupctl {' '.join(args)} failed ({done.returncode}): {done.stderr}")

            today = dt.date.today().isoformat()
            aupctl("aup", "import", str(info.dir / "aup-signatures.csv"), "--yes")
            aupctl("access", "adopt", "--approved-by", "Mrs A Patel (Headteacher)", "--yes")
            aupctl("access", "grant", "zclarke", "raise", "--approved-by", "Mrs A Patel", "--yes")
            aupctl("access", "review")
            aupctl("password", "audit", "--no-hash-check")
            aupctl("domain", "audit")
            aupctl("estate", "audit", "--no-probe")
            aupctl("laptop", "audit", "--no-probe")
            aupctl("leaver", "withdraw", "skhan", "--reason", "left", "--yes")
            aupctl("evidence", "record", "backup-tested", "--on", today, "--note", "restored SIMS", "--yes")
            aupctl("evidence", "record", "cyber-training", "--on", today, "--note", "INSET day", "--yes")
            html = Path(tmp) / "report.html"
            aupctl("report", "--out", str(html))
            args = [*browser_args(browser, str(Path(tmp) / "profile")), f"--screenshot={OUT}",
                    "--window-size=900,1600", "--hide-scrollbars", html.as_uri()]  # fmt: skip
            subprocess.run(args, capture_output=True, timeout=120, check=True)
        finally:
            info.stop()
    print(f"wrote {OUT.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

# The termly report for the head teacher and governors (docs/report.md): first the evidence no tool can
# check, then the report of this term as one HTML page (and a PDF, when Chromium is installed).
today=$(date +%F)
step "aupctl evidence record backup-tested --on $today --note 'restored SIMS to the spare server' --yes"
aupctl evidence record backup-tested --on "$today" --note "restored SIMS to the spare server" --yes
step "aupctl evidence record cyber-training --on $today --note 'NCSC training at the INSET day' --yes"
aupctl evidence record cyber-training --on "$today" --note "NCSC training at the INSET day" --yes
step "aupctl evidence list"
aupctl evidence list
report_args=(--out "$DEMO_DIR/report.html")
if command -v chromium >/dev/null || command -v chromium-browser >/dev/null || command -v google-chrome >/dev/null; then
  report_args+=(--pdf "$DEMO_DIR/report.pdf")
fi
step "aupctl report ${report_args[*]}"
aupctl report "${report_args[@]}"
printf '\nThe termly report for the head teacher and governors: %s\n' "$DEMO_DIR/report.html"
if [ -f "$DEMO_DIR/report.pdf" ]; then printf 'and as a PDF: %s\n' "$DEMO_DIR/report.pdf"; fi

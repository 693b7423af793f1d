# Start a fresh sandbox school (OpenLDAP; `DEMO_FLAVOUR=ad make demo` for Samba AD, as root).
aupctl sandbox stop --dir "$DEMO_DIR" >/dev/null 2>&1 || true
rm -rf "$DEMO_DIR" && mkdir -p "$DEMO_DIR"
step "aupctl sandbox start --flavour ${DEMO_FLAVOUR:-openldap} --dir $DEMO_DIR"
aupctl sandbox start --flavour "${DEMO_FLAVOUR:-openldap}" --dir "$DEMO_DIR"
step "aupctl config check"
aupctl config check
step "aupctl doctor"
aupctl doctor
step "aupctl staff list --role office"
aupctl staff list --role office

# The end state: the audit log is whole, the directory still answers, and the school is all there.
step "aupctl log checkpoint"
aupctl log checkpoint
step "aupctl log verify"
aupctl log verify
step "aupctl doctor"
aupctl doctor
step "aupctl staff list"
aupctl staff list

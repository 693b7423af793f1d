# The end state: the directory still answers and the school is all there.
step "aupctl doctor"
aupctl doctor
step "aupctl staff list"
aupctl staff list
step "aupctl log verify"
aupctl log verify

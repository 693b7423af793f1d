# make demo: install what is needed, start a sandbox school directory, run aupctl's jobs on it.
# make test: install what is needed and run the whole test suite (real slapd, Samba AD DC, sshd).
PYTHON ?= python3
DEMO_DIR ?= $(CURDIR)/demo-run

.PHONY: install demo test lint docs bench clean

install:
	@bash scripts/install-deps.sh

demo: install
	@bash demo/run.sh "$(DEMO_DIR)"

test: install
	$(PYTHON) -m pytest -q -p no:cacheprovider

lint:
	ruff check aupctl commands tests bench

docs:
	$(PYTHON) scripts/gen_reference.py

clean:
	-aupctl sandbox stop --dir "$(DEMO_DIR)" 2>/dev/null
	rm -rf "$(DEMO_DIR)" build dist *.egg-info

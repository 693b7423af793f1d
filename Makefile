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

# make lint: ruff, mypy for Linux and for Windows (the CLI must import on both), and the import
# contracts in .importlinter (the layers of docs/architecture.md; no import circles). Each step runs
# even if one before failed, so one run names every problem; the target fails if any did.
lint:
	@fail=0; \
	echo "== ruff"; ruff check aupctl commands tests bench || fail=1; \
	echo "== mypy --platform linux"; $(PYTHON) -m mypy --platform linux || fail=1; \
	echo "== mypy --platform win32"; $(PYTHON) -m mypy --platform win32 || fail=1; \
	echo "== lint-imports (.importlinter)"; lint-imports || fail=1; \
	if [ $$fail -ne 0 ]; then echo "make lint: FAILED (see above)"; exit 1; fi; echo "make lint: clean"

docs:
	$(PYTHON) scripts/gen_reference.py
	$(PYTHON) scripts/gen_manpage.py
	$(PYTHON) scripts/gen_report_screenshot.py

clean:
	-aupctl sandbox stop --dir "$(DEMO_DIR)" 2>/dev/null
	rm -rf "$(DEMO_DIR)" build dist *.egg-info

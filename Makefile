# Sabha: one command to set up, one to run the demo, one to run the tests.
#   make demo   set up (Label Studio too) and show the three stories: two tiny models evaluated
#               on the starter benchmarks (the leaderboard), Label Studio with a sample project
#               and a demo annotator, two demo volunteers' pools running a job over HTTP
#   make test   set up, run the whole test suite (what CI runs)
#   make test-fast  everything but the tests that start real vLLM engines or Label Studio

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.sabha-setup-stamp
# Installs are pinned: every package `make setup` and `make labelstudio` install is
# in these locks (pip constraints; `make lock` refreshes them). pyproject.toml keeps
# open ranges for people who install sabha as a library.
PIP_VERSION := 26.3
LOCK := requirements/cpu.lock
LS_LOCK := requirements/labelstudio.lock

.PHONY: setup labelstudio peer browser demo test test-fast coverage lint typecheck lock translations clean

setup: $(STAMP)

# Re-runs only when pyproject.toml or the lock changes, so a second `make demo` is fast.
$(STAMP): pyproject.toml $(LOCK)
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet "pip==$(PIP_VERSION)"
	$(BIN)/python -m pip install --quiet -c $(LOCK) -e ".[cpu,dev]"
	@# With CPU torch these break `transformers` imports; vLLM does not need them.
	$(BIN)/python -m pip uninstall --quiet -y torchvision torchaudio torchcodec
	@touch $(STAMP)

# Label Studio pins versions that conflict with vLLM's, so the server gets
# its own virtualenv; `sabha labelstudio start` runs it from there. The stamp
# names the version, so changing LABEL_STUDIO_VERSION reinstalls.
LABEL_STUDIO_VERSION := 1.23.2
LS_VENV ?= .venv-labelstudio
LS_STAMP := $(LS_VENV)/.sabha-labelstudio-$(LABEL_STUDIO_VERSION)

labelstudio: $(LS_STAMP)

$(LS_STAMP): $(LS_LOCK)
	@test -x $(LS_VENV)/bin/python || $(PYTHON) -m venv $(LS_VENV)
	$(LS_VENV)/bin/python -m pip install --quiet "pip==$(PIP_VERSION)"
	$(LS_VENV)/bin/python -m pip install --quiet -c $(LS_LOCK) "label-studio==$(LABEL_STUDIO_VERSION)"
	@rm -f $(LS_VENV)/.sabha-labelstudio-*
	@touch $(LS_STAMP)

# lm-evaluation-harness, the peer that benchmarks/throughput_vs_raw_vllm.py compares
# with: its own virtualenv (no pip or setuptools of its own) that sees .venv's packages
# (vLLM, torch, transformers, datasets, sacrebleu) through a .pth file, so lm-eval's
# own extra dependencies go there and .venv stays exactly as `make setup` left it.
PEER_VENV ?= .venv-peer
LM_EVAL_VERSION := 0.4.13
PEER_STAMP := $(PEER_VENV)/.sabha-peer-$(LM_EVAL_VERSION)

peer: $(PEER_STAMP)

$(PEER_STAMP): $(STAMP)
	rm -rf $(PEER_VENV)
	$$($(BIN)/python -c "import sys; print(sys._base_executable)") -m venv --without-pip $(PEER_VENV)
	$(BIN)/python -c "import site, sysconfig, pathlib; \
	  pathlib.Path('$(PEER_VENV)/lib/python%d.%d/site-packages/sabha-venv.pth' % __import__('sys').version_info[:2]) \
	  .write_text('import site; site.addsitedir(%r)\n' % sysconfig.get_paths()['purelib'])"
	$(BIN)/python -m pip --python $(PEER_VENV)/bin/python install --quiet "lm-eval==$(LM_EVAL_VERSION)"
	@touch $(PEER_STAMP)

# The browser test (pytest -m browser) drives Debian's chromium through playwright
# (the `dev` extra); fonts-noto-core draws Devanagari, Tamil and the other scripts.
# Installs only what is missing (sudo when not root), so a second run takes no time.
BROWSER_PACKAGES := chromium fonts-noto-core

browser:
	@missing=""; for package in $(BROWSER_PACKAGES); do \
		dpkg-query -W -f='$${Status}' $$package 2>/dev/null | grep -q "ok installed" \
			|| missing="$$missing $$package"; \
	done; \
	if [ -n "$$missing" ]; then \
		sudo=""; [ "$$(id -u)" = 0 ] || sudo=sudo; \
		echo "Installing$$missing for the browser test"; \
		$$sudo apt-get install -y --no-install-recommends $$missing \
			|| { $$sudo apt-get update && $$sudo apt-get install -y --no-install-recommends $$missing; }; \
	fi

# Label Studio is installed first, but a failed install (no network, say) does not stop the
# demo: it says so and shows the other two stories.
demo: setup
	@$(MAKE) --no-print-directory labelstudio \
		|| echo "Label Studio could not be installed (see above); the demo goes on without it."
	$(BIN)/sabha demo

# The annotation tests run a real Label Studio server; one test drives a real browser.
test: setup labelstudio browser
	$(BIN)/python -m pytest

# Minutes instead of half an hour: no real vLLM engine, no Label Studio server
# (PostgreSQL, gunicorn and the stand-in engine stay in).
test-fast: setup
	$(BIN)/python -m pytest -m "not vllm and not labelstudio" -n auto --dist loadfile

# The whole suite with line coverage of the sabha package (in-process code).
coverage: setup labelstudio browser
	$(BIN)/python -m pytest --cov=sabha --cov-report=term:skip-covered

lint: setup typecheck
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

# mypy cannot follow the editable install's folder mapping, so it checks a
# plain (non-editable) install of the package in build/typecheck.
typecheck: setup
	rm -rf build/typecheck
	$(BIN)/python -m pip install --quiet --no-deps --no-build-isolation --target build/typecheck .
	cd build/typecheck && ../../$(BIN)/mypy -p sabha

# Refresh the locks: resolve the open ranges afresh in scratch virtualenvs, write
# what they hold to requirements/*.lock, then reinstall from them and run the fast tier.
LOCK_HEADER := \# Generated by `make lock` from pyproject.toml; `make setup` installs exactly these.
lock:
	rm -rf build/lock build/lock-labelstudio
	$(PYTHON) -m venv build/lock
	build/lock/bin/python -m pip install --quiet "pip==$(PIP_VERSION)"
	build/lock/bin/python -m pip install --quiet -e ".[cpu,dev]"
	build/lock/bin/python -m pip uninstall --quiet -y torchvision torchaudio torchcodec
	(echo "$(LOCK_HEADER)"; build/lock/bin/python -m pip freeze --exclude-editable) > $(LOCK)
	$(PYTHON) -m venv build/lock-labelstudio
	build/lock-labelstudio/bin/python -m pip install --quiet "pip==$(PIP_VERSION)"
	build/lock-labelstudio/bin/python -m pip install --quiet "label-studio==$(LABEL_STUDIO_VERSION)"
	(echo "$(LOCK_HEADER)"; build/lock-labelstudio/bin/python -m pip freeze) > $(LS_LOCK)
	rm -rf build/lock build/lock-labelstudio
	$(MAKE) test-fast

# Refresh the interface's message catalog from the templates and the web code, then each
# language's catalog (new strings arrive untranslated: tests/test_translations.py lists them).
translations: setup
	$(BIN)/python -m sabha.platform.web.catalogs

clean:
	rm -rf $(VENV) $(LS_VENV) build *.egg-info .pytest_cache .ruff_cache

# Sabha: one command to set up, one to run the demo, one to run the tests.
#   make demo   set up, evaluate two tiny models on the starter benchmarks, serve the leaderboard
#               (and, once `make labelstudio` ran, Label Studio with a sample project)
#   make test   set up, run the whole test suite (what CI runs)
#   make test-fast  everything but the tests that start real vLLM engines or Label Studio

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.sabha-setup-stamp

.PHONY: setup labelstudio browser demo test test-fast coverage lint typecheck clean

setup: $(STAMP)

# Re-runs only when pyproject.toml changes, so a second `make demo` is fast.
$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[cpu,dev]"
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

$(LS_STAMP):
	@test -x $(LS_VENV)/bin/python || $(PYTHON) -m venv $(LS_VENV)
	$(LS_VENV)/bin/python -m pip install --quiet --upgrade pip
	$(LS_VENV)/bin/python -m pip install --quiet "label-studio==$(LABEL_STUDIO_VERSION)"
	@rm -f $(LS_VENV)/.sabha-labelstudio-*
	@touch $(LS_STAMP)

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

demo: setup
	$(BIN)/sabha demo

# The annotation tests run a real Label Studio server; one test drives a real browser.
test: setup labelstudio browser
	$(BIN)/python -m pytest

# Minutes instead of half an hour: no real vLLM engine, no Label Studio server
# (PostgreSQL, gunicorn and the stand-in engine stay in).
test-fast: setup
	$(BIN)/python -m pytest -m "not vllm and not labelstudio"

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

clean:
	rm -rf $(VENV) $(LS_VENV) build *.egg-info .pytest_cache .ruff_cache

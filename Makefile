# Fresh machine: `make demo` runs the main job, `make test` runs the checks (CI calls `make test`).
VENV ?= .venv
PY := $(VENV)/bin/python
# torch first, pinned: the CPU build comes from a local file; an unpinned torch would pull CUDA wheels.
TORCH ?= torch==2.13.0

.PHONY: venv demo test system-tools lint typecheck pytest bench clean

venv: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q $(TORCH)
	$(PY) -m pip install -q -e '.[dev]'
	touch $@

demo: venv
	$(VENV)/bin/hificodec demo

lint: venv
	$(PY) -m ruff check src tests bench scripts

typecheck: venv
	$(PY) -m mypy

pytest: venv
	$(PY) -m pytest

# one line naming what is missing (package names as apt calls them), before anything else runs
system-tools:
	@missing=""; \
	command -v ffmpeg >/dev/null || missing="$$missing ffmpeg"; \
	command -v dpkg-deb >/dev/null || missing="$$missing dpkg"; \
	command -v $${HIFICODEC_CHROMIUM:-chromium} >/dev/null || command -v chromium-browser >/dev/null \
		|| command -v google-chrome >/dev/null || missing="$$missing chromium"; \
	if [ -n "$$missing" ]; then \
		echo "make test: missing system package(s):$$missing (apt-get install -y$$missing, or run .ci/run, which installs them)" >&2; \
		exit 1; \
	fi

test: system-tools lint typecheck pytest

bench: venv
	$(PY) bench/run_all.py

clean:
	rm -rf $(VENV) build *.egg-info src/*.egg-info

# One entry point for developers and CI: `make test` installs what is missing, then runs pytest.
# A second run on the same machine installs nothing (each step checks before it acts).

PYTHON ?= python3
VENV := .venv
# The venv is rebuilt only when pyproject.toml changes: its hash names the stamp file.
DEPS_STAMP := $(VENV)/.deps-$(shell sha256sum pyproject.toml | cut -c1-16)
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
PYTEST_ARGS ?=

.PHONY: test lint deps system-deps gears-python

test: deps
	$(VENV)/bin/pytest $(PYTEST_ARGS)

lint: $(DEPS_STAMP)
	$(VENV)/bin/ruff check loader tests recipes bench
	$(VENV)/bin/mypy

deps: $(DEPS_STAMP) gears-python

# Debian packages: redis-server for the bench, python3-venv where python3 lacks ensurepip,
# docker-compose to check docker-compose.yml (`config` needs no Docker engine).
# apt-get update runs once, and only when something is missing.
system-deps:
	@missing=""; \
	command -v redis-server >/dev/null 2>&1 || missing="$$missing redis-server"; \
	{ command -v docker-compose || docker compose version; } >/dev/null 2>&1 \
		|| missing="$$missing docker-compose"; \
	$(PYTHON) -c 'import ensurepip, venv' >/dev/null 2>&1 || missing="$$missing python3-venv"; \
	if [ -n "$$missing" ]; then \
		echo "installing Debian packages:$$missing"; \
		$(SUDO) apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq --no-install-recommends $$missing; \
	fi

$(DEPS_STAMP): | system-deps
	[ -x $(VENV)/bin/python ] || $(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --disable-pip-version-check -e '.[test]'
	rm -f $(VENV)/.deps-*
	touch $@

# The stand-in's Python 3.7 env is built here, not inside a test's timeout (reused when
# present). Also with WBLOAD_TEST_REDIS_URL: the stand-in's own tests still run.
gears-python: $(DEPS_STAMP)
	@$(VENV)/bin/python -c 'import sys; sys.path.insert(0, "tests/gears_standin"); \
		from launch import ensure_gears_python; print("stand-in python:", ensure_gears_python())'

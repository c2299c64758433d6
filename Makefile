# The two commands from the README: `make demo` and `make test`. Both set up what they need.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed-$(shell cat pyproject.toml | cksum | cut -d' ' -f1)
PYTEST_ARGS ?=

.PHONY: test demo lint venv redis proto bench clean

$(PY):
	$(PYTHON) -m venv $(VENV)

$(STAMP): $(PY) pyproject.toml
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test,dev]'
	rm -f $(VENV)/.installed-* && touch $(STAMP)

venv: $(STAMP)

# redis-server is a real peer of the rate-limit tests. Install it through apt when we can.
redis:
	@if command -v redis-server >/dev/null 2>&1; then :; \
	elif [ "$$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then \
		echo "make: installing redis-server with apt-get"; \
		(apt-get install -y -qq redis-server >/dev/null 2>&1 || \
		 (apt-get update -qq >/dev/null && apt-get install -y -qq redis-server >/dev/null)) || \
		{ echo "make: apt-get could not install redis-server"; exit 1; }; \
	else \
		echo "make: redis-server is missing and we are not root; install it (apt-get install redis-server)"; \
		echo "      or the redis tests are skipped outside CI"; \
	fi

test: venv redis
	$(PY) -m pytest $(PYTEST_ARGS)

demo: venv
	$(VENV)/bin/brix up

lint: venv
	$(VENV)/bin/ruff check .

proto: venv
	$(PY) hack/gen_proto.py

bench: venv
	@for b in hack/bench/bench_*.py; do echo "== $$b"; $(PY) $$b || exit 1; done

clean:
	rm -rf $(VENV) .pytest_cache build *.egg-info

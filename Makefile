# The two commands from the README: `make demo` and `make test`. Both set up what they need.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed-$(shell cat pyproject.toml | cksum | cut -d' ' -f1)
PYTEST_ARGS ?=

.PHONY: test demo lint venv redis promtool kube proto bench clean image

$(PY):
	$(PYTHON) -m venv $(VENV)

$(STAMP): $(PY) pyproject.toml
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test,dev]'
	rm -f $(VENV)/.installed-* && touch $(STAMP)

venv: $(STAMP)

# redis-server is a real peer of the rate-limit and KV pool tests, and the demo KVCache's membership store. Install it through apt when we can.
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

# promtool checks the /metrics names Brix makes up (tests/*/test_promtool.py). hack/promtool.sh
# uses one on PATH or builds it once with `go install` into ~/.cache/brix/promtool; without Go the
# promtool tests skip outside CI.
promtool:
	@hack/promtool.sh >/dev/null || echo "make: no promtool (and no Go toolchain to build it); its checks will skip outside CI"

# The upstream control plane (kube-apiserver, kube-controller-manager, kube-scheduler, etcd) built
# from its Go modules into ~/.cache/brix/kube/<versions>/; skipped when already built. Progress goes
# to stderr. Without Go: a failure in CI; elsewhere `brix up` falls back to --standalone and the
# tests marked `kube` skip.
kube:
	@hack/kube/build.sh >/dev/null || { [ -z "$$CI" ] && echo "make: the control plane is not built; brix up will run --standalone and kube tests will skip"; }

test: venv lint redis promtool kube
	PROMTOOL="$$(hack/promtool.sh 2>/dev/null)" $(PY) -m pytest $(PYTEST_ARGS)

# Both images of the Dockerfile (needs a Docker engine): brix-node (GPU nodes) and brix (the rest).
VERSION := $(shell sed -n 's/^version = "\(.*\)"/\1/p' pyproject.toml)
image:
	@docker info >/dev/null 2>&1 || { echo "make image: no Docker engine answers here (docker info failed); build on a machine with one"; exit 1; }
	docker build --target node -t brix-node:$(VERSION) .
	docker build --target full -t brix:$(VERSION) .

demo: venv redis kube
	$(VENV)/bin/brix up

# ruff; the import contracts in .importlinter (components independent, pure modules free of I/O,
# gateway/routing standing alone, no import cycles); mypy (pyproject.toml: normal everywhere, strict
# on the pure modules); every `type: ignore` with its code and reason. `make test` runs it first.
lint: venv
	$(VENV)/bin/ruff check .
	$(VENV)/bin/lint-imports
	$(VENV)/bin/mypy
	$(PY) hack/check_type_ignores.py

proto: venv
	$(PY) hack/gen_proto.py

bench: venv
	@for b in hack/bench/bench_*.py; do echo "== $$b"; $(PY) $$b || exit 1; done

clean:
	rm -rf $(VENV) .pytest_cache build *.egg-info

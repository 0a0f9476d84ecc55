# llmd.verify: every target sets up what it needs; `make test` is what CI runs.
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

ROOT       := $(CURDIR)
VENV       := $(ROOT)/.venv
VENV_OLD   := $(ROOT)/.venv-oldest
COLL_ROOT  := $(ROOT)/.cache/collections
COLL_DIR   := $(COLL_ROOT)/ansible_collections/llmd/verify
# ansible-test wants to run inside .../ansible_collections/llmd/verify and resolves symlinks, so it
# gets a copy of the files git would see (tracked and untracked-but-not-ignored), synced before each run.
# The copy lives outside the checkout: inside it, ansible-test would ask git and find every file ignored.
TEST_ROOT  := $(HOME)/.cache/llmd-verify-test/$(shell printf %s "$(ROOT)" | md5sum | cut -c1-12)
TEST_DIR   := $(TEST_ROOT)/ansible_collections/llmd/verify
BIN        := $(VENV)/bin
export PATH := $(BIN):$(PATH)
# kubectl keeps its discovery cache per server address; sandboxes reuse addresses, so keep ours private.
export KUBECACHEDIR := $(ROOT)/.cache/kube
export ANSIBLE_CONFIG := $(ROOT)/ansible.cfg

# Newest supported Python: 3.12 is what CI pins with ansible-core 2.21; 3.13 works too.
PYTHON_NEW = $(shell tests/tools/find-python.sh 3.12 3.13)
PYTHON_OLD = $(shell tests/tools/find-python.sh 3.11)
PY_NEW_VERSION = $(shell $(BIN)/python -c 'import sys; print("%d.%d" % sys.version_info[:2])')
SANITY_ARGS ?=
UNITS_ARGS ?=
INTEGRATION_ARGS ?=

.PHONY: help setup cluster-binaries sync-test-tree build-check setup-oldest sanity sanity-oldest units units-oldest sandbox-test integration lint test demo bench build clean

help:
	@echo "make demo   verify playbooks/verify.yml against the sandbox's simulated-accelerators scenario"
	@echo "make test   sanity (newest and oldest ansible-core), units, sandbox, integration, end to end"
	@echo "make setup | sanity | units | integration | lint | bench | build | clean"

## ---- set-up -------------------------------------------------------------------------------

$(VENV)/.stamp: tests/requirements-dev.txt requirements.txt tests/sandbox/pyproject.toml
	test -x $(BIN)/python || $(PYTHON_NEW) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -r tests/requirements-dev.txt
	$(BIN)/python -m pip install -q -e tests/sandbox
	touch $@

$(VENV_OLD)/.stamp: tests/requirements-oldest.txt
	test -x $(VENV_OLD)/bin/python || $(PYTHON_OLD) -m venv $(VENV_OLD)
	$(VENV_OLD)/bin/python -m pip install -q -r tests/requirements-oldest.txt
	touch $@

# ansible-test and ansible-playbook find the collection under ansible_collections/llmd/verify.
$(COLL_DIR):
	mkdir -p $(dir $(COLL_DIR))
	ln -sfn $(ROOT) $(COLL_DIR)

# ansible-test downloads a pip bootstrap script from a host we cannot reach: install a stand-in.
# shellcheck is needed by the shellcheck sanity test (it skips silently without it); the sandbox's pod
# network needs iproute2 (and root); its components are built with Go.
.cache/host.stamp:
	mkdir -p .cache
	command -v shellcheck >/dev/null || { apt-get update -qq && apt-get install -y -qq shellcheck >/dev/null; }
	command -v ip >/dev/null || { apt-get update -qq && apt-get install -y -qq iproute2 >/dev/null; }
	command -v go >/dev/null || { echo "Go 1.24+ is needed to build the sandbox's components (go.dev/doc/install)"; exit 1; }
	touch $@

# The sandbox's real components, built from their Go modules once per machine into ~/.cache/llmd-verify/bin.
cluster-binaries:
	bash tests/cluster/build.sh

setup: $(VENV)/.stamp $(COLL_DIR) .cache/host.stamp cluster-binaries
	$(BIN)/python tests/tools/install_pip_standin.py >/dev/null

sync-test-tree:
	$(BIN)/python tests/tools/sync_test_tree.py $(TEST_DIR)

setup-oldest: setup $(VENV_OLD)/.stamp
	$(VENV_OLD)/bin/python tests/tools/install_pip_standin.py >/dev/null

## ---- tests --------------------------------------------------------------------------------

sanity: setup sync-test-tree
	cd $(TEST_DIR) && $(BIN)/ansible-test sanity --venv --python $(PY_NEW_VERSION) --color no $(SANITY_ARGS)

sanity-oldest: setup-oldest sync-test-tree
	cd $(TEST_DIR) && $(VENV_OLD)/bin/ansible-test sanity --venv --python 3.11 --color no $(SANITY_ARGS)

units: setup sync-test-tree
	cd $(TEST_DIR) && $(BIN)/ansible-test units --venv --python $(PY_NEW_VERSION) --color no $(UNITS_ARGS)

units-oldest: setup-oldest sync-test-tree
	cd $(TEST_DIR) && $(VENV_OLD)/bin/ansible-test units --venv --python 3.11 --color no $(UNITS_ARGS)

# The sandbox's own fidelity tests: real kubectl, kubernetes and openai clients against it.
sandbox-test: setup
	cd tests/sandbox && $(BIN)/python -m pytest -q -p no:cacheprovider tests

# Integration targets run in the dev venv, each starting the sandbox scenario it needs, each as its own
# ansible-test run followed by tests/tools/check_leftovers.py: a target that leaves anything running fails, named.
integration: setup sync-test-tree
	cd $(TEST_DIR) && bash $(ROOT)/tests/tools/integration.sh $(BIN)/ansible-test $(PY_NEW_VERSION) $(INTEGRATION_ARGS)

lint: setup
	$(BIN)/ansible-lint --offline --profile production roles playbooks

# The tarball users install: built, installed offline, and every plugin and role listed by ansible-doc.
build-check: setup
	bash tests/tools/check_build.sh

# All of it between a snapshot and a leftover check: nothing it started may still run when it ends (what ran
# before is not counted). The checker's own tests, which leak on purpose, come first.
test:
	snapshot=$$(mktemp); LLMD_VERIFY_LEFTOVER_RUN=$$(python3 tests/tools/check_leftovers.py snapshot "$$snapshot"); \
	export LLMD_VERIFY_LEFTOVER_RUN; status=0; \
	$(MAKE) --no-print-directory setup && $(BIN)/python -m pytest -q -p no:cacheprovider tests/tools && \
	$(MAKE) --no-print-directory sanity units sandbox-test integration lint build-check sanity-oldest units-oldest \
	|| status=$$?; \
	python3 tests/tools/check_leftovers.py check "$$snapshot" --label "make test" --kill || status=1; \
	rm -f "$$snapshot"; exit $$status

## ---- use ----------------------------------------------------------------------------------

demo: setup
	bash tests/tools/demo.sh

bench: setup
	$(BIN)/python -m bench

build: setup
	$(BIN)/ansible-galaxy collection build --force --output-path dist .

clean:
	rm -rf .cache tests/output dist $(TEST_ROOT)

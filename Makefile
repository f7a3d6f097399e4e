# Offload: `make dev` runs the whole stack on this machine, `make test` checks it.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STATE := .state
# Every pinned tool version (KEDA_VERSION, KUBERNETES_VERSION, ...), once.
include tools/versions.env

# Every private broker of the tests, benchmarks and chaos runs is RabbitMQ 4.0 from Debian
# trixie, a tree built once into the cache (scripts/rabbitmq-tree.sh) and named to the test
# kit by OFFLOAD_RABBITMQ_TREE (offload_testkit/rabbitmq_tree.py).
WITH_RABBITMQ := tree=$$(scripts/rabbitmq-tree.sh) && OFFLOAD_RABBITMQ_TREE=$$tree

# Every Python package of the repo, installed editable into one venv.
PACKAGES := libs/offload-core libs/offload-testkit $(wildcard services/*/pyproject.toml)
PACKAGE_DIRS := $(patsubst %/pyproject.toml,%,$(PACKAGES))
TEST_PATHS := libs $(wildcard services/*/tests) $(wildcard tests)

.PHONY: help dev dev-deps check check-deps lint-python lint-shell test e2e kube-binaries kind-node-image release-tools release-local k8s-tools k8s-manifests images keda-image container-test lint format system-deps venv bench-core bench-tracing bench-web bench-mailer bench-stats bench-slow-clients bench-autoscaler bench-keda chaos clean

help:
	@echo "make dev         run the whole stack locally (installs what it needs)"
	@echo "make test        lint + every test against private, real services"
	@echo "make check       the daily loop: lint, unit and broker-backed tests (minutes)"
	@echo "make e2e         end-to-end suite on a kind cluster built here (OFFLOAD_E2E_PROVIDER=kind|existing)"
	@echo "make kind-node-image  the e2e suite's kind node image and kind, built here (deploy/kind-node)"
	@echo "make release-tools  cosign, syft and Jaeger v2 from the Go module proxy (cached)"
	@echo "make k8s-manifests  re-render k8s/base from charts/offload"
	@echo "make images      build the service images, and RabbitMQ/Redis/mail-sink images from Debian"
	@echo "make release-local  images, SBOMs, signatures and the OCI chart pushed to a local registry"
	@echo "make container-test  run the images together and check a signup end to end"
	@echo "make keda-image  KEDA's operator and metrics server from the Go module proxy (e2e, bench)"
	@echo "make bench-core  messaging core vs raw pika (bench/ratio lines)"
	@echo "make bench-tracing  the core with traces off, exported, and unsampled (bench/ratio lines)"
	@echo "make bench-web   web with/without publishing and analytics (wrk, siege)"
	@echo "make bench-mailer, make bench-stats, make bench-autoscaler"
	@echo "make bench-slow-clients  signup latency under a crowd of slow-header clients"
	@echo "make bench-keda  KEDA and our autoscaler on the same burst, side by side"
	@echo "make chaos       the stack under faults: one 'chaos <scenario>: ...' line each"

system-deps:
	@scripts/system-deps.sh test

dev-deps:
	@scripts/system-deps.sh dev

$(BIN)/.installed: requirements/constraints.txt requirements/dev.in $(wildcard libs/*/pyproject.toml services/*/pyproject.toml)
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip -c requirements/constraints.txt
	$(BIN)/pip install -q -c requirements/constraints.txt -r requirements/dev.in $(addprefix -e ,$(PACKAGE_DIRS))
	@touch $@

venv: $(BIN)/.installed

lint: system-deps venv lint-python lint-shell

lint-shell:
	shellcheck scripts/*.sh deploy/docker/*/*.sh deploy/kind-node/network/offload-* deploy/kind-node/files/usr/local/bin/* tests/e2e/clusters/kind-bin/docker .ci/run

lint-python: venv
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy libs/*/src $(wildcard services/*/src) tests/chaos tests/e2e/clusters

format: venv
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

# helm, kubeconform, kustomize, skaffold, actionlint, their schemas and checkov, built or
# installed once into /var/cache/offload.
k8s-tools: venv
	@SCHEMA_PYTHON=$(BIN)/python scripts/k8s-tools.sh

# The Kubernetes binaries (control plane, kubelet, kubeadm, kubectl, kube-proxy, pause, CoreDNS,
# etcd), built once into /var/cache/offload: the tests' control plane (offload_testkit.kube)
# and the kind node image.
kube-binaries:
	@scripts/kube-binaries.sh

# The kind node image offload-kind-node (deploy/kind-node) and kind itself, built here from
# the binaries above and Debian, cached; the e2e suite's kind provider builds it when needed.
kind-node-image: kube-binaries
	@scripts/kind-node-image.sh

# cosign, syft and Jaeger v2, built once into /var/cache/offload (scripts/release-tools.sh):
# the release path, the images' SBOMs and the trace store of the trace test and `make dev`.
release-tools:
	@scripts/release-tools.sh

# k8s/base from the chart, a file per component (a test fails when it is stale).
k8s-manifests: k8s-tools
	$(BIN)/python scripts/render_k8s.py

# Test processes (pytest-xdist; each test file whole in one worker, its module fixtures
# started once, each worker drawing its ports from a range of its own). Most tests wait on
# the broker more than they compute, so two workers finish them in about half the time.
# The tests marked `timing` hold a real server to a deadline under load (a crowd of slow
# clients, a broker outage answered within a timeout): a second worker beside them on two
# cores has made them miss it, so `make test` runs them afterwards, alone, and `make check`
# leaves them to it.
CHECK_WORKERS ?= 2
TEST_WORKERS ?= 2
workers = $(if $(filter-out 1,$(1)),-n $(1) --dist loadfile)

test: system-deps venv lint k8s-tools kube-binaries release-tools
	$(WITH_RABBITMQ) $(BIN)/pytest -p no:logging $(call workers,$(TEST_WORKERS)) -m "not timing and not containers and not e2e" $(TEST_PATHS)
	$(WITH_RABBITMQ) $(BIN)/pytest -p no:logging -m "timing and not containers and not e2e" $(TEST_PATHS)

# The daily loop: what a change to a service or the core most often breaks, against the
# same private broker and Redis, in minutes; it needs nothing else (scripts/system-deps.sh
# check). The cross-service, chart, Kubernetes-API, browser and slow tests are `make test`'s
# (CI runs it, and the pull-request workflow runs this).
check: check-deps venv lint-python lint-shell
	$(WITH_RABBITMQ) $(BIN)/pytest -p no:logging $(call workers,$(CHECK_WORKERS)) -m "not slow and not timing and not containers and not e2e and not kube and not browser" libs $(wildcard services/*/tests)

check-deps:
	@scripts/system-deps.sh check

# The e2e suite: OFFLOAD_E2E_PROVIDER=kind|existing (default kind: a cluster of three nodes
# from the node image built here, see docs/kind.md).
e2e: system-deps venv k8s-tools kube-binaries
	$(WITH_RABBITMQ) $(BIN)/pytest -p no:logging -m e2e tests/e2e

# Images: BASE_IMAGE=python:3.11-slim-bookworm (the Dockerfiles' default) where a registry is
# reachable; otherwise a Debian base built here with debootstrap (cached in /var/cache/offload).
BASE_IMAGE ?= offload-base:bookworm
IMAGE_TAG ?= dev
SERVICES := web mailer stats autoscaler

images:
	@scripts/docker-engine.sh
	@if [ "$(BASE_IMAGE)" = "offload-base:bookworm" ]; then scripts/base-image.sh; fi
	@for svc in $(SERVICES); do \
	  echo "building offload-$$svc:$(IMAGE_TAG)"; \
	  docker build -q --build-arg BASE_IMAGE=$(BASE_IMAGE) -f services/$$svc/Dockerfile -t offload-$$svc:$(IMAGE_TAG) . || exit 1; \
	done
	@echo "building offload-rabbitmq:$(IMAGE_TAG)"; \
	  base=$$(scripts/rabbitmq-base-image.sh) && docker build -q --build-arg RABBITMQ_BASE_IMAGE=$$base \
	    -f deploy/docker/rabbitmq/Dockerfile -t offload-rabbitmq:$(IMAGE_TAG) .
	@for part in redis mailsink; do \
	  echo "building offload-$$part:$(IMAGE_TAG)"; \
	  docker build -q --build-arg BASE_IMAGE=$(BASE_IMAGE) -f deploy/docker/$$part/Dockerfile -t offload-$$part:$(IMAGE_TAG) . || exit 1; \
	done

# KEDA at KEDA_VERSION (tools/versions.env): binaries cached in /var/cache/offload, one image.
KEDA_CACHE ?= /var/cache/offload/keda-$(KEDA_VERSION)
keda-image:
	@scripts/docker-engine.sh
	@scripts/keda-build.sh
	@if [ "$(BASE_IMAGE)" = "offload-base:bookworm" ]; then scripts/base-image.sh; fi
	@context=$$(mktemp -d) \
	  && cp $(KEDA_CACHE)/bin/keda $(KEDA_CACHE)/bin/keda-adapter deploy/docker/keda/Dockerfile $$context/ \
	  && docker build -q --build-arg BASE_IMAGE=$(BASE_IMAGE) -t offload-keda:$(KEDA_VERSION) $$context; \
	  status=$$?; rm -rf $$context; exit $$status

# The release path on this machine: the four service images, their SBOMs and signatures, and
# the chart as an OCI artifact, pushed to a local registry on 127.0.0.1:5001 (docs/release.md).
release-local: k8s-tools release-tools images
	@scripts/release-local.sh

container-test: system-deps venv images
	$(WITH_RABBITMQ) $(BIN)/pytest -p no:logging -m containers tests/containers

# The whole stack under honcho (Procfile): services wait quietly for the broker, then one
# "ready" block says where everything is. OFFLOAD_DEV_TRACING=on adds Jaeger (built once).
dev: dev-deps venv
	@mkdir -p $(STATE)
	@if [ "$${OFFLOAD_DEV_TRACING:-off}" = on ]; then scripts/release-tools.sh jaeger; fi
	@scripts/dev-env.sh .env.dev > $(STATE)/dev.env
	$(BIN)/python scripts/dev_processes.py -e $(STATE)/dev.env -f Procfile start

bench-core: system-deps venv
	$(WITH_RABBITMQ) $(BIN)/python bench/core.py

bench-web: system-deps venv
	@scripts/bench-deps.sh
	$(WITH_RABBITMQ) $(BIN)/python bench/web.py

bench-tracing: system-deps venv release-tools
	$(WITH_RABBITMQ) $(BIN)/python -m bench.tracing

bench-mailer: system-deps venv
	$(WITH_RABBITMQ) $(BIN)/python bench/mailer.py

bench-stats: system-deps venv
	$(WITH_RABBITMQ) $(BIN)/python bench/stats.py

bench-slow-clients: system-deps venv
	$(WITH_RABBITMQ) $(BIN)/python bench/slow_clients.py

chaos: system-deps venv
	$(WITH_RABBITMQ) $(BIN)/python -m tests.chaos.scenarios $(ARGS)

bench-autoscaler: system-deps venv
	$(WITH_RABBITMQ) $(BIN)/python bench/autoscaler.py
	$(WITH_RABBITMQ) $(BIN)/python bench/autoscaler_modes.py

# KEDA and our autoscaler on the same burst, one run (a kind cluster as the e2e suite's; builds KEDA once).
bench-keda: system-deps venv k8s-tools kind-node-image
	$(BIN)/python -m bench.keda_side_by_side

clean:
	rm -rf $(STATE) .pytest_cache .ruff_cache .mypy_cache

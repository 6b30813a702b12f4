# The front door: `make demo` and `make test` are the two commands the README starts with.
include tools/versions.mk
export K8S_VERSION ETCD_VERSION KWOK_VERSION HELM3_VERSION HELM4_VERSION STATICCHECK_VERSION KUSTOMIZE_VERSION

SHELL      := /usr/bin/env bash
# Every recipe line stops at its first failing command: a failed step must fail `make test` (and CI).
.SHELLFLAGS := -eu -o pipefail -c
GO         ?= go
BIN        := $(CURDIR)/bin
# Tool binaries are cached outside the checkout, keyed by version, so a fresh clone (and CI) reuses them.
TOOLS      ?= $(or $(ROTATE_KEY_TOOLS_DIR),$(or $(XDG_CACHE_HOME),$(HOME)/.cache)/helm-rotate-key/tools)
VERSION    ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS    := -s -w -X github.com/tracebloc/helm-rotate-key/internal/version.Version=$(VERSION)
export ROTATE_KEY_TOOLS_DIR := $(TOOLS)

# Each tool file is named with its version: bumping tools/versions.mk rebuilds it, a warm run rebuilds nothing.
TOOL_FILES := \
	$(TOOLS)/etcd-$(ETCD_VERSION) \
	$(TOOLS)/kube-apiserver-$(K8S_VERSION) \
	$(TOOLS)/kube-controller-manager-$(K8S_VERSION) \
	$(TOOLS)/kube-scheduler-$(K8S_VERSION) \
	$(TOOLS)/kubectl-$(K8S_VERSION) \
	$(TOOLS)/kwok-$(KWOK_VERSION) \
	$(TOOLS)/helm3-$(HELM3_VERSION) \
	$(TOOLS)/helm4-$(HELM4_VERSION) \
	$(TOOLS)/kwok-stages-$(KWOK_VERSION)
STATICCHECK := $(TOOLS)/staticcheck-$(STATICCHECK_VERSION)
# Only make bench needs kustomize (the guard is compared with a no-op `kustomize build`).
KUSTOMIZE  := $(TOOLS)/kustomize-$(KUSTOMIZE_VERSION)

.PHONY: all build install test unit e2e lint tools cluster demo fuzz image bench clean help

all: build

help: ## list the targets
	@grep -hE '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | sed -E 's/:.*## /\t/'

build: ## build bin/rotate-key and bin/rotate-key-guard
	@mkdir -p $(BIN)
	$(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(BIN)/rotate-key ./cmd/rotate-key
	ln -sf rotate-key $(BIN)/rotate-key-guard

install: ## install the plugin into $(helm env HELM_PLUGINS) of the helm on PATH (HELM=... to choose another)
	./scripts/make-install.sh "$${HELM:-helm}"

ARCH ?= amd64
image: ## the rotate-key OCI image (static binary, non-root, no shell) as an OCI layout in dist/oci; no Docker needed
	@mkdir -p dist
	CGO_ENABLED=0 GOOS=linux GOARCH=$(ARCH) $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o dist/rotate-key-linux-$(ARCH) ./cmd/rotate-key
	cd tools/image && $(GO) run . --binary ../../dist/rotate-key-linux-$(ARCH) --out ../../dist/oci --arch $(ARCH) --version $(VERSION)

$(TOOLS)/etcd-$(ETCD_VERSION):                       ; tools/build-tool.sh etcd $@
$(TOOLS)/kube-apiserver-$(K8S_VERSION):              ; tools/build-tool.sh kube-apiserver $@
$(TOOLS)/kube-controller-manager-$(K8S_VERSION):     ; tools/build-tool.sh kube-controller-manager $@
$(TOOLS)/kube-scheduler-$(K8S_VERSION):              ; tools/build-tool.sh kube-scheduler $@
$(TOOLS)/kubectl-$(K8S_VERSION):                     ; tools/build-tool.sh kubectl $@
$(TOOLS)/kwok-$(KWOK_VERSION):                       ; tools/build-tool.sh kwok $@
$(TOOLS)/helm3-$(HELM3_VERSION):                     ; tools/build-tool.sh helm3 $@
$(TOOLS)/helm4-$(HELM4_VERSION):                     ; tools/build-tool.sh helm4 $@
$(TOOLS)/kwok-stages-$(KWOK_VERSION): tools/kwok/job-pod-not-executed.yaml ; tools/build-tool.sh kwok-stages $@
$(STATICCHECK):                                      ; tools/build-tool.sh staticcheck $@
$(KUSTOMIZE):                                        ; tools/build-tool.sh kustomize $@

tools: $(TOOL_FILES) ## build (once, then cached) the control plane, kwok, kubectl and both Helm CLIs
	@echo "tools ready in $(TOOLS)"

lint: $(STATICCHECK) ## gofmt + go vet + staticcheck
	@unformatted=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$unformatted" ]; then echo "gofmt -w needed: $$unformatted"; exit 1; fi
	$(GO) vet ./...
	$(STATICCHECK) ./...

# The fast loop runs the property test's short form (60 randomized rotations); make test runs all 1,000.
UNITFLAGS ?= -short
unit: tools ## tests that need no cluster (the chart tests run the built Helm CLIs; make test: with the full property test)
	$(GO) test -count=1 $(UNITFLAGS) $$($(GO) list ./... | grep -v /test/e2e)

fuzz: ## run every fuzz target FUZZTIME executions each (default 100000x; a count, see scripts/fuzz.sh)
	./scripts/fuzz.sh $${FUZZTIME:-100000x}

bench: build tools $(KUSTOMIZE) ## benchmarks (offline, kustomize, cluster: online guard, helm upgrade, fleet, rotation); writes docs/benchmarks.md (not part of make test)
	$(GO) run ./test/bench --binary $(BIN)/rotate-key --kustomize $(KUSTOMIZE) --out docs/benchmarks.md

# The e2e tests run 4 at once, longest first (test/e2e/schedule_test.go: go test alone starts them in no set order);
# go test's own -parallel is set high so that only that gate throttles.
# Run in the package's folder (go test's local directory mode) so that the progress lines and every traffic run's
# figures are printed as they come, not only when the package fails.
e2e: tools ## tests against the cluster-in-a-box with the real Helm 3 and Helm 4 CLIs
	cd test/e2e && $(GO) test -count=1 -parallel 64 -timeout 50m $(E2EFLAGS)

test: ## everything CI runs: lint, unit tests, fuzz smoke, e2e (prints how long each stage took)
	@set -e; t=$$(date +%s); start=$$t; \
	stage() { now=$$(date +%s); echo "make test: stage $$1 took $$((now-t))s"; t=$$now; }; \
	$(MAKE) --no-print-directory tools $(STATICCHECK); stage tools; \
	$(MAKE) --no-print-directory lint; stage lint; \
	$(MAKE) --no-print-directory unit UNITFLAGS=; stage unit; \
	$(MAKE) --no-print-directory fuzz FUZZTIME=20000x; stage fuzz; \
	$(MAKE) --no-print-directory e2e; stage e2e; \
	echo "make test: all stages passed in $$(($$(date +%s)-start))s"

cluster: tools build ## start the cluster-in-a-box for a human; prints the KUBECONFIG to use; Ctrl-C stops it
	$(GO) run ./test/cmd/cluster

demo: tools build ## cluster up, example chart installed, plugin in both Helms, a rotation, its status
	$(GO) run ./test/cmd/cluster --demo

clean: ## remove build outputs (keeps the tool cache in $(TOOLS))
	rm -rf $(BIN)

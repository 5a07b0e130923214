# peapod: make help lists the targets.
GO      ?= go
# The version is internal/version's Base with this commit as semver build metadata
# (0.2.0-dev+ffd3b42, or +ffd3b42.dirty with uncommitted changes).
COMMIT  ?= $(shell git describe --always --dirty=.dirty --abbrev=7 --exclude='*' 2>/dev/null)
LDFLAGS := -X github.com/peapod-runtime/peapod/internal/version.commit=$(COMMIT)
BIN     := bin
FUZZTIME ?= 10s
NODES   ?= 4
# The shim runs once per pod and is re-executed for every container and exec: it is linked
# statically (glibc and libseccomp from libc6-dev and libseccomp-dev, as runc's releases are),
# which saves every shim the mapped pages of libc.so and ld.so (about 1 MiB of RSS) and every
# re-execution the dynamic loader. netgo and osusergo keep glibc's NSS (which a static
# binary cannot load) out.
SHIM_TAGS := seccomp netgo osusergo
# make install: DESTDIR stages the files (for packaging); PREFIX is where they run from. The
# CNI plugins go to $(PREFIX)/lib/peapod/cni, where the daemon looks for them (beside
# the configured bin_dirs); the config and the unit stay in /etc whatever the PREFIX.
PREFIX  ?= /usr/local
BINDIR  := $(PREFIX)/bin
CNIDIR  := $(PREFIX)/lib/peapod/cni
CONFDIR ?= /etc/peapod
UNITDIR ?= /etc/systemd/system
CNI_PLUGINS := bridge host-local loopback portmap
# Tools make deps builds (golangci-lint, at the version hack/install-deps.sh pins).
PEAPOD_TOOLS ?= /var/cache/peapod-tools
export PEAPOD_TOOLS

.PHONY: help build run test fuzz bench bench-profile bench-cluster lint clean deps upstream-critest install uninstall cluster cluster-down k8s-binaries node-conformance

help: ## list the targets
	@awk -F':.*## ' '/^[a-z-]+:.*## /{printf "  %-8s %s\n", $$1, $$2}' $(MAKEFILE_LIST)

deps: ## install what a fresh Debian needs (idempotent)
	@hack/install-deps.sh

build: ## build bin/peapod, bin/peapod-shim, bin/peapod-shim-runc, bin/peapod-checkpoint and the CNI plugins in bin/cni
	$(GO) build -ldflags "$(LDFLAGS)" -o $(BIN)/peapod ./cmd/peapod
	CGO_ENABLED=0 $(GO) build -ldflags "-s -w $(LDFLAGS)" -o $(BIN)/peapod-shim ./cmd/peapod-shim
	$(GO) build -tags "$(SHIM_TAGS)" -ldflags "-s -w -linkmode external -extldflags -static $(LDFLAGS)" -o $(BIN)/peapod-shim-runc ./cmd/peapod-shim-runc
	$(GO) build -tags "$(SHIM_TAGS)" -ldflags "-s -w -linkmode external -extldflags -static $(LDFLAGS)" -o $(BIN)/peapod-checkpoint ./cmd/peapod-checkpoint
	@if [ -x hack/build-cni.sh ]; then hack/build-cni.sh $(BIN)/cni; fi

install: build ## install the binaries, CNI plugins, peapod.service and (if none) /etc/peapod/config.toml; DESTDIR, PREFIX
	install -d $(DESTDIR)$(BINDIR) $(DESTDIR)$(CNIDIR) $(DESTDIR)$(UNITDIR) $(DESTDIR)$(CONFDIR)
	install -m 0755 $(BIN)/peapod $(BIN)/peapod-shim $(BIN)/peapod-shim-runc $(BIN)/peapod-checkpoint $(DESTDIR)$(BINDIR)/
	install -m 0755 $(addprefix $(BIN)/cni/,$(CNI_PLUGINS)) $(DESTDIR)$(CNIDIR)/
	sed -e 's|@BINDIR@|$(BINDIR)|g' -e 's|@CONFDIR@|$(CONFDIR)|g' hack/peapod.service >$(DESTDIR)$(UNITDIR)/peapod.service
	chmod 0644 $(DESTDIR)$(UNITDIR)/peapod.service
	@if [ -e $(DESTDIR)$(CONFDIR)/config.toml ]; then \
		echo "keeping the existing $(DESTDIR)$(CONFDIR)/config.toml"; \
	else \
		$(BIN)/peapod config default >$(DESTDIR)$(CONFDIR)/config.toml.new && \
		mv $(DESTDIR)$(CONFDIR)/config.toml.new $(DESTDIR)$(CONFDIR)/config.toml && \
		echo "wrote the default $(DESTDIR)$(CONFDIR)/config.toml"; \
	fi
	@echo "start it: systemctl daemon-reload && systemctl enable --now peapod"

uninstall: ## remove what install added: the config file only if it is still the default
	@conf=$(DESTDIR)$(CONFDIR)/config.toml; \
	if [ -e $$conf ] && [ -x $(DESTDIR)$(BINDIR)/peapod ] && \
		$(DESTDIR)$(BINDIR)/peapod config default | cmp -s - $$conf; then \
		rm -f $$conf; \
	elif [ -e $$conf ]; then \
		echo "keeping $$conf: it is not the default config"; \
	fi
	rm -f $(DESTDIR)$(BINDIR)/peapod $(DESTDIR)$(BINDIR)/peapod-shim $(DESTDIR)$(BINDIR)/peapod-shim-runc $(DESTDIR)$(BINDIR)/peapod-checkpoint $(DESTDIR)$(UNITDIR)/peapod.service
	rm -f $(addprefix $(DESTDIR)$(CNIDIR)/,$(CNI_PLUGINS))
	rmdir $(DESTDIR)$(CNIDIR) $(DESTDIR)$(PREFIX)/lib/peapod $(DESTDIR)$(CONFDIR) 2>/dev/null || true

run: deps build ## build, then run the daemon on defaults in the foreground
	$(BIN)/peapod

test: deps build k8s-binaries lint ## lint, then unit, integration and e2e tests (needs root); lists every skip and its reason
	@hack/test.sh

fuzz: ## every Go fuzz target for FUZZTIME each (default 10s); crashers land in testdata/fuzz
	@FUZZTIME=$(FUZZTIME) hack/fuzz.sh

bench: deps build ## latency and memory benchmarks (table and JSON); -endpoint via BENCH_ARGS; the cluster's: make bench-cluster
	$(GO) run ./critest/bench $(BENCH_ARGS)
	@echo "(a real kubelet's figures, on a one-node cluster: make bench-cluster)"

bench-profile: deps build ## where a full node's start-up CPU goes, per process name (Density under perf); BENCH_ARGS as for bench
	@hack/density-profile.sh $(BENCH_ARGS)

bench-cluster: deps build ## pod start-up through a real one-node cluster (static pod, kubectl apply, Deployment)
	@hack/cluster-bench.sh

k8s-binaries: ## build the pinned Kubernetes binaries and etcd into their cache (hack/k8s-build.sh)
	@hack/k8s-build.sh

cluster: deps build ## a one-node Kubernetes on peapod on this machine (admin kubeconfig in /var/lib/peapod-cluster)
	@hack/cluster.sh up

cluster-down: ## stop the one-node cluster and remove everything it made
	@hack/cluster.sh down

node-conformance: deps build ## Kubernetes' node e2e [NodeConformance] specs against a kubelet on peapod (long); ENDPOINT=unix:///... or containerd, FOCUS, NODES
	@ENDPOINT=$(ENDPOINT) FOCUS='$(FOCUS)' NODES=$(NODES) hack/node-conformance.sh


# upstream-critest: CRI_TOOLS is a clone of kubernetes-sigs/cri-tools (checkout or bare); the
# target builds critest at CRITEST_REF from it into bin/critest. CRITEST names a built one.
CRITEST_REF ?= v1.36.0
upstream-critest: build ## cri-tools' own critest against peapod: CRI_TOOLS=/path/to/cri-tools-clone or CRITEST=/path/to/critest [CRITEST_ARGS=...]
	@if [ -z "$(CRITEST)" ] && [ -z "$(CRI_TOOLS)" ]; then echo "set CRI_TOOLS to a clone of https://github.com/kubernetes-sigs/cri-tools (critest $(CRITEST_REF) is built from it into $(BIN)/critest), or CRITEST to a critest binary"; exit 2; fi
	@if [ -z "$(CRITEST)" ]; then GO=$(GO) hack/critest-build.sh "$(CRI_TOOLS)" $(BIN)/critest $(CRITEST_REF); fi
	$(GO) run ./critest/upstream -go $(GO) -critest $(or $(CRITEST),$(BIN)/critest) -- $(CRITEST_ARGS)

.PHONY: chaos
CHAOS_KILLS    ?= 100
CHAOS_CYCLES   ?= 1000
CHAOS_FUZZTIME ?= 60s
chaos: deps build ## reliability suite, long: CHAOS_KILLS daemon kills, CHAOS_CYCLES soak cycles, then every fuzz target for CHAOS_FUZZTIME
	@CHAOS_KILLS=$(CHAOS_KILLS) CHAOS_CYCLES=$(CHAOS_CYCLES) FUZZTIME=$(CHAOS_FUZZTIME) hack/chaos.sh

lint: deps ## gofmt check, go vet and golangci-lint (.golangci.yml)
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...
	$(PEAPOD_TOOLS)/bin/golangci-lint run ./...

clean: ## remove build output
	rm -rf $(BIN)

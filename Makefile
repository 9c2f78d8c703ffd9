# rehearse — see README.md.
GO      ?= go
BIN     := bin/rehearse
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS := -X github.com/rehearse-dev/rehearse.version=$(VERSION)

.PHONY: build test demo bench lint deps-demo deps-test clean

build:
	$(GO) build -ldflags "$(LDFLAGS)" -o $(BIN) ./cmd/rehearse

deps-demo:
	@scripts/deps.sh demo

deps-test:
	@scripts/deps.sh test

# A real rehearsal on the embedded local cluster: the smoke load with a wet cutover
# through the proxy endpoint (PgBouncer). It prints the verdict, the writer change,
# the failed operations, the longest write stall and where the report is.
# `make demo DEMO_MODE=dry` runs the same load with only the plan's read-only checks.
DEMO_MODE     ?= wet
DEMO_ENDPOINT ?= proxy
demo: deps-demo build
	$(BIN) run scenarios/smoke.yaml --mode $(DEMO_MODE) --endpoint $(DEMO_ENDPOINT)

# One package at a time (TEST_P): the packages' rehearsals start PostgreSQL clusters,
# PgBouncers and containers and measure latency, so two of them on two cores judge
# the machine's load rather than the code. make test TEST_P=2 runs two at once.
TEST_P ?= 1
test: deps-test lint image
	$(GO) test -count=1 -p $(TEST_P) -timeout 30m ./...

lint:
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...

# make bench: hot-path micro-benchmarks (allocations reported), then pgbench and
# rehearse side by side on one fresh local PostgreSQL (bench/), which rewrites
# BENCHMARKS.md. About 10 minutes with the defaults; every figure is configurable.
BENCH_DURATION         ?= 15s
BENCH_REPS             ?= 3
BENCH_SESSIONS         ?= 10000,100000,1000000
BENCH_SESSION_RATE     ?= 1000
BENCH_SESSION_DURATION ?= 20s
BENCH_BANKING_RATE     ?= 2000
BENCH_OUT              ?= BENCHMARKS.md
BENCH_PKGS             ?= ./loadgen/ ./report/ ./workload/tpcb/ ./workload/script/ ./workload/replay/ ./internal/netconn/ \
                          ./migrate/dnsserver/ ./internal/telemetry/ ./internal/faults/

bench: deps-demo build
	@micro=$$(mktemp); trap 'rm -f "$$micro"' EXIT; \
	$(GO) test -run '^$$' -bench . -benchmem $(BENCH_PKGS) > "$$micro" || { cat "$$micro"; exit 1; }; \
	cat "$$micro"; \
	$(GO) run ./bench run --rehearse $(BIN) --out $(BENCH_OUT) --micro "$$micro" \
		--duration $(BENCH_DURATION) --reps $(BENCH_REPS) --sessions $(BENCH_SESSIONS) \
		--session-rate $(BENCH_SESSION_RATE) --session-duration $(BENCH_SESSION_DURATION) \
		--banking-rate $(BENCH_BANKING_RATE) \
		--command "make bench BENCH_DURATION=$(BENCH_DURATION) BENCH_REPS=$(BENCH_REPS) BENCH_SESSIONS=$(BENCH_SESSIONS) BENCH_SESSION_RATE=$(BENCH_SESSION_RATE) BENCH_SESSION_DURATION=$(BENCH_SESSION_DURATION) BENCH_BANKING_RATE=$(BENCH_BANKING_RATE)"

clean:
	rm -rf bin

# The rehearse/postgres image for the container target, built offline from this
# machine's Debian PostgreSQL 15 packages (FROM scratch; no registry, no apt).
# Idempotent: skipped when the image already has the same content hash.
POSTGRES_IMAGE ?= rehearse/postgres:15
.PHONY: image
image:
	@images/postgres/build.sh $(POSTGRES_IMAGE)

# The rehearse/rehearse image for sharded runs on Kubernetes (deploy/kubernetes):
# the static binary FROM scratch, built offline. Push it where the cluster pulls
# from (docker tag + docker push, or kind load docker-image) and set the image in
# deploy/kubernetes/kustomization.yaml.
REHEARSE_IMAGE ?= rehearse/rehearse:dev
.PHONY: image-rehearse
image-rehearse:
	@images/rehearse/build.sh $(REHEARSE_IMAGE) $(VERSION)

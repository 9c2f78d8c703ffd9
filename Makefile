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

# A real smoke rehearsal on the embedded local PostgreSQL; prints where the report is.
demo: deps-demo build
	$(BIN) run scenarios/smoke.yaml

test: deps-test lint
	$(GO) test -count=1 -timeout 30m ./...

lint:
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...

# Hot-path micro-benchmarks (allocations reported). See BENCHMARKS.md.
bench: deps-demo
	$(GO) test -run '^$$' -bench . -benchmem ./...

clean:
	rm -rf bin

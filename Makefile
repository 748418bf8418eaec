# Meridian. `make run` starts a whole local system; `make test` proves it.
export PATH := /usr/local/go/bin:$(PATH)

VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
COMMIT  ?= $(shell git rev-parse --short=12 HEAD 2>/dev/null)$(shell git diff --quiet HEAD 2>/dev/null || echo -dirty)
LDFLAGS := -s -w -X main.version=$(VERSION) -X github.com/meridian-net/meridian/internal/buildinfo.commit=$(COMMIT)
BIN     := bin

.PHONY: all build run test soak bench lint rum-js clean dist

all: build

## build: static, stripped binaries into bin/
build:
	CGO_ENABLED=0 go build -trimpath -ldflags '$(LDFLAGS)' -o $(BIN)/ ./collector/cmd/meridian ./agent/cmd/meridian-agent
	@ls -l $(BIN)/

## run: local ClickHouse + collector + demo target + agent; URLS="https://…" adds targets
run:
	deploy/local/run.sh $(URLS)

## test: installs what is missing, starts a throwaway ClickHouse, runs every test
test:
	e2e/test.sh

## soak: make test with the long variants (MERIDIAN_SOAK=1): the fault
## suite's 60 s ClickHouse outage, a minute of 2x beacon overload
soak:
	MERIDIAN_SOAK=1 e2e/test.sh

## bench: figures, not pass/fail: Go benchmarks, then probe phase accuracy
## side by side with curl -w against the same delaying servers
bench:
	go test -run '^$$' -bench . -benchmem ./...
	MERIDIAN_ACCURACY=1 go test -count=1 -v -run '^TestAccuracyReport$$' ./agent/probe/ | grep -v '^[=-]'
	MERIDIAN_BENCH=1 go test -count=1 -v -timeout 20m -run '^TestAgentFootprint$$' ./e2e/ | grep -v '^[=-]\|\[agent\]'
	MERIDIAN_BENCH=1 go test -count=1 -v -timeout 20m -run '^TestBeaconIngestBench$$' ./e2e/ | grep -v '^[=-]\|\[collector\]'
	MERIDIAN_BENCH=1 go test -count=1 -v -timeout 20m -run '^TestSteeringBench$$' ./collector/steering/ | grep 'BENCH\|FAIL'
	MERIDIAN_BENCH=1 go test -count=1 -v -timeout 30m -run '^TestQueryBench$$' ./query/ | grep 'BENCH\|inserted\|FAIL'
	MERIDIAN_BENCH=1 go test -count=1 -v -timeout 20m -run '^TestScaleOutBench$$' ./e2e/ | grep 'BENCH\|FAIL'
	MERIDIAN_BENCH=1 go test -count=1 -v -timeout 30m -run '^TestBeaconOverload$$' ./e2e/ | grep -v '^[=-]'

## lint: formatting, vet, staticcheck
lint:
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || { gofmt -l $$(git ls-files '*.go'); exit 1; }
	go vet ./...
	go run honnef.co/go/tools/cmd/staticcheck@v0.8.2 ./...

## rum-js: rebuild the beacon script (commit rum-js/dist afterwards)
rum-js:
	cd rum-js && npm ci --no-audit --no-fund && npm run build && npm run size

clean:
	rm -rf $(BIN)

## dist: static, stripped binaries for linux amd64 and arm64 in dist/ (or
## DIST=dir), the version from `git describe` stamped in, and their SHA-256 sums
DIST ?= dist
dist:
	rm -rf $(DIST) && mkdir -p $(DIST)
	for arch in amd64 arm64; do \
		for cmd in meridian meridian-agent; do \
			pkg=./collector/cmd/meridian; [ $$cmd = meridian-agent ] && pkg=./agent/cmd/meridian-agent; \
			CGO_ENABLED=0 GOOS=linux GOARCH=$$arch go build -trimpath -ldflags '$(LDFLAGS)' -o $(DIST)/$$cmd-linux-$$arch $$pkg || exit 1; \
		done; \
	done
	cd $(DIST) && sha256sum meridian* > SHA256SUMS && cat SHA256SUMS

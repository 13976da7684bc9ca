# rollout: build, check, test, demo.
#   make demo   boot a lab guest with real OpenZFS and run rollout's main job on it
#   make test   every check and test: formatting, vet, staticcheck, the FreeBSD build, unit
#               tests, and the integration tests against real OpenZFS in the lab
#   make bench  the benchmarks (etcmerge vs cp -a; SSH transport vs OpenSSH; replication in the lab)
GO          ?= go
STATICCHECK ?= honnef.co/go/tools/cmd/staticcheck@v0.8.2
VERSION     ?= $(shell git describe --always --dirty 2>/dev/null || echo dev)
LDFLAGS      = -X main.version=$(VERSION)

.PHONY: all build build-freebsd check unit integration test demo bench lab-build lab-down clean

all: build

build:
	$(GO) build -trimpath -ldflags '$(LDFLAGS)' -o bin/rollout ./cmd/rollout

build-freebsd:
	GOOS=freebsd GOARCH=amd64 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o bin/rollout.freebsd-amd64 ./cmd/rollout

check:
	@unformatted=$$(gofmt -l $$(git ls-files '*.go')); \
	  if [ -n "$$unformatted" ]; then echo "gofmt needed: $$unformatted"; exit 1; fi
	$(GO) vet ./...
	GOOS=freebsd $(GO) vet ./...
	GOOS=freebsd $(GO) build ./...
	$(GO) run $(STATICCHECK) ./...

unit:
	$(GO) test -count=1 $$($(GO) list ./... | grep -v /integration)

# boots the lab's guests once (the image is built and cached on first use), gives every test a
# fresh pool, and powers the guests off at the end
integration:
	$(GO) test -count=1 -timeout 60m -v ./integration/ 2>&1 | tee integration.log | grep --line-buffered -E '^(=== RUN|--- |PASS|FAIL|ok|panic)|integration:|\[lab'; \
	  exit $${PIPESTATUS[0]}

test: SHELL := /bin/bash
test: check unit integration

demo: SHELL := /bin/bash
demo:
	integration/demo

bench:
	$(GO) test -run '^$$' -bench . -benchtime 20x ./etcmerge/
	replicate/bench/ssh-throughput.sh
	integration/bench-replicate

lab-build:
	integration/lab build

lab-down:
	integration/lab down

clean:
	rm -rf bin integration.log

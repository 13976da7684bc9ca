# rollout: build, check, test, demo.
#   make demo   boot a lab guest with real OpenZFS and run rollout's main job on it
#   make test   every check and test: formatting, vet, staticcheck, the FreeBSD build, unit
#               tests, a short run of each fuzz target (make fuzz), and the integration tests
#               against real OpenZFS in the lab
#   make crash  the whole crash table in the lab (make test runs five of its cells; about an hour)
#   make mutate mutation testing of the core packages (slow: not part of make test)
#   make bench  the benchmarks (etcmerge vs cp -a; SSH transport vs OpenSSH; replication in the lab)
#   make install [PREFIX=/usr/local] [DESTDIR=...]
#               the binary, man pages, rc.d script, example config and shell completion, as the
#               FreeBSD port (examples/port/sysutils/rollout) does; on FreeBSD run it with gmake
GO          ?= go
STATICCHECK ?= honnef.co/go/tools/cmd/staticcheck@v0.8.2
VERSION     ?= $(shell git describe --always --dirty 2>/dev/null || echo dev)
LDFLAGS      = -X main.version=$(VERSION)
PREFIX      ?= /usr/local
DESTDIR     ?=
MANDIR      ?= $(PREFIX)/share/man
INSTALL     ?= install
MANDOC      ?= mandoc
MANPAGES     = cmd/rollout/man/rollout.8 cmd/rollout/man/rollout.toml.5

.PHONY: crash all build build-freebsd check man-lint install install-check unit fuzz mutate integration test demo bench lab-build lab-down clean

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
	$(MAKE) --no-print-directory man-lint
	$(MAKE) --no-print-directory install-check

# the man pages: mandoc must find nothing at warning level or above (Debian package mandoc)
man-lint:
	@out=$$($(MANDOC) -T lint -W warning $(MANPAGES) 2>&1); status=$$?; \
	  if [ $$status -ne 0 ] || [ -n "$$out" ]; then \
	    echo "$$out"; echo "man-lint: $(MANDOC) -T lint -W warning failed (exit $$status)"; exit 1; fi

# what the FreeBSD port installs: PREFIX/sbin, man pages in PREFIX/share/man (uncompressed; the
# ports framework gzips them), the rc.d script with /usr/local replaced by PREFIX, the example
# config as rollout.toml.sample, completion scripts printed by the binary just built
install: build
	$(INSTALL) -d $(DESTDIR)$(PREFIX)/sbin $(DESTDIR)$(MANDIR)/man8 $(DESTDIR)$(MANDIR)/man5 \
	  $(DESTDIR)$(PREFIX)/etc/rc.d $(DESTDIR)$(PREFIX)/share/examples/rollout \
	  $(DESTDIR)$(PREFIX)/share/bash-completion/completions $(DESTDIR)$(PREFIX)/share/zsh/site-functions
	$(INSTALL) -m 0555 bin/rollout $(DESTDIR)$(PREFIX)/sbin/rollout
	$(INSTALL) -m 0444 cmd/rollout/man/rollout.8 $(DESTDIR)$(MANDIR)/man8/rollout.8
	$(INSTALL) -m 0444 cmd/rollout/man/rollout.toml.5 $(DESTDIR)$(MANDIR)/man5/rollout.toml.5
	sed 's|/usr/local|$(PREFIX)|g' cmd/rollout/rc.d/rollout > $(DESTDIR)$(PREFIX)/etc/rc.d/rollout.tmp
	chmod 0555 $(DESTDIR)$(PREFIX)/etc/rc.d/rollout.tmp
	mv $(DESTDIR)$(PREFIX)/etc/rc.d/rollout.tmp $(DESTDIR)$(PREFIX)/etc/rc.d/rollout
	$(INSTALL) -m 0644 examples/rollout.toml $(DESTDIR)$(PREFIX)/etc/rollout.toml.sample
	$(INSTALL) -m 0444 examples/rollout.toml $(DESTDIR)$(PREFIX)/share/examples/rollout/rollout.toml.sample
	bin/rollout completion bash > $(DESTDIR)$(PREFIX)/share/bash-completion/completions/rollout.tmp
	mv $(DESTDIR)$(PREFIX)/share/bash-completion/completions/rollout.tmp $(DESTDIR)$(PREFIX)/share/bash-completion/completions/rollout
	bin/rollout completion zsh > $(DESTDIR)$(PREFIX)/share/zsh/site-functions/_rollout.tmp
	mv $(DESTDIR)$(PREFIX)/share/zsh/site-functions/_rollout.tmp $(DESTDIR)$(PREFIX)/share/zsh/site-functions/_rollout

# make install into temporary directories installs exactly the port's pkg-plist
install-check:
	MAKE="$(MAKE)" examples/port/check-plist.sh

unit:
	$(GO) test -count=1 $$($(GO) list ./... | grep -v /integration)

# each fuzz target briefly (go test -fuzz takes one package and one target a run); the seed
# corpora in */testdata/fuzz also run with every `go test`. A count, not a duration: with a
# duration Go 1.26's fuzz coordinator can fail a target with a bare "context deadline exceeded"
# at the deadline on a loaded machine (golang/go#75804, fixed in Go 1.27).
FUZZTIME    ?= 2000x
FUZZ_TARGETS = ./rollout/config:FuzzParse ./fstabgen:FuzzParse ./proto/zfs:FuzzValidateDataset \
               ./proto/zfs:FuzzSplitSnapshot ./proto/zfs:FuzzQuoteWord ./rollout:FuzzParseJournal \
               ./replicate/sshx:FuzzKnownHosts ./replicate:FuzzParseState ./replicate:FuzzParseSendSize
fuzz:
	@set -e; for t in $(FUZZ_TARGETS); do \
	  echo "fuzz $${t%%:*} $${t##*:}"; \
	  $(GO) test -run '^$$' -fuzz "^$${t##*:}$$" -fuzztime $(FUZZTIME) "$${t%%:*}"; \
	done

# mutation testing with gremlins, one package at a time: each mutant of a package's own files
# (-E / leaves out its subpackages, which have their own entry) runs against that package's
# unit tests; prints the survivors (LIVED), then killed, lived and efficacy (killed / (killed +
# lived)) per package and in total, and keeps the reports in bin/mutate. NOT part of make test:
# it builds and tests the package once per mutant: well over an hour on 2 cores. README.md
# ("Mutation testing") has the last numbers and the survivors judged equivalent. MUTATE_PKGS=rollout runs one.
GREMLINS       ?= github.com/go-gremlins/gremlins/cmd/gremlins@v0.6.0
MUTATE_PKGS    ?= proto proto/zfs proto/command proto/atomicfile fstabgen etcmerge rollout rollout/config \
                  replicate replicate/sshx
MUTATE_WORKERS ?= 2
# the test timeout is the coverage run's time times this: generous, as a busy machine is slow
MUTATE_FLAGS   ?= --timeout-coefficient 20
mutate:
	@set -e; mkdir -p bin/mutate; GOBIN=$(CURDIR)/bin $(GO) install $(GREMLINS); \
	rm -f bin/mutate/summary; for p in $(MUTATE_PKGS); do \
	  r=bin/mutate/$$(echo $$p | tr / -); echo "mutate $$p"; \
	  bin/gremlins unleash --workers $(MUTATE_WORKERS) $(MUTATE_FLAGS) -E / -o $$r.json $$p > $$r.txt 2>&1 || \
	    { cat $$r.txt; exit 1; }; \
	  grep -E 'LIVED|TIMED OUT' $$r.txt | sed "s|^ *|  $$p: |" || true; \
	  sed -n "s|^Killed: \([0-9]*\), Lived: \([0-9]*\), Not covered: \([0-9]*\).*|$$p \1 \2 \3|p" $$r.txt >> bin/mutate/summary; \
	done; \
	awk '{ k += $$2; l += $$3; n += $$4; \
	       printf "%-20s killed %4d  lived %4d  not covered %4d  efficacy %s\n", $$1, $$2, $$3, $$4, ($$2+$$3 ? sprintf("%.2f%%", 100*$$2/($$2+$$3)) : "n/a") } \
	     END { printf "%-20s killed %4d  lived %4d  not covered %4d  efficacy %s\n", "total", k, l, n, (k+l ? sprintf("%.2f%%", 100*k/(k+l)) : "n/a") }' bin/mutate/summary

# boots the lab's guests once (the image is built and cached on first use), gives every test a
# fresh pool, and powers the guests off at the end
integration: SHELL := /bin/bash
integration:
	$(GO) test -count=1 -timeout 110m -v ./integration/ 2>&1 | tee integration.log | grep --line-buffered -E '^(=== RUN|--- |PASS|FAIL|ok|panic)|integration:|\[lab'; \
	  rc=$${PIPESTATUS[0]}; [ $$rc = 0 ] || { echo "--- what the failing tests said (integration.log):"; \
	    awk '/^=== RUN/ { n = 0 } { buf[n++ % 40] = $$0 } /^ *--- FAIL/ { for (i = (n > 40 ? n - 40 : 0); i < n; i++) print buf[i % 40] }' integration.log | cut -c1-300; }; \
	  exit $$rc

# the whole crash table (README "Crashes"): every boundary of every command, killed and power cut,
# every replication cut, and the long lab tests (try, the fleet over three guests); well over an
# hour in the lab, so `make test` runs only the cells marked in integration/crash_test.go and
# integration/replicate_cut_test.go
crash: SHELL := /bin/bash
crash:
	ROLLOUT_CRASH_TABLE=full ROLLOUT_LAB_LONG=1 $(GO) test -count=1 -timeout 180m -v -run 'TestCrashTable|TestReplicateCut|TestTry|TestFleet' ./integration/ 2>&1 | tee crash.log | grep --line-buffered -E '^(=== RUN|--- |PASS|FAIL|ok|panic)|crash_test.go|replicate_cut_test.go|\[lab'; \
	  exit $${PIPESTATUS[0]}

test: SHELL := /bin/bash
test: check unit fuzz integration

demo: SHELL := /bin/bash
demo:
	integration/demo

bench:
	$(GO) test -run '^$$' -bench . -benchtime 20x ./etcmerge/
	$(GO) test -run '^$$' -bench 'Status|Plan' ./rollout/
	replicate/bench/ssh-throughput.sh
	integration/bench-status
	integration/bench-promote
	integration/bench-parallel
	integration/bench-replicate

lab-build:
	integration/lab build

lab-down:
	integration/lab down

clean:
	rm -rf bin integration.log

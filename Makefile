# execmod: the two commands a newcomer needs are `make run` and `make test`.
GO      ?= go
BIN     := $(CURDIR)/bin
RUNDIR  := $(CURDIR)/.run
PORT    ?= 5051

# Every module and example with a main package, built into bin/.
MODULES := $(sort $(dir $(wildcard examples/*/main.go module/*/main.go)))

.PHONY: all build deps run test test-python new-module check proto bench fuzz clean

all: build

# STAMP is the host's build stamp for /version (host/run.go), for when the
# go command embeds no VCS information (GOFLAGS=-buildvcs=false, no .git).
STAMP = -X main.gitSHA=$(shell git rev-parse HEAD 2>/dev/null) \
	-X main.gitTime=$(shell git log -1 --format=%ct 2>/dev/null) \
	-X main.gitModified=$(if $(shell git status --porcelain --untracked-files=no 2>/dev/null),true,false) \
	-X main.buildUser=$(shell id -un 2>/dev/null)

## build: all binaries into bin/ (bin/modhost, every module, every example)
build:
	@mkdir -p $(BIN)
	$(GO) build -ldflags '$(STAMP)' -o $(BIN)/modhost ./host
	$(GO) build -o $(BIN)/ $(addprefix ./,$(MODULES))

## run: build and run the host with the root modules.json on 127.0.0.1:$(PORT)
run: build
	@mkdir -p $(RUNDIR)/work
	$(BIN)/modhost --ip=127.0.0.1 --port=$(PORT) --work_dir=$(RUNDIR)/work \
		--sandbox_directory=$(RUNDIR)/sandbox --modules=file://$(CURDIR)/modules.json

## test: build and run every test with the race detector
# -count=1: the end-to-end tests build the host and modules when they run,
# which go test's cache cannot see, so a cached pass could be stale.
test: build deps
	$(GO) test -race -count=1 -timeout 20m ./...

# deps: the whole module graph in the module cache. The tutorial's test runs
# the reader's `go mod tidy` offline (GOPROXY=off; tests reach only loopback),
# and tidy reads modules a build never fetches (imports of dependencies' tests).
# It downloads against a scratch copy of go.mod (-modfile), so that the
# checksums it records never touch the checkout's go.sum.
deps:
	@d=$$(mktemp -d) && cp go.mod $$d/deps.mod && cp go.sum $$d/deps.sum && \
		$(GO) mod download -modfile=$$d/deps.mod all; rc=$$?; rm -rf $$d; exit $$rc

## test-python: the Python module example under the real host (installs Debian's python3-grpcio & co. if missing)
PYTHON_DEBS := python3-grpcio python3-grpc-tools python3-cryptography python3-protobuf
test-python:
	@if ! /usr/bin/python3 -c 'import grpc, grpc_tools, cryptography, google.protobuf' 2>/dev/null; then \
		sudo=; [ "$$(id -u)" = 0 ] || sudo=sudo; \
		echo "installing $(PYTHON_DEBS)"; \
		$$sudo apt-get update -qq && $$sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $(PYTHON_DEBS); \
	fi
	EXECMOD_REQUIRE_PYTHON=1 $(GO) test -race -count=1 ./examples/python-echo/

## new-module: scaffold examples/$(NAME), a module that builds and passes its test (make new-module NAME=greeter)
new-module:
	@[ -n "$(NAME)" ] || { echo "usage: make new-module NAME=greeter"; exit 1; }
	$(GO) run ./host new-module --dir=examples/$(NAME) $(NAME)

## check: formatting, vet, and generated code up to date
check:
	@out=$$(gofmt -l $$($(GO) list -f '{{.Dir}}' ./...)); if [ -n "$$out" ]; then echo "gofmt would change:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...
	@scripts/proto.sh && test -z "$$(git status --porcelain -- proto)" || { git status --short -- proto; echo "generated code is stale: run make proto and commit"; exit 1; }

## proto: regenerate protobuf code (installs protoc and the pinned generator)
proto:
	scripts/proto.sh

## bench: the benchmark report (ratios against floors measured in the same run; installs Debian's openssh for the ssh comparison if missing)
bench:
	@if ! command -v ssh >/dev/null 2>&1 || ! [ -x /usr/sbin/sshd ]; then \
		sudo=; [ "$$(id -u)" = 0 ] || sudo=sudo; \
		echo "installing openssh-server openssh-client (the bench starts its own sshd on loopback)"; \
		$$sudo apt-get update -qq && $$sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq openssh-server openssh-client >/dev/null; \
	fi
	$(GO) run ./bench $(ARGS)

## soak: the soak/chaos run: the real host and module under load and faults, invariants checked (about 7 minutes; SOAK_ARGS=-seed=N repeats a run)
.PHONY: soak
soak:
	@mkdir -p $(RUNDIR)
	$(GO) run ./soak -json=$(RUNDIR)/soak.json $(SOAK_ARGS)

## fuzz: run every fuzz target for a bounded time
FUZZTIME ?= 30s
fuzz:
	@for pkg in $$($(GO) list ./...); do \
		for f in $$($(GO) test -list '^Fuzz' $$pkg 2>/dev/null | grep '^Fuzz'); do \
			echo "fuzz $$pkg $$f"; $(GO) test -run '^$$' -fuzz "^$$f$$" -fuzztime $(FUZZTIME) $$pkg || exit 1; \
		done; \
	done

clean:
	rm -rf $(BIN) $(RUNDIR)

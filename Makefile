# The hub's everyday commands. `make run` starts the hub on a private
# PostgreSQL cluster (see README.md); `make test` is what CI runs.

GO          ?= go
GOBIN       := $(shell $(GO) env GOPATH)/bin
STATICCHECK := $(firstword $(shell command -v staticcheck 2>/dev/null) $(wildcard $(GOBIN)/staticcheck))
ARGS        ?=
# Goroutines start with the smallest stack instead of the average seen:
# an idle connection's goroutines then keep 2 + 4 KiB of stack, not
# 4 + 4 (README, "Performance"). This replaces the go command's own
# default GODEBUG, which is empty while go.mod's go line is the
# toolchain's; should `go version -m bin/hub` ever show a DefaultGODEBUG,
# add its settings here.
HUB_LDFLAGS := -X=runtime.godebugDefault=adaptivestackstart=0

.PHONY: run test build lint vet fmt-check staticcheck

## run: start the hub (ARGS="migrate version" runs a subcommand instead)
run:
	$(GO) run -ldflags='$(HUB_LDFLAGS)' ./server $(ARGS)

## test: vet (and staticcheck, when installed), then every test with the race detector
test: vet
ifneq ($(STATICCHECK),)
	$(STATICCHECK) ./...
else
	@echo "staticcheck not installed; skipped (go install honnef.co/go/tools/cmd/staticcheck@v0.8.2)"
endif
	$(GO) test -race -count=1 ./...

## build: a static binary in bin/hub
build:
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags='-s -w $(HUB_LDFLAGS)' -o bin/hub ./server

## lint: gofmt, go vet and staticcheck, all required
lint: fmt-check vet staticcheck

fmt-check:
	@out="$$(find . -name '*.go' -not -path './.git/*' -not -path './.hub/*' -not -path './bin/*' | xargs gofmt -l)"; \
	if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi

vet:
	$(GO) vet ./...

staticcheck:
	@test -n "$(STATICCHECK)" || { echo "staticcheck not installed: go install honnef.co/go/tools/cmd/staticcheck@v0.8.2"; exit 1; }
	$(STATICCHECK) ./...

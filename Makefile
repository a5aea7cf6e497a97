# sluice — the two commands that matter: `make run` and `make test`.
SHELL   := /bin/bash
GO      ?= go
VERSION ?= $(shell git describe --always --dirty 2>/dev/null || echo dev)
LDFLAGS := -s -w -X main.version=$(VERSION)
GOBIN   := $(shell $(GO) env GOPATH)/bin
STATICCHECK_VERSION ?= v0.8.2
HELM_VERSION ?= v3.22.0
SUDO    := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

PREFIX  ?= /usr/local

.PHONY: all build install run test lint deps fuzz bench bench-deps bench-proxy bench-soak profile clean

all: build

## build: the gateway and the demo/bench upstream into ./bin
build:
	$(GO) build -trimpath -ldflags '$(LDFLAGS)' -o bin/sluice ./cmd/sluice
	$(GO) build -trimpath -o bin/upstream ./bench/upstream
	$(GO) build -trimpath -o bin/floor ./bench/floor

## install: copy ./bin/sluice (make build it first, as yourself) to $(DESTDIR)$(PREFIX)/bin,
## /usr/local/bin by default: `make build && sudo make install`, or PREFIX=$$HOME/.local make install.
## It does not build, so sudo needs no Go toolchain and root's Go cache stays empty.
install:
	@test -x bin/sluice || { echo "bin/sluice is missing: run make build first (not as root)"; exit 1; }
	install -d $(DESTDIR)$(PREFIX)/bin
	install -m 0755 bin/sluice $(DESTDIR)$(PREFIX)/bin/sluice
	@echo "installed $(DESTDIR)$(PREFIX)/bin/sluice: $$(bin/sluice version)"

## run: sluice on 127.0.0.1:8080 (admin 127.0.0.1:9901) in front of the demo upstream on 127.0.0.1:9001
run: build
	@./bin/upstream -addr 127.0.0.1:9001 -name demo & up=$$!; \
	trap 'kill $$up 2>/dev/null' EXIT INT TERM; \
	SLUICE_ADMIN_PASSWORD=$${SLUICE_ADMIN_PASSWORD:-demo} ./bin/sluice serve -c examples/sluice.yaml

## test: everything CI runs: lint, the race-enabled suite, allocation tests, fuzz smoke runs.
## Fuzz budgets are execution counts, not durations: a duration races Go's fuzz
## coordinator into a spurious "context deadline exceeded" (golang/go#75804, unfixed in 1.26).
test: deps lint
	$(GO) test -race -count=1 -timeout 15m ./...
	$(GO) test -count=1 -run 'Allocat' ./...
	$(GO) test -run '^$$' -fuzz '^FuzzParse$$' -fuzztime 150000x -fuzzminimizetime 500x ./edge/config
	$(GO) test -run '^$$' -fuzz '^FuzzParseOrigin$$' -fuzztime 100000x -fuzzminimizetime 500x ./edge/config
	$(GO) test -run '^$$' -fuzz '^FuzzCheckHSTS$$' -fuzztime 50000x -fuzzminimizetime 500x ./edge/config
	$(GO) test -run '^$$' -fuzz '^FuzzParseTicketKeys$$' -fuzztime 50000x -fuzzminimizetime 500x ./edge/config
	$(GO) test -run '^$$' -fuzz '^FuzzContains$$' -fuzztime 100000x -fuzzminimizetime 500x ./edge/ipset
	$(GO) test -run '^$$' -fuzz '^FuzzCORSAllowsOrigin$$' -fuzztime 50000x -fuzzminimizetime 500x ./edge
	$(GO) test -run '^$$' -fuzz '^FuzzAcceptEncoding$$' -fuzztime 100000x -fuzzminimizetime 500x ./edge
	$(GO) test -run '^$$' -fuzz '^FuzzContentCoding$$' -fuzztime 50000x -fuzzminimizetime 500x ./edge
	$(GO) test -run '^$$' -fuzz '^FuzzDecodeRequestBody$$' -fuzztime 20000x -fuzzminimizetime 500x ./edge
	$(GO) test -run '^$$' -fuzz '^FuzzUnquotedEqual$$' -fuzztime 50000x -fuzzminimizetime 500x ./edge
	$(GO) test -run '^$$' -fuzz '^FuzzAppendEntry$$' -fuzztime 100000x -fuzzminimizetime 500x ./edge/observe
	$(GO) test -run '^$$' -fuzz '^FuzzParseCacheControl$$' -fuzztime 100000x -fuzzminimizetime 500x ./edge/cache
	$(GO) test -run '^$$' -fuzz '^FuzzUnmarshal$$' -fuzztime 100000x -fuzzminimizetime 500x ./edge/cache
	$(GO) test -run '^$$' -fuzz '^FuzzAppendKey$$' -fuzztime 50000x -fuzzminimizetime 500x ./edge/cache
	$(GO) test -run '^$$' -fuzz '^FuzzNormalize$$' -fuzztime 200000x -fuzzminimizetime 500x ./edge/pathnorm
	$(GO) test -run '^$$' -fuzz '^FuzzFind$$' -fuzztime 100000x -fuzzminimizetime 500x ./edge/submatch
	$(GO) test -run '^$$' -fuzz '^FuzzRequestBytes$$' -fuzztime 3000x -fuzzminimizetime 100x ./edge
	$(GO) test -run '^$$' -fuzz '^FuzzConsoleAuth$$' -fuzztime 50000x -fuzzminimizetime 500x ./edge/admin
	$(GO) test -run '^$$' -fuzz '^FuzzQuotaListQuery$$' -fuzztime 50000x -fuzzminimizetime 500x ./edge/admin
	$(GO) test -run '^$$' -fuzz '^FuzzHostAndOrigin$$' -fuzztime 50000x -fuzzminimizetime 500x ./edge/admin

## deps: what the tests need that a fresh machine may lack, from Debian's packages:
## redis-server, prometheus (promtool and the server, for deploy/prometheus),
## nginx (deploy/nginx's test puts a real one in front of two sluices),
## chromium (the browser tests, driven by chromedp: CORS in edge/cors_browser_test.go, the web console in cmd/sluice/console_browser_test.go),
## podman and runc (deploy/container_test.go builds and runs the images' final stages),
## iproute2 (deploy/compose_run_test.go brings up loopback in its own network namespace)
deps:
	@$(GO) version | grep -Eq 'go1\.(2[6-9]|[3-9][0-9])' || { echo "Go 1.26 or newer is required"; exit 1; }
	@test -x $(GOBIN)/staticcheck || $(GO) install honnef.co/go/tools/cmd/staticcheck@$(STATICCHECK_VERSION)
	@# helm for deploy/helm_test.go (lint, template); Debian has no package. Built once, about 8 minutes on 2 cores.
	@command -v helm >/dev/null || test -x $(GOBIN)/helm || { echo "building helm $(HELM_VERSION) (once)"; $(GO) install helm.sh/helm/v3/cmd/helm@$(HELM_VERSION); }
	@missing=""; \
	command -v redis-server >/dev/null || missing="$$missing redis-server"; \
	command -v promtool >/dev/null || missing="$$missing prometheus"; \
	command -v nginx >/dev/null || test -x /usr/sbin/nginx || missing="$$missing nginx"; \
	command -v chromium >/dev/null || command -v chromium-browser >/dev/null || command -v google-chrome >/dev/null || missing="$$missing chromium"; \
	command -v podman >/dev/null || missing="$$missing podman"; \
	command -v runc >/dev/null || test -x /usr/sbin/runc || missing="$$missing runc"; \
	command -v ip >/dev/null || test -x /usr/sbin/ip || missing="$$missing iproute2"; \
	command -v pebble >/dev/null || missing="$$missing pebble"; \
	command -v openssl >/dev/null || missing="$$missing openssl"; \
	if [ -n "$$missing" ]; then \
		echo "installing$$missing (tests start their own servers on 127.0.0.1)"; \
		$(SUDO) apt-get update -qq && $(SUDO) DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing >/dev/null; \
	fi

## lint: gofmt, go.mod/go.sum tidy (go mod tidy -diff prints what tidy would change), go vet, staticcheck
lint: deps
	@out=$$(gofmt -l .); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) mod tidy -diff
	$(GO) vet ./...
	$(GOBIN)/staticcheck ./...

## fuzz: longer fuzzing of the config parser, the origin parser, the path normaliser and the prefix set (FUZZTIME=10000000x make fuzz)
fuzz:
	$(GO) test -run '^$$' -fuzz '^FuzzParse$$' -fuzztime $${FUZZTIME:-2000000x} ./edge/config
	$(GO) test -run '^$$' -fuzz '^FuzzParseOrigin$$' -fuzztime $${FUZZTIME:-2000000x} ./edge/config
	$(GO) test -run '^$$' -fuzz '^FuzzContains$$' -fuzztime $${FUZZTIME:-2000000x} ./edge/ipset
	$(GO) test -run '^$$' -fuzz '^FuzzCORSAllowsOrigin$$' -fuzztime $${FUZZTIME:-2000000x} ./edge
	$(GO) test -run '^$$' -fuzz '^FuzzNormalize$$' -fuzztime $${FUZZTIME:-2000000x} ./edge/pathnorm
	$(GO) test -run '^$$' -fuzz '^FuzzFind$$' -fuzztime $${FUZZTIME:-2000000x} ./edge/submatch

## bench: micro-benchmarks with allocations, on 1 and 2 cores
bench:
	$(GO) test -run '^$$' -bench . -benchmem -cpu 1,2 ./lb ./edge ./edge/auth ./edge/pathnorm ./limiter ./pool

## bench-deps: what the proxy benchmark needs: wrk and nginx (Debian), vegeta (Go module proxy)
bench-deps:
	@missing=""; \
	command -v wrk >/dev/null || missing="$$missing wrk"; \
	command -v nginx >/dev/null || missing="$$missing nginx"; \
	if [ -n "$$missing" ]; then \
		echo "installing$$missing"; \
		$(SUDO) apt-get update -qq && $(SUDO) DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing >/dev/null; \
	fi
	@command -v vegeta >/dev/null || test -x $(GOBIN)/vegeta || $(GO) install github.com/tsenart/vegeta/v12@v12.13.0

## bench-proxy: sluice vs nginx vs a bare fasthttp proxy vs the stub, every scenario, one table each
## (about 10 minutes; BENCH_ARGS="-scenario bare -rounds 5" to narrow it)
bench-proxy: build bench-deps
	$(GO) run ./bench/harness $(BENCH_ARGS)

## bench-soak: sluice's RSS every 5 s over 60 s of load with 1000 idle connections
bench-soak: build bench-deps
	$(GO) run ./bench/harness -soak 60s $(BENCH_ARGS)

## profile: CPU and allocation profiles of sluice under wrk load, into bench/profiles
profile: build bench-deps
	$(GO) run ./bench/harness -profile bench/profiles $(BENCH_ARGS)

clean:
	rm -rf bin

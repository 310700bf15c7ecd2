# The README's quick start: `make run` starts a node on its defaults,
# `make test` runs the whole test suite (what .ci/run runs).
GO ?= go

.PHONY: run test build vet fuzz bench

run:
	$(GO) run ./cmd/gameserver

build:
	$(GO) build -o bin/gameserver ./cmd/gameserver

test:
	bash scripts/test.sh

vet:
	$(GO) vet ./...

# Each decoder's fuzz target for a short, bounded run.
fuzz:
	$(GO) test -run '^$$' -fuzz FuzzDecode -fuzztime 1000000x ./internal/protocol/
	$(GO) test -run '^$$' -fuzz FuzzParseHead -fuzztime 250000x ./internal/transport/
	$(GO) test -run '^$$' -fuzz FuzzClientAddr -fuzztime 200000x ./internal/transport/
	$(GO) test -run '^$$' -fuzz FuzzDecodePost -fuzztime 100000x .

bench:
	bash scripts/bench.sh

# A local three-node cluster behind a load balancer on :8080, until Ctrl-C
# (scripts/cluster.sh; docs/operations.md, "A local cluster").
.PHONY: cluster
cluster:
	bash scripts/cluster.sh

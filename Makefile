# cairn build, test and benchmark entry points. CI runs `make test`
# (through .ci/run); see DESIGN.md §9.

SHELL := bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := build

GO ?= go
BIN := bin/cairn

# Top-level directories that hold generated or mounted content, never
# sources: find must not walk into them (mnt/ may be a live FUSE mount,
# demo/src is a copy of the tree). testdata/ holds golden inputs at any depth.
PRUNE := -path ./.git -o -path ./bin -o -path ./bench -o -path ./demo -o -path ./mnt -o -name testdata

.PHONY: build test fmt-check vet bench bench-plan bench-mount bench-s3 run clean mutate

build:
	$(GO) build -trimpath -o $(BIN) ./cmd/cairn

# test runs what CI runs. deps.sh minio builds the MinIO server that the S3
# backend tests run against when it is missing (7-15 minutes, once). go
# test comes last so that its summary lines end the output.
test:
	bash scripts/deps.sh minio
	$(MAKE) --no-print-directory fmt-check vet
	$(GO) test -race -count=1 -timeout 60m ./...

# fmt-check fails when gofmt would change any file, and names them.
fmt-check:
	@unformatted=$$(find . \( $(PRUNE) \) -prune \
		-o -type f -name '*.go' -exec gofmt -l {} +); \
	if [[ -n $$unformatted ]]; then \
		echo "gofmt: these files need formatting (run gofmt -w):" >&2; \
		echo "$$unformatted" >&2; \
		exit 1; \
	fi

vet:
	$(GO) vet ./...

bench: build
	mkdir -p bench
	$(GO) test -run '^$$' -bench . -benchmem ./... | tee bench/go.txt
	bash scripts/bench.sh
	bash scripts/bench-plan.sh
	bash scripts/bench-mount.sh
	bash scripts/bench-s3.sh

# bench-mount compares reads through cairn mount with restic mount (and a
# go-fuse loopback baseline); bench runs it too.
bench-mount: build
	mkdir -p bench
	bash scripts/bench-mount.sh

# bench-plan compares a plan over one repository with the same plan over
# two (same and different chunker seeds): time and bytes read; bench runs it
# too.
bench-plan: build
	mkdir -p bench
	bash scripts/bench-plan.sh

# bench-s3 compares cairn with restic on S3 storage (a MinIO server it starts
# on loopback; deps.sh minio builds it when missing): times, S3 requests per
# command, and the first listing in a mount; bench runs it too.
bench-s3: build
	mkdir -p bench
	bash scripts/bench-s3.sh

# mutate applies each mutation of scripts/mutations.txt alone and runs the
# tests of its package: a mutation the tests do not catch is a gap. Not part
# of make test (it runs a package's tests once per mutation).
mutate:
	bash scripts/mutate.sh $(REV)

run: build
	bash scripts/deps.sh demo
	bash scripts/demo.sh

clean:
	rm -rf bin bench demo
	find . \( -path ./.git -o -path ./mnt \) -prune -o -type f \( -name '*.test' -o -name '*.out' \) -exec rm -f {} +

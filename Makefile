.DEFAULT_GOAL := help

## help: list the targets
.PHONY: help
help:
	@grep -E '^## ' $(MAKEFILE_LIST) | sed 's/^## //' | column -t -s ':'

## test: run the tests with the race detector
.PHONY: test
test:
	go test -race ./...

## lint: gofmt and go vet
.PHONY: lint
lint:
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || (gofmt -l $$(git ls-files '*.go'); exit 1)
	go vet ./...

## bench: Go benchmarks of the hot paths, then the side-by-side comparison with River
.PHONY: bench
bench:
	go test -run '^$$' -bench . -benchmem ./internal/store/... ./queue/...
	@if [ -d bench ]; then cd bench && go run . ; fi

## build: build ./spool
.PHONY: build
build:
	go build -o spool ./cmd/spool

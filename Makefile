# eb-deploy developer entry points. Quick start on a fresh machine: `make demo`, then `make test`.
.PHONY: demo test bench lint stack-up stack-down fmt clippy help

help:
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-11s %s\n", $$1, $$2}'

demo: ## Deploy the example app v1, then v2, roll back to v1, on the local stack (no AWS account)
	scripts/demo

test: ## The whole suite: format, lints, unit and mock tests, end to end on the local stack, workflow linters
	scripts/test

bench: ## Benchmarks against the hand-written pipeline; writes BENCHMARKS.md
	scripts/bench

lint: ## Workflow and action linters (actionlint, zizmor, check-jsonschema)
	scripts/lint-workflows

stack-up: ## Start the local stack (Docker Engine, registry, moto, ebsim); prints the env file
	scripts/local-stack up

stack-down: ## Stop everything stack-up started
	scripts/local-stack down

fmt:
	cargo fmt --all

clippy:
	cargo clippy --workspace --all-targets --all-features -- -D warnings

# Every target works on a fresh clone: the first one that needs node_modules installs them
# from package-lock.json. The targets are thin names over the npm scripts in package.json.
.PHONY: dev test test-short build start migrate-up migrate-down migrate-down-all migrate-version \
        migrate-create openapi lint typecheck clean

NPM_INSTALLED := node_modules/.package-lock.json

$(NPM_INSTALLED): package.json package-lock.json
	npm ci --no-audit --no-fund
	@touch $@

## dev: run the service on :8090 with the embedded database (APP_ENV=dev)
dev: $(NPM_INSTALLED)
	APP_ENV=$${APP_ENV:-dev} npm run --silent dev

## keycloak: a real Keycloak on :8180 with the project's realm (keycloak/realm.json); downloads it once
.PHONY: keycloak dev-keycloak
keycloak:
	scripts/keycloak run

## dev-keycloak: the service on :8090 against `make keycloak` (tokens and provisioning from the real server)
dev-keycloak: $(NPM_INSTALLED)
	APP_ENV=dev \
	KEYCLOAK_ISSUER=http://127.0.0.1:$${KEYCLOAK_PORT:-8180}/realms/tenant-registry \
	KEYCLOAK_AUDIENCE=tenant-registry \
	KEYCLOAK_ADMIN_URL=http://127.0.0.1:$${KEYCLOAK_PORT:-8180} \
	KEYCLOAK_REALM=tenant-registry \
	KEYCLOAK_CLIENT_ID=tenant-registry \
	KEYCLOAK_CLIENT_SECRET=dev-only-registry-secret \
	npm run --silent dev

## test: every test on both drivers (embedded and real PostgreSQL) with typecheck, lint, layering and the lint of
## openapi.yaml beside them at low priority (scripts/test-suite), then the real-Keycloak suites, beside a Keycloak
## started for the run (scripts/with-keycloak)
test: $(NPM_INSTALLED)
	npm test

## test-short: typecheck, lint, then the tests on the embedded driver only (no PostgreSQL needed)
test-short: $(NPM_INSTALLED)
	npm run test:short

## build: compile to dist/ and write the launchers bin/tenant-registry and bin/migrate
build: $(NPM_INSTALLED)
	npm run build
	@mkdir -p bin
	@printf '#!/bin/sh\nd="$$(dirname "$$0")/../dist/src"\nexec node --max-old-space-size=192 --import "$$d/observability/tracing-preload.js" "$$d/main.js" "$$@"\n' > bin/tenant-registry
	@printf '#!/bin/sh\nexec node "$$(dirname "$$0")/../dist/src/cli/migrate.js" "$$@"\n' > bin/migrate
	@printf '#!/bin/sh\nexec node "$$(dirname "$$0")/../dist/src/cli/verify-audit.js" "$$@"\n' > bin/verify-audit
	@chmod +x bin/tenant-registry bin/migrate bin/verify-audit
	@echo "built: ./bin/tenant-registry (server), ./bin/migrate (migrations), ./bin/verify-audit (offline audit check)"

migrate-up: $(NPM_INSTALLED)
	npm run --silent migrate -- up

migrate-down: $(NPM_INSTALLED)
	npm run --silent migrate -- down

## migrate-down-all: revert every migration (destroys all data: dev databases only)
migrate-down-all: $(NPM_INSTALLED)
	npm run --silent migrate -- down-all

migrate-version: $(NPM_INSTALLED)
	npm run --silent migrate -- version

## migrate-create NAME=add_team_table: write the next empty pair of migration files
migrate-create: $(NPM_INSTALLED)
	@test -n "$(NAME)" || (echo "usage: make migrate-create NAME=add_team_table" >&2; exit 2)
	npm run --silent migrate -- create $(NAME)

## openapi: regenerate openapi.yaml from the route schemas
openapi: $(NPM_INSTALLED)
	npm run --silent openapi

## bench: every hot path under load against a bare node:http baseline, on PostgreSQL then PGlite (BENCH_ARGS="--driver pg")
.PHONY: bench
bench: $(NPM_INSTALLED)
	scripts/ensure-postgres
	npm run --silent bench -- $(BENCH_ARGS)
	npm run --silent bench:events
	npm run --silent bench:verify-inprocess
	npm run --silent bench:verify-middleware

## bench-events: commit-to-delivery latency of the SSE stream, a webhook and JetStream under steady writes, and the relay's rate against PostgreSQL's insert rate
.PHONY: bench-events
bench-events: $(NPM_INSTALLED)
	scripts/ensure-postgres
	npm run --silent bench:events -- $(BENCH_ARGS)

## bench-audit: seed 1M audit events in a throwaway database, time appends and pages (BENCH_ARGS="--driver pglite")
.PHONY: bench-audit
bench-audit: $(NPM_INSTALLED)
	npm run --silent bench:audit -- $(BENCH_ARGS)

## bench-verify: load the key verify endpoint against a bare node:http baseline (BENCH_ARGS="--driver pglite")
.PHONY: bench-verify
bench-verify: $(NPM_INSTALLED)
	npm run --silent bench:verify -- $(BENCH_ARGS)

## bench-verify-middleware: a headless product under load with no key check, with @tenant-registry/verify, and asking the registry per request; then revocation to refusal under that load (BENCH_ARGS="--driver pg")
.PHONY: bench-verify-middleware
bench-verify-middleware: $(NPM_INSTALLED)
	npm run --silent bench:verify-middleware -- $(BENCH_ARGS)

## reliability: the fault, concurrency and hostile-input tests, then their figures into RELIABILITY.md
.PHONY: reliability
reliability: $(NPM_INSTALLED)
	scripts/ensure-postgres
	rm -rf reliability/figures
	npx vitest run test/reliability test/events/nats-relay-outage.test.ts test/events/nats-relay-failover.test.ts
	npx tsx test/reliability/report.ts

lint: $(NPM_INSTALLED)
	npm run lint

typecheck: $(NPM_INSTALLED)
	npm run typecheck

clean:
	rm -rf dist bin coverage

# Local development and CI entry points. See deploy/local/*.sh.
SHELL := /usr/bin/env bash

.PHONY: client-go bench-webhooks bench-flood fuzz up down restart test test-unit build lint bench bench-micro bench-writer bench-edge seed load chaos sim clean-data services-test-up services-test-down

up: ## whole local topology: Postgres primary+replica, Redis, NATS, writer, edges, demo data
	@RATE_LIMITS=$(RATE_LIMITS) deploy/local/up.sh

down: ## stop everything `make up` started
	@deploy/local/down.sh

restart: down up

test: ## test services up, go test ./... (LICENSE_TEST_REQUIRE=1), lint, services down (KEEP_SERVICES=1 keeps them)
	@deploy/local/test.sh

test-unit: ## tests that need no services
	go test -short -count=1 ./...

services-test-up:
	@deploy/local/services.sh up test
	@echo "# eval \"\$$(deploy/local/services.sh env test)\" to point go test at them"

services-test-down:
	@deploy/local/services.sh down test

build:
	go build ./...

client-go: ## regenerate the Go client clients/go/licenseapi from writer/openapi/openapi.yaml (ogen, a go.mod tool); a test fails when it drifts
	go tool ogen -config clients/go/ogen.yml -target clients/go/licenseapi -package licenseapi -clean -loglevel error writer/openapi/openapi.yaml

lint: ## gofmt -l, go vet, staticcheck (pinned)
	@deploy/local/lint.sh

bench-writer: ## seat guard benchmark (lock vs conditional update) on the test-profile Postgres
	@deploy/local/services.sh up test
	@eval "$$(deploy/local/services.sh env test)" && go test -run '^$$' -bench Activate -benchtime 5s -count 3 ./writer/postgres/

bench-edge: ## edge status from L1, L2 and the replica vs a constant-response fasthttp server (test-profile services)
	@deploy/local/services.sh up test
	@edge/bench/run.sh

fuzz: ## every Go fuzz target for FUZZTIME (default 30s) each; crashers land in testdata/fuzz and then run in make test
	@deploy/local/fuzz.sh

bench-flood: ## flood shield: Postgres reads per request for distinct unknown keys with and without the key filter, and the filter's memory and false positives at 10M keys (test-profile services)
	@deploy/local/services.sh up test
	@eval "$$(deploy/local/services.sh env test)" && go test -run '^$$' -bench UnknownKeyFlood -benchtime 20000x -count 3 ./e2e/
	go test -run '^$$' -bench Filter10M -benchtime 1x -count 3 ./edge/shield/

bench-webhooks: ## webhooks: delivery throughput (1000 endpoints, healthy vs 10% failing), change-to-first-attempt latency, activation rate with and without 100 subscribed endpoints (test-profile services)
	@deploy/local/services.sh up test
	@eval "$$(deploy/local/services.sh env test)" && go test -run '^$$' -bench 'WebhookThroughput|WebhookLatency' -benchtime 1x -count 3 -timeout 20m ./writer/app/
	@eval "$$(deploy/local/services.sh env test)" && go test -run '^$$' -bench ActivationWithWebhooks -benchtime 1x -count 1 -timeout 30m ./writer/app/

bench-micro: ## Go micro-benchmarks
	go test -run '^$$' -bench . -benchmem ./...

seed: ## load-test data into the `make up` database (ACTIVATIONS=1000000 PREFIX=lt)
	go run ./loadtest/cmd/seed -activations $(or $(ACTIVATIONS),1000000) -prefix $(or $(PREFIX),lt) -manifest .data/loadtest/manifest.json

load: ## Go load harness against `make up`, brought up (or restarted) with rate limits off (SCENARIOS=status,activation_storm,mix)
	@RATE_LIMITS=off deploy/local/up.sh >/dev/null
	@echo "load: the topology runs with rate limits OFF (make up RATE_LIMITS=off): the harness measures the service, not the limiter"
	go run ./loadtest/cmd/load run -scenario $(or $(SCENARIOS),status,activation_storm,mix) -manifest .data/loadtest/manifest.json

chaos: ## fault-injection harness: its own topology under .data/chaos, every scenario (SCENARIOS=a,b), tables in .data/chaos/report.md
	@deploy/local/deps.sh
	go run ./loadtest/cmd/chaos -scenarios $(or $(SCENARIOS),all) -markdown .data/chaos/report.md

sim: ## three regions on one machine behind toxiproxy (90/180 ms RTT): 60 s partition, lagging replica, edge loss; .data/sim/report.{md,html}
	@deploy/local/deps.sh
	go run ./loadtest/cmd/sim -out .data/sim

bench: ## baselines side by side at 100k and 10M activations against `make up` with rate limits off (SIZES="100k 10m"), then the edge tiers
	@RATE_LIMITS=off deploy/local/up.sh >/dev/null
	@echo "bench: the topology runs with rate limits OFF (make up RATE_LIMITS=off)"
	@loadtest/bench.sh
	@deploy/local/services.sh up test
	@edge/bench/run.sh

clean-data: down ## stop the local topology and delete .data/ and bin/
	@deploy/local/services.sh down test
	@deploy/local/clean-data.sh

.PHONY: deploy-schemas
deploy-schemas: ## regenerate deploy/validate/schemas (Kubernetes JSON schemas for kubeconform) from the Kubernetes OpenAPI document
	cd deploy/validate && go generate .

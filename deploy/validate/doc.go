// Package validate holds the tests that check the deploy files with the tools an SRE
// would run (deploy/README.md, "Validation"): every kustomize folder under deploy/k8s is
// rendered with the kustomize Go module and each object is validated by kubeconform in
// strict mode against the JSON schemas in schemas/ (generated from the Kubernetes API's
// OpenAPI document by genschemas, committed, so nothing is downloaded at test time); the
// rendered overlays are checked for what the Go code expects of them (region labels,
// stream replicas, TLS on leaf links and ingresses, trusted proxies, every WRITER_/EDGE_
// variable a real setting); the NATS configurations are checked by `nats-server -t`; the
// Prometheus rules by `promtool check rules` and `promtool test rules` (the unit tests in
// deploy/prometheus/tests); the compose file by the compose-spec loader.
//
// Regenerate the schemas (for a new Kubernetes version or a kind the manifests start to
// use) with `make deploy-schemas`.
package validate

//go:generate go run ./genschemas -k8s 1.34.4 -out schemas

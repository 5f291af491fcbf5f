// Package k6 holds the k6 scripts of the load scenarios (*.js, ES modules) and the test
// that checks their syntax with node, since k6 itself is not installed in CI. The scripts
// read their numbers from ../scenarios.json, as the Go harness does.
package k6

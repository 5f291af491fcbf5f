// Package k6 holds the k6 scripts of the load scenarios (*.js, ES modules) and the tests
// that check them without k6, which is not installable here: node's parser
// (TestScriptsParse), a run of every script under node with the k6 modules stubbed
// (options and requests match scenarios.json; RATE, DURATION and VUS overrides), and a
// TypeScript check against npm's @types/k6 (typecheck.sh, TestScriptsTypeCheck). The
// scripts read their numbers from ../scenarios.json, as the Go harness does.
package k6

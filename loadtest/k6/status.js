// k6 scenario "status" of ../scenarios.json (the Go harness runs the same one:
// go run ./loadtest/cmd/load run -scenario status). Run:
//   k6 run -e MANIFEST=$PWD/.data/loadtest/manifest.json loadtest/k6/status.js
// Smoke run (overrides scenarios.json): add -e RATE=5 -e DURATION=10s -e VUS=2.
import { optionsFor, iterate, checkLimitsOff } from './lib.js';

/** @type {import('k6/options').Options} */
export const options = optionsFor('status');

// iteration is the scenario's exec function; it is the default export too, so a plain
// `k6 run --vus 2 --duration 10s status.js` (whose flags replace options.scenarios) runs it as well.
export function iteration() {
  iterate('status');
}

export default iteration;

export function setup() {
  checkLimitsOff();
}

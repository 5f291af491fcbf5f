// k6 scenario "status" of ../scenarios.json (the Go harness runs the same one:
// go run ./loadtest/cmd/load run -scenario status). Run:
//   k6 run -e MANIFEST=$PWD/.data/loadtest/manifest.json loadtest/k6/status.js
import { optionsFor, iterate, checkLimitsOff } from './lib.js';

export const options = optionsFor('status');

export function iteration() {
  iterate('status');
}

export function setup() {
  checkLimitsOff();
}

// k6 scenario "activation_storm" of ../scenarios.json (the Go harness runs the same one:
// go run ./loadtest/cmd/load run -scenario activation_storm). Run:
//   k6 run -e MANIFEST=$PWD/.data/loadtest/manifest.json loadtest/k6/activation_storm.js
import { optionsFor, iterate, checkLimitsOff } from './lib.js';

export const options = optionsFor('activation_storm');

export function iteration() {
  iterate('activation_storm');
}

export function setup() {
  checkLimitsOff();
}

// k6 scenario "mix" of ../scenarios.json (the Go harness runs the same one:
// go run ./loadtest/cmd/load run -scenario mix). Run:
//   k6 run -e MANIFEST=$PWD/.data/loadtest/manifest.json loadtest/k6/mix.js
import { optionsFor, iterate, checkLimitsOff } from './lib.js';

export const options = optionsFor('mix');

export function iteration() {
  iterate('mix');
}

export function setup() {
  checkLimitsOff();
}

// k6 scenario "writer_distinct" of ../scenarios.json (the Go harness runs the same one:
// go run ./loadtest/cmd/load run -scenario writer_distinct). Run:
//   k6 run -e MANIFEST=$PWD/.data/loadtest/manifest.json loadtest/k6/writer_distinct.js
import { optionsFor, iterate, checkLimitsOff } from './lib.js';

export const options = optionsFor('writer_distinct');

export function iteration() {
  iterate('writer_distinct');
}

export function setup() {
  checkLimitsOff();
}

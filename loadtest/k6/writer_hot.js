// k6 scenario "writer_hot" of ../scenarios.json (the Go harness runs the same one:
// go run ./loadtest/cmd/load run -scenario writer_hot). Run:
//   k6 run -e MANIFEST=$PWD/.data/loadtest/manifest.json loadtest/k6/writer_hot.js
import { optionsFor, iterate, checkLimitsOff } from './lib.js';

export const options = optionsFor('writer_hot');

export function iteration() {
  iterate('writer_hot');
}

export function setup() {
  checkLimitsOff();
}

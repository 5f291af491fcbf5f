// Globals the k6 runtime provides that @types/k6 does not declare (k6 implements console
// itself; the DOM lib would declare far more than k6 has).
declare const console: {
  log(...data: unknown[]): void;
  info(...data: unknown[]): void;
  warn(...data: unknown[]): void;
  error(...data: unknown[]): void;
  debug(...data: unknown[]): void;
};

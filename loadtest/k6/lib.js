// Shared k6 code of the load scenarios. Every number (rates, durations, mixes,
// thresholds) comes from ../scenarios.json, which the Go harness (loadtest/cmd/load)
// reads too, so both tools run the same scenarios; the operations below mirror
// loadtest/harness (same endpoints, same expected statuses, same data lists).
//
// Environment: MANIFEST (absolute path of the seeder's manifest), WRITER_URL,
// EDGE_URLS (comma-separated). For smoke runs RATE (arrivals per second), DURATION (e.g.
// 10s) and VUS (the VU pool of an arrival-rate scenario, the VUs of a constant-VUs one)
// override scenarios.json; such a run is not comparable with the file's numbers. See
// loadtest/README.md for the `k6 run` commands. Type-checked against @types/k6 by
// typecheck.sh (tsc --checkJs): the JSDoc types below are what it checks.
import http from 'k6/http';
import { Rate, Counter } from 'k6/metrics';
import { SharedArray } from 'k6/data';

export const SCENARIOS = JSON.parse(open('../scenarios.json'));

const MANIFEST = __ENV.MANIFEST || '../../.data/loadtest/manifest.json';
const WRITER = (__ENV.WRITER_URL || 'http://127.0.0.1:8080').replace(/\/$/, '');
const EDGES = (__ENV.EDGE_URLS || 'http://127.0.0.1:8081,http://127.0.0.1:8082')
  .split(',').map((s) => s.trim().replace(/\/$/, '')).filter((s) => s !== '');

/**
 * @param {string} name a list of the seeder's manifest
 * @returns {any[]}
 */
function list(name) {
  return new SharedArray(name, () => JSON.parse(open(MANIFEST))[name] || []);
}

const data = {
  status: list('status'),
  free: list('free'),
  near_full: list('near_full'),
  unlimited: list('unlimited'),
  active: list('active'),
  lifecycle: list('lifecycle'),
  brands: list('brands'),
};

// Same table as loadtest/scenario Expected.
const EXPECTED = {
  status: [200],
  activate_free: [200, 201, 409],
  activate_hot: [200, 201, 409],
  activate_unlimited: [201],
  activate_hot_unlimited: [201],
  deactivate: [200, 404],
  lifecycle: [200],
};

export const errors = new Rate('errors');
const outcomes = new Counter('outcomes');

// Every status is "expected" for k6's own http_req_failed; errors is the metric that counts.
http.setResponseCallback(http.expectedStatuses({ min: 100, max: 599 }));

/**
 * positiveInt reads an override from the environment: undefined when unset.
 * @param {string} name
 * @returns {number | undefined}
 */
function positiveInt(name) {
  const v = __ENV[name];
  if (v === undefined || v === '') {
    return undefined;
  }
  const n = Number(v);
  if (!Number.isInteger(n) || n <= 0) {
    throw new Error(`${name}=${v}: want a positive integer`);
  }
  return n;
}

/**
 * optionsFor turns one entry of scenarios.json into k6 options, with the smoke-run
 * overrides RATE, DURATION and VUS from the environment.
 * @param {string} name
 * @returns {import('k6/options').Options}
 */
export function optionsFor(name) {
  const sc = SCENARIOS[name];
  if (!sc) {
    throw new Error(`no scenario ${name} in scenarios.json`);
  }
  const rate = positiveInt('RATE') || sc.rate;
  const duration = __ENV.DURATION || sc.duration;
  const vus = positiveInt('VUS');
  /** @type {import('k6/options').Scenario} */
  const s = sc.executor === 'constant-arrival-rate'
    ? {
      executor: 'constant-arrival-rate', rate, timeUnit: '1s', duration,
      preAllocatedVUs: vus || sc.max_in_flight, maxVUs: vus || sc.max_in_flight, exec: 'iteration',
    }
    : { executor: 'constant-vus', vus: vus || sc.vus, duration, exec: 'iteration' };
  const th = sc.thresholds;
  return {
    scenarios: { [name]: s },
    thresholds: {
      http_req_duration: [`p(95)<${th.p95_ms}`, `p(99)<${th.p99_ms}`],
      errors: [`rate<${th.error_rate}`],
    },
    summaryTrendStats: ['min', 'avg', 'med', 'p(90)', 'p(95)', 'p(99)', 'p(99.9)', 'max'],
    discardResponseBodies: false,
  };
}

function pick(arr, n) {
  return arr[Math.floor(Math.random() * (n || arr.length))];
}

function base(sc) {
  return sc.target === 'edges' ? pick(EDGES) : WRITER;
}

const RUN = Date.now().toString(36);
let seq = 0;
function newInstance() {
  seq += 1;
  return `https://lt-k6-${RUN}-${__VU}-${seq}.example.net`;
}

function apiKey(slug) {
  for (let i = 0; i < data.brands.length; i++) {
    if (data.brands[i].slug === slug) {
      return data.brands[i].api_key;
    }
  }
  return '';
}

function record(op, res) {
  let code = '';
  if (res.status >= 300 && res.body) {
    try {
      code = JSON.parse(res.body).code || '';
    } catch (e) {
      code = '';
    }
  }
  const ok = EXPECTED[op].indexOf(res.status) >= 0;
  errors.add(!ok, { op });
  outcomes.add(1, { op, status: String(res.status), code });
}

const JSON_HEADERS = { headers: { 'Content-Type': 'application/json' } };

// runOp performs one operation of a mix, as loadtest/harness Runner.do does.
export function runOp(sc, op) {
  const b = base(sc);
  let t;
  switch (op) {
    case 'status': {
      t = pick(data.status);
      let u = `${b}/v1/public/${t.b}/licenses/${t.k}/status?product=${encodeURIComponent(t.p)}`;
      if (t.i) {
        u += `&instance=${encodeURIComponent(t.i)}`;
      }
      record(op, http.get(u, { tags: { op, name: 'status' } }));
      return;
    }
    case 'activate_free':
    case 'activate_hot':
    case 'activate_unlimited':
    case 'activate_hot_unlimited': {
      if (op === 'activate_free') t = pick(data.free);
      else if (op === 'activate_hot') t = pick(data.near_full, Math.min(Math.max(sc.hot_licenses || 1, 1), data.near_full.length));
      else if (op === 'activate_unlimited') t = pick(data.unlimited);
      else t = data.unlimited[0];
      const body = JSON.stringify({ license_key: t.k, product: t.p, instance: newInstance() });
      record(op, http.post(`${b}/v1/public/${t.b}/activations`, body, Object.assign({ tags: { op, name: 'activate' } }, JSON_HEADERS)));
      return;
    }
    case 'deactivate': {
      t = pick(data.active);
      const body = JSON.stringify({ license_key: t.k, product: t.p, instance: t.raw });
      record(op, http.post(`${b}/v1/public/${t.b}/deactivations`, body, Object.assign({ tags: { op, name: 'deactivate' } }, JSON_HEADERS)));
      return;
    }
    case 'lifecycle': {
      t = pick(data.lifecycle);
      const params = { headers: { Authorization: `Bearer ${apiKey(t.b)}` }, tags: { op, name: 'lifecycle' } };
      record(op, http.post(`${WRITER}/v1/licenses/${t.l}/suspend`, null, params));
      record(op, http.post(`${WRITER}/v1/licenses/${t.l}/resume`, null, params));
      return;
    }
    default:
      throw new Error(`unknown operation ${op}`);
  }
}

// iterate picks an operation by the scenario's mix weights (same rule as the harness).
export function iterate(name) {
  const sc = SCENARIOS[name];
  const names = Object.keys(sc.mix).sort();
  let total = 0;
  names.forEach((n) => { total += sc.mix[n]; });
  const u = Math.random();
  let acc = 0;
  for (let i = 0; i < names.length; i++) {
    acc += sc.mix[names[i]] / total;
    if (u < acc) {
      runOp(sc, names[i]);
      return;
    }
  }
  runOp(sc, names[names.length - 1]);
}

// checkLimitsOff is every script's setup: the scenarios load the topology from one
// address, so they must run with the rate limits off (`make up RATE_LIMITS=off`); a limited
// route answers with RateLimit-Policy, and then the run stops before it starts.
export function checkLimitsOff() {
  for (const base of [WRITER, ...EDGES]) {
    const r = http.get(`${base}/v1/public/k6-preflight/licenses/NOT-A-KEY/status`);
    if (r.headers['Ratelimit-Policy'] || r.headers['RateLimit-Policy']) {
      throw new Error(`${base} runs with rate limits on: bring the topology up with 'make up RATE_LIMITS=off' (a load run measures the service, not the limiter)`);
    }
  }
  console.log('rate limits: off on the writer and every edge (make up RATE_LIMITS=off)');
}

<?php
/**
 * License service client for WordPress plugins (and any PHP >= 7.4 code).
 *
 * One drop-in file, no dependencies. It activates, deactivates and checks a license key
 * against the license service's nearest edge, and:
 *
 *  - uses the WordPress HTTP API (wp_remote_request) inside WordPress and curl elsewhere;
 *  - caches answers (transients inside WordPress, a pluggable store elsewhere) for the
 *    answer's Cache-Control max-age, and never checks on every page load: check() asks the
 *    service at most every check_interval seconds plus random jitter;
 *  - honours 429 and Retry-After: no request is sent before the time the service named, and
 *    the last known answer is kept meanwhile;
 *  - asks for signed status answers (Accept: application/jose), verifies them with
 *    libsodium (Ed25519) against the service's JWK Set, and keeps working on a verified,
 *    unexpired lease while the service is unreachable or answers 5xx; forged, tampered,
 *    expired or misdirected leases are refused;
 *  - normalizes the site URL exactly as the service does (normalizeInstance);
 *  - never logs or returns the full license key (maskKey gives a displayable form).
 *
 * Bundling: rename the namespace below to one of your plugin's own (e.g.
 * "MyPlugin\Vendor\LicenseService") so that two plugins bundling different versions of this
 * file never collide. Nothing else in the file refers to the namespace by name.
 *
 * @license MIT
 */

namespace LicenseService\Client;

/**
 * Where the client keeps its state: cached answers, the last known answer and its lease,
 * the check schedule, the Retry-After back-off and the JWK Set. Values are arrays of
 * scalars; ttl is in seconds, 0 meaning no expiry. The client keeps its own timestamps in
 * the values, so a store that drops entries early (an object cache under pressure) costs a
 * request, never a wrong answer.
 */
interface LicenseStore
{
    /** @return array|null the stored value, or null when absent or expired */
    public function get(string $name);

    public function set(string $name, array $value, int $ttl): void;

    public function delete(string $name): void;
}

/** In-memory store: the default outside WordPress (one request's or one process's life). */
class ArrayLicenseStore implements LicenseStore
{
    /** @var array<string, array{0: array, 1: int}> */
    private $items = array();

    public function get(string $name)
    {
        if (!isset($this->items[$name])) {
            return null;
        }
        list($value, $expires) = $this->items[$name];
        if ($expires !== 0 && $expires <= time()) {
            unset($this->items[$name]);
            return null;
        }
        return $value;
    }

    public function set(string $name, array $value, int $ttl): void
    {
        $this->items[$name] = array($value, $ttl > 0 ? time() + $ttl : 0);
    }

    public function delete(string $name): void
    {
        unset($this->items[$name]);
    }

    /** @return string[] the names held (tests) */
    public function names(): array
    {
        return array_keys($this->items);
    }
}

/** WordPress transients (site transients on multisite networks when $network is true). */
class WordPressLicenseStore implements LicenseStore
{
    /** @var bool */
    private $network;

    public function __construct(bool $network = false)
    {
        $this->network = $network;
    }

    public function get(string $name)
    {
        $v = $this->network ? get_site_transient($name) : get_transient($name);
        return is_array($v) ? $v : null;
    }

    public function set(string $name, array $value, int $ttl): void
    {
        if ($this->network) {
            set_site_transient($name, $value, max(0, $ttl));
        } else {
            set_transient($name, $value, max(0, $ttl));
        }
    }

    public function delete(string $name): void
    {
        if ($this->network) {
            delete_site_transient($name);
        } else {
            delete_transient($name);
        }
    }
}

/**
 * One answer as the plugin's UI needs it. Every network method returns one; none throws.
 *
 * code is the machine-readable outcome to branch on: the service's status codes (valid,
 * expired, suspended, cancelled, product_not_licensed, instance_not_activated), its error
 * codes (license_not_found, seat_limit_reached, dev_instance_limit_reached,
 * license_suspended, license_cancelled, license_expired, activation_not_found,
 * rate_limited, invalid_request, unavailable, ...), or the client's own: unreachable (no
 * answer and no usable lease), signature_invalid (an answer or lease that did not verify),
 * no_key (no key given), unknown (nothing known yet).
 */
class LicenseResult
{
    /** @var bool the question asked is answered "yes, licensed" */
    public $valid = false;
    /** @var string */
    public $code = 'unknown';
    /** @var int|null HTTP status of the answer this result comes from (null: no answer) */
    public $httpStatus = null;
    /** @var string network, cache, lease, stored, activation, deactivation or none */
    public $source = 'none';
    /** @var bool the service was unreachable or failed: this comes from a verified lease */
    public $offline = false;
    /** @var bool the service asked us to wait (429): this is the last known answer */
    public $throttled = false;
    /** @var bool the edge answered from a stale cache (X-Cache-Stale) */
    public $stale = false;
    /** @var bool the answer's signature was verified (a lease) */
    public $signed = false;
    /** @var int|null Unix time before which no request is sent (Retry-After) */
    public $retryAt = null;
    /** @var int|null Unix time the lease expires (offline use ends then) */
    public $leaseExpiresAt = null;
    /** @var bool|null the instance is a development instance (takes no seat) */
    public $development = null;
    /** @var bool|null the instance is activated on the license */
    public $activated = null;
    /** @var string|null the instance as the service normalized it */
    public $instance = null;
    /** @var array[] the licenses of the answer: product, status, valid, expires_at, seat_limit, seats_used, seats_remaining */
    public $licenses = array();
    /** @var string|null checked_at of the answer (RFC 3339) */
    public $checkedAt = null;
    /** @var int|null Unix time this client received the answer */
    public $receivedAt = null;
    /** @var string|null problem detail or transport error (never contains the key) */
    public $detail = null;
    /** @var string|null the masked key this result is about */
    public $maskedKey = null;

    public function isValid(): bool
    {
        return $this->valid;
    }

    public function getCode(): string
    {
        return $this->code;
    }

    public function isDevelopment(): bool
    {
        return $this->development === true;
    }

    /**
     * True when the code says the service could not give an answer (unreachable, rate
     * limited, unavailable, unknown): the plugin should keep its previous behaviour rather
     * than treat the license as invalid.
     */
    public function isIndeterminate(): bool
    {
        return in_array($this->code, array('unreachable', 'rate_limited', 'unavailable', 'unknown', 'signature_invalid'), true)
            && !$this->valid;
    }

    /** @return array{used: int|null, limit: int|null, remaining: int|null} seats of the first license */
    public function seats(): array
    {
        $l = isset($this->licenses[0]) ? $this->licenses[0] : array();
        return array(
            'used' => isset($l['seats_used']) ? (int) $l['seats_used'] : null,
            'limit' => isset($l['seat_limit']) ? (int) $l['seat_limit'] : null,
            'remaining' => isset($l['seats_remaining']) ? (int) $l['seats_remaining'] : null,
        );
    }

    /** @return string|null expires_at of the first license (null: perpetual or unknown) */
    public function expiresAt()
    {
        return isset($this->licenses[0]['expires_at']) ? (string) $this->licenses[0]['expires_at'] : null;
    }

    public function toArray(): array
    {
        return get_object_vars($this);
    }

    public static function fromArray(array $a): self
    {
        $r = new self();
        foreach (get_object_vars($r) as $k => $_) {
            if (array_key_exists($k, $a)) {
                $r->$k = $a[$k];
            }
        }
        return $r;
    }
}

/** A lease or answer that did not verify; getMessage() names the reason, never the key. */
class LeaseException extends \RuntimeException
{
    /** @var string machine-readable reason (signature, alg, typ, kid, iss, aud, sub, exp, ...) */
    public $reason;

    public function __construct(string $reason, string $message)
    {
        parent::__construct($message);
        $this->reason = $reason;
    }
}

class LicenseClient
{
    const VERSION = '1.0.0';
    const LEASE_TYPE = 'license-status+jwt';
    const DEFAULT_ISSUER = 'urn:license-service';

    /** @var string */
    private $baseUrl;
    /** @var string */
    private $brand;
    /** @var string */
    private $product;
    /** @var string|null */
    private $instance;
    /** @var LicenseStore */
    private $store;
    /** @var callable */
    private $transport;
    /** @var callable */
    private $clock;
    /** @var callable */
    private $random;
    /** @var callable|null */
    private $logger;
    /** @var string */
    private $prefix;
    /** @var string */
    private $issuer;
    /** @var string */
    private $jwksUrl;
    /** @var bool */
    private $leases;
    /** @var int */
    private $checkInterval;
    /** @var float */
    private $jitter;
    /** @var int */
    private $retryInterval;
    /** @var int */
    private $jwksTtl;
    /** @var int */
    private $jwksRefetch;
    /** @var int */
    private $maxOffline;
    /** @var float */
    private $timeout;
    /** @var string */
    private $userAgent;

    /**
     * @param array $options
     *   edge_url        (required) base URL of the nearest edge, e.g. https://licenses.example.com
     *   brand           (required) the brand slug
     *   product         (required) the product code this plugin is
     *   instance        this site's URL (default inside WordPress: home_url()); sent as given,
     *                   compared normalized
     *   prefix          prefix of the stored entries' names (default "lsc_"; use your plugin's slug)
     *   store           a LicenseStore (default: WordPress transients, else in memory)
     *   transport       callable(string $method, string $url, array $headers, ?string $body, float $timeout): array
     *                   returning ['status' => int, 'headers' => [lower-case name => value], 'body' => string]
     *                   or ['error' => string] (default: WordPress HTTP API, else curl)
     *   issuer          the service's configured lease issuer (default "urn:license-service")
     *   jwks_url        default edge_url + "/.well-known/jwks.json"
     *   leases          ask for signed answers and use them offline (default: true when
     *                   libsodium is available)
     *   check_interval  seconds between background checks, before jitter (default 43200: 12 h)
     *   jitter          fraction of check_interval added at random (default 0.25)
     *   retry_interval  seconds before a failed check is retried, before jitter (default 3600)
     *   jwks_ttl        seconds a JWK Set is used before it is fetched again (default 86400)
     *   jwks_refetch    at most one JWK Set fetch per this many seconds for an unknown kid (default 300)
     *   max_offline     seconds an unsigned last answer may stand in for an unreachable
     *                   service (default 0: only signed leases are used offline)
     *   timeout         seconds per request (default 10)
     *   user_agent      default "license-client-php/VERSION"
     *   logger          callable(string $level, string $message): messages carry masked keys only
     *   clock           callable(): int Unix time (tests)
     *   random          callable(int $min, int $max): int (tests; default random_int)
     */
    public function __construct(array $options)
    {
        foreach (array('edge_url', 'brand', 'product') as $k) {
            if (empty($options[$k]) || !is_string($options[$k])) {
                throw new \InvalidArgumentException("LicenseClient: option $k is required");
            }
        }
        $this->baseUrl = rtrim($options['edge_url'], '/');
        $this->brand = $options['brand'];
        $this->product = $options['product'];
        $this->instance = isset($options['instance']) ? (string) $options['instance'] : null;
        if ($this->instance === null && function_exists('home_url')) {
            $this->instance = (string) home_url();
        }
        $this->prefix = isset($options['prefix']) ? (string) $options['prefix'] : 'lsc_';
        if (isset($options['store'])) {
            if (!$options['store'] instanceof LicenseStore) {
                throw new \InvalidArgumentException('LicenseClient: store must implement LicenseStore');
            }
            $this->store = $options['store'];
        } elseif (function_exists('get_transient')) {
            $this->store = new WordPressLicenseStore();
        } else {
            $this->store = new ArrayLicenseStore();
        }
        $this->transport = isset($options['transport']) ? $options['transport'] : self::defaultTransport();
        $this->clock = isset($options['clock']) ? $options['clock'] : 'time';
        $this->random = isset($options['random']) ? $options['random'] : 'random_int';
        $this->logger = isset($options['logger']) ? $options['logger'] : null;
        $this->issuer = isset($options['issuer']) ? (string) $options['issuer'] : self::DEFAULT_ISSUER;
        $this->jwksUrl = isset($options['jwks_url']) ? (string) $options['jwks_url'] : $this->baseUrl . '/.well-known/jwks.json';
        $this->leases = isset($options['leases']) ? (bool) $options['leases'] : self::sodiumAvailable();
        if ($this->leases && !self::sodiumAvailable()) {
            throw new \InvalidArgumentException('LicenseClient: leases need libsodium (PHP >= 7.2 or WordPress >= 5.2)');
        }
        $this->checkInterval = isset($options['check_interval']) ? max(60, (int) $options['check_interval']) : 43200;
        $this->jitter = isset($options['jitter']) ? min(1.0, max(0.0, (float) $options['jitter'])) : 0.25;
        $this->retryInterval = isset($options['retry_interval']) ? max(1, (int) $options['retry_interval']) : 3600;
        $this->jwksTtl = isset($options['jwks_ttl']) ? max(60, (int) $options['jwks_ttl']) : 86400;
        $this->jwksRefetch = isset($options['jwks_refetch']) ? max(0, (int) $options['jwks_refetch']) : 300;
        $this->maxOffline = isset($options['max_offline']) ? max(0, (int) $options['max_offline']) : 0;
        $this->timeout = isset($options['timeout']) ? (float) $options['timeout'] : 10.0;
        $this->userAgent = isset($options['user_agent']) ? (string) $options['user_agent'] : 'license-client-php/' . self::VERSION;
    }

    // ---------------------------------------------------------------- public API

    /**
     * Activates the key on this instance (or $instance). A reinstall answers like the first
     * activation and costs no seat. On success the result is valid, with development and
     * the license's seats; on failure its code is the service's (seat_limit_reached,
     * license_not_found, ...) or unreachable / rate_limited.
     */
    public function activate(string $key, ?string $instance = null): LicenseResult
    {
        return $this->write('activations', $key, $instance);
    }

    /** Frees this instance's seat. activation_not_found counts as done (nothing to free). */
    public function deactivate(string $key, ?string $instance = null): LicenseResult
    {
        return $this->write('deactivations', $key, $instance);
    }

    /**
     * The license's status for this product and instance. Answers from the cache while the
     * last answer is within its max-age, unless $force; never sends a request while a
     * Retry-After is pending; falls back to the verified lease when the service fails.
     */
    public function status(string $key, bool $force = false, ?string $instance = null): LicenseResult
    {
        $key = self::normalizeKey($key);
        if ($key === '') {
            return $this->noKey();
        }
        $instance = $this->instanceFor($instance);
        $id = $this->id($key, $instance);
        $now = $this->now();
        if (!$force) {
            $cached = $this->store->get($this->name('answer', $id));
            if ($cached !== null && isset($cached['expires'], $cached['result']) && $cached['expires'] > $now) {
                $r = LicenseResult::fromArray($cached['result']);
                $r->source = 'cache';
                return $r;
            }
        }
        $wait = $this->retryAt();
        if ($wait !== null) {
            $this->log('info', sprintf('status of %s not asked: the service asked to wait until %s', self::maskKey($key), gmdate('c', $wait)));
            return $this->fallback($key, $instance, 'rate_limited', null, 429, 'the service asked to wait (Retry-After)');
        }
        return $this->fetchStatus($key, $instance);
    }

    /**
     * The background check (wp-cron, a scheduled job): asks the service only when a check
     * is due (check_interval plus jitter after the last one, later after a failure or a
     * Retry-After); otherwise returns the last known answer without a request.
     */
    public function check(string $key, ?string $instance = null): LicenseResult
    {
        $key = self::normalizeKey($key);
        if ($key === '') {
            return $this->noKey();
        }
        $instance = $this->instanceFor($instance);
        if (!$this->isCheckDue($key, $instance)) {
            return $this->lastKnown($key, $instance);
        }
        return $this->status($key, false, $instance);
    }

    /** Whether check() would send a request now. */
    public function isCheckDue(string $key, ?string $instance = null): bool
    {
        $key = self::normalizeKey($key);
        $state = $this->store->get($this->name('state', $this->id($key, $this->instanceFor($instance))));
        $next = isset($state['next_check']) ? (int) $state['next_check'] : 0;
        $wait = $this->retryAt();
        return $this->now() >= max($next, $wait === null ? 0 : $wait);
    }

    /** The Unix time of the next background check for this key (null: due now). */
    public function nextCheckAt(string $key, ?string $instance = null)
    {
        $key = self::normalizeKey($key);
        $state = $this->store->get($this->name('state', $this->id($key, $this->instanceFor($instance))));
        return isset($state['next_check']) && $state['next_check'] > $this->now() ? (int) $state['next_check'] : null;
    }

    /**
     * The last known answer, without any request: for page loads and admin notices. A
     * signed answer past its lease's exp no longer counts as valid (code unknown: a check
     * is due).
     */
    public function lastKnown(string $key, ?string $instance = null): LicenseResult
    {
        $key = self::normalizeKey($key);
        if ($key === '') {
            return $this->noKey();
        }
        $instance = $this->instanceFor($instance);
        $state = $this->store->get($this->name('state', $this->id($key, $instance)));
        if ($state === null || !isset($state['result'])) {
            $r = new LicenseResult();
            $r->maskedKey = self::maskKey($key);
            $r->retryAt = $this->retryAt();
            return $r;
        }
        $r = LicenseResult::fromArray($state['result']);
        $r->source = 'stored';
        $r->retryAt = $this->retryAt();
        if ($r->valid && $r->leaseExpiresAt !== null && $this->now() >= $r->leaseExpiresAt) {
            // the signed answer no longer vouches for anything
            $r->valid = false;
            $r->code = 'unknown';
            $r->detail = 'the last answer is older than its lease; a check is due';
        }
        return $r;
    }

    /** Drops everything stored about the key (after the plugin forgets a key). */
    public function forget(string $key, ?string $instance = null): void
    {
        $id = $this->id(self::normalizeKey($key), $this->instanceFor($instance));
        $this->store->delete($this->name('answer', $id));
        $this->store->delete($this->name('state', $id));
    }

    /** The instance this client reports, normalized as the service stores it (null: none). */
    public function instance()
    {
        return $this->instance === null ? null : self::normalizeInstance($this->instance);
    }

    /** The Unix time until which the service asked us not to send requests, or null. */
    public function retryAt()
    {
        $b = $this->store->get($this->name('backoff', 'all'));
        if ($b !== null && isset($b['until']) && $b['until'] > $this->now()) {
            return (int) $b['until'];
        }
        return null;
    }

    /**
     * Verifies a lease (a JWS compact token from a signed status answer) for $key and
     * returns its payload. Throws LeaseException when the signature, the header (alg, typ,
     * kid), or the claims (iss, aud, sub, iat, exp) do not hold, or when it answers another
     * question (product, instance) than this client asks. $fetch allows one JWK Set fetch
     * (rate limited) when the kid is unknown.
     */
    public function verifyLease(string $jws, string $key, bool $fetch = true, ?string $instance = null): array
    {
        if (!self::sodiumAvailable()) {
            throw new LeaseException('sodium', 'libsodium is not available');
        }
        $key = self::normalizeKey($key);
        $parts = explode('.', $jws);
        if (count($parts) !== 3) {
            throw new LeaseException('format', 'not a JWS compact serialization');
        }
        $header = self::jsonObject(self::b64urlDecode($parts[0]));
        if ($header === null) {
            throw new LeaseException('format', 'malformed JWS header');
        }
        if (!isset($header['alg']) || $header['alg'] !== 'EdDSA') {
            throw new LeaseException('alg', 'alg must be EdDSA');
        }
        if (!isset($header['typ']) || $header['typ'] !== self::LEASE_TYPE) {
            throw new LeaseException('typ', 'typ must be ' . self::LEASE_TYPE);
        }
        if (isset($header['crit'])) {
            throw new LeaseException('crit', 'unsupported critical header');
        }
        if (!isset($header['kid']) || !is_string($header['kid']) || $header['kid'] === '') {
            throw new LeaseException('kid', 'no kid');
        }
        $payloadJson = self::b64urlDecode($parts[1]);
        $sig = self::b64urlDecode($parts[2]);
        if ($payloadJson === null || $sig === null) {
            throw new LeaseException('format', 'malformed JWS');
        }
        if (strlen($sig) !== 64) {
            throw new LeaseException('signature', 'signature is not 64 bytes');
        }
        $pub = $this->publicKey($header['kid'], $fetch);
        if ($pub === null) {
            throw new LeaseException('kid', 'no key with this kid in the JWK Set');
        }
        if (!sodium_crypto_sign_verify_detached($sig, $parts[0] . '.' . $parts[1], $pub)) {
            throw new LeaseException('signature', 'signature does not verify');
        }
        $p = self::jsonObject($payloadJson);
        if ($p === null) {
            throw new LeaseException('format', 'payload is not a JSON object');
        }
        $now = $this->now();
        if (!isset($p['iss']) || $p['iss'] !== $this->issuer) {
            throw new LeaseException('iss', 'issuer is not ' . $this->issuer);
        }
        $aud = isset($p['aud']) ? $p['aud'] : null;
        if (!($aud === $this->brand || (is_array($aud) && in_array($this->brand, $aud, true)))) {
            throw new LeaseException('aud', 'audience is not this brand');
        }
        if (!isset($p['sub']) || !is_string($p['sub']) || self::normalizeKey($p['sub']) !== $key) {
            throw new LeaseException('sub', 'the lease is for another license key');
        }
        if (!isset($p['exp']) || !is_int($p['exp']) || !isset($p['iat']) || !is_int($p['iat'])) {
            throw new LeaseException('exp', 'iat and exp must be integers');
        }
        if ($now >= $p['exp']) {
            throw new LeaseException('exp', 'the lease expired at ' . gmdate('c', $p['exp']));
        }
        if ($p['iat'] > $now + 300 || $p['exp'] <= $p['iat']) {
            throw new LeaseException('iat', 'iat is in the future or after exp');
        }
        if (isset($p['nbf']) && (!is_int($p['nbf']) || $p['nbf'] > $now + 300)) {
            throw new LeaseException('nbf', 'the lease is not valid yet');
        }
        if (isset($p['brand']) && $p['brand'] !== $this->brand) {
            throw new LeaseException('aud', 'the lease is for another brand');
        }
        // the answer must be to this client's question: its product, its instance
        if (isset($p['licenses']) && is_array($p['licenses'])) {
            foreach ($p['licenses'] as $l) {
                if (!is_array($l) || !isset($l['product']) || $l['product'] !== $this->product) {
                    throw new LeaseException('question', 'the lease answers for another product');
                }
            }
        }
        $instance = $this->instanceFor($instance);
        if ($instance !== null) {
            $want = self::normalizeInstance($instance);
            if (!isset($p['instance']['id']) || $p['instance']['id'] !== $want) {
                throw new LeaseException('question', 'the lease answers for another instance');
            }
        }
        return $p;
    }

    /**
     * Stores a lease (as if it had been received) after verifying it; for tests and for
     * plugins that receive a token from elsewhere. Returns false when it does not verify.
     */
    public function importLease(string $key, string $jws, ?string $instance = null): bool
    {
        $key = self::normalizeKey($key);
        $instance = $this->instanceFor($instance);
        try {
            $p = $this->verifyLease($jws, $key, true, $instance);
        } catch (LeaseException $e) {
            return false;
        }
        $r = $this->resultFromStatus($key, $p, 200);
        $r->signed = true;
        $r->leaseExpiresAt = $p['exp'];
        $this->saveState($key, $instance, $r, $jws, $this->nextCheckAt($key, $instance));
        return true;
    }

    /** The stored lease for the key (a JWS string) or null; tests and diagnostics. */
    public function storedLease(string $key, ?string $instance = null)
    {
        $state = $this->store->get($this->name('state', $this->id(self::normalizeKey($key), $this->instanceFor($instance))));
        return isset($state['lease']) && is_string($state['lease']) ? $state['lease'] : null;
    }

    /**
     * Replaces the stored lease with any string, unverified (tests: a forged or expired
     * lease must be refused when it is used).
     */
    public function putStoredLease(string $key, string $jws, ?string $instance = null): void
    {
        $key = self::normalizeKey($key);
        $instance = $this->instanceFor($instance);
        $name = $this->name('state', $this->id($key, $instance));
        $state = $this->store->get($name);
        if ($state === null) {
            $state = array('result' => (new LicenseResult())->toArray(), 'next_check' => 0);
        }
        $state['lease'] = $jws;
        $this->store->set($name, $state, 0);
        $this->store->delete($this->name('answer', $this->id($key, $instance)));
    }

    // ---------------------------------------------------------------- static helpers

    /** The key as the service compares it: trimmed and upper-cased. */
    public static function normalizeKey(string $key): string
    {
        return strtoupper(trim($key));
    }

    /**
     * A form of the key safe to log and display: its last 4 characters only, e.g.
     * "…MNPQ"; a key of 8 characters or fewer is all dots.
     */
    public static function maskKey(string $key): string
    {
        $key = self::normalizeKey($key);
        $n = strlen($key);
        if ($n <= 8) {
            return str_repeat('•', max($n, 1));
        }
        return '…' . substr($key, -4);
    }

    /**
     * Normalizes an instance exactly as the service does (API.md): trimmed; for an
     * http(s) URL the scheme, userinfo, fragment, a leading "www.", a default port and a
     * trailing "/" are dropped and the host lower-cased; the path and query are kept.
     * Any other string is compared as given. Throws \InvalidArgumentException for what the
     * service refuses (empty, over 255 characters, invalid UTF-8, control characters).
     */
    public static function normalizeInstance(string $instance): string
    {
        if (@preg_match('//u', $instance) !== 1) {
            throw new \InvalidArgumentException('instance must be valid UTF-8');
        }
        if (preg_match('/[\x{0000}-\x{001F}\x{007F}-\x{009F}]/u', $instance)) {
            throw new \InvalidArgumentException('instance must not contain control characters');
        }
        $s = preg_replace('/^\p{Z}+|\p{Z}+$/u', '', $instance);
        if ($s === '' || $s === null) {
            throw new \InvalidArgumentException('instance must not be empty');
        }
        $lower = strtolower(substr($s, 0, 8));
        if (strncmp($lower, 'http://', 7) === 0 || strncmp($lower, 'https://', 8) === 0) {
            $n = self::normalizeUrl($s);
            if ($n !== null) {
                $s = $n;
            }
        }
        if ($s === '') {
            throw new \InvalidArgumentException('instance must not be empty');
        }
        if (preg_match_all('/./us', $s) > 255) {
            throw new \InvalidArgumentException('instance must be at most 255 characters');
        }
        return $s;
    }

    /**
     * Whether the service will classify the instance as a development instance (API.md:
     * no seat) under the default rules plus the product's $suffixes. A hint for the UI
     * only: the service decides at the first activation.
     */
    public static function isDevelopmentInstance(string $instance, array $suffixes = array()): bool
    {
        $s = preg_replace('/^\p{Z}+|\p{Z}+$/u', '', $instance);
        if (!is_string($s)) {
            return false;
        }
        $lower = strtolower(substr($s, 0, 8));
        if (strncmp($lower, 'http://', 7) !== 0 && strncmp($lower, 'https://', 8) !== 0) {
            return false;
        }
        $parsed = self::parseUrl($s);
        if ($parsed === null || $parsed['host'] === '') {
            return false;
        }
        $host = self::lower(self::hostname($parsed['host']));
        if (substr($host, -1) === '.') {
            $host = substr($host, 0, -1);
        }
        if ($host === '') {
            return false;
        }
        $ip = $host;
        if (($pct = strpos($ip, '%')) !== false) {
            $ip = substr($ip, 0, $pct);
        }
        if (filter_var($ip, FILTER_VALIDATE_IP) !== false) {
            $bin = inet_pton($ip);
            if (strlen($bin) === 16 && substr($bin, 0, 12) === str_repeat("\0", 10) . "\xff\xff") {
                $bin = substr($bin, 12); // IPv4-mapped
            }
            if (strlen($bin) === 4) {
                $a = ord($bin[0]);
                $b = ord($bin[1]);
                return $a === 127 || $a === 10 || ($a === 172 && $b >= 16 && $b <= 31) || ($a === 192 && $b === 168);
            }
            return $bin === str_repeat("\0", 15) . "\x01" || (ord($bin[0]) & 0xfe) === 0xfc;
        }
        if ($host === 'localhost' || strpos($host, '.') === false) {
            return true;
        }
        foreach (array('localhost', 'local', 'test', 'example', 'invalid') as $tld) {
            if (self::under($host, $tld)) {
                return true;
            }
        }
        $first = explode('.', $host, 2)[0];
        if ($first === 'staging' || $first === 'stage' || $first === 'dev') {
            return true;
        }
        foreach ($suffixes as $sfx) {
            $sfx = trim(self::lower(trim((string) $sfx)), '.');
            if ($sfx !== '' && self::under($host, $sfx)) {
                return true;
            }
        }
        return false;
    }

    /** The default transport: the WordPress HTTP API inside WordPress, else curl. */
    public static function defaultTransport(): callable
    {
        if (function_exists('wp_remote_request')) {
            return array(__CLASS__, 'wordpressTransport');
        }
        if (function_exists('curl_init')) {
            return array(__CLASS__, 'curlTransport');
        }
        throw new \RuntimeException('LicenseClient: neither the WordPress HTTP API nor curl is available');
    }

    /** Transport over wp_remote_request (redirects are not followed). */
    public static function wordpressTransport(string $method, string $url, array $headers, ?string $body, float $timeout): array
    {
        $args = array('method' => $method, 'headers' => $headers, 'timeout' => $timeout, 'redirection' => 0);
        if (isset($headers['User-Agent'])) {
            $args['user-agent'] = $headers['User-Agent'];
        }
        if ($body !== null) {
            $args['body'] = $body;
        }
        $resp = wp_remote_request($url, $args);
        if (is_wp_error($resp)) {
            return array('error' => $resp->get_error_message());
        }
        $out = array();
        foreach (wp_remote_retrieve_headers($resp) as $name => $value) {
            $out[strtolower($name)] = is_array($value) ? implode(', ', $value) : (string) $value;
        }
        return array('status' => (int) wp_remote_retrieve_response_code($resp), 'headers' => $out,
            'body' => (string) wp_remote_retrieve_body($resp));
    }

    /** Transport over curl (redirects are not followed). */
    public static function curlTransport(string $method, string $url, array $headers, ?string $body, float $timeout): array
    {
        $ch = curl_init($url);
        $lines = array();
        foreach ($headers as $k => $v) {
            $lines[] = $k . ': ' . $v;
        }
        $respHeaders = array();
        curl_setopt_array($ch, array(
            CURLOPT_CUSTOMREQUEST => $method,
            CURLOPT_RETURNTRANSFER => true,
            CURLOPT_FOLLOWLOCATION => false,
            CURLOPT_HTTPHEADER => $lines,
            CURLOPT_TIMEOUT_MS => (int) ($timeout * 1000),
            CURLOPT_CONNECTTIMEOUT_MS => (int) (min($timeout, 5.0) * 1000),
            CURLOPT_PROTOCOLS => CURLPROTO_HTTP | CURLPROTO_HTTPS,
            CURLOPT_HEADERFUNCTION => function ($ch, $line) use (&$respHeaders) {
                $p = strpos($line, ':');
                if ($p !== false) {
                    $respHeaders[strtolower(trim(substr($line, 0, $p)))] = trim(substr($line, $p + 1));
                } elseif (stripos($line, 'HTTP/') === 0) {
                    $respHeaders = array(); // a new response (100 Continue)
                }
                return strlen($line);
            },
        ));
        if ($body !== null) {
            curl_setopt($ch, CURLOPT_POSTFIELDS, $body);
        }
        $respBody = curl_exec($ch);
        if ($respBody === false) {
            $err = curl_error($ch);
            curl_close($ch);
            return array('error' => $err === '' ? 'request failed' : $err);
        }
        $status = (int) curl_getinfo($ch, CURLINFO_RESPONSE_CODE);
        curl_close($ch);
        return array('status' => $status, 'headers' => $respHeaders, 'body' => (string) $respBody);
    }

    public static function sodiumAvailable(): bool
    {
        return function_exists('sodium_crypto_sign_verify_detached');
    }

    // ---------------------------------------------------------------- internals

    private function write(string $what, string $key, ?string $instance): LicenseResult
    {
        $key = self::normalizeKey($key);
        if ($key === '') {
            return $this->noKey();
        }
        $instance = $this->instanceFor($instance);
        $r = new LicenseResult();
        $r->maskedKey = self::maskKey($key);
        $r->source = 'network';
        if ($instance === null) {
            $r->code = 'invalid_request';
            $r->detail = 'no instance: give the site URL';
            return $r;
        }
        $wait = $this->retryAt();
        if ($wait !== null) {
            $r->code = 'rate_limited';
            $r->throttled = true;
            $r->retryAt = $wait;
            $r->detail = 'the service asked to wait until ' . gmdate('c', $wait);
            return $r;
        }
        $body = json_encode(array('license_key' => $key, 'product' => $this->product, 'instance' => $instance),
            JSON_UNESCAPED_SLASHES | JSON_UNESCAPED_UNICODE);
        $resp = $this->send('POST', '/v1/public/' . rawurlencode($this->brand) . '/' . $what,
            array('Content-Type' => 'application/json', 'Accept' => 'application/json'), $body);
        $r->receivedAt = $this->now();
        if (isset($resp['error'])) {
            $r->code = 'unreachable';
            $r->offline = true;
            $r->detail = $resp['error'];
            $this->log('warning', sprintf('%s of %s failed: %s', $what, $r->maskedKey, $resp['error']));
            return $r;
        }
        $r->httpStatus = $resp['status'];
        $data = self::jsonObject($resp['body']);
        $this->noteRetryAfter($resp);
        if ($resp['status'] === 200 || $resp['status'] === 201) {
            $id = $this->id($key, $instance);
            $this->store->delete($this->name('answer', $id));
            if ($what === 'deactivations') {
                $this->store->delete($this->name('state', $id));
                $r->code = 'deactivated';
                $r->source = 'deactivation';
                if (isset($data['license']) && is_array($data['license'])) {
                    $r->licenses = array(self::statusLicense($data['license']));
                }
                return $r;
            }
            $act = isset($data['activation']) && is_array($data['activation']) ? $data['activation'] : array();
            $lic = isset($data['license']) && is_array($data['license']) ? $data['license'] : array();
            $r->source = 'activation';
            $r->code = isset($lic['status']) ? (string) $lic['status'] : 'valid';
            $r->valid = $r->code === 'valid';
            $r->activated = true;
            $r->development = isset($act['development']) ? (bool) $act['development'] : false;
            $r->instance = isset($act['instance']) ? (string) $act['instance'] : null;
            $r->licenses = $lic ? array(self::statusLicense($lic)) : array();
            // a signed answer (a lease) comes with the next check: due at once
            $this->saveState($key, $instance, $r, null, $this->now());
            return $r;
        }
        $r->code = isset($data['code']) && is_string($data['code']) ? $data['code'] : ($resp['status'] >= 500 ? 'unavailable' : 'http_' . $resp['status']);
        $r->detail = isset($data['detail']) && is_string($data['detail']) ? self::scrub($data['detail'], $key) : null;
        if ($resp['status'] === 429) {
            $r->throttled = true;
            $r->retryAt = $this->retryAt();
        }
        if ($what === 'deactivations' && $r->code === 'activation_not_found') {
            $this->forget($key, $instance);
        }
        $this->log($resp['status'] >= 500 ? 'warning' : 'info', sprintf('%s of %s: %d %s', $what, $r->maskedKey, $resp['status'], $r->code));
        return $r;
    }

    private function fetchStatus(string $key, ?string $instance): LicenseResult
    {
        $query = array('product' => $this->product);
        if ($instance !== null) {
            $query['instance'] = $instance;
        }
        $path = '/v1/public/' . rawurlencode($this->brand) . '/licenses/' . rawurlencode($key) . '/status?' . http_build_query($query, '', '&', PHP_QUERY_RFC3986);
        $accept = $this->leases ? 'application/jose' : 'application/json';
        $resp = $this->send('GET', $path, array('Accept' => $accept));
        $now = $this->now();
        if (isset($resp['error'])) {
            $this->log('warning', sprintf('status of %s: service unreachable: %s', self::maskKey($key), $resp['error']));
            $this->scheduleRetry($key, $instance);
            return $this->fallback($key, $instance, 'unreachable', $resp['error'], null, $resp['error']);
        }
        $status = $resp['status'];
        $this->noteRetryAfter($resp);
        if ($status === 429) {
            $this->log('info', sprintf('status of %s: rate limited until %s', self::maskKey($key), gmdate('c', (int) $this->retryAt())));
            $this->scheduleRetry($key, $instance);
            return $this->fallback($key, $instance, 'rate_limited', null, 429, 'rate limited');
        }
        if ($status >= 500) {
            $data = self::jsonObject($resp['body']);
            $code = isset($data['code']) && is_string($data['code']) ? $data['code'] : 'unavailable';
            $this->log('warning', sprintf('status of %s: %d %s', self::maskKey($key), $status, $code));
            $this->scheduleRetry($key, $instance);
            return $this->fallback($key, $instance, 'unreachable', 'HTTP ' . $status, $status, 'the service answered ' . $status);
        }
        $ctype = strtolower(trim(explode(';', isset($resp['headers']['content-type']) ? $resp['headers']['content-type'] : '')[0]));
        $maxAge = self::maxAge($resp['headers']);
        $stale = isset($resp['headers']['x-cache-stale']) && strtolower($resp['headers']['x-cache-stale']) === 'true';
        $lease = null;
        if ($status === 200 && $ctype === 'application/jose') {
            $jws = trim($resp['body']);
            try {
                $payload = $this->verifyLease($jws, $key, true, $instance);
            } catch (LeaseException $e) {
                $this->log('error', sprintf('status of %s: the signed answer did not verify (%s): refused', self::maskKey($key), $e->getMessage()));
                $this->scheduleRetry($key, $instance);
                return $this->fallback($key, $instance, 'signature_invalid', $e->getMessage(), 200, $e->getMessage());
            }
            $r = $this->resultFromStatus($key, $payload, 200);
            $r->signed = true;
            $r->leaseExpiresAt = $payload['exp'];
            $lease = $jws;
        } elseif ($status === 200) {
            $payload = self::jsonObject($resp['body']);
            if ($payload === null || !isset($payload['code'])) {
                $this->scheduleRetry($key, $instance);
                return $this->fallback($key, $instance, 'unreachable', 'unreadable answer', 200, 'unreadable answer');
            }
            $r = $this->resultFromStatus($key, $payload, 200);
        } else {
            // a problem answer: 404 license_not_found, 400 invalid_request, ...
            $data = self::jsonObject($resp['body']);
            $r = new LicenseResult();
            $r->maskedKey = self::maskKey($key);
            $r->httpStatus = $status;
            $r->code = isset($data['code']) && is_string($data['code']) ? $data['code'] : 'http_' . $status;
            $r->detail = isset($data['detail']) && is_string($data['detail']) ? self::scrub($data['detail'], $key) : null;
        }
        if ($r->code === 'instance_not_activated' && $instance !== null) {
            // an edge learns of an activation within moments; an answer that does not know
            // the activation this client made a minute ago is older than it, not newer
            $state = $this->store->get($this->name('state', $this->id($key, $instance)));
            if (isset($state['result']['source'], $state['result']['receivedAt']) && $state['result']['source'] === 'activation'
                && $now - (int) $state['result']['receivedAt'] < 60) {
                $this->log('info', sprintf('status of %s does not know the activation yet; keeping it', self::maskKey($key)));
                $state['next_check'] = $now + (int) call_user_func($this->random, 60, 120);
                $this->store->set($this->name('state', $this->id($key, $instance)), $state, 0);
                $last = LicenseResult::fromArray($state['result']);
                $last->stale = true;
                return $last;
            }
        }
        $r->source = 'network';
        $r->stale = $stale;
        $r->receivedAt = $now;
        if ($maxAge > 0 && !$stale) {
            $this->store->set($this->name('answer', $this->id($key, $instance)), array('result' => $r->toArray(), 'expires' => $now + $maxAge), $maxAge);
        }
        // the next background check: a stale edge answer is retried sooner
        $next = $stale ? $now + $this->jittered($this->retryInterval) : $now + max($maxAge, $this->jittered($this->checkInterval));
        $this->saveState($key, $instance, $r, $lease, $next);
        return $r;
    }

    /**
     * The answer when the service gave none we can use: the stored lease while it verifies
     * and has not expired (offline, or throttled for 429), else a result with $code.
     */
    private function fallback(string $key, ?string $instance, string $code, ?string $error, ?int $httpStatus, ?string $detail): LicenseResult
    {
        $throttled = $code === 'rate_limited';
        $state = $this->store->get($this->name('state', $this->id($key, $instance)));
        $now = $this->now();
        $leaseError = null;
        if ($state !== null && isset($state['lease']) && is_string($state['lease']) && $this->leases) {
            try {
                // no JWK Set fetch here: the service is out of reach or asked us to wait
                $payload = $this->verifyLease($state['lease'], $key, false, $instance);
                // httpStatus: the failed answer's (null: no answer at all)
                $r = $this->resultFromStatus($key, $payload, $httpStatus);
                $r->signed = true;
                $r->leaseExpiresAt = $payload['exp'];
                $r->source = 'lease';
                $r->offline = !$throttled;
                $r->throttled = $throttled;
                $r->retryAt = $this->retryAt();
                $r->receivedAt = isset($state['result']['receivedAt']) ? $state['result']['receivedAt'] : null;
                $r->detail = $detail;
                return $r;
            } catch (LeaseException $e) {
                $leaseError = $e->getMessage();
                $this->log('warning', sprintf('stored lease of %s refused: %s', self::maskKey($key), $leaseError));
            }
        }
        if ($state !== null && isset($state['result']) && $leaseError === null) {
            $last = LicenseResult::fromArray($state['result']);
            $age = $now - (int) $last->receivedAt;
            // an unsigned last answer stands in for an unreachable service only within
            // max_offline (default 0: never); a 429 keeps it for one check interval
            $usable = $last->receivedAt !== null && (
                !$last->valid // a negative answer grants nothing: keep showing it
                || ($this->maxOffline > 0 && $age < $this->maxOffline)
                || ($throttled && $last->leaseExpiresAt === null && $age < $this->checkInterval)
            );
            if ($usable) {
                $last->source = 'stored';
                $last->offline = !$throttled;
                $last->throttled = $throttled;
                $last->retryAt = $this->retryAt();
                $last->detail = $detail;
                return $last;
            }
        }
        $r = new LicenseResult();
        $r->maskedKey = self::maskKey($key);
        $r->code = $code;
        $r->httpStatus = $httpStatus;
        $r->offline = !$throttled;
        $r->throttled = $throttled;
        $r->retryAt = $this->retryAt();
        $r->detail = $leaseError !== null ? $detail . '; stored lease refused: ' . $leaseError : $detail;
        return $r;
    }

    private function resultFromStatus(string $key, array $p, ?int $httpStatus): LicenseResult
    {
        $r = new LicenseResult();
        $r->maskedKey = self::maskKey($key);
        $r->httpStatus = $httpStatus;
        $r->valid = isset($p['valid']) && $p['valid'] === true;
        $r->code = isset($p['code']) && is_string($p['code']) ? $p['code'] : ($r->valid ? 'valid' : 'unknown');
        $r->checkedAt = isset($p['checked_at']) ? (string) $p['checked_at'] : null;
        if (isset($p['instance']) && is_array($p['instance'])) {
            $r->instance = isset($p['instance']['id']) ? (string) $p['instance']['id'] : null;
            $r->activated = isset($p['instance']['activated']) ? (bool) $p['instance']['activated'] : null;
            $r->development = isset($p['instance']['development']) ? (bool) $p['instance']['development'] : null;
        }
        $r->licenses = array();
        if (isset($p['licenses']) && is_array($p['licenses'])) {
            foreach ($p['licenses'] as $l) {
                if (is_array($l)) {
                    $r->licenses[] = self::statusLicense($l);
                }
            }
        }
        return $r;
    }

    private static function statusLicense(array $l): array
    {
        $out = array();
        foreach (array('product', 'status', 'valid', 'expires_at', 'seat_limit', 'seats_used', 'seats_remaining') as $k) {
            $out[$k] = array_key_exists($k, $l) ? $l[$k] : null;
        }
        if ($out['valid'] === null && $out['status'] !== null) {
            $out['valid'] = $out['status'] === 'valid';
        }
        return $out;
    }

    private function saveState(string $key, ?string $instance, LicenseResult $r, ?string $lease, $nextCheck): void
    {
        $this->store->set($this->name('state', $this->id($key, $instance)), array(
            'result' => $r->toArray(),
            'lease' => $lease,
            'next_check' => $nextCheck === null ? 0 : (int) $nextCheck,
        ), 0);
    }

    private function scheduleRetry(string $key, ?string $instance): void
    {
        $name = $this->name('state', $this->id($key, $instance));
        $state = $this->store->get($name);
        if ($state === null) {
            $state = array('lease' => null);
        }
        $wait = $this->retryAt();
        $state['next_check'] = max($this->now() + $this->jittered($this->retryInterval),
            $wait === null ? 0 : $wait + (int) call_user_func($this->random, 0, 60));
        $this->store->set($name, $state, 0);
    }

    /** Records Retry-After of a 429 or 503: no request is sent before it. */
    private function noteRetryAfter(array $resp): void
    {
        $status = $resp['status'];
        if ($status !== 429 && $status !== 503) {
            return;
        }
        $ra = isset($resp['headers']['retry-after']) ? trim($resp['headers']['retry-after']) : '';
        $now = $this->now();
        if ($ra !== '' && ctype_digit($ra)) {
            $secs = (int) $ra;
        } elseif ($ra !== '' && ($t = strtotime($ra)) !== false) {
            $secs = $t - $now;
        } else {
            $secs = $status === 429 ? 60 : 0;
        }
        if ($status === 503 && $secs <= 0) {
            return;
        }
        $secs = min(max($secs, 1), 86400);
        $until = $now + $secs;
        $cur = $this->retryAt();
        if ($cur === null || $until > $cur) {
            $this->store->set($this->name('backoff', 'all'), array('until' => $until), $secs + 60);
        }
    }

    /** The public key of kid from the cached JWK Set, fetching it when due (rate limited). */
    private function publicKey(string $kid, bool $fetch)
    {
        $set = $this->store->get($this->name('jwks', 'set'));
        $now = $this->now();
        $have = $set !== null && isset($set['keys'][$kid]);
        $fresh = $set !== null && isset($set['expires']) && $set['expires'] > $now;
        if ($have && ($fresh || !$fetch)) {
            return base64_decode($set['keys'][$kid]);
        }
        if (!$fetch) {
            return null;
        }
        $attempted = $set !== null && isset($set['attempted']) ? (int) $set['attempted'] : 0;
        if ($now - $attempted < $this->jwksRefetch) {
            // fetched a moment ago: an unknown kid does not trigger another fetch yet
            return $have ? base64_decode($set['keys'][$kid]) : null;
        }
        $keys = $this->fetchJwks($set);
        return isset($keys[$kid]) ? base64_decode($keys[$kid]) : null;
    }

    /** Fetches the JWK Set; keeps the previous one when the fetch fails. */
    private function fetchJwks($old): array
    {
        $now = $this->now();
        $keys = $old !== null && isset($old['keys']) ? $old['keys'] : array();
        $expires = $old !== null && isset($old['expires']) ? (int) $old['expires'] : 0;
        $resp = $this->send('GET', $this->jwksUrl, array('Accept' => 'application/jwk-set+json, application/json'), null, true);
        if (!isset($resp['error']) && $resp['status'] === 200) {
            $set = self::jsonObject($resp['body']);
            if ($set !== null && isset($set['keys']) && is_array($set['keys'])) {
                $keys = array();
                foreach ($set['keys'] as $k) {
                    if (!is_array($k) || !isset($k['kty'], $k['crv'], $k['kid'], $k['x']) || $k['kty'] !== 'OKP' || $k['crv'] !== 'Ed25519') {
                        continue;
                    }
                    if ((isset($k['use']) && $k['use'] !== 'sig') || (isset($k['alg']) && $k['alg'] !== 'EdDSA')) {
                        continue;
                    }
                    $x = self::b64urlDecode((string) $k['x']);
                    if ($x === null || strlen($x) !== 32) {
                        continue;
                    }
                    $keys[(string) $k['kid']] = base64_encode($x);
                }
                // kept for jwks_ttl: a rotated-in key is fetched on its first unknown kid
                $expires = $now + $this->jwksTtl;
            }
        } else {
            $this->log('warning', 'JWK Set fetch failed: ' . (isset($resp['error']) ? $resp['error'] : 'HTTP ' . $resp['status']));
        }
        // kept past its freshness: offline verification needs the keys
        $this->store->set($this->name('jwks', 'set'), array('keys' => $keys, 'expires' => $expires, 'attempted' => $now), 0);
        return $keys;
    }

    private function send(string $method, string $pathOrUrl, array $headers, ?string $body = null, bool $absolute = false): array
    {
        $url = $absolute ? $pathOrUrl : $this->baseUrl . $pathOrUrl;
        $headers['User-Agent'] = $this->userAgent;
        try {
            $resp = call_user_func($this->transport, $method, $url, $headers, $body, $this->timeout);
        } catch (\Throwable $e) {
            return array('error' => get_class($e) . ': ' . $e->getMessage());
        }
        if (!is_array($resp) || (!isset($resp['error']) && !isset($resp['status']))) {
            return array('error' => 'transport returned no answer');
        }
        if (!isset($resp['error'])) {
            $resp['status'] = (int) $resp['status'];
            $resp['headers'] = isset($resp['headers']) ? array_change_key_case($resp['headers'], CASE_LOWER) : array();
            $resp['body'] = isset($resp['body']) ? (string) $resp['body'] : '';
        }
        return $resp;
    }

    private function noKey(): LicenseResult
    {
        $r = new LicenseResult();
        $r->code = 'no_key';
        $r->detail = 'no license key entered';
        return $r;
    }

    private function instanceFor(?string $instance)
    {
        return $instance !== null ? $instance : $this->instance;
    }

    private function id(string $key, ?string $instance): string
    {
        $inst = '';
        if ($instance !== null) {
            try {
                $inst = self::normalizeInstance($instance);
            } catch (\InvalidArgumentException $e) {
                $inst = $instance;
            }
        }
        return substr(hash('sha256', $this->brand . "\n" . $this->product . "\n" . $inst . "\n" . $key), 0, 24);
    }

    private function name(string $kind, string $id): string
    {
        return $this->prefix . $kind . '_' . $id;
    }

    private function now(): int
    {
        return (int) call_user_func($this->clock);
    }

    private function jittered(int $base): int
    {
        return $base + (int) call_user_func($this->random, 0, (int) round($base * $this->jitter));
    }

    private function log(string $level, string $message): void
    {
        if ($this->logger !== null) {
            call_user_func($this->logger, $level, $message);
        }
    }

    /** Removes the key from a message the service wrote (it never should contain it). */
    private static function scrub(string $s, string $key): string
    {
        return $key === '' ? $s : str_ireplace($key, self::maskKey($key), $s);
    }

    private static function maxAge(array $headers): int
    {
        $cc = isset($headers['cache-control']) ? strtolower($headers['cache-control']) : '';
        if (strpos($cc, 'no-store') !== false || strpos($cc, 'no-cache') !== false) {
            return 0;
        }
        if (preg_match('/(?:^|[,\s])max-age\s*=\s*"?(\d+)/', $cc, $m)) {
            return (int) min((int) $m[1], 86400);
        }
        return 0;
    }

    private static function jsonObject($s)
    {
        if (!is_string($s) || $s === '') {
            return null;
        }
        $v = json_decode($s, true, 32);
        return is_array($v) ? $v : null;
    }

    private static function b64urlDecode(string $s)
    {
        if ($s === '' || preg_match('/[^A-Za-z0-9_-]/', $s) || strlen($s) % 4 === 1) {
            return null;
        }
        $d = base64_decode(strtr($s, '-_', '+/'), true);
        return $d === false ? null : $d;
    }

    private static function lower(string $s): string
    {
        return function_exists('mb_strtolower') ? mb_strtolower($s, 'UTF-8') : strtolower($s);
    }

    private static function under(string $host, string $domain): bool
    {
        $suffix = '.' . $domain;
        return strlen($host) > strlen($suffix) && substr($host, -strlen($suffix)) === $suffix;
    }

    // -------- URL normalization: the same steps as the service's (Go's net/url) parser

    const HOST_OK = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-._~!$&'()*+,;=:[]<>\"";
    const PATH_KEEP = 'abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-._~$&+,/:;=@';
    const PATH_VALID = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-._~$&+,/:;=@!'()*[]%";
    const USERINFO_OK = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-._:~!$&'()*+,;=%@";

    private static function normalizeUrl(string $s)
    {
        $u = self::parseUrl($s);
        if ($u === null || $u['host'] === '') {
            return null;
        }
        $h = $u['host'];
        $port = '';
        $colon = strrpos($h, ':');
        if ($colon !== false && self::validOptionalPort(substr($h, $colon))) {
            $port = substr($h, $colon + 1);
            $h = substr($h, 0, $colon);
        }
        if (strlen($h) >= 2 && $h[0] === '[' && substr($h, -1) === ']') {
            $h = substr($h, 1, -1);
        }
        $host = self::lower($h);
        if (($u['scheme'] === 'http' && $port === '80') || ($u['scheme'] === 'https' && $port === '443')) {
            $port = '';
        }
        if (strncmp($host, 'www.', 4) === 0) {
            $host = substr($host, 4);
        }
        if ($port !== '') {
            $host .= ':' . $port;
        }
        $path = self::escapedPath($u['path']);
        if ($u['query'] !== '') {
            $path .= '?' . $u['query'];
        }
        if (substr($path, -1) === '/') {
            $path = substr($path, 0, -1);
        }
        return $host . $path;
    }

    /** @return array{scheme: string, host: string, path: string, query: string}|null */
    private static function parseUrl(string $s)
    {
        $frag = '';
        $hash = strpos($s, '#');
        if ($hash !== false) {
            $frag = substr($s, $hash + 1);
            $s = substr($s, 0, $hash);
        }
        if (preg_match('/[\x00-\x1f\x7f]/', $s)) {
            return null;
        }
        $colon = strpos($s, ':');
        if ($colon === false) {
            return null;
        }
        $scheme = strtolower(substr($s, 0, $colon));
        $rest = (string) substr($s, $colon + 1);
        $query = '';
        if (substr($rest, -1) === '?' && substr_count($rest, '?') === 1) {
            $rest = substr($rest, 0, -1);
        } elseif (($q = strpos($rest, '?')) !== false) {
            $query = (string) substr($rest, $q + 1);
            $rest = substr($rest, 0, $q);
        }
        if (strncmp($rest, '//', 2) !== 0) {
            return null;
        }
        $authority = (string) substr($rest, 2);
        $path = '';
        if (($i = strpos($authority, '/')) !== false) {
            $path = substr($authority, $i);
            $authority = substr($authority, 0, $i);
        }
        $at = strrpos($authority, '@');
        $host = self::parseHost($scheme, $at === false ? $authority : (string) substr($authority, $at + 1));
        if ($host === null) {
            return null;
        }
        if ($at !== false) {
            $userinfo = substr($authority, 0, $at);
            if (strspn($userinfo, self::USERINFO_OK) !== strlen($userinfo) || !self::validPercent($userinfo)) {
                return null;
            }
        }
        if (!self::validPercent($path) || ($frag !== '' && !self::validPercent($frag))) {
            return null;
        }
        return array('scheme' => $scheme, 'host' => $host, 'path' => $path, 'query' => $query);
    }

    private static function parseHost(string $scheme, string $host)
    {
        $ob = strrpos($host, '[');
        if ($ob !== false && $ob > 0) {
            return null;
        }
        if ($ob === 0) {
            $cb = strrpos($host, ']');
            if ($cb === false) {
                return null;
            }
            $colonPort = (string) substr($host, $cb + 1);
            if (!self::validOptionalPort($colonPort)) {
                return null;
            }
            $hostname = (string) substr($host, 1, $cb - 1);
            $z = strpos($hostname, '%25');
            if ($z !== false) {
                $a = self::unescapeHost(substr($hostname, 0, $z), false);
                $b = self::unescapeHost(substr($hostname, $z), true);
                if ($a === null || $b === null) {
                    return null;
                }
                $unescaped = $a . $b;
            } else {
                $unescaped = self::unescapeHost($hostname, false);
                if ($unescaped === null) {
                    return null;
                }
            }
            $addr = $unescaped;
            if (($p = strpos($addr, '%')) !== false) {
                if ($p === strlen($addr) - 1) {
                    return null; // an empty zone
                }
                $addr = substr($addr, 0, $p);
            }
            if (filter_var($addr, FILTER_VALIDATE_IP, FILTER_FLAG_IPV6) === false) {
                return null;
            }
            return '[' . $unescaped . ']' . $colonPort;
        }
        if (($i = strpos($host, ':')) !== false) {
            if (!self::validOptionalPort(substr($host, $i))) {
                return null;
            }
        }
        return self::unescapeHost($host, false);
    }

    private static function unescapeHost(string $s, bool $zone)
    {
        $n = strlen($s);
        $out = '';
        for ($i = 0; $i < $n; $i++) {
            $c = $s[$i];
            if ($c === '%') {
                if ($i + 2 >= $n || !ctype_xdigit($s[$i + 1]) || !ctype_xdigit($s[$i + 2])) {
                    return null;
                }
                $v = hexdec(substr($s, $i + 1, 2));
                $pct25 = substr($s, $i, 3) === '%25';
                if (!$zone && hexdec($s[$i + 1]) < 8 && !$pct25) {
                    return null;
                }
                if ($zone && !$pct25 && $v !== 0x20 && $v < 0x80 && strpos(self::HOST_OK, chr($v)) === false) {
                    return null;
                }
                if ($zone && !$pct25 && $v >= 0x80) {
                    return null;
                }
                $out .= chr($v);
                $i += 2;
                continue;
            }
            if (ord($c) < 0x80 && strpos(self::HOST_OK, $c) === false) {
                return null;
            }
            $out .= $c;
        }
        return $out;
    }

    private static function validOptionalPort(string $p): bool
    {
        return $p === '' || ($p[0] === ':' && strspn($p, '0123456789', 1) === strlen($p) - 1);
    }

    private static function validPercent(string $s): bool
    {
        $n = strlen($s);
        for ($i = 0; $i < $n; $i++) {
            if ($s[$i] === '%') {
                if ($i + 2 >= $n || !ctype_xdigit($s[$i + 1]) || !ctype_xdigit($s[$i + 2])) {
                    return false;
                }
                $i += 2;
            }
        }
        return true;
    }

    private static function escapedPath(string $p): string
    {
        if (strspn($p, self::PATH_VALID) === strlen($p)) {
            return $p;
        }
        $raw = rawurldecode($p);
        $out = '';
        $n = strlen($raw);
        for ($i = 0; $i < $n; $i++) {
            $c = $raw[$i];
            $out .= strpos(self::PATH_KEEP, $c) !== false ? $c : sprintf('%%%02X', ord($c));
        }
        return $out;
    }

    private static function hostname(string $h): string
    {
        $colon = strrpos($h, ':');
        if ($colon !== false && self::validOptionalPort(substr($h, $colon))) {
            $h = substr($h, 0, $colon);
        }
        if (strlen($h) >= 2 && $h[0] === '[' && substr($h, -1) === ']') {
            $h = substr($h, 1, -1);
        }
        return $h;
    }
}

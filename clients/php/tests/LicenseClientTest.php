<?php

use LicenseService\Client\ArrayLicenseStore;
use LicenseService\Client\LeaseException;
use LicenseService\Client\LicenseClient;
use LicenseService\Client\LicenseResult;
use PHPUnit\Framework\TestCase;

/**
 * The client against the running topology of e2e/php_test.go: a real writer, a real edge
 * signing with Ed25519, a second edge with a tiny status budget. Failure messages never
 * print a full key (the Go test fails if phpunit's output contains one).
 */
final class LicenseClientTest extends TestCase
{
    /** Polls status(force) until its code is $code (the edge learns a write within ms). */
    private function statusUntil(LicenseClient $c, string $key, string $code, ?string $instance = null): LicenseResult
    {
        $deadline = microtime(true) + 5;
        do {
            $r = $c->status($key, true, $instance);
            if ($r->code === $code && $r->source === 'network') {
                return $r;
            }
            usleep(50000);
        } while (microtime(true) < $deadline);
        $this->fail("status stayed {$r->code} ({$r->detail}), want $code");
    }

    public function testActivationStatusDeactivationRoundTrip(): void
    {
        $key = TestEnv::get('KEY_MAIN');
        $c = TestEnv::client(array('instance' => 'https://www.RoundTrip-Shop.com/'));

        $a = $c->activate($key);
        $this->assertSame(201, $a->httpStatus, "activation: {$a->code} {$a->detail}");
        $this->assertTrue($a->valid);
        $this->assertSame('valid', $a->code);
        $this->assertSame('roundtrip-shop.com', $a->instance);
        $this->assertSame($c->instance(), $a->instance, 'the client normalizes like the service');
        $this->assertFalse($a->development);
        $this->assertSame(array('used' => 1, 'limit' => 5, 'remaining' => 4), $a->seats());
        $this->assertSame(1, TestEnv::license($key)['seats_used']);

        $again = $c->activate($key);
        $this->assertSame(200, $again->httpStatus, 'a reinstall answers 200');
        $this->assertSame(1, TestEnv::license($key)['seats_used'], 'a reinstall costs no seat');

        $s = $this->statusUntil($c, $key, 'valid');
        $this->assertTrue($s->valid);
        $this->assertTrue($s->activated);
        $this->assertSame('network', $s->source);
        $this->assertTrue($s->signed, 'the status came as a verified lease');
        $this->assertFalse($s->offline);
        $this->assertSame('roundtrip-shop.com', $s->instance);

        $cached = $c->status($key);
        $this->assertSame('cache', $cached->source, 'within max-age the answer comes from the cache');
        $this->assertTrue($cached->valid);

        $d = $c->deactivate($key);
        $this->assertSame(200, $d->httpStatus, "deactivation: {$d->code}");
        $this->assertSame('deactivated', $d->code);
        $this->assertSame(0, TestEnv::license($key)['seats_used']);
        $this->assertNull($c->storedLease($key), 'deactivation drops the lease');
        $after = $this->statusUntil($c, $key, 'instance_not_activated');
        $this->assertFalse($after->valid);

        $again = $c->deactivate($key);
        $this->assertSame('activation_not_found', $again->code);
    }

    public function testLeaseVerifiesAgainstTheEdgesJwks(): void
    {
        $key = TestEnv::get('KEY_MAIN');
        $c = TestEnv::client(array('instance' => 'https://lease-check.example-shop.com'));
        $this->assertSame(201, $c->activate($key)->httpStatus);
        $s = $this->statusUntil($c, $key, 'valid');
        $this->assertTrue($s->signed);
        $jws = $c->storedLease($key);
        $this->assertNotNull($jws);

        $parts = explode('.', $jws);
        $this->assertCount(3, $parts);
        $header = json_decode(TestEnv::b64urlDecode($parts[0]), true);
        $this->assertSame('EdDSA', $header['alg']);
        $this->assertSame('license-status+jwt', $header['typ']);
        $this->assertNotEmpty($header['kid']);

        // the JWK Set from the edge holds that kid as an OKP/Ed25519 key
        $r = LicenseClient::curlTransport('GET', TestEnv::get('EDGE_URL') . '/.well-known/jwks.json', array(), null, 5);
        $this->assertSame(200, $r['status']);
        $set = json_decode($r['body'], true);
        $kids = array();
        foreach ($set['keys'] as $k) {
            $this->assertSame('OKP', $k['kty']);
            $this->assertSame('Ed25519', $k['crv']);
            $this->assertSame(32, strlen(TestEnv::b64urlDecode($k['x'])));
            $kids[] = $k['kid'];
        }
        $this->assertContains($header['kid'], $kids);

        // a fresh client (nothing cached) fetches the set and verifies the lease
        $counts = array();
        $fresh = TestEnv::client(array('instance' => 'https://lease-check.example-shop.com', 'transport' => TestEnv::countingTransport($counts)));
        $p = $fresh->verifyLease($jws, $key);
        $this->assertSame(1, $counts['jwks'], 'one JWK Set fetch');
        $this->assertSame(TestEnv::get('BRAND'), $p['aud']);
        $this->assertSame(TestEnv::get('LEASE_ISSUER'), $p['iss']);
        $this->assertTrue($p['sub'] === $key, 'sub is the license key');
        $this->assertTrue($p['valid']);
        $lease = $p['exp'] - $p['iat'];
        $this->assertGreaterThanOrEqual(71 * 3600, $lease, 'the default lease is 72 h');
        $this->assertLessThanOrEqual(72 * 3600 + 60, $lease);
        $fresh->verifyLease($jws, $key);
        $this->assertSame(1, $counts['jwks'], 'the JWK Set is cached');
        $c->deactivate($key);
    }

    public function testLeaseIsCappedByTheLicensesExpiry(): void
    {
        $key = TestEnv::get('KEY_EXPIRING');
        $c = TestEnv::client(array('instance' => 'https://expiring-shop.com'));
        $this->assertSame(201, $c->activate($key)->httpStatus);
        $s = $this->statusUntil($c, $key, 'valid');
        $this->assertTrue($s->signed);
        $expires = strtotime($s->expiresAt());
        $this->assertLessThanOrEqual($expires, $s->leaseExpiresAt, 'exp is never later than expires_at of a valid license');
        $this->assertGreaterThan(time(), $s->leaseExpiresAt);
    }

    public function testLeaseKeepsTheSiteWorkingWhileTheEdgeIsStopped(): void
    {
        $key = TestEnv::get('KEY_OFFLINE');
        $store = new ArrayLicenseStore();
        $c = TestEnv::client(array('instance' => 'https://offline-shop.com', 'store' => $store));
        $this->assertSame(201, $c->activate($key)->httpStatus);
        $this->statusUntil($c, $key, 'valid');
        $noLease = TestEnv::client(array('instance' => 'https://offline-shop.com'));

        TestEnv::control('edge/stop');
        try {
            $r = $c->status($key, true);
            $this->assertTrue($r->valid, "offline: {$r->code} {$r->detail}");
            $this->assertSame('valid', $r->code);
            $this->assertTrue($r->offline);
            $this->assertSame('lease', $r->source);
            $this->assertTrue($r->signed);
            $this->assertGreaterThan(time(), $r->leaseExpiresAt);
            $this->assertFalse($c->isCheckDue($key), 'a failed check is retried later, not on the next page load');

            // the same lease read by another client instance over the same store (next request)
            $c2 = TestEnv::client(array('instance' => 'https://offline-shop.com', 'store' => $store));
            $this->assertTrue($c2->status($key, true)->valid);

            // no lease, no answer: unreachable, not valid
            $n = $noLease->status($key, true);
            $this->assertFalse($n->valid);
            $this->assertSame('unreachable', $n->code);
            $this->assertTrue($n->offline);
            $this->assertTrue($n->isIndeterminate());

            // activation needs the service
            $a = $noLease->activate($key, 'https://other-offline-shop.com');
            $this->assertSame('unreachable', $a->code);
            $this->assertFalse($a->valid);
        } finally {
            TestEnv::control('edge/start');
        }
        $deadline = microtime(true) + 5;
        do { // the restarted edge answers once its tiers are up
            $back = $c->status($key, true);
        } while ($back->source !== 'network' && microtime(true) < $deadline && usleep(50000) === null);
        $this->assertSame('network', $back->source, "after the restart: {$back->code} {$back->detail}");
        $this->assertTrue($back->valid);
        $this->assertFalse($back->offline);
        $c->deactivate($key);
    }

    public function testLeaseServesWhenTheServiceAnswers5xx(): void
    {
        $key = TestEnv::get('KEY_OFFLINE');
        $store = new ArrayLicenseStore();
        $ok = TestEnv::client(array('instance' => 'https://fivexx-shop.com', 'store' => $store));
        $this->assertSame(201, $ok->activate($key)->httpStatus);
        $this->statusUntil($ok, $key, 'valid');

        $counts = array();
        $failing = TestEnv::client(array('instance' => 'https://fivexx-shop.com', 'store' => $store,
            'edge_url' => TestEnv::get('CONTROL_URL') . '/fail503', 'transport' => TestEnv::countingTransport($counts)));
        $r = $failing->status($key, true);
        $this->assertSame(1, $counts['status']);
        $this->assertTrue($r->valid, "5xx: {$r->code} {$r->detail}");
        $this->assertTrue($r->offline);
        $this->assertSame('lease', $r->source);
        $this->assertSame(503, $r->httpStatus, 'the failed answer\'s status');
        $this->assertTrue($r->signed);
        $ok->deactivate($key);
    }

    public function testForgedLeasesAreRefused(): void
    {
        $key = TestEnv::get('KEY_FORGE');
        $instance = 'https://forge-shop.com';
        $store = new ArrayLicenseStore();
        $c = TestEnv::client(array('instance' => $instance, 'store' => $store));
        $this->assertSame(201, $c->activate($key)->httpStatus);
        $this->statusUntil($c, $key, 'valid');
        $jws = $c->storedLease($key);
        list($h, $p, $s) = explode('.', $jws);
        $header = json_decode(TestEnv::b64urlDecode($h), true);
        $payload = json_decode(TestEnv::b64urlDecode($p), true);
        $sig = TestEnv::b64urlDecode($s);

        $flipped = $sig;
        $flipped[10] = chr(ord($flipped[10]) ^ 0x01);
        $tampered = $payload;
        $tampered['exp'] += 365 * 86400;
        $otherSeat = $payload;
        $otherSeat['licenses'][0]['seat_limit'] = 1000;
        $wrongKey = sodium_crypto_sign_keypair();
        $signWith = function (array $hdr, array $pl) use ($wrongKey) {
            $in = TestEnv::b64url(json_encode($hdr)) . '.' . TestEnv::b64url(json_encode($pl));
            return $in . '.' . TestEnv::b64url(sodium_crypto_sign_detached($in, sodium_crypto_sign_secretkey($wrongKey)));
        };
        $none = $header;
        $none['alg'] = 'none';
        $hs = $header;
        $hs['alg'] = 'HS256';
        $typ = $header;
        $typ['typ'] = 'JWT';
        $otherKid = $header;
        $otherKid['kid'] = 'not-a-kid-of-the-set';
        $otherSite = $payload;
        $otherSite['instance']['id'] = 'someone-else.com';
        $forged = array(
            'signature bit flipped' => array($h . '.' . $p . '.' . TestEnv::b64url($flipped), 'signature'),
            'payload exp extended' => array($h . '.' . TestEnv::b64url(json_encode($tampered)) . '.' . $s, 'signature'),
            'payload seats changed' => array($h . '.' . TestEnv::b64url(json_encode($otherSeat)) . '.' . $s, 'signature'),
            'signed with another key, same kid' => array($signWith($header, $payload), 'signature'),
            'alg none, no signature' => array(TestEnv::b64url(json_encode($none)) . '.' . $p . '.', 'alg'),
            'alg none, old signature' => array(TestEnv::b64url(json_encode($none)) . '.' . $p . '.' . $s, 'alg'),
            'alg HS256' => array(TestEnv::b64url(json_encode($hs)) . '.' . $p . '.' . $s, 'alg'),
            'typ JWT' => array($signWith($typ, $payload), 'typ'),
            'unknown kid' => array($signWith($otherKid, $payload), 'kid'),
            'another site\'s lease' => array($signWith($header, $otherSite), 'signature'),
            'two parts' => array($h . '.' . $p, 'format'),
            'garbage' => array('not a token', 'format'),
        );
        $failing = TestEnv::client(array('instance' => $instance, 'store' => $store,
            'edge_url' => TestEnv::get('CONTROL_URL') . '/fail503', 'jwks_url' => TestEnv::get('EDGE_URL') . '/.well-known/jwks.json'));
        foreach ($forged as $what => $case) {
            list($token, $reason) = $case;
            try {
                $c->verifyLease($token, $key);
                $this->fail("$what: verified");
            } catch (LeaseException $e) {
                $this->assertSame($reason, $e->reason, "$what: refused for {$e->getMessage()}");
            }
            // stored as the site's lease, it is refused when the service fails
            $c->putStoredLease($key, $token);
            $r = $failing->status($key, true);
            $this->assertFalse($r->valid, "$what: a forged lease made the license valid offline");
            $this->assertSame('unreachable', $r->code, $what);
            $this->assertNotSame('lease', $r->source, $what);
            $this->assertFalse($c->importLease($key, $token), "$what: imported");
        }
        // the genuine lease still works
        $c->putStoredLease($key, $jws);
        $this->assertTrue($failing->status($key, true)->valid);
        $this->assertTrue($c->importLease($key, $jws));

        // a lease for another key is refused (sub)
        try {
            $c->verifyLease($jws, TestEnv::get('KEY_MAIN'));
            $this->fail('a lease verified for another key');
        } catch (LeaseException $e) {
            $this->assertSame('sub', $e->reason);
        }
        // a lease of another issuer or brand is refused
        $otherIssuer = TestEnv::client(array('instance' => $instance, 'issuer' => 'https://evil.example'));
        try {
            $otherIssuer->verifyLease($jws, $key);
            $this->fail('verified with another issuer');
        } catch (LeaseException $e) {
            $this->assertSame('iss', $e->reason);
        }
        $otherBrand = TestEnv::client(array('instance' => $instance, 'brand' => 'otherbrand'));
        try {
            $otherBrand->verifyLease($jws, $key);
            $this->fail('verified for another brand');
        } catch (LeaseException $e) {
            $this->assertSame('aud', $e->reason);
        }
        $c->deactivate($key);
    }

    public function testExpiredLeaseIsRefused(): void
    {
        $key = TestEnv::get('KEY_FORGE');
        $instance = 'https://expired-lease-shop.com';
        $store = new ArrayLicenseStore();
        $c = TestEnv::client(array('instance' => $instance, 'store' => $store));
        $this->assertSame(201, $c->activate($key)->httpStatus);
        $s = $this->statusUntil($c, $key, 'valid');
        $exp = $s->leaseExpiresAt;
        $jws = $c->storedLease($key);

        $later = function () use ($exp) {
            return $exp + 1;
        };
        $future = TestEnv::client(array('instance' => $instance, 'store' => $store, 'clock' => $later,
            'edge_url' => TestEnv::get('CONTROL_URL') . '/fail503', 'jwks_url' => TestEnv::get('EDGE_URL') . '/.well-known/jwks.json'));
        try {
            $future->verifyLease($jws, $key);
            $this->fail('an expired lease verified');
        } catch (LeaseException $e) {
            $this->assertSame('exp', $e->reason);
        }
        $r = $future->status($key, true);
        $this->assertFalse($r->valid, 'an expired lease does not keep the site licensed');
        $this->assertSame('unreachable', $r->code);
        $last = $future->lastKnown($key);
        $this->assertFalse($last->valid, 'the last answer no longer counts past its lease');

        // one second before exp it still holds
        $before = TestEnv::client(array('instance' => $instance, 'store' => $store, 'clock' => function () use ($exp) {
            return $exp - 1;
        }, 'edge_url' => TestEnv::get('CONTROL_URL') . '/fail503'));
        $this->assertTrue($before->status($key, true)->valid);
        $c->deactivate($key);
    }

    public function testRateLimitAndRetryAfterAreHonoured(): void
    {
        $key = TestEnv::get('KEY_LIMITED');
        $now = time();
        $clock = TestEnv::clock($now);
        $counts = array();
        $c = TestEnv::client(array('edge_url' => TestEnv::get('LIMITED_EDGE_URL'), 'instance' => 'https://limited-shop.com',
            'transport' => TestEnv::countingTransport($counts), 'clock' => $clock, 'leases' => false));
        $edgeBefore = TestEnv::limitedStatusRequests();
        $r = null;
        for ($i = 0; $i < 10; $i++) {
            $r = $c->status($key, true);
            if ($r->throttled) {
                break;
            }
            $this->assertSame(200, $r->httpStatus, "check $i: {$r->code}");
        }
        $this->assertTrue($r->throttled, 'the tiny budget ran out');
        $this->assertSame(4, $counts['status'], 'three checks served, the fourth 429');
        $this->assertNotNull($r->retryAt);
        $this->assertGreaterThan($now, $r->retryAt);
        $this->assertSame('instance_not_activated', $r->code, 'the last known answer is kept through a 429');
        $this->assertSame(4, TestEnv::limitedStatusRequests() - $edgeBefore);

        // until Retry-After nothing is sent: not a forced status, not a check, not an activation
        for ($i = 0; $i < 5; $i++) {
            $t = $c->status($key, true);
            $this->assertTrue($t->throttled);
            $this->assertSame('instance_not_activated', $t->code);
        }
        $this->assertSame('instance_not_activated', $c->check($key)->code);
        $this->assertFalse($c->isCheckDue($key));
        $a = $c->activate($key);
        $this->assertSame('rate_limited', $a->code);
        $this->assertSame(4, $counts['all'], 'no request before Retry-After');
        $this->assertSame(4, TestEnv::limitedStatusRequests() - $edgeBefore, 'the edge saw nothing either');

        // once Retry-After has passed, the next forced status goes out (one request)
        $now = $r->retryAt;
        $c->status($key, true);
        $this->assertSame(5, $counts['status']);
        $this->assertSame(5, TestEnv::limitedStatusRequests() - $edgeBefore);

        // a client that never had an answer reports rate_limited, not invalid
        $counts2 = array();
        $c2 = TestEnv::client(array('edge_url' => TestEnv::get('LIMITED_EDGE_URL'), 'instance' => 'https://limited-shop.com',
            'transport' => TestEnv::countingTransport($counts2), 'leases' => false));
        $r2 = $c2->status($key, true);
        if ($r2->throttled) {
            $this->assertSame('rate_limited', $r2->code);
            $this->assertTrue($r2->isIndeterminate());
        }
    }

    public function testChecksAreSpreadAndCached(): void
    {
        $key = TestEnv::get('KEY_MAIN');
        $now = time();
        $clock = TestEnv::clock($now);
        $counts = array();
        $c = TestEnv::client(array('instance' => 'https://jitter-shop.com', 'transport' => TestEnv::countingTransport($counts),
            'clock' => $clock, 'check_interval' => 43200, 'jitter' => 0.25));
        $this->assertTrue($c->isCheckDue($key), 'nothing known: a check is due');
        $first = $c->check($key);
        $this->assertSame('network', $first->source);
        $this->assertSame(1, $counts['status']);
        $next = $c->nextCheckAt($key);
        $this->assertGreaterThanOrEqual($now + 43200, $next);
        $this->assertLessThanOrEqual($now + 43200 + 10800, $next);
        // page loads: no request
        for ($i = 0; $i < 20; $i++) {
            $now += 60;
            $c->check($key);
            $c->lastKnown($key);
        }
        $this->assertSame(1, $counts['status'], 'checks are not made on page loads');
        $now = $next;
        $c->check($key);
        $this->assertSame(2, $counts['status'], 'due after the jittered interval');

        // the jitter differs between sites
        $nexts = array();
        for ($i = 0; $i < 8; $i++) {
            $cc = TestEnv::client(array('instance' => 'https://jitter-shop.com', 'clock' => $clock));
            $cc->check($key);
            $nexts[] = $cc->nextCheckAt($key);
        }
        $this->assertGreaterThan(1, count(array_unique($nexts)), 'the next check is jittered');
    }

    public function testStaleAnswersAreUsedButNotCached(): void
    {
        // an edge cut off from the centre marks its answers X-Cache-Stale (with max-age=0):
        // the client reports them, does not serve them again from its cache, and checks
        // again after the retry interval instead of the check interval
        $key = TestEnv::get('KEY_MAIN');
        $now = time();
        $clock = TestEnv::clock($now);
        $counts = array();
        $c = TestEnv::client(array('edge_url' => TestEnv::get('STALE_EDGE_URL'), 'transport' => TestEnv::countingTransport($counts),
            'clock' => $clock, 'check_interval' => 43200, 'retry_interval' => 600, 'jitter' => 0.25));
        $r = $c->check($key);
        $this->assertSame('valid', $r->code, (string) $r->detail);
        $this->assertSame('network', $r->source);
        $this->assertTrue($r->stale, 'the edge marked its answer stale');
        $this->assertTrue($r->signed, 'a stale answer is still a verified lease');
        $this->assertGreaterThanOrEqual($now + 600, $c->nextCheckAt($key));
        $this->assertLessThanOrEqual($now + 750, $c->nextCheckAt($key), 'retried after the retry interval, not the check interval');
        $again = $c->status($key);
        $this->assertSame('network', $again->source, 'a stale answer is not served from the cache for max-age');
        $this->assertSame(2, $counts['status']);

        // the same key from a current edge: cached, next check after the check interval
        $fresh = TestEnv::client(array('transport' => TestEnv::countingTransport($counts), 'clock' => $clock, 'check_interval' => 43200));
        $f = $fresh->check($key);
        $this->assertFalse($f->stale, 'the main edge follows the stream');
        $this->assertGreaterThanOrEqual($now + 43200, $fresh->nextCheckAt($key));
        $this->assertSame('cache', $fresh->status($key)->source);
    }

    public function testUnknownKeyAndOtherProduct(): void
    {
        $c = TestEnv::client(array('instance' => 'https://unknown-key-shop.com'));
        $r = $c->status('ABCDE-FGHJK-MNPQR-STUVW-XYZ23', true);
        $this->assertSame('license_not_found', $r->code);
        $this->assertSame(404, $r->httpStatus);
        $this->assertFalse($r->valid);
        $this->assertFalse($r->isIndeterminate());
        $a = $c->activate('ABCDE-FGHJK-MNPQR-STUVW-XYZ23');
        $this->assertSame('license_not_found', $a->code);

        $other = $c->status(TestEnv::get('KEY_OTHER'), true);
        $this->assertSame('product_not_licensed', $other->code);
        $this->assertFalse($other->valid);
        $this->assertSame('license_not_found', $c->activate(TestEnv::get('KEY_OTHER'))->code, 'product not on the key');
        $this->assertSame('no_key', $c->status('  ')->code);
    }

    public function testSeatLimitAndDevelopmentInstances(): void
    {
        $key = TestEnv::get('KEY_SEATS');
        $c = TestEnv::client(array('instance' => 'https://www.seats-shop.com'));
        $a = $c->activate($key);
        $this->assertSame(201, $a->httpStatus);
        $this->assertFalse($a->development);
        $this->assertSame(1, TestEnv::license($key)['seats_used']);
        $full = $c->activate($key, 'https://second-seats-shop.com');
        $this->assertSame('seat_limit_reached', $full->code);
        $this->assertFalse($full->valid);

        // a staging copy activates without a seat, even with every seat taken
        $staging = 'https://staging.seats-shop.com';
        $this->assertTrue(LicenseClient::isDevelopmentInstance($staging));
        $d = $c->activate($key, $staging);
        $this->assertSame(201, $d->httpStatus, "staging activation: {$d->code} {$d->detail}");
        $this->assertTrue($d->valid);
        $this->assertTrue($d->development, 'activation.development');
        $this->assertTrue($d->isDevelopment());
        $this->assertSame('staging.seats-shop.com', $d->instance);
        $this->assertSame(1, TestEnv::license($key)['seats_used'], 'a development instance takes no seat');
        $this->assertSame(1, $d->seats()['used']);
        $s = $this->statusUntil($c, $key, 'valid', $staging);
        $this->assertTrue($s->development, 'instance.development in the status answer');
        $this->assertTrue($s->signed);
        $local = $c->activate($key, 'http://localhost:8080/wp');
        $this->assertTrue($local->development);
        $this->assertSame(1, TestEnv::license($key)['seats_used']);
    }

    public function testInstanceNormalizationMatchesTheService(): void
    {
        $key = TestEnv::get('KEY_PARITY');
        $c = TestEnv::client();
        $inputs = array(
            'https://www.Parity-Shop.com/', 'http://parity-shop.com', 'HTTPS://PARITY-SHOP.COM:443/', 'http://parity-shop.com:8080/',
            'https://parity-shop.com/blog/', 'https://Parity-Shop.com/Blog/Sub/', 'https://parity-shop.com/?lang=de',
            'https://user:secret@parity-shop.com/x#top', 'https://parity-shop.com/a b', 'https://parity-shop.com/ü/',
            'https://bücher-parity.example/', '  https://padded-parity.com/  ', 'https://www.www.parity-shop.com',
            'parity-shop.com/path/', 'My Parity Laptop', 'https://parity-shop.com:80', 'https://[::1]:8443/parity',
            'https://parity-shop.com/%7Euser/', 'https://parity-shop.com./',
        );
        foreach ($inputs as $in) {
            $a = $c->activate($key, $in);
            $this->assertContains($a->httpStatus, array(200, 201), "$in: {$a->code} {$a->detail}");
            $this->assertSame($a->instance, LicenseClient::normalizeInstance($in), "$in: the client's normal form differs from the service's");
        }
        foreach (array('', '   ', str_repeat('x', 256)) as $bad) {
            $a = $c->activate($key, $bad);
            $this->assertSame('invalid_request', $a->code);
            try {
                LicenseClient::normalizeInstance($bad);
                $this->fail('the client accepted what the service refuses');
            } catch (InvalidArgumentException $e) {
                $this->addToAssertionCount(1);
            }
        }
    }

    public function testMaskedKeyAndNoKeyInLogsOrResults(): void
    {
        $key = TestEnv::get('KEY_MAIN');
        $masked = LicenseClient::maskKey($key);
        $this->assertNotSame($key, $masked);
        $this->assertStringNotContainsString(substr($key, 0, 10), $masked);
        $this->assertSame(substr($key, -4), substr($masked, -4));
        $this->assertSame($masked, LicenseClient::maskKey(strtolower(" $key ")));
        $this->assertSame('••••', LicenseClient::maskKey('ABCD'));

        $c = TestEnv::client(array('instance' => 'https://mask-shop.com'));
        $results = array($c->activate($key), $c->status($key, true), $c->check($key), $c->lastKnown($key), $c->deactivate($key));
        foreach ($results as $r) {
            $json = json_encode($r->toArray());
            $this->assertTrue(stripos($json, $key) === false, 'a result carries the full key');
            $this->assertSame($masked, $r->maskedKey);
        }
        $this->assertNotEmpty(TestEnv::$log, 'the clients logged');
        foreach (array('KEY_MAIN', 'KEY_OFFLINE', 'KEY_FORGE', 'KEY_SEATS', 'KEY_PARITY', 'KEY_LIMITED', 'KEY_EXPIRING', 'KEY_OTHER') as $name) {
            $k = TestEnv::get($name);
            foreach (TestEnv::$log as $line) {
                $this->assertTrue(stripos($line, $k) === false, "a log line carries the full $name");
            }
        }
    }
}

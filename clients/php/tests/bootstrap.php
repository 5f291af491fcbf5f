<?php
/**
 * phpunit bootstrap: the client, and TestEnv, the topology that e2e/php_test.go started.
 */
require __DIR__ . '/../src/LicenseClient.php';

use LicenseService\Client\ArrayLicenseStore;
use LicenseService\Client\LicenseClient;

final class TestEnv
{
    /** @var string[] every log line any client wrote during the run */
    public static $log = array();

    public static function get(string $name): string
    {
        $v = getenv($name);
        if ($v === false || $v === '') {
            throw new RuntimeException("$name is not set: run these tests through `go test -run TestPHPClient ./e2e/`");
        }
        return $v;
    }

    /** A client on the main edge (or $options['edge_url']) with its own in-memory store. */
    public static function client(array $options = array()): LicenseClient
    {
        return new LicenseClient($options + array(
            'edge_url' => self::get('EDGE_URL'),
            'brand' => self::get('BRAND'),
            'product' => self::get('PRODUCT'),
            'issuer' => self::get('LEASE_ISSUER'),
            'store' => new ArrayLicenseStore(),
            'jwks_refetch' => 0,
            'timeout' => 5,
            'logger' => function ($level, $message) {
                self::$log[] = "[$level] $message";
            },
        ));
    }

    /** A clock for the client's 'clock' option that reads $now, which the test moves. */
    public static function clock(int &$now): callable
    {
        return function () use (&$now) {
            return $now;
        };
    }

    /** A transport that counts the requests it sends (by path part) before curl sends them. */
    public static function countingTransport(array &$counts): callable
    {
        return function ($method, $url, $headers, $body, $timeout) use (&$counts) {
            $what = strpos($url, '/status') !== false ? 'status' : (strpos($url, 'jwks') !== false ? 'jwks' : 'write');
            $counts[$what] = (isset($counts[$what]) ? $counts[$what] : 0) + 1;
            $counts['all'] = (isset($counts['all']) ? $counts['all'] : 0) + 1;
            return LicenseClient::curlTransport($method, $url, $headers, $body, $timeout);
        };
    }

    /** POSTs to the control server (edge/stop, edge/start). */
    public static function control(string $path): void
    {
        $r = LicenseClient::curlTransport('POST', self::get('CONTROL_URL') . '/' . $path, array(), '', 30);
        if (isset($r['error']) || $r['status'] !== 204) {
            throw new RuntimeException("control $path: " . (isset($r['error']) ? $r['error'] : $r['status'] . ' ' . $r['body']));
        }
    }

    /** How many status requests the limited edge received (its metrics). */
    public static function limitedStatusRequests(): int
    {
        $r = LicenseClient::curlTransport('GET', self::get('CONTROL_URL') . '/limited/status-requests', array(), null, 10);
        $d = json_decode($r['body'], true);
        return (int) $d['count'];
    }

    /** A brand API call on the writer; returns [status, decoded body]. */
    public static function writer(string $method, string $path, $body = null): array
    {
        $h = array('Authorization' => 'Bearer ' . self::get('API_KEY'), 'Accept' => 'application/json');
        if ($body !== null) {
            $h['Content-Type'] = 'application/json';
            $body = json_encode($body);
        }
        $r = LicenseClient::curlTransport($method, self::get('WRITER_URL') . $path, $h, $body, 10);
        if (isset($r['error'])) {
            throw new RuntimeException("writer $method: " . $r['error']);
        }
        return array($r['status'], json_decode($r['body'], true));
    }

    /** The license of $key (first one) as the writer's brand API shows it. */
    public static function license(string $key): array
    {
        list($status, $body) = self::writer('GET', '/v1/license-keys/' . rawurlencode($key));
        if ($status !== 200) {
            throw new RuntimeException("GET license key: $status");
        }
        return $body['licenses'][0];
    }

    public static function b64url(string $bin): string
    {
        return rtrim(strtr(base64_encode($bin), '+/', '-_'), '=');
    }

    public static function b64urlDecode(string $s): string
    {
        return base64_decode(strtr($s, '-_', '+/'));
    }
}

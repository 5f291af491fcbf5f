<?php
/**
 * Reads a JSON array of instance strings on stdin and writes, for each, what the client
 * makes of it: {"instance": normalized or null, "error": message or null, "development": bool}.
 * The Go test e2e/php_test.go compares this with the service's own functions.
 */
require __DIR__ . '/../src/LicenseClient.php';

use LicenseService\Client\LicenseClient;

$in = json_decode(stream_get_contents(STDIN), true);
if (!is_array($in)) {
    fwrite(STDERR, "stdin: want a JSON array of strings\n");
    exit(2);
}
$out = array();
foreach ($in as $s) {
    $row = array('instance' => null, 'error' => null, 'development' => LicenseClient::isDevelopmentInstance($s));
    try {
        $row['instance'] = LicenseClient::normalizeInstance($s);
    } catch (InvalidArgumentException $e) {
        $row['error'] = $e->getMessage();
    }
    $out[] = $row;
}
echo json_encode($out, JSON_UNESCAPED_SLASHES | JSON_UNESCAPED_UNICODE | JSON_INVALID_UTF8_SUBSTITUTE), "\n";

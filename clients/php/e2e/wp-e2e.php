<?php
/**
 * WordPress steps of the end-to-end test (e2e/wordpress_test.go), run with the PHP CLI
 * against a WordPress copy whose wp-config.php the test wrote (wp-cli is not packaged in
 * Debian, so this does what it would):
 *
 *   php wp-e2e.php ROOT HOST install URL PASSWORD   wp_install() through WordPress's own installer,
 *                                                  site URL set, example plugin activated
 *   php wp-e2e.php ROOT HOST staging URL            copy the site's tables to the staging prefix
 *                                                  (as WP Staging does) and point it at URL
 *   php wp-e2e.php ROOT HOST cron-due               make the plugin's daily check due now
 *   php wp-e2e.php ROOT HOST state                  print the plugin's view as JSON
 *   php wp-e2e.php ROOT HOST deactivate-plugin      deactivate the example plugin (clears its cron event)
 *
 * HOST is the Host the request would carry (wp-config.php picks the table prefix by it).
 * Output: one JSON object on stdout; errors on stderr with a non-zero exit.
 */

if (PHP_SAPI !== 'cli' || $argc < 4) {
    fwrite(STDERR, "usage: php wp-e2e.php ROOT HOST install|staging|cron-due|state|deactivate-plugin ...\n");
    exit(2);
}
list(, $root, $host, $cmd) = $argv;
$args = array_slice($argv, 4);

$_SERVER['HTTP_HOST'] = $host;
$_SERVER['SERVER_NAME'] = preg_replace('/:.*/', '', $host);
$_SERVER['SERVER_PORT'] = strpos($host, ':') !== false ? substr($host, strpos($host, ':') + 1) : '80';
$_SERVER['REQUEST_URI'] = '/';
$_SERVER['SCRIPT_NAME'] = '/index.php';
$_SERVER['PHP_SELF'] = '/index.php';
$_SERVER['REQUEST_METHOD'] = 'GET';

const PLUGIN = 'example-license-plugin/example-license-plugin.php';

function out(array $v): void
{
    echo json_encode($v, JSON_UNESCAPED_SLASHES), "\n";
}

function fail(string $msg): void
{
    fwrite(STDERR, $msg . "\n");
    exit(1);
}

switch ($cmd) {
    case 'install':
        list($url, $password) = $args;
        define('WP_INSTALLING', true);
        require $root . '/wp-load.php';
        require_once ABSPATH . 'wp-admin/includes/upgrade.php';
        require_once ABSPATH . 'wp-admin/includes/plugin.php';
        if (is_blog_installed()) {
            fail('already installed');
        }
        $r = wp_install('Plugin Shop (e2e)', 'admin', 'admin@pluginshop-e2e.com', false, '', wp_slash($password));
        update_option('siteurl', $url);
        update_option('home', $url);
        // no "is this still your email?" screen between login and the dashboard
        update_option('admin_email_lifespan', time() + YEAR_IN_SECONDS);
        wp_cache_flush();
        $act = activate_plugin(PLUGIN);
        if (is_wp_error($act)) {
            fail('activate_plugin: ' . $act->get_error_message());
        }
        out(array('user_id' => $r['user_id'], 'home' => get_option('home'), 'active' => is_plugin_active(PLUGIN),
            'cron' => wp_next_scheduled('example_license_daily_check')));
        break;

    case 'staging':
        list($url) = $args;
        require $root . '/wp-load.php';
        global $wpdb, $table_prefix;
        $from = $wpdb->prefix;
        $to = defined('E2E_STAGING_PREFIX') ? E2E_STAGING_PREFIX : 'wpstg0_';
        if ($from === $to) {
            fail('run staging with the production host');
        }
        $tables = $wpdb->get_col($wpdb->prepare('SHOW TABLES LIKE %s', $wpdb->esc_like($from) . '%'));
        foreach ($tables as $t) {
            $new = $to . substr($t, strlen($from));
            $wpdb->query("DROP TABLE IF EXISTS `$new`");
            $wpdb->query("CREATE TABLE `$new` LIKE `$t`");
            $wpdb->query("INSERT INTO `$new` SELECT * FROM `$t`");
        }
        // what WP Staging rewrites: the URLs, and the rows whose names carry the prefix
        $wpdb->query($wpdb->prepare("UPDATE `{$to}options` SET option_value = %s WHERE option_name IN ('siteurl', 'home')", $url));
        $wpdb->query($wpdb->prepare("UPDATE `{$to}options` SET option_name = %s WHERE option_name = %s", $to . 'user_roles', $from . 'user_roles'));
        $wpdb->query($wpdb->prepare("UPDATE `{$to}usermeta` SET meta_key = REPLACE(meta_key, %s, %s) WHERE meta_key LIKE %s",
            $from, $to, $wpdb->esc_like($from) . '%'));
        out(array('tables' => count($tables), 'prefix' => $to));
        break;

    case 'cron-due':
        require $root . '/wp-load.php';
        wp_clear_scheduled_hook('example_license_daily_check');
        wp_schedule_event(time() - 1, 'daily', 'example_license_daily_check');
        out(array('next' => wp_next_scheduled('example_license_daily_check')));
        break;

    case 'state':
        require $root . '/wp-load.php';
        require_once ABSPATH . 'wp-admin/includes/plugin.php';
        $key = example_license_key();
        $r = $key === '' ? null : example_license_client()->lastKnown($key);
        out(array(
            'home' => home_url(),
            'active' => is_plugin_active(PLUGIN),
            'cron' => wp_next_scheduled('example_license_daily_check'),
            'masked_key' => $key === '' ? null : \LicenseService\Client\LicenseClient::maskKey($key),
            'lease' => $key !== '' && example_license_client()->storedLease($key) !== null,
            'result' => $r === null ? null : array_diff_key($r->toArray(), array('licenses' => 1)),
        ));
        break;

    case 'deactivate-plugin':
        require $root . '/wp-load.php';
        require_once ABSPATH . 'wp-admin/includes/plugin.php';
        deactivate_plugins(PLUGIN);
        out(array('active' => is_plugin_active(PLUGIN), 'cron' => wp_next_scheduled('example_license_daily_check')));
        break;

    default:
        fail("unknown command $cmd");
}

<?php
/**
 * Plugin Name:       Example License Plugin
 * Description:       Shows how a plugin uses the license service's PHP client: a settings page to enter the key, activation on save, a daily check, an admin notice when the license is not valid.
 * Version:           1.0.0
 * Requires at least: 5.2
 * Requires PHP:      7.4
 * License:           MIT
 * Text Domain:       example-license-plugin
 *
 * Configuration (wp-config.php, or edit the defaults below before you ship):
 *   define('EXAMPLE_LICENSE_EDGE_URL', 'https://licenses.example.com');
 *   define('EXAMPLE_LICENSE_BRAND', 'your-brand');
 *   define('EXAMPLE_LICENSE_PRODUCT', 'your-product');
 *   define('EXAMPLE_LICENSE_ISSUER', 'urn:license-service');   // the service's lease issuer
 */

if (!defined('ABSPATH')) {
    exit;
}

// The client: a copy bundled in lib/ (what a shipped plugin does: see clients/php/README.md,
// "Bundling"), or the repository's own when the plugin runs from the source tree.
if (file_exists(__DIR__ . '/lib/LicenseClient.php')) {
    require_once __DIR__ . '/lib/LicenseClient.php';
} else {
    require_once __DIR__ . '/../src/LicenseClient.php';
}

use LicenseService\Client\LicenseClient;
use LicenseService\Client\LicenseResult;

const EXAMPLE_LICENSE_OPTION = 'example_license_key';
const EXAMPLE_LICENSE_CRON = 'example_license_daily_check';
const EXAMPLE_LICENSE_PAGE = 'example-license';

/** The plugin's one client (the site URL is this site's home URL). */
function example_license_client(): LicenseClient
{
    static $client = null;
    if ($client === null) {
        $client = new LicenseClient(array(
            'edge_url' => defined('EXAMPLE_LICENSE_EDGE_URL') ? EXAMPLE_LICENSE_EDGE_URL : 'https://licenses.example.com',
            'brand' => defined('EXAMPLE_LICENSE_BRAND') ? EXAMPLE_LICENSE_BRAND : 'example-brand',
            'product' => defined('EXAMPLE_LICENSE_PRODUCT') ? EXAMPLE_LICENSE_PRODUCT : 'example-product',
            'issuer' => defined('EXAMPLE_LICENSE_ISSUER') ? EXAMPLE_LICENSE_ISSUER : LicenseClient::DEFAULT_ISSUER,
            'instance' => home_url(),
            'prefix' => 'exlic_',
            'user_agent' => 'example-license-plugin/1.0.0 WordPress/' . get_bloginfo('version'),
            'logger' => function ($level, $message) {
                if (defined('WP_DEBUG') && WP_DEBUG && in_array($level, array('warning', 'error'), true)) {
                    error_log('[example-license-plugin] ' . $message); // messages carry masked keys only
                }
            },
        ));
    }
    return $client;
}

function example_license_key(): string
{
    return (string) get_option(EXAMPLE_LICENSE_OPTION, '');
}

/** What a code means, for the site owner. */
function example_license_message(LicenseResult $r): string
{
    $messages = array(
        'valid' => __('Your license is active on this site.', 'example-license-plugin'),
        'expired' => __('Your license has expired. Renew it to keep receiving updates.', 'example-license-plugin'),
        'suspended' => __('Your license is suspended. Contact support.', 'example-license-plugin'),
        'cancelled' => __('Your license was cancelled.', 'example-license-plugin'),
        'product_not_licensed' => __('This key does not license this plugin.', 'example-license-plugin'),
        'instance_not_activated' => __('This site is not activated on your license. Save the key again to activate it.', 'example-license-plugin'),
        'seat_limit_reached' => __('Every seat of your license is in use. Deactivate another site or upgrade.', 'example-license-plugin'),
        'dev_instance_limit_reached' => __('Your license has reached its number of staging and development sites.', 'example-license-plugin'),
        'license_not_found' => __('This license key is not known. Check it for typos.', 'example-license-plugin'),
        'license_suspended' => __('Your license is suspended. Contact support.', 'example-license-plugin'),
        'license_cancelled' => __('Your license was cancelled.', 'example-license-plugin'),
        'license_expired' => __('Your license has expired. Renew it to activate it.', 'example-license-plugin'),
        'rate_limited' => __('The license service asked us to wait a moment. We will try again automatically.', 'example-license-plugin'),
        'unreachable' => __('The license service cannot be reached right now. We will try again automatically.', 'example-license-plugin'),
        'unavailable' => __('The license service is temporarily unavailable. We will try again automatically.', 'example-license-plugin'),
        'signature_invalid' => __('The license service\'s answer could not be verified. We will try again automatically.', 'example-license-plugin'),
        'deactivated' => __('This site was deactivated.', 'example-license-plugin'),
        'no_key' => __('Enter your license key to activate the plugin.', 'example-license-plugin'),
        'unknown' => __('The license has not been checked yet.', 'example-license-plugin'),
        'invalid_request' => __('The license service refused the request.', 'example-license-plugin'),
    );
    return isset($messages[$r->code]) ? $messages[$r->code] : sprintf(__('License check answered: %s', 'example-license-plugin'), $r->code);
}

// ------------------------------------------------------------ activation, cron

register_activation_hook(__FILE__, 'example_license_on_activate');
register_deactivation_hook(__FILE__, 'example_license_on_deactivate');

function example_license_on_activate(): void
{
    if (!wp_next_scheduled(EXAMPLE_LICENSE_CRON)) {
        // a random start spreads the daily checks of many sites over the day
        wp_schedule_event(time() + wp_rand(0, DAY_IN_SECONDS), 'daily', EXAMPLE_LICENSE_CRON);
    }
}

function example_license_on_deactivate(): void
{
    wp_clear_scheduled_hook(EXAMPLE_LICENSE_CRON);
}

add_action(EXAMPLE_LICENSE_CRON, 'example_license_daily_check');

/** The daily check: the client asks the service only when a check is due (12 h + jitter). */
function example_license_daily_check(): void
{
    $key = example_license_key();
    if ($key !== '') {
        example_license_client()->check($key);
    }
}

// ------------------------------------------------------------ settings page

add_action('admin_init', 'example_license_register_setting');
add_action('admin_menu', 'example_license_menu');

function example_license_register_setting(): void
{
    register_setting('example_license', EXAMPLE_LICENSE_OPTION, array(
        'type' => 'string',
        'sanitize_callback' => 'example_license_sanitize_key',
        'default' => '',
        'show_in_rest' => false,
    ));
}

function example_license_menu(): void
{
    add_options_page(
        __('Example License', 'example-license-plugin'),
        __('Example License', 'example-license-plugin'),
        'manage_options',
        EXAMPLE_LICENSE_PAGE,
        'example_license_render_page'
    );
}

/**
 * Runs when the settings form is saved (options.php checked the nonce and the
 * capability): activates the new key on this site, deactivates the old one.
 */
function example_license_sanitize_key($value)
{
    static $done = array(); // WordPress may sanitize twice when the option is new
    $key = LicenseClient::normalizeKey(is_string($value) ? sanitize_text_field($value) : '');
    if (isset($done[$key])) {
        return $key;
    }
    $done[$key] = true;
    if (!current_user_can('manage_options')) {
        return example_license_key();
    }
    $client = example_license_client();
    $old = example_license_key();
    if ($key === '') {
        return $old; // an empty field keeps the key ("Deactivate this site" removes it)
    }
    if ($old !== '' && $old !== $key) {
        $client->deactivate($old);
        $client->forget($old);
    }
    $r = $client->activate($key);
    add_settings_error(
        EXAMPLE_LICENSE_OPTION,
        'example-license-' . $r->code,
        example_license_message($r),
        $r->valid ? 'success' : ($r->isIndeterminate() ? 'warning' : 'error')
    );
    return $key;
}

add_action('admin_post_example_license_check', 'example_license_check_now');
add_action('admin_post_example_license_deactivate', 'example_license_deactivate_now');

function example_license_check_now(): void
{
    if (!current_user_can('manage_options')) {
        wp_die(esc_html__('Sorry, you are not allowed to do that.', 'example-license-plugin'), 403);
    }
    check_admin_referer('example_license_check');
    $key = example_license_key();
    if ($key !== '') {
        example_license_client()->status($key, true);
    }
    wp_safe_redirect(admin_url('options-general.php?page=' . EXAMPLE_LICENSE_PAGE));
    exit;
}

function example_license_deactivate_now(): void
{
    if (!current_user_can('manage_options')) {
        wp_die(esc_html__('Sorry, you are not allowed to do that.', 'example-license-plugin'), 403);
    }
    check_admin_referer('example_license_deactivate');
    $key = example_license_key();
    if ($key !== '') {
        example_license_client()->deactivate($key);
        example_license_client()->forget($key);
        delete_option(EXAMPLE_LICENSE_OPTION);
    }
    wp_safe_redirect(admin_url('options-general.php?page=' . EXAMPLE_LICENSE_PAGE));
    exit;
}

function example_license_render_page(): void
{
    if (!current_user_can('manage_options')) {
        return;
    }
    $client = example_license_client();
    $key = example_license_key();
    $r = $key === '' ? null : $client->lastKnown($key);
    ?>
    <div class="wrap">
        <h1><?php echo esc_html__('Example License', 'example-license-plugin'); ?></h1>
        <?php settings_errors(EXAMPLE_LICENSE_OPTION); ?>
        <form method="post" action="options.php" id="example-license-form">
            <?php settings_fields('example_license'); ?>
            <table class="form-table" role="presentation">
                <tr>
                    <th scope="row"><label for="example-license-key"><?php echo esc_html__('License key', 'example-license-plugin'); ?></label></th>
                    <td>
                        <input type="text" id="example-license-key" name="<?php echo esc_attr(EXAMPLE_LICENSE_OPTION); ?>" value=""
                               class="regular-text code" autocomplete="off"
                               placeholder="<?php echo esc_attr($key === '' ? 'XXXXX-XXXXX-XXXXX-XXXXX-XXXXX' : LicenseClient::maskKey($key)); ?>">
                        <p class="description"><?php echo esc_html__('Paste the key from your purchase receipt. Saving activates this site.', 'example-license-plugin'); ?></p>
                    </td>
                </tr>
            </table>
            <?php submit_button(__('Save and activate', 'example-license-plugin')); ?>
        </form>
        <?php if ($r !== null) : ?>
            <h2><?php echo esc_html__('License status', 'example-license-plugin'); ?></h2>
            <?php $seats = $r->seats(); ?>
            <table class="widefat striped" id="example-license-status" style="max-width: 48em">
                <tr><th><?php echo esc_html__('Key', 'example-license-plugin'); ?></th><td id="example-license-masked-key"><?php echo esc_html(LicenseClient::maskKey($key)); ?></td></tr>
                <tr><th><?php echo esc_html__('Status', 'example-license-plugin'); ?></th><td><code id="example-license-code"><?php echo esc_html($r->code); ?></code> — <?php echo esc_html(example_license_message($r)); ?></td></tr>
                <tr><th><?php echo esc_html__('Valid', 'example-license-plugin'); ?></th><td id="example-license-valid"><?php echo $r->valid ? 'yes' : 'no'; ?></td></tr>
                <tr><th><?php echo esc_html__('Site', 'example-license-plugin'); ?></th><td id="example-license-instance"><?php echo esc_html((string) $client->instance()); ?></td></tr>
                <tr><th><?php echo esc_html__('Development site (takes no seat)', 'example-license-plugin'); ?></th><td id="example-license-development"><?php echo $r->development === null ? '—' : ($r->development ? 'yes' : 'no'); ?></td></tr>
                <tr><th><?php echo esc_html__('Seats', 'example-license-plugin'); ?></th><td id="example-license-seats"><?php
                    echo $seats['used'] === null ? '—' : esc_html($seats['used'] . ' / ' . ($seats['limit'] === null ? '∞' : $seats['limit']));
                ?></td></tr>
                <tr><th><?php echo esc_html__('Expires', 'example-license-plugin'); ?></th><td><?php echo esc_html($r->expiresAt() === null ? __('never', 'example-license-plugin') : $r->expiresAt()); ?></td></tr>
                <tr><th><?php echo esc_html__('Last answer', 'example-license-plugin'); ?></th><td><?php
                    echo esc_html($r->receivedAt === null ? '—' : gmdate('Y-m-d H:i:s', (int) $r->receivedAt) . ' UTC');
                    if ($r->leaseExpiresAt !== null) {
                        echo ' · ' . esc_html(sprintf(__('works offline until %s UTC', 'example-license-plugin'), gmdate('Y-m-d H:i', (int) $r->leaseExpiresAt)));
                    }
                ?></td></tr>
            </table>
            <p>
                <form method="post" action="<?php echo esc_url(admin_url('admin-post.php')); ?>" style="display:inline">
                    <input type="hidden" name="action" value="example_license_check">
                    <?php wp_nonce_field('example_license_check'); ?>
                    <?php submit_button(__('Check now', 'example-license-plugin'), 'secondary', 'check', false); ?>
                </form>
                <form method="post" action="<?php echo esc_url(admin_url('admin-post.php')); ?>" style="display:inline">
                    <input type="hidden" name="action" value="example_license_deactivate">
                    <?php wp_nonce_field('example_license_deactivate'); ?>
                    <?php submit_button(__('Deactivate this site', 'example-license-plugin'), 'delete', 'deactivate', false); ?>
                </form>
            </p>
        <?php endif; ?>
    </div>
    <?php
}

// ------------------------------------------------------------ admin notice

add_action('admin_notices', 'example_license_notice');

/** A notice on admin pages when the license is not valid (from the stored answer: no request). */
function example_license_notice(): void
{
    if (!current_user_can('manage_options')) {
        return;
    }
    $screen = function_exists('get_current_screen') ? get_current_screen() : null;
    if ($screen !== null && $screen->id === 'settings_page_' . EXAMPLE_LICENSE_PAGE) {
        return; // the settings page shows the status itself
    }
    $key = example_license_key();
    $r = $key === '' ? null : example_license_client()->lastKnown($key);
    if ($r !== null && ($r->valid || $r->isIndeterminate())) {
        return; // licensed, or nothing known yet: do not nag
    }
    $url = admin_url('options-general.php?page=' . EXAMPLE_LICENSE_PAGE);
    $text = $r === null ? __('Example License Plugin: enter your license key to activate it.', 'example-license-plugin')
        : sprintf(__('Example License Plugin: %s', 'example-license-plugin'), example_license_message($r));
    printf(
        '<div class="notice notice-error" id="example-license-notice"><p>%s <a href="%s">%s</a></p></div>',
        esc_html($text),
        esc_url($url),
        esc_html__('License settings', 'example-license-plugin')
    );
}

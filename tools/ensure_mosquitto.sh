#!/usr/bin/env bash
# Install the Mosquitto MQTT broker (Debian package) when it is missing: the MQTT
# integration tests start a real broker process and skip without one. Under CI (CI set
# and not "false") a broker that cannot be installed fails the run instead: the MQTT
# tests must not pass there by skipping.
set -euo pipefail
fail() {
    echo "ensure_mosquitto: $1" >&2
    if [ -n "${CI:-}" ] && [ "${CI}" != "false" ]; then
        exit 1
    fi
    exit 0
}
if command -v mosquitto >/dev/null 2>&1 || [ -x /usr/sbin/mosquitto ]; then
    exit 0
fi
if [ "$(id -u)" -ne 0 ] || ! command -v apt-get >/dev/null 2>&1; then
    fail "mosquitto is missing and cannot be installed here (needs root and apt-get); the MQTT tests will skip"
fi
export DEBIAN_FRONTEND=noninteractive
if apt-get update -qq && apt-get install -y -qq --no-install-recommends mosquitto >/dev/null; then
    echo "ensure_mosquitto: installed $(/usr/sbin/mosquitto -h 2>/dev/null | head -1)" >&2
else
    fail "apt-get could not install mosquitto; the MQTT tests will skip"
fi

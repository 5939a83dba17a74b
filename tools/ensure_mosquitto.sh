#!/usr/bin/env bash
# Install the Mosquitto MQTT broker (Debian package) when it is missing: the MQTT
# integration tests start a real broker process and skip without one.
set -euo pipefail
if command -v mosquitto >/dev/null 2>&1 || [ -x /usr/sbin/mosquitto ]; then
    exit 0
fi
if [ "$(id -u)" -ne 0 ] || ! command -v apt-get >/dev/null 2>&1; then
    echo "ensure_mosquitto: mosquitto is missing and cannot be installed here (needs root and apt-get); the MQTT tests will skip" >&2
    exit 0
fi
export DEBIAN_FRONTEND=noninteractive
if apt-get update -qq && apt-get install -y -qq --no-install-recommends mosquitto >/dev/null; then
    echo "ensure_mosquitto: installed $(/usr/sbin/mosquitto -h 2>/dev/null | head -1)" >&2
else
    echo "ensure_mosquitto: apt-get could not install mosquitto; the MQTT tests will skip" >&2
fi

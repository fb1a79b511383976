#!/usr/bin/env bash
# Installs the Debian packages the project builds and runs against. Needs root (or sudo).
set -euo pipefail
pkgs=(libopenblas-dev libcurl4-openssl-dev libpq-dev postgresql pkg-config python3-pip)
missing=()
for p in "${pkgs[@]}"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
if [ ${#missing[@]} -gt 0 ]; then
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO=sudo
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
fi

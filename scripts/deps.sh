#!/usr/bin/env bash
# Installs the Debian packages rollout needs to build and test; only those missing. Idempotent.
set -euo pipefail
pkgs=(build-essential pkg-config clang libclang-rt-14-dev libuv1-dev libyaml-dev libsqlite3-dev libcurl4-openssl-dev
      libjansson-dev libcmocka-dev curl wrk iproute2 procps psmisc python3 prometheus haproxy
      openssh-server openssh-client chromium systemd)
[ "${1:-}" = "--bench" ] && pkgs+=(haproxy nginx-light ansible-core)
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0
echo "deps: installing ${missing[*]}" >&2
SUDO=; [ "$(id -u)" -eq 0 ] || SUDO=sudo
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq >/dev/null
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null

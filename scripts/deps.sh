#!/usr/bin/env bash
# Installs the Debian packages rollout needs; only those missing. Idempotent.
#   scripts/deps.sh [--build]  what `make` and `make demo` need: a compiler and the libraries
#   scripts/deps.sh --test     and what `make test` needs: clang and its sanitizer runtimes (fuzz),
#                              cmocka, and the real programs the tests run (haproxy, sshd, ...)
#   scripts/deps.sh --bench    and the peers bench/ compares against
#   scripts/deps.sh --deb      what `make` and `make deb` need (debhelper)
set -euo pipefail
build=(build-essential pkg-config libuv1-dev libyaml-dev libsqlite3-dev libcurl4-openssl-dev
       libjansson-dev curl procps python3)
test=(clang libclang-rt-14-dev libcmocka-dev wrk iproute2 psmisc prometheus haproxy openssh-server
      openssh-client chromium systemd debootstrap nginx-light redis-server man-db debhelper)
bench=(ansible-core)
case "${1:---build}" in
--build) pkgs=("${build[@]}") ;;
--test) pkgs=("${build[@]}" "${test[@]}") ;;
--bench) pkgs=("${build[@]}" "${test[@]}" "${bench[@]}") ;;
--deb) pkgs=("${build[@]}" debhelper) ;;
*) echo "usage: scripts/deps.sh [--build|--test|--bench|--deb]" >&2; exit 2 ;;
esac
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

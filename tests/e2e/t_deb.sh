#!/usr/bin/env bash
# `make deb` builds build/rollout_<ROLLOUT_VERSION>_<arch>.deb: its control fields (version from
# src/cli/cmd.h, the runtime libraries and openssh-client in Depends, haproxy only suggested), its
# files (binary, man pages, completions, docs; the unit and the sysusers file iff dist/ has them),
# the unpacked binary runs, and dpkg installs it in a scratch root (making the rollout user there)
# and purges it. Leaves the source tree as it found it (no debhelper leftovers in debian/).
set -u
cd "$(dirname "$0")/../.."
BUILD=${BUILD:-build}
tmp=$(mktemp -d /tmp/rollout-deb.XXXXXX)
trap 'rm -rf "$tmp"' EXIT
fail() { echo "FAIL: $*"; exit 1; }
command -v dh >/dev/null || fail "debhelper is not installed (scripts/deps.sh installs it)"

version=$(sed -n 's/^#define ROLLOUT_VERSION "\(.*\)"/\1/p' src/cli/cmd.h)
arch=$(dpkg --print-architecture)
deb=$BUILD/rollout_${version}_$arch.deb
rm -f "$deb"
before=$(git status --porcelain --ignored debian 2>/dev/null)
make --no-print-directory BUILD="$BUILD" deb >"$tmp/make.log" 2>&1 || { tail -30 "$tmp/make.log"; fail "make deb"; }
[ -f "$deb" ] || fail "no $deb"
[ "$(git status --porcelain --ignored debian 2>/dev/null)" = "$before" ] || fail "make deb left files in debian/"

field() { dpkg-deb -f "$deb" "$1"; }
[ "$(field Package)" = rollout ] || fail "Package: $(field Package)"
[ "$(field Version)" = "$version" ] || fail "Version: $(field Version), want $version"
[ "$(field Architecture)" = "$arch" ] || fail "Architecture: $(field Architecture)"
depends=$(field Depends)
for p in libuv1 libyaml-0-2 libsqlite3-0 libcurl4 libjansson4 openssh-client; do
	echo ", $depends," | grep -Eq ", $p( \([^)]*\))?," || fail "Depends lacks $p: $depends"
done
echo "$depends" | grep -q haproxy && fail "haproxy in Depends: $depends"
echo ", $(field Suggests)," | grep -q ", haproxy," || fail "Suggests: $(field Suggests)"
dpkg-deb -I "$deb" | grep -q 'Description: rolling deployments' || fail "no description"

dpkg-deb -c "$deb" | awk '{print $1, $2, $NF}' >"$tmp/list"
for f in ./usr/bin/rollout ./usr/share/man/man1/rollout.1.gz ./usr/share/man/man5/rollout.yaml.5.gz \
	./usr/share/man/man8/rollout-daemon.8.gz ./usr/share/bash-completion/completions/rollout \
	./usr/share/zsh/vendor-completions/_rollout ./usr/share/doc/rollout/changelog.gz; do
	grep -q " $f\$" "$tmp/list" || fail "not in the package: $f"
done
grep -q '^-rwxr-xr-x root/root ./usr/bin/rollout$' "$tmp/list" || fail "usr/bin/rollout: $(grep bin/rollout "$tmp/list")"
grep -v ' root/root ' "$tmp/list" && fail "files not owned by root"
if [ -f dist/rollout.service.in ]; then
	grep -q ' ./lib/systemd/system/rollout.service$' "$tmp/list" || fail "the unit is not in the package"
	[ -f dist/rollout.sysusers ] && { grep -q ' ./usr/lib/sysusers.d/rollout.conf$' "$tmp/list" || fail "no sysusers file"; }
else
	grep -q 'systemd' "$tmp/list" && fail "a unit in the package without dist/rollout.service.in"
fi

# Unpacked: the binary runs and says its version.
dpkg -x "$deb" "$tmp/x"
out=$("$tmp/x/usr/bin/rollout" version) || fail "unpacked rollout version exited $?"
echo "$out" | grep -q "^rollout $version " || fail "unpacked rollout version: $out"
zcat "$tmp/x/usr/share/man/man1/rollout.1.gz" | grep -q '^\.TH "ROLLOUT" "1"' || fail "rollout.1.gz is not the page"
zcat "$tmp/x/usr/share/man/man1/rollout.1.gz" | grep -q '/usr/share/doc/rollout' || fail "rollout.1.gz names another DOCDIR"

# Installed into a scratch root with dpkg (its dependencies are this machine's, not the root's),
# then purged. The maintainer scripts run outside a chroot (the root has no shell) with DPKG_ROOT
# set, which systemd-sysusers and deb-systemd-helper honour: the rollout user is made in the
# scratch root's /etc/passwd, the unit's state under its /var/lib/systemd.
r=$tmp/root
mkdir -p "$r/var/lib/dpkg/info" "$r/var/lib/dpkg/updates" "$r/etc"
touch "$r/var/lib/dpkg/status"
force=--force-depends,script-chrootless; [ "$(id -u)" -eq 0 ] || force="$force,not-root"
dpkg --root="$r" "$force" --log=/dev/null -i "$deb" >"$tmp/dpkg.log" 2>&1 || { cat "$tmp/dpkg.log"; fail "dpkg -i"; }
[ "$(dpkg-query --admindir="$r/var/lib/dpkg" -W -f='${Status} ${Version}' rollout)" = "install ok installed $version" ] ||
	fail "dpkg-query: $(dpkg-query --admindir="$r/var/lib/dpkg" -W rollout)"
"$r/usr/bin/rollout" version | grep -q "^rollout $version " || fail "installed rollout version"
if [ -f dist/rollout.sysusers ]; then
	grep -q '^rollout:x:[0-9]*:[0-9]*:.*:/var/lib/rollout:' "$r/etc/passwd" || fail "no rollout user: $(cat "$r/etc/passwd")"
fi
dpkg --root="$r" "$force" --log=/dev/null -P rollout >"$tmp/dpkg.log" 2>&1 || { cat "$tmp/dpkg.log"; fail "dpkg -P"; }
[ ! -e "$r/usr/bin/rollout" ] || fail "dpkg -P left usr/bin/rollout"
left=$(cd "$r" && find usr lib -type f 2>/dev/null)
[ -z "$left" ] || fail "left after purge: $left"
echo "ok: $deb ($(du -k "$deb" | cut -f1) KiB): $depends"

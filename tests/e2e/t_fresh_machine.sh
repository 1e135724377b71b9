#!/usr/bin/env bash
# A fresh machine: a minimal Debian 12 root (debootstrap --variant=minbase, from the mirror this
# machine's apt sources name, read now and written nowhere in the repo), a `git archive HEAD` copy
# of the project, and the README's quick-start commands run in order in a chroot, up to and
# including `make demo`: it passes only if the demo completes. The base root is cached in
# /var/cache/rollout-test (FRESH_CACHE) between runs; everything else is made and removed here.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
skip() { echo "skip: $*"; exit 77; }
[ "$(id -u)" -eq 0 ] || skip "needs root (debootstrap, chroot)"
command -v debootstrap >/dev/null || skip "debootstrap is not installed (scripts/deps.sh --test)"
git -C "$ROOT" rev-parse --verify -q HEAD >/dev/null || skip "not a git checkout: nothing to archive"

# the Debian mirror of this machine, for bookworm
MIRROR=$(python3 - <<'PY'
import glob, re
uris = []
for f in glob.glob("/etc/apt/sources.list.d/*.sources"):
    for stanza in open(f).read().split("\n\n"):
        fields = dict(re.findall(r"^([A-Za-z-]+):\s*(.*)$", stanza, re.M))
        if "bookworm" in fields.get("Suites", "").split() and fields.get("Types", "deb").startswith("deb"):
            uris += fields.get("URIs", "").split()
for f in ["/etc/apt/sources.list"] + glob.glob("/etc/apt/sources.list.d/*.list"):
    try:
        for line in open(f):
            m = re.match(r"\s*deb\s+(?:\[[^]]*\]\s+)?(\S+)\s+bookworm\s", line)
            if m:
                uris.append(m.group(1))
    except OSError:
        pass
print(next((u for u in uris if u.startswith("http")), ""))
PY
)
[ -n "$MIRROR" ] || skip "no bookworm mirror in this machine's apt sources"

CACHE=${FRESH_CACHE:-/var/cache/rollout-test}
BASE="$CACHE/bookworm-minbase.tar.gz"
mkdir -p "$CACHE"
if [ ! -s "$BASE" ]; then
	log "debootstrap minbase bookworm from $MIRROR (cached in $BASE)"
	debootstrap --variant=minbase bookworm "$T/base" "$MIRROR" >"$T/debootstrap.log" 2>&1 ||
		{ tail -5 "$T/debootstrap.log"; skip "debootstrap failed (no mirror reachable?)"; }
	tar -C "$T/base" -czf "$BASE.tmp" . && mv "$BASE.tmp" "$BASE"
	rm -rf "$T/base"
fi

R="$T/root"
# a fresh root from the cached base, the project in /src, /proc /dev /tmp mounted
fresh_root() {
	rm -rf "$R"
	mkdir -p "$R"
	tar -C "$R" -xzf "$BASE"
	if chroot "$R" sh -c 'command -v make' >/dev/null 2>&1; then fail "the base root has make: not fresh"; fi
	mkdir -p "$R/src"
	git -C "$ROOT" archive HEAD | tar -x -C "$R/src"
	cp /etc/resolv.conf "$R/etc/resolv.conf"
	mount -t proc proc "$R/proc"
	mount --rbind /dev "$R/dev"
	mount -t tmpfs tmpfs "$R/tmp"
}
drop_root() {
	# whatever the chroot still runs (a demo cut short) goes first, then the mounts and the root
	for p in /proc/[0-9]*; do
		[ "$(readlink "$p/root" 2>/dev/null)" = "$R" ] && kill -9 "${p#/proc/}" 2>/dev/null
	done
	sleep 0.2
	umount -R "$R/dev" 2>/dev/null || umount -l "$R/dev" 2>/dev/null || true
	umount "$R/proc" "$R/tmp" 2>/dev/null || umount -l "$R/proc" "$R/tmp" 2>/dev/null || true
	mountpoint -q "$R/proc" || mountpoint -q "$R/dev" || rm -rf "$R" || true
}
trap 'rc_=$?; drop_root; (exit $rc_); cleanup' EXIT

# the README's quick start, command by command, up to make demo
python3 - "$ROOT/README.md" >"$T/commands" <<'PY'
import re, sys
text = open(sys.argv[1]).read()
start = text.index("## Quick start")
block = re.search(r"```sh\n(.*?)```", text[start:], re.S).group(1)
for line in block.splitlines():
    cmd = line.split("#", 1)[0].strip()
    if not cmd:
        continue
    print(cmd)
    if cmd.startswith("make demo"):
        break
PY
grep -qx "make demo" "$T/commands" || fail "the README's quick start has no make demo: $(cat "$T/commands")"
# twice, each on its own fresh root: as written, and with make's -j2 (MAKEFLAGS)
for flags in "" "-j2"; do
	fresh_root
	t0=$SECONDS
	while IFS= read -r cmd; do
		log "chroot${flags:+ (MAKEFLAGS=$flags)}: $cmd"
		t1=$SECONDS
		chroot "$R" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/root TERM=dumb \
			MAKEFLAGS="$flags" /bin/bash -c "cd /src && $cmd" >"$T/step.log" 2>&1 </dev/null ||
			{ tail -40 "$T/step.log"; fail "'$cmd' (MAKEFLAGS=$flags) failed on a fresh Debian 12"; }
		log "  ok in $((SECONDS - t1))s"
	done <"$T/commands"
	tail -3 "$T/step.log"
	grep -q "history and the last events" "$T/step.log" || fail "the demo did not run to its end"
	log "fresh machine${flags:+ with $flags}: README quick start through make demo in $((SECONDS - t0))s"
	drop_root
done

# The Debian package, installed with apt into a fresh root (apt resolves its dependencies from the
# mirror): rollout version, plan of the example spec, the unit verifies, and the installed daemon,
# started by hand, deploys the example app.
t0=$SECONDS
make --no-print-directory -C "$ROOT" BUILD="$BUILD" deb >"$T/deb.log" 2>&1 || { tail -20 "$T/deb.log"; fail "make deb"; }
DEB=$(ls "$ROOT/$BUILD"/rollout_*.deb | head -1)
fresh_root
cp "$DEB" "$R/tmp/rollout.deb"
mkdir -p "$R/opt/example/build" "$R/opt/example/examples"
cp "$ROOT/$BUILD/hello" "$R/opt/example/build/hello"
cp "$ROOT/examples/hello.yaml" "$R/opt/example/examples/"
in_root() { chroot "$R" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/root TERM=dumb /bin/bash -c "$1"; }
in_root "apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq ./tmp/rollout.deb systemd" \
	>"$T/apt.log" 2>&1 </dev/null || { tail -20 "$T/apt.log"; fail "apt-get install ./rollout.deb in a fresh root"; }
in_root "rollout version" | grep -q "^rollout " || fail "the installed rollout version"
in_root "cd /opt/example && rollout plan examples/hello.yaml" >"$T/plan.out" 2>&1 || fail "plan: $(cat "$T/plan.out")"
in_root "systemd-analyze verify --man=no /lib/systemd/system/rollout.service" >"$T/verify.out" 2>&1 ||
	fail "systemd-analyze verify of the installed unit: $(cat "$T/verify.out")"
getent_rollout=$(in_root "getent passwd rollout" || true)
[ -n "$getent_rollout" ] || fail "the package made no rollout user"
in_root "cd /opt/example && (rollout daemon --data /var/lib/rollout >/tmp/daemon.log 2>&1 &) && sleep 0.5 &&
	rollout --data /var/lib/rollout apply examples/hello.yaml --wait --timeout 60s &&
	rollout --data /var/lib/rollout status hello" >"$T/deploy.out" 2>&1 </dev/null ||
	{ cat "$T/deploy.out"; fail "the installed daemon did not deploy the example app"; }
grep -q "complete" "$T/deploy.out" || fail "deploy: $(cat "$T/deploy.out")"
log "the .deb in a fresh root: apt install, version, plan, unit verifies, daemon deploys hello ($((SECONDS - t0))s)"
drop_root
log ok

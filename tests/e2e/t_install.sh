#!/usr/bin/env bash
# `make install DESTDIR=... PREFIX=/usr` lays out the binary, the three man pages, the bash and zsh
# completions and (when the tree has them) the systemd unit, @BINDIR@ filled in, and its sysusers file; `make uninstall` removes them all. The
# pages render without groff warnings and hold every verb and flag of the CLI (its usage text and
# the command table of src/cli/main.c) and every key the spec parser accepts (the field tables of
# src/spec/spec_yaml.c). Bash completion completes verbs, flags and the services of a running
# daemon, and says nothing, at once, when no daemon answers; zsh's the same where zsh is present.
set -u
. "$(dirname "$0")/lib.sh"
cd "$ROOT"
[ -x "$RO" ] || fail "$RO not built"
root=$T/root
mk() { make --no-print-directory BUILD="$BUILD" "$@" >"$T/make.log" 2>&1 || { cat "$T/make.log"; fail "make $*"; }; }

log "make install DESTDIR=$root PREFIX=/usr"
mk install DESTDIR="$root" PREFIX=/usr
files=(usr/bin/rollout usr/share/man/man1/rollout.1 usr/share/man/man5/rollout.yaml.5
	usr/share/man/man8/rollout-daemon.8 usr/share/bash-completion/completions/rollout
	usr/share/zsh/vendor-completions/_rollout usr/share/doc/rollout/spec.md)
for f in "${files[@]}"; do [ -f "$root/$f" ] || fail "not installed: $f"; done
grep -q '/usr/share/doc/rollout' "$root/usr/share/man/man1/rollout.1" || fail "the page does not name /usr/share/doc/rollout"
[ -x "$root/usr/bin/rollout" ] || fail "usr/bin/rollout is not executable"
"$root/usr/bin/rollout" version | grep -q '^rollout ' || fail "installed rollout version"
unit=usr/lib/systemd/system/rollout.service
if [ -f dist/rollout.service.in ]; then
	grep -qx 'ExecStart=/usr/bin/rollout .*' "$root/$unit" || fail "$unit: $(grep ExecStart "$root/$unit")"
	grep -q @ "$root/$unit" && fail "$unit: a placeholder left: $(grep @ "$root/$unit")"
	[ "$(sed 's|@BINDIR@|/usr/bin|g' dist/rollout.service.in)" = "$(cat "$root/$unit")" ] || fail "$unit is not dist/rollout.service.in"
else
	[ ! -e "$root/$unit" ] || fail "a unit installed without dist/rollout.service.in"
fi
if [ -f dist/rollout.sysusers ]; then
	cmp -s dist/rollout.sysusers "$root/usr/lib/sysusers.d/rollout.conf" || fail "dist/rollout.sysusers not installed"
fi

log "the pages render without warnings"
for p in man1/rollout.1 man5/rollout.yaml.5 man8/rollout-daemon.8; do
	page=$root/usr/share/man/$p
	w=$(MANWIDTH=80 man --warnings -l "$page" 2>&1 >"$T/rendered"); [ -z "$w" ] || fail "man -l $p: $w"
	w=$(groff -ww -z -man "$page" 2>&1); [ -z "$w" ] || fail "groff -ww $p: $w"
	[ "$(wc -l <"$T/rendered")" -gt 30 ] || fail "$p renders to almost nothing"
	grep -q '^NAME' "$T/rendered" || fail "$p has no NAME section"
	LC_ALL=C grep -q '[^ -~]' "$page" && fail "$p is not plain ASCII roff"
done

log "every verb, flag and spec key is in the pages"
"$RO" --help >"$T/help" 2>&1
for v in $(sed -n 's/^  \([a-z][a-z-]*\)\( .*\)\{0,1\}$/\1/p' "$T/help"); do
	"$RO" "$v" --help >>"$T/help" 2>&1 || fail "rollout $v --help exited $?"
done
python3 - "$T/help" src/cli/main.c src/spec/spec_yaml.c "$root/usr/share/man" <<'PY' || fail "the pages miss something"
import re, sys
help_text, main_c, spec_c, man = (open(p).read() if i < 3 else p for i, p in enumerate(sys.argv[1:]))
def spans(page):
    """The bold spans of a page (literals: `code` in the docs), with \\- as -."""
    s = open(f"{man}/{page}").read().replace("\\-", "-")
    return s, re.findall(r"\\fB(.*?)\\fR", s)
bad = []
cli, cli_bold = spans("man1/rollout.1")
heads = " ".join(" ".join(re.findall(r"\\fB(.*?)\\fR", l)) for l in cli.split("\n") if l.startswith(".SS"))
verbs = re.findall(r"^  ([a-z][a-z-]*)(?: |$)", help_text.split("commands:")[1].split("\n\n")[0], re.M)
table = re.findall(r"^\s*&cmd_(\w+)_entry,", main_c.split("cmd_table[]")[1].split("};")[0], re.M)
if len(verbs) != len(table) or len(verbs) < 10:
    bad.append(f"--help lists {len(verbs)} verbs, the command table {len(table)}")
for v in set(verbs) | set(table):
    if v not in re.findall(r"[a-z-]+", heads):
        bad.append(f"rollout(1): verb {v} has no section")
flags = set(re.findall(r"(?<![\w-])--?[a-z][a-z-]*", help_text))
cli_words = set(re.findall(r"--?[a-z][a-z-]*", " ".join(cli_bold)))
for f in sorted(flags):
    if f not in cli_words:
        bad.append(f"rollout(1): flag {f} missing")
daemon, daemon_bold = spans("man8/rollout-daemon.8")
usage = re.search(r"usage: rollout daemon (.*)", help_text).group(1)
for f in re.findall(r"--[a-z][a-z-]*", usage):
    if f not in set(re.findall(r"--[a-z][a-z-]*", " ".join(daemon_bold))):
        bad.append(f"rollout-daemon(8): flag {f} missing")
_, spec_bold = spans("man5/rollout.yaml.5")
spec_words = set(re.findall(r"[a-z0-9_]+", " ".join(spec_bold)))
tables = re.findall(r"static const struct field (\w+)\[\] = \{(.*?)\};", spec_c, re.S)
keys = {k: t for t, body in tables for k in re.findall(r'\{"([^"]+)",', body)}
if len(tables) < 15 or len(keys) < 50:
    bad.append(f"found only {len(tables)} key tables, {len(keys)} keys in spec_yaml.c")
for k, t in sorted(keys.items()):
    if k not in spec_words:
        bad.append(f"rollout.yaml(5): key {k} ({t}) missing")
print("\n".join(bad) or f"{len(verbs)} verbs, {len(flags)} flags, {len(keys)} spec keys")
sys.exit(1 if bad else 0)
PY

log "bash completion: verbs, flags, and services from the daemon"
comp() { # comp DATA WORD...: what the installed completion offers for the last word
	local data=$1; shift
	env -u ROLLOUT_DATA PATH="$root/usr/bin:$PATH" bash --norc --noprofile -c '
		. "$1/usr/share/bash-completion/completions/rollout"; shift
		COMP_WORDS=("$@"); COMP_CWORD=$(($# - 1)); _rollout; printf "%s\n" "${COMPREPLY[@]}"' \
		comp "$root" rollout --data "$data" "$@"
}
want_verbs=$(sed -n 's/^  \([a-z][a-z-]*\)\( .*\)\{0,1\}$/\1/p' <(sed -n '/^commands:/,/^$/p' "$T/help") | sort)
got=$(comp "$DATA" "" | grep -vx help | sort)
[ "$got" = "$want_verbs" ] || fail "verbs completed: $(echo $got), want $(echo $want_verbs)"
[ "$(comp "$DATA" pro | sort | tr '\n' ' ')" = "promote proxy " ] || fail "pro: $(comp "$DATA" pro)"
[ "$(comp "$DATA" apply --w)" = "--wait" ] || fail "apply --w: $(comp "$DATA" apply --w)"
[ "$(comp "$DATA" undo --to)" = "--to-revision" ] || fail "undo --to: $(comp "$DATA" undo --to)"
[ "$(comp "$DATA" status -o j)" = "json" ] || fail "status -o j: $(comp "$DATA" status -o j)"
comp "$DATA" daemon --tok | grep -qx -- --token-file || fail "daemon --tok"
mkdir -p "$T/specs" && touch "$T/specs/web.yaml" "$T/specs/notes.txt"
[ "$(comp "$DATA" apply "$T/specs/")" = "$T/specs/web.yaml" ] || fail "apply FILE: $(comp "$DATA" apply "$T/specs/")"

# No daemon: no names, no message, no wait.
t0=$SECONDS
out=$(comp "$T/nodaemon" status "" 2>&1)
[ -z "$out" ] || fail "status without a daemon offered: $out"
[ $((SECONDS - t0)) -le 2 ] || fail "completion without a daemon took $((SECONDS - t0)) s"
# A daemon that accepts and never answers: given up after the 1 s limit.
mkdir "$T/hung"
python3 -c 'import socket, sys, time
s = socket.socket(socket.AF_UNIX); s.bind(sys.argv[1]); s.listen(8); time.sleep(8)' "$T/hung/rollout.sock" &
for _ in $(seq 50); do [ -S "$T/hung/rollout.sock" ] && break; sleep 0.1; done
t0=$(date +%s%N)
out=$(comp "$T/hung" status "" 2>&1)
ms=$((($(date +%s%N) - t0) / 1000000))
[ -z "$out" ] || fail "status with a hung daemon offered: $out"
[ "$ms" -lt 2500 ] || fail "completion with a hung daemon took $ms ms"
log "a hung daemon: nothing offered after $ms ms"

start_daemon
for s in web-a web-b api; do
	printf 'service: %s\nreplicas: 0\nlb: none\ntemplate:\n  version: "1"\n  command: ["%s", "--port", "${PORT}"]\n' \
		"$s" "$HELLO" >"$T/$s.yaml"
	"$RO" apply "$T/$s.yaml" >/dev/null || fail "apply $s"
done
[ "$(comp "$DATA" status "" | tr '\n' ' ')" = "api web-a web-b " ] || fail "status SERVICE: $(comp "$DATA" status "")"
[ "$(comp "$DATA" promote web | tr '\n' ' ')" = "web-a web-b " ] || fail "promote web: $(comp "$DATA" promote web)"
[ -z "$(comp "$DATA" history api "")" ] || fail "a second SERVICE offered: $(comp "$DATA" history api "")"
[ -z "$(comp "$DATA" version "")" ] || fail "version took a service"

if command -v zsh >/dev/null; then
	log "zsh completion"
	zcomp() {
		env -u ROLLOUT_DATA PATH="$root/usr/bin:$PATH" zsh -f -c '
			compadd() { [[ $1 == -- ]] && shift; print -rl -- "$@"; }
			_files() { :; }; _directories() { :; }; _message() { :; }
			source "$1/usr/share/zsh/vendor-completions/_rollout" >/dev/null 2>&1 </dev/null; shift
			words=(rollout "$@"); CURRENT=$#words; PREFIX=${words[CURRENT]}; _rollout' zcomp "$root" "$@"
	}
	[ "$(zcomp --data "$DATA" "" | grep -vx help | sort)" = "$want_verbs" ] || fail "zsh verbs: $(zcomp "")"
	zcomp apply --w | grep -qx -- --wait || fail "zsh apply flags: $(zcomp apply --)"
	[ "$(zcomp --data "$DATA" status "" | tr '\n' ' ')" = "api web-a web-b " ] ||
		fail "zsh services: $(zcomp --data "$DATA" status "")"
else
	log "zsh not installed: its completion not exercised"
fi
stop_daemon

log "make uninstall removes everything"
mk uninstall DESTDIR="$root" PREFIX=/usr
left=$(find "$root" -type f -o -type l)
[ -z "$left" ] || fail "left after uninstall: $left"

log "the unit, when the tree has one; the default PREFIX"
printf '[Service]\nExecStart=@BINDIR@/rollout daemon\n' >"$T/rollout.service.in"
mk install DESTDIR="$T/root2" UNIT="$T/rollout.service.in"
grep -qx 'ExecStart=/usr/local/bin/rollout daemon' "$T/root2/usr/local/lib/systemd/system/rollout.service" ||
	fail "PREFIX=/usr/local unit: $(cat "$T/root2/usr/local/lib/systemd/system/rollout.service")"
for f in bin/rollout share/man/man1/rollout.1 share/bash-completion/completions/rollout lib/systemd/system/rollout.service; do
	[ -f "$T/root2/usr/local/$f" ] || fail "PREFIX=/usr/local: no $f"
done
grep -q '/usr/local/share/doc/rollout' "$T/root2/usr/local/share/man/man1/rollout.1" || fail "PREFIX=/usr/local: the page names another DOCDIR"
mk uninstall DESTDIR="$T/root2" UNIT="$T/rollout.service.in"
left=$(find "$T/root2" -type f -o -type l)
[ -z "$left" ] || fail "left after uninstall: $left"
log "ok"

#!/usr/bin/env bash
# Fleet: shell metacharacters (; $() backticks quotes newlines leading -) in the command's
# arguments (a bare $PORT too: only ${PORT} is the driver's), env values, version and workdir reach
# the remote program as data: it sees them byte for byte, and no canary file is ever created.
set -euo pipefail
. "$(dirname "$0")/netns_lib.sh"
fleet_up 2
fleet_start_daemon

CANARY="$T/canary"
WD="$T/wd; touch $CANARY \$(touch $CANARY) \`touch $CANARY\`"
mkdir -p "$WD"
# The program records its arguments, two env values and its directory (NUL separated), then
# becomes hello. The script is the template's own text; the corpus only ever is data.
python3 - "$T/inj.yaml" "$CANARY" "$WD" "$HELLO" "$(fleet_targets)" <<'PY'
import json, sys
out, canary, wd, hello, targets = sys.argv[1:]
corpus = [
    f"; touch {canary}", f"$(touch {canary})", f"`touch {canary}`", f"' ; touch {canary} ; '",
    f'" ; touch {canary} ; "', f"a\ntouch {canary}\n", "-rf", "--help", f"\\'$(touch {canary})\\'",
    f"'\"'\"'; touch {canary}", "", " ", "$PATH ${HOME} $1", "$PORT-$PORTX", f"x|touch {canary}&", f"x && touch {canary}",
]
script = ('printf "%s\\0" "$@" "$INJ_A" "$INJ_B" "$(pwd)" >"$ROLLOUT_HOME/seen.$PORT"; '
          f'exec {hello} --host 0.0.0.0 --port "$PORT" --threads 1')
spec = {
    "service": "inj", "replicas": 2, "lb": "none",
    "template": {
        "version": f"1; touch {canary} $(touch {canary})",
        "command": ["/bin/sh", "-c", script, "sh"] + corpus,
        "env": {"INJ_A": f"$(touch {canary}); `touch {canary}`", "INJ_B": f"'\n; touch {canary} #"},
        "workdir": wd,
    },
    "health": {"http": {"path": "/healthz"}, "interval": "200ms", "timeout": "200ms"},
    "strategy": {"health_deadline": "10s"},
}
with open(out, "w") as f:
    for k, v in spec.items():
        f.write(f"{k}: {json.dumps(v)}\n")
    f.write(targets + "\n")
with open(out + ".want", "wb") as f:
    want = corpus + [spec["template"]["env"]["INJ_A"], spec["template"]["env"]["INJ_B"], wd]
    f.write(b"".join(w.encode() + b"\0" for w in want))
PY

"$RO" apply "$T/inj.yaml" --wait --timeout 60s || fail "the rollout did not complete"
n=0
for i in 1 2; do
	for f in "$T/hosts/$i/home"/seen.*; do
		[ -f "$f" ] || continue
		cmp "$f" "$T/inj.yaml.want" || { od -c "$f" | head -40; fail "host $i: the program did not get the values as given"; }
		n=$((n + 1))
	done
done
[ $n -eq 2 ] || fail "$n instances recorded what they saw, want 2"
log "scale to 0: the stops go through the same quoting"
sed 's/^replicas: 2$/replicas: 0/' "$T/inj.yaml" >"$T/inj0.yaml"
"$RO" apply "$T/inj0.yaml" --wait --timeout 30s >/dev/null || fail "scale to 0 did not complete"
[ "$(status_json inj | jq_ "len(d['instances'])")" = 0 ] || fail "instances left after scale to 0"
[ ! -e "$CANARY" ] || fail "a canary file was created: a value was run as code"
log "ok"

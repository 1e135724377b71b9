#!/usr/bin/env bash
# The CLI without a daemon: version, the no-daemon hint (exit 3), usage errors (exit 2), `plan` of
# a good spec (batches printed, exit 0) and of a spec with three mistakes (three file:line:col:
# lines, exit 2).
set -u
cd "$(dirname "$0")/../.."
BUILD=${BUILD:-build}
case $BUILD in /*) ;; *) BUILD=$PWD/$BUILD ;; esac
R=$BUILD/rollout
tmp=$(mktemp -d /tmp/rollout-cli.XXXXXX)
trap 'rm -rf "$tmp"' EXIT
fail() { echo "FAIL: $*"; exit 1; }

[ -x "$R" ] || fail "$R not built"

# version
out=$("$R" version) || fail "version exited $?"
echo "$out" | grep -Eq '^rollout [0-9]+\.[0-9]+\.[0-9]+ \(.+\)$' || fail "version printed: $out"

# no daemon: exit 3 and the hint naming DATA, for --data before and after the verb and $ROLLOUT_DATA
mkdir "$tmp/data"
for args in "--data $tmp/data status" "status --data $tmp/data" "status hello --data=$tmp/data"; do
	"$R" $args >"$tmp/out" 2>"$tmp/err"; rc=$?
	[ $rc -eq 3 ] || fail "'$args' exited $rc, want 3"
	grep -q "no daemon answers on $tmp/data/rollout.sock; start one with: rollout daemon --data $tmp/data" "$tmp/err" ||
		fail "'$args' hint: $(cat "$tmp/err")"
done
ROLLOUT_DATA=$tmp/data "$R" pause hello 2>"$tmp/err"; rc=$?
[ $rc -eq 3 ] || fail "ROLLOUT_DATA pause exited $rc, want 3"
grep -q "rollout daemon --data $tmp/data" "$tmp/err" || fail "ROLLOUT_DATA hint: $(cat "$tmp/err")"
(cd "$tmp" && "$R" status 2>"$tmp/err"); rc=$?
[ $rc -eq 3 ] || fail "status in a dir without .rollout exited $rc"
grep -q "rollout daemon --data ./.rollout" "$tmp/err" || fail "default DATA hint: $(cat "$tmp/err")"

# usage errors: exit 2 with usage on stderr
"$R" bogus >"$tmp/out" 2>"$tmp/err"; rc=$?
[ $rc -eq 2 ] || fail "bogus exited $rc, want 2"
grep -q "unknown command 'bogus'" "$tmp/err" || fail "bogus: $(cat "$tmp/err")"
grep -q "^usage: rollout" "$tmp/err" || fail "bogus: no usage"
for v in apply plan status history undo pause resume promote abort events version; do
	grep -q "^  $v" "$tmp/err" || fail "usage does not list $v"
done
"$R" >/dev/null 2>&1; rc=$?; [ $rc -eq 2 ] || fail "no verb exited $rc"
"$R" apply 2>"$tmp/err"; rc=$?; [ $rc -eq 2 ] || fail "apply without FILE exited $rc"
grep -q "usage: rollout apply FILE" "$tmp/err" || fail "apply usage: $(cat "$tmp/err")"
"$R" status --bogus 2>/dev/null; rc=$?; [ $rc -eq 2 ] || fail "status --bogus exited $rc"
"$R" apply x.yaml --wait --timeout soon 2>/dev/null; rc=$?; [ $rc -eq 2 ] || fail "bad --timeout exited $rc"
"$R" help >/dev/null || fail "help exited $?"

# plan of a spec of our own
cat >"$tmp/good.yaml" <<'Y'
service: web
replicas: 4
listen: 127.0.0.1:18080
template:
  version: "2"
  command: ["./web", "--port", "${PORT}"]
strategy:
  max_surge: 1
  max_unavailable: 0
  batches: [1, 100%]
  pause_after: [1]
Y
"$R" plan "$tmp/good.yaml" >"$tmp/out" 2>"$tmp/err" || fail "plan good.yaml exited $?: $(cat "$tmp/err")"
cat "$tmp/out"
grep -q "^plan for web: 4 replicas, 2 batches" "$tmp/out" || fail "plan header"
grep -q "at most 5 instances" "$tmp/out" || fail "plan ceiling"
grep -q "at least 4 available" "$tmp/out" || fail "plan floor"
grep -q "^batch 1: goal 1/4" "$tmp/out" || fail "plan batch 1"
grep -q "^batch 2: goal 4/4" "$tmp/out" || fail "plan batch 2"
grep -q "until \`rollout promote web\`" "$tmp/out" || fail "plan pause"
"$R" plan "$tmp/good.yaml" -o json >"$tmp/json" || fail "plan -o json exited $?"
python3 -c 'import json,sys; j=json.load(open(sys.argv[1])); assert len(j["batches"])==2 and j["ceiling"]==5, j' "$tmp/json" ||
	fail "plan json: $(cat "$tmp/json")"

# a spec with three mistakes: three file:line:col: lines, exit 2
cat >"$tmp/bad.yaml" <<'Y'
service: hello
replicas: many
listen: 127.0.0.1:18080
template:
  version: "1"
  command: ["x"]
strategy:
  max_surge: 125x
  min_ready: soon
Y
"$R" plan "$tmp/bad.yaml" >"$tmp/out" 2>"$tmp/err"; rc=$?
cat "$tmp/err"
[ $rc -eq 2 ] || fail "plan bad.yaml exited $rc, want 2"
n=$(grep -c "^$tmp/bad.yaml:[0-9]*:[0-9]*: " "$tmp/err")
[ "$n" -eq 3 ] || fail "plan bad.yaml printed $n file:line:col: lines, want 3"
[ -s "$tmp/out" ] && fail "plan bad.yaml printed on stdout"

# the example service, when it is there
if [ ! -f examples/hello.yaml ]; then echo "examples/hello.yaml does not exist yet"; exit 77; fi
"$R" plan examples/hello.yaml >"$tmp/out" 2>"$tmp/err" || fail "plan examples/hello.yaml exited $?: $(cat "$tmp/err")"
grep -q "^batch 1:" "$tmp/out" || fail "plan examples/hello.yaml printed no batch"
echo ok

#!/usr/bin/env bash
# The dashboard (GET /) over the token-protected TCP API: the page itself is public and locked down
# (CSP, nosniff), the API is not; in headless chromium the page asks for the token, shows a
# service, its revision and instances, follows a canary to its pause, shows the API's refusal of
# resume, promotes through its button, undoes (after a confirm()), and after a daemon restart
# reconnects its event stream and shows the next revision.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
CHROME=$(command -v chromium || true)
[ -n "$CHROME" ] || { log "SKIP: chromium is not installed (scripts/deps.sh installs it)"; exit 77; }

# chromium runs in its own process group (pid in $T/chrome.pid): stopped whatever happens.
stop_chrome() {
	if [ -f "$T/chrome.pid" ]; then kill -9 -- "-$(cat "$T/chrome.pid")" 2>/dev/null || true; rm -f "$T/chrome.pid"; fi
}
trap 'rc=$?; set +e; stop_chrome; (exit $rc); cleanup' EXIT

APORT=$(free_port)
TOKEN="dash-$RANDOM$RANDOM-token"
printf '%s\n' "$TOKEN" >"$T/token"
chmod 600 "$T/token"
start_daemon --api "127.0.0.1:$APORT" --token-file "$T/token"
URL="http://127.0.0.1:$APORT/"

log "GET / is public and locked down; the API needs the token"
code=$(curl -s -D "$T/head" -o "$T/page.html" -w '%{http_code}' "$URL")
[ "$code" = 200 ] || fail "GET / answered $code"
h() { grep -i "^$1:" "$T/head" | tr -d '\r'; }
[ "$(h content-type)" = "Content-Type: text/html; charset=utf-8" ] || fail "content type: $(h content-type)"
h content-security-policy | grep -q "default-src 'none'" || fail "CSP: $(h content-security-policy)"
h content-security-policy | grep -q "connect-src 'self'" || fail "CSP: $(h content-security-policy)"
[ "$(h x-content-type-options)" = "X-Content-Type-Options: nosniff" ] || fail "nosniff: $(h x-content-type-options)"
[ "$(h cache-control)" = "Cache-Control: no-store" ] || fail "cache: $(h cache-control)"
grep -q '<table id="instances">' "$T/page.html" || fail "not the dashboard page"
! grep -Eq 'innerHTML|outerHTML|insertAdjacentHTML|document\.write|https?://' "$T/page.html" \
	|| fail "the page builds markup from strings or names an outside URL"
[ "$(curl -s -o /dev/null -w '%{http_code}' "${URL}v1/services")" = 401 ] || fail "/v1/services without the token"
[ "$(curl -s -o /dev/null -w '%{http_code}' -X POST "$URL")" = 401 ] || fail "POST / without the token"
[ "$(curl -s -o /dev/null -w '%{http_code}' "${URL}index.html")" = 401 ] || fail "another path without the token"
[ "$(curl -s -o /dev/null -w '%{http_code}' -H "Authorization: Bearer $TOKEN" "${URL}v1/services")" = 200 ] \
	|| fail "/v1/services with the token"

f1=$(echo 'strategy: {min_ready: 100ms}' | spec hello 1 2)
f2=$(printf 'strategy:\n  min_ready: 100ms\n  batches: [1, 100%%]\n  pause_after: [1]\n' | spec hello 2 2)
"$RO" apply "$f1" --wait --timeout 30s

log "the page in headless chromium"
timeout 240 python3 - "$CHROME" "$URL" "$TOKEN" "$T" "$RO" "$f2" <<'PY' &
import json, os, signal, subprocess, sys, time

# Drives headless chromium over --remote-debugging-pipe (its fds 3 and 4: commands in, replies out;
# close_fds=False keeps the two dup2()ed in the child, every other fd here is close-on-exec).
chrome, url, token, tdir, ro, spec2 = sys.argv[1:7]
pidfile, ddir = os.path.join(tdir, "chrome.pid"), os.path.join(tdir, "chrome")


def log(*a):
    print("[%s] browser:" % time.strftime("%H:%M:%S"), *a, flush=True)


cmd_r, cmd_w = os.pipe()
out_r, out_w = os.pipe()
hi_cmd, hi_out = os.dup(cmd_r), os.dup(out_w)


def child_fds():
    os.dup2(hi_cmd, 3)
    os.dup2(hi_out, 4)


args = [chrome, "--headless=new", "--no-sandbox", "--disable-gpu", "--user-data-dir=" + ddir,
        "--remote-debugging-pipe", "--no-proxy-server", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-default-apps",
        "--disable-extensions", "--disable-dev-shm-usage", "--mute-audio", "about:blank"]
proc = subprocess.Popen(args, preexec_fn=child_fds, close_fds=False, start_new_session=True,
                        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                        stderr=open(os.path.join(tdir, "chrome.log"), "w"))
open(pidfile, "w").write(str(proc.pid))
for fd in (cmd_r, out_w, hi_cmd, hi_out):
    os.close(fd)
rd = os.fdopen(out_r, "rb", buffering=0)
buf = b""
next_id = 0
session = None
dialogs = []


def send(method, params=None, sess=True):
    global next_id
    next_id += 1
    msg = {"id": next_id, "method": method, "params": params or {}}
    if sess and session:
        msg["sessionId"] = session
    os.write(cmd_w, json.dumps(msg).encode() + b"\0")
    return next_id


def read_msg(deadline):
    global buf
    while b"\0" not in buf:
        if time.time() > deadline:
            raise TimeoutError("no answer from chromium")
        import select
        r, _, _ = select.select([rd], [], [], 0.2)
        if r:
            chunk = rd.read(65536)
            if not chunk:
                raise EOFError("chromium closed the pipe")
            buf += chunk
    msg, buf = buf.split(b"\0", 1)
    return json.loads(msg)


def call(method, params=None, sess=True, timeout=15):
    i = send(method, params, sess)
    deadline = time.time() + timeout
    while True:
        m = read_msg(deadline)
        if m.get("method") == "Page.javascriptDialogOpening":
            dialogs.append(m["params"]["message"])
            send("Page.handleJavaScriptDialog", {"accept": True})
        if m.get("id") == i:
            if "error" in m:
                raise RuntimeError("%s: %s" % (method, m["error"]))
            return m.get("result", {})


def js(expr):
    r = call("Runtime.evaluate", {"expression": expr, "returnByValue": True, "awaitPromise": True})
    if "exceptionDetails" in r:
        raise RuntimeError("page script: %s" % r["exceptionDetails"])
    return r["result"].get("value")


def wait(expr, what, limit=20):
    end = time.time() + limit
    while time.time() < end:
        try:
            if js(expr):
                return
        except RuntimeError as e:  # the page is still loading: its elements are not there yet
            log("not yet:", str(e)[:200])
        time.sleep(0.1)
    log("page text:\n" + str(js("document.body.innerText")))
    raise AssertionError("the page did not show " + what)


def text(id_):
    return "document.getElementById(%s).textContent" % json.dumps(id_)


def click(verb):
    js("document.querySelector('#actions button[data-verb=%s]').click()" % verb)


try:
    tgt = call("Target.createTarget", {"url": "about:blank"}, sess=False)["targetId"]
    session = call("Target.attachToTarget", {"targetId": tgt, "flatten": True}, sess=False)["sessionId"]
    call("Page.enable")
    call("Runtime.enable")
    call("Page.navigate", {"url": url + "#service=hello"})
    wait("location.href.startsWith(%s) && document.readyState === 'complete'" % json.dumps(url), "the page loaded")

    log("no token yet: the page asks for it")
    wait("!document.getElementById('auth').hidden", "the token form")
    js("document.getElementById('token').focus()")
    call("Input.insertText", {"text": token})
    js("document.querySelector('#auth button').click()")
    wait("document.getElementById('auth').hidden", "the form gone after the token")

    log("the service, its revision and instances")
    wait("[...document.querySelectorAll('#services tbody tr')].some(r => r.cells[0].textContent === 'hello'"
         " && r.cells[1].textContent === 'r1' && r.cells[3].textContent === '2/2')", "hello r1 2/2 in the list")
    wait(text("d-name") + " === 'hello' && " + text("d-revision") + " === 'r1' && " + text("d-state") +
         " === 'complete' && " + text("d-lb") + " === 'none'", "the detail of hello r1 complete")
    wait("document.querySelectorAll('#instances tbody tr').length === 2 && [...document.querySelectorAll("
         "'#instances tbody tr')].every(r => r.cells[1].textContent === 'r1' && r.cells[2].textContent === 'ready')",
         "two ready r1 instances")
    wait("document.querySelectorAll('#events li').length > 0", "events")
    wait(text("conn") + " === 'live'", "the live stream")
    assert token not in js("location.href"), "the token is in the URL"
    assert js("sessionStorage.getItem('rollout.token')") == token, "the token is not kept for the session"

    log("a canary: the page follows the stream to the pause")
    subprocess.run([ro, "apply", spec2], check=True, stdout=subprocess.DEVNULL)
    wait(text("d-state") + " === 'paused (canary)' && " + text("d-pause") + " === 'canary' && " + text("d-revision") +
         " === 'r2'", "the canary pause", limit=12)  # the page's own poll is every 15 s: this is the stream
    wait("document.querySelector('#actions button[data-verb=promote]').disabled === false", "promote enabled")

    log("resume at a gate is refused: the API's message shows")
    wait("document.querySelector('#actions button[data-verb=resume]').disabled === false", "resume enabled")
    click("resume")
    wait(text("action-msg") + ".includes('refused') && " + text("action-msg") + ".includes('promote')",
         "the refusal of resume")

    log("promote through the button")
    click("promote")
    wait(text("d-state") + " === 'complete' && " + text("d-revision") + " === 'r2' && " + text("d-stable") +
         " === 'r2'", "the rollout complete on r2", limit=60)
    wait("document.querySelectorAll('#instances tbody tr').length === 2 && [...document.querySelectorAll("
         "'#instances tbody tr')].every(r => r.cells[1].textContent === 'r2')", "two r2 instances", limit=30)

    log("undo asks first, then rolls back to r1")
    n = len(dialogs)
    click("undo")
    assert len(dialogs) == n + 1 and "Undo hello" in dialogs[-1], "undo did not ask: %s" % dialogs
    wait(text("d-revision") + " === 'r1' && " + text("d-state") + " === 'undone to revision 1' && "
         "document.querySelector('#d-state span').className === 'state st-complete'", "the undo to r1, green", limit=60)

    log("the daemon restarts (the test applies r3 then): the page reconnects and follows again")
    open(os.path.join(tdir, "browser.restart"), "w").close()
    end = time.time() + 120
    while not os.path.exists(os.path.join(tdir, "browser.go")):
        if time.time() > end:
            raise AssertionError("the test did not restart the daemon")
        time.sleep(0.1)
    wait(text("conn") + " === 'live' && " + text("d-revision") + " === 'r3'", "r3 after the restart", limit=30)
    log("ok")
finally:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    proc.wait()
    for _ in range(50):  # its helpers (zygote, renderers) are gone once the group is empty
        try:
            os.killpg(proc.pid, 0)
        except ProcessLookupError:
            break
        time.sleep(0.1)
PY
BROWSER=$!
# The browser's script asks for a daemon restart once it is done with the rest.
wait_until 200 eval '[ -f "$T/browser.restart" ] || ! kill -0 $BROWSER 2>/dev/null' || true
[ -f "$T/browser.restart" ] || { wait $BROWSER || true; fail "the page checks failed"; }
log "restart the daemon while the page follows its events"
stop_daemon
start_daemon --api "127.0.0.1:$APORT" --token-file "$T/token"
f3=$(echo 'strategy: {min_ready: 100ms}' | spec hello 3 2)
"$RO" apply "$f3" >/dev/null
touch "$T/browser.go"
wait $BROWSER || fail "the page checks failed"
stop_chrome
wait_until 30 state_is hello complete || fail "r3: $(ro_state hello)"
[ "$(revisions_of hello)" = "3:2" ] || fail "after r3: $(revisions_of hello)"
log ok

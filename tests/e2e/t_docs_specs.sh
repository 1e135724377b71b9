#!/usr/bin/env bash
# Docs cannot drift from the parser: every ```yaml block of README.md and docs/*.md goes through
# `rollout plan`. A block that is part of a spec (no `template:`, say) is completed with the keys
# of a minimal base spec that it does not set itself. A block meant to be invalid is preceded by
# the line `<!-- invalid: TEXT -->`: plan must refuse it and print TEXT.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
cd "$ROOT"
python3 - "$RO" "$T" README.md docs/*.md <<'PY'
import os, re, subprocess, sys

ro, tmp, files = sys.argv[1], sys.argv[2], sys.argv[3:]
base = {
    "service": "service: docs\n",
    "replicas": "replicas: 2\n",
    "listen": "listen: 127.0.0.1:18080\n",
    "template": "template:\n  version: \"1\"\n  command: [\"/bin/sleep\", \"1000\"]\n",
}
fence = re.compile(r"^```ya?ml\n(.*?)^```", re.S | re.M)
checked = failed = 0
for f in files:
    text = open(f).read()
    for m in fence.finditer(text):
        line = text.count("\n", 0, m.start()) + 1
        before = text[:m.start()].rstrip("\n").rsplit("\n", 1)[-1]
        invalid = re.match(r"<!-- invalid: (.*) -->$", before)
        block = m.group(1)
        keys = set(re.findall(r"^([A-Za-z_]+):", block, re.M))
        spec = block + "".join(v for k, v in base.items() if k not in keys)
        path = os.path.join(tmp, f"{os.path.basename(f)}-{line}.yaml")
        open(path, "w").write(spec)
        r = subprocess.run([ro, "plan", path], capture_output=True, text=True)
        checked += 1
        where = f"{f}:{line}"
        if invalid:
            if r.returncode == 0 or invalid.group(1) not in r.stderr:
                failed += 1
                print(f"FAIL {where}: meant invalid ({invalid.group(1)}); plan: rc {r.returncode} {r.stderr.strip()}")
            else:
                print(f"ok   {where}: refused as the page says")
        elif r.returncode != 0:
            failed += 1
            print(f"FAIL {where}: {r.stderr.strip()}")
        else:
            print(f"ok   {where}")
print(f"{checked} examples, {failed} failed")
sys.exit(1 if failed or checked == 0 else 0)
PY
log ok

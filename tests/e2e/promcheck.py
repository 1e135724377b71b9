#!/usr/bin/env python3
"""Strict checks of the Prometheus text format (0.0.4) on stdin, beyond what a scraper forgives:
every sample's family has one HELP and one TYPE before its samples; families are contiguous;
names and labels are valid; label values are properly escaped; no series twice; values are
floats; counters end in _total; histograms have cumulative buckets ending in le="+Inf" equal to
_count, and a _sum. Exits 1 with the reasons on any problem. --get NAME{labels} prints a value."""
import re, sys
from collections import OrderedDict

NAME = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*$")
LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\\n]|\\[\\"n])*)"')


def parse_labels(s, errs, ln):
    out, pos = OrderedDict(), 0
    while pos < len(s):
        m = LABEL.match(s, pos)
        if not m:
            errs.append(f"line {ln}: bad labels {s!r}")
            return out
        if m.group(1) in out:
            errs.append(f"line {ln}: label {m.group(1)} twice")
        out[m.group(1)] = m.group(2)
        pos = m.end()
        if pos < len(s):
            if s[pos] != ",":
                errs.append(f"line {ln}: bad labels {s!r}")
                return out
            pos += 1
    return out


def main():
    text = sys.stdin.read()
    errs, help_, type_, seen_fam, series, samples = [], {}, {}, [], set(), []
    if not text.endswith("\n"):
        errs.append("no final newline")
    current = None
    for ln, line in enumerate(text.split("\n")[:-1], 1):
        if line.startswith("# HELP ") or line.startswith("# TYPE "):
            parts = line.split(" ", 3)
            if len(parts) < 4 or not NAME.match(parts[2]):
                errs.append(f"line {ln}: bad comment {line!r}")
                continue
            kind, name = parts[1], parts[2]
            d = help_ if kind == "HELP" else type_
            if name in d:
                errs.append(f"line {ln}: second {kind} for {name}")
            if kind == "TYPE" and parts[3] not in ("counter", "gauge", "histogram", "summary", "untyped"):
                errs.append(f"line {ln}: bad type {parts[3]}")
            d[name] = parts[3]
            if name != current:
                if name in seen_fam:
                    errs.append(f"line {ln}: family {name} not contiguous")
                seen_fam.append(name)
                current = name
            continue
        if line.startswith("#") or line == "":
            errs.append(f"line {ln}: unexpected line {line!r}")
            continue
        m = re.match(r"([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$", line)
        if not m:
            errs.append(f"line {ln}: bad sample {line!r}")
            continue
        name, lab, val = m.group(1), m.group(2) or "", m.group(3)
        labels = parse_labels(lab, errs, ln)
        fam = name
        for suf in ("_bucket", "_sum", "_count"):
            if name.endswith(suf) and type_.get(name[: -len(suf)]) == "histogram":
                fam = name[: -len(suf)]
        if fam != current or fam not in type_ or fam not in help_:
            errs.append(f"line {ln}: sample of {fam} outside its family (HELP and TYPE first)")
        try:
            v = float(val)
        except ValueError:
            errs.append(f"line {ln}: bad value {val!r}")
            continue
        key = (name, tuple(sorted(labels.items())))
        if key in series:
            errs.append(f"line {ln}: series twice: {line}")
        series.add(key)
        samples.append((fam, name, labels, v))
        if type_.get(fam) == "counter" and not fam.endswith("_total"):
            errs.append(f"line {ln}: counter {fam} does not end in _total")
        if type_.get(fam) == "counter" and v < 0:
            errs.append(f"line {ln}: negative counter")
    # Histograms: per series, buckets non-decreasing in le, +Inf last and equal to _count.
    hist = {}
    for fam, name, labels, v in samples:
        if type_.get(fam) != "histogram":
            continue
        base = tuple(sorted((k, x) for k, x in labels.items() if k != "le"))
        h = hist.setdefault((fam, base), {"b": [], "sum": None, "count": None})
        if name.endswith("_bucket"):
            if "le" not in labels:
                errs.append(f"{fam}: bucket without le")
                continue
            h["b"].append((float(labels["le"]), v))
        elif name.endswith("_sum"):
            h["sum"] = v
        elif name.endswith("_count"):
            h["count"] = v
    for (fam, base), h in hist.items():
        b = h["b"]
        if not b or b[-1][0] != float("inf"):
            errs.append(f"{fam}{base}: no +Inf bucket last")
        if [x for x, _ in b] != sorted(x for x, _ in b):
            errs.append(f"{fam}{base}: buckets not in increasing le")
        if any(b[i][1] > b[i + 1][1] for i in range(len(b) - 1)):
            errs.append(f"{fam}{base}: buckets not cumulative")
        if h["count"] is None or h["sum"] is None:
            errs.append(f"{fam}{base}: no _sum or _count")
        elif b and b[-1][1] != h["count"]:
            errs.append(f"{fam}{base}: +Inf bucket {b[-1][1]} != _count {h['count']}")
    if "--get" in sys.argv:
        want = sys.argv[sys.argv.index("--get") + 1]
        for fam, name, labels, v in samples:
            s = name + ("{" + ",".join(f'{k}="{x}"' for k, x in labels.items()) + "}" if labels else "")
            if s == want:
                print(int(v) if v == int(v) else v)
                break
        else:
            print("missing")
    for e in errs:
        print("promcheck:", e, file=sys.stderr)
    sys.exit(1 if errs else 0)


if __name__ == "__main__":
    main()

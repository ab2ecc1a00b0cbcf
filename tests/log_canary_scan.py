#!/usr/bin/env python3
"""The suite-wide log canary scan (make check runs it last, tests/run.sh).

Searches every log written during the suite for the personal data and
secrets the tests used:
  - LOGS/*.log: each test program's own stdout/stderr (which holds the
    output of the programs it ran without a log file of their own);
  - LOGS/kept/: every *.log and *.err file the tests' temporary
    directories held (essd, ess-refserver, nginx, valgrind...), kept by
    tu_rmrf;
  - the canaries: every CANARY_* string of tests/lib/canary.h (names, phone,
    Thai text, address, note, token; coordinates also in 5-decimal and 1e-7
    integer form), and every key file the tests made (LOGS/secrets/: the
    store's KEK, the server's signing key) in hex and base64.
Fails (TAP "not ok") on any hit, naming the canary, file and line but never
printing the value found, and when the plumbing kept nothing (no essd or
server log, no key): a scan of nothing proves nothing. The kept key copies
are deleted after the scan.
usage: log_canary_scan.py LOGS_DIR [CANARY_HEADER]
"""
import base64
import os
import re
import shutil
import sys
import tempfile


def canaries(header):
    out = []
    with open(header, encoding="utf-8") as f:
        for line in f:
            m = re.match(r'#define\s+(CANARY_\w+)\s+"((?:[^"\\]|\\.)*)"', line)
            if not m:
                continue
            name, value = m.group(1), m.group(2)
            out.append((name, value))
            if re.fullmatch(r"-?\d+\.\d{7}", value):  # a coordinate
                whole, frac = value.split(".")
                out.append((name + " (5 decimals)", whole + "." + frac[:5]))
                out.append((name + " (1e-7 integer)", whole.lstrip("-") + frac))
    return out


def secret_forms(path):
    raw = open(path, "rb").read()
    forms = []
    text = raw.strip()
    blobs = [raw]
    if re.fullmatch(rb"[A-Za-z0-9+/=]{16,}", text or b"-"):
        try:
            blobs.append(base64.b64decode(text, validate=True))
        except ValueError:
            pass
        forms.append(text.decode())
    if b"-----BEGIN" in raw:  # PEM (the TLS test's keys): each base64 line
        for line in raw.splitlines():
            if re.fullmatch(rb"[A-Za-z0-9+/=]{40,}", line.strip()):
                forms.append(line.strip().decode())
    for b in blobs:
        if len(b) < 16:
            continue
        forms.append(b.hex())
        forms.append(b.hex().upper())
        b64 = base64.b64encode(b).decode()
        forms.append(b64.rstrip("="))
        forms.append(base64.urlsafe_b64encode(b).decode().rstrip("="))
    return [f for f in forms if len(f) >= 16]


def scan(files, needles):
    """[(canary name, file, line)] of the first hit of each canary in each
    file, and the bytes read."""
    hits = []
    nbytes = 0
    for p in files:
        data = open(p, "rb").read()
        nbytes += len(data)
        for name, v in needles:
            i = data.find(v)
            if i >= 0:
                hits.append((name, p, data.count(b"\n", 0, i) + 1))
    return hits, nbytes


def main():
    logs = sys.argv[1]
    header = sys.argv[2] if len(sys.argv) > 2 else "tests/lib/canary.h"
    kept = os.path.join(logs, "kept")
    secrets = os.path.join(logs, "secrets")
    needles = [(n, v.encode()) for n, v in canaries(header)]
    nkeys = 0
    if os.path.isdir(secrets):
        for fn in sorted(os.listdir(secrets)):
            for form in secret_forms(os.path.join(secrets, fn)):
                needles.append(("key file " + fn, form.encode()))
            nkeys += 1
    files = []
    for root in (logs, kept):
        if not os.path.isdir(root):
            continue
        for fn in sorted(os.listdir(root)):
            p = os.path.join(root, fn)
            if (os.path.isfile(p) and fn.endswith((".log", ".err"))
                    and fn != "log_canary_scan.log"):
                files.append(p)
    hits, nbytes = scan(files, needles)
    kept_names = os.listdir(kept) if os.path.isdir(kept) else []
    n = 0
    status = 0

    def tap(ok, msg):
        nonlocal n, status
        n += 1
        status |= 0 if ok else 1
        print(("ok" if ok else "not ok") + " %d - %s" % (n, msg))

    tap(len(needles) >= 10, "%d canaries (%d from key files)" % (len(needles), nkeys))
    # control: the same scan over a log with every canary planted, one per
    # line, must report every one (a scan that cannot find anything
    # would pass every time)
    with tempfile.TemporaryDirectory() as tmp:
        planted = os.path.join(tmp, "planted.log")
        with open(planted, "wb") as f:
            for _, v in needles:
                f.write(b"2026-11-29T06:00:00Z essd[42]: info: sync: x " + v + b" y\n")
        found, _ = scan([planted], needles)
    tap(len(found) == len(needles),
        "control: %d of %d canaries found where planted" % (len(found), len(needles)))
    # a cross board's run (tests/run.sh, ESS_UNIT_ONLY=1) has no integration
    # test, so no essd or server log: only the unit tests' logs are scanned
    if os.environ.get("ESS_UNIT_ONLY") != "1":
        tap(any(f.endswith("essd.log") for f in kept_names),
            "essd logs kept for the scan (%d kept logs)" % len(kept_names))
        tap(any("srv" in f or "server" in f for f in kept_names), "reference server logs kept for the scan")
    tap(nkeys > 0, "key files kept for the scan: %d" % nkeys)
    for name, p, line in hits[:50]:
        print("# %s found in %s line %d" % (name, p, line))
    tap(not hits, "%d logs (%d bytes) hold no canary" % (len(files), nbytes)
        if not hits else "%d canary hits in %d logs" % (len(hits), len(files)))
    print("1..%d" % n)
    shutil.rmtree(secrets, ignore_errors=True)  # test keys, but keys
    return status


if __name__ == "__main__":
    sys.exit(main())

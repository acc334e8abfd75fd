#!/usr/bin/env python3
"""simnet as the oracle of mutants the core's tests left alive (docs/SIMNET.md).

Usage:
    cargo mutants -f node/core/src/FILE.rs -F '<regex of the survivors>' --list --diff --json > survivors.json
    scripts/mutants-simnet.py survivors.json results.txt

Each mutant's diff is applied to a throwaway git worktree of HEAD, the simnet sweep
(`simnet/tests/seeds.rs`: six fault scenarios x 50 seeds, every checker) is run in the
`mutants` cargo profile (release optimisation without whole-program LTO), and the file is
restored. One line per mutant: KILLED (the sweep failed), SURVIVED, UNVIABLE (does not build) or
TIMEOUT. The baseline
(no mutant) must pass first. cargo-mutants' `--test-package` is not used: with it, 27.1
still ran the mutated package's own tests.
"""
import json
import os
import subprocess
import sys
import time

WORKTREE = os.environ.get("RENKEI_MUTANTS_WORKTREE", "/tmp/renkei-mutants-wt")
TARGET = os.environ.get("RENKEI_MUTANTS_TARGET", "/tmp/renkei-mutants-target")
SWEEP = ["cargo", "test", "--profile", "mutants", "-p", "renkei-simnet", "--test", "seeds", "-q"]


def sweep():
    env = dict(os.environ, CARGO_TARGET_DIR=TARGET)
    started = time.time()
    try:
        r = subprocess.run(SWEEP, cwd=WORKTREE, env=env, capture_output=True, text=True, timeout=1500)
        rc, text = r.returncode, r.stdout + r.stderr
    except subprocess.TimeoutExpired:
        rc, text = "timeout", ""
    return rc, time.time() - started, text


def main():
    mutants = json.load(open(sys.argv[1]))
    out = open(sys.argv[2], "a")
    repo = subprocess.run(["git", "rev-parse", "--show-toplevel"], capture_output=True, text=True, check=True).stdout.strip()
    subprocess.run(["git", "-C", repo, "worktree", "remove", "--force", WORKTREE], capture_output=True)
    subprocess.run(["git", "-C", repo, "worktree", "add", "-q", "--detach", WORKTREE, "HEAD"], check=True)
    rc, took, text = sweep()
    out.write(f"BASELINE rc={rc} {took:.0f}s\n")
    out.flush()
    if rc != 0:
        out.write(text[-3000:] + "\n")
        sys.exit(1)
    for m in mutants:
        path = os.path.join(WORKTREE, m["file"])
        original = open(path).read()
        p = subprocess.run(["patch", "-s", path], input=m["diff"], text=True, capture_output=True)
        if p.returncode != 0:
            out.write(f"PATCH-FAILED {m['name']}: {p.stdout}{p.stderr}\n")
            open(path, "w").write(original)
            continue
        rc, took, text = sweep()
        open(path, "w").write(original)
        if rc == 0:
            verdict = "SURVIVED"
        elif rc == "timeout":
            verdict = "TIMEOUT"
        elif "could not compile" in text:
            verdict = "UNVIABLE"
        else:
            verdict = "KILLED"
        why = [line for line in text.splitlines() if "seeds [" in line or "FAIL" in line][:4]
        out.write(f"{verdict} {m['name']} | {took:.0f}s | {' / '.join(why)[:400]}\n")
        out.flush()
    subprocess.run(["git", "-C", repo, "worktree", "remove", "--force", WORKTREE], capture_output=True)
    out.write("DONE\n")


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""Plants one known bug at a time in the working tree, runs simnet's CI sweep (six
scenarios x 50 seeds, release) and prints which seeds failed and which checkers fired, then
restores the file (`git checkout`). The record is in docs/SIMNET.md ("The six planted
bugs"). Usage, from the repository root with a clean tree:

    scripts/plant-bugs.py [NAME ...]      (no name: every plant)

Each plant is one exact text replacement; it fails loudly if the code moved.
"""
import os
import re
import subprocess
import sys

os.chdir(os.path.join(os.path.dirname(os.path.abspath(__file__)), '..'))
plants = {
 'dedup_skipped': ('node/core/src/inbound.rs',
   "if let Some(d) = records::get::<DedupRec>(&self.store, Tree::Dedup, id.as_bytes())? {",
   "if let Some(d) = records::get::<DedupRec>(&self.store, Tree::Dedup, id.as_bytes())?.filter(|_| !self.is_me(&env.header().destination)) {"),
 'accepted_as_delivered': ('node/core/src/origin.rs',
   "(ReceiptKind::Accepted { hop }, SentStatus::Accepted) if *hop > 0 => {\n                SentStatus::Relayed",
   "(ReceiptKind::Accepted { hop }, SentStatus::Accepted) if *hop > 0 => {\n                SentStatus::Delivered"),
 'signature_unchecked': ('node/core/src/prepared.rs',
   "let ok = e.verify_by(check).is_ok();", "let ok = { let _ = check; true };"),
 'files_unchecked': ('protocol/src/envelope.rs',
   "if entry.len != bytes.len() as u64 || entry.sha256 != sha256(bytes)", "if false && (entry.len != bytes.len() as u64 || entry.sha256 != sha256(bytes))"),
 'never_expires': ('node/core/src/origin.rs',
   "pub(super) fn expire_due(&mut self) -> Result<(), StoreError> {", "pub(super) fn expire_due(&mut self) -> Result<(), StoreError> {\n        if self.now > 0 { return Ok(()); }"),
 'effects_before_sync': ('node/core/src/batch.rs',
   "let synced = committing.sync().run()?;", "let _unsynced = committing.sync();\n        let synced = Synced(());"),
}
for name in sys.argv[1:] or list(plants):
    path, old, new = plants[name]
    s = open(path).read()
    assert s.count(old) == 1, name
    open(path, 'w').write(s.replace(old, new))
    try:
        r = subprocess.run("cargo test -j 2 -p renkei-simnet --release --test seeds -- --test-threads 1", shell=True, capture_output=True, text=True)
        out = r.stdout + r.stderr
        open(f'/tmp/plant-{name}.log', 'w').write(out)
        cur=None; fails={}; which={}
        for line in out.splitlines():
            m=re.match(r'scenario (\S+)\s+seed (\d+)',line)
            if m: cur=(m.group(1),m.group(2)); continue
            m=re.match(r'\s+(\w+)\s+(\d+)\s+FAIL',line)
            if m and cur:
                fails.setdefault(cur[0],set()).add(cur[1])
                which.setdefault(cur[0],{}).setdefault(m.group(1),0)
                which[cur[0]][m.group(1)]+=1
        comp = [l for l in out.splitlines() if l.startswith('error') ][:3]
        print(name, {k: len(v) for k, v in fails.items()}, which, comp, flush=True)
        for l in out.splitlines():
            if l.startswith('test ') : print('  ', l)
    finally:
        subprocess.run(['git', 'checkout', path])

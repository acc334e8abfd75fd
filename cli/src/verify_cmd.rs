//! `renkei verify`: check a proof bundle, or an office's audit export, offline.

use renkei_protocol::jst::jst;
use std::path::Path;

use anyhow::{Context, Result, bail};
use renkei_protocol::export::AuditExport;
use renkei_protocol::ids::OperatorId;
use renkei_protocol::proof::Proof;
use renkei_protocol::roster::{OperatorEntry, Roster, SignedRoster};

pub fn verify(
    proof: &Path,
    roster: Option<&Path>,
    node_key: Option<&str>,
    authority: Option<&str>,
) -> Result<i32> {
    let bytes = std::fs::read(proof).with_context(|| format!("reading {}", proof.display()))?;
    let export = match Proof::decode(&bytes) {
        Ok(p) => Err(p),
        Err(pe) => Ok(AuditExport::decode(&bytes).map_err(|ee| {
            anyhow::anyhow!(
                "{} is neither a Renkei proof bundle ({pe}) nor an audit export ({ee})",
                proof.display()
            )
        })?),
    };
    let roster = load_roster(roster, node_key, authority)?;
    match export {
        Ok(export) => Ok(verify_export(&export, &roster)),
        Err(proof) => Ok(verify_proof(&proof, &roster)),
    }
}

/// Prints one line per unit; exit code 0 when every unit verifies.
fn verify_export(export: &AuditExport, roster: &Roster) -> i32 {
    println!(
        "audit export of office {} for {} ({} unit(s)), produced by operator {} at {}",
        export.office,
        export.month,
        export.entries.len(),
        roster
            .signer_valid_at(&export.node, export.generated_at_ms)
            .map_or_else(|| export.node.to_string(), |o| o.name.clone()),
        jst(export.generated_at_ms)
    );
    let mut bad = 0;
    for (entry, result) in export.entries.iter().zip(export.verify(roster)) {
        let h = entry.proof.header();
        match result {
            Ok(lines) => {
                let last = lines
                    .last()
                    .filter(|_| lines.len() > 1)
                    .map_or("no receipts", String::as_str);
                println!(
                    "VALID   {} {} {} {} → {} subject {} ({} receipt(s); last: {last})",
                    entry.direction.name(),
                    h.id,
                    h.doc_kind,
                    h.from.office,
                    h.to.office,
                    h.subject.as_deref().unwrap_or("-"),
                    entry.proof.receipts.len(),
                );
            }
            Err(e) => {
                bad += 1;
                println!("INVALID {} {}: {e}", entry.direction.name(), h.id);
            }
        }
    }
    if bad == 0 {
        println!("VALID audit export: {} unit(s)", export.entries.len());
        0
    } else {
        println!(
            "INVALID audit export: {bad} of {} unit(s) fail",
            export.entries.len()
        );
        1
    }
}

fn verify_proof(proof: &Proof, roster: &Roster) -> i32 {
    match proof.verify(roster) {
        Ok(lines) => {
            // Every signature verifies; statements that contradict each other are named
            // and make the exit code 2 (see docs/SECURITY.md, "Receipts with roles").
            let contradicted = lines.iter().any(|l| l.starts_with("CONTRADICTION"));
            if contradicted {
                println!("VALID proof, with contradicting statements");
            } else {
                println!("VALID proof");
            }
            for l in lines {
                println!("  {l}");
            }
            if contradicted { 2 } else { 0 }
        }
        Err(e) => {
            println!("INVALID proof: {e}");
            1
        }
    }
}

fn load_roster(
    roster: Option<&Path>,
    node_key: Option<&str>,
    authority: Option<&str>,
) -> Result<Roster> {
    Ok(match (roster, node_key) {
        (Some(path), _) => {
            let r = SignedRoster::decode(&std::fs::read(path)?)
                .with_context(|| format!("{} is not a signed roster", path.display()))?;
            let want: OperatorId = match authority {
                Some(a) => a.parse().map_err(|e| anyhow::anyhow!("--authority: {e}"))?,
                None => r.roster().authority,
            };
            r.verify(&want).context("the roster does not verify")?;
            if authority.is_none() {
                println!(
                    "note: roster authority {} taken from the roster itself; pass --authority to pin it",
                    want
                );
            }
            r.roster().clone()
        }
        (None, Some(k)) => {
            let id: OperatorId = k.parse().map_err(|e| anyhow::anyhow!("--node-key: {e}"))?;
            Roster {
                serial: 0,
                issued_at_ms: 0,
                authority: id,
                operators: vec![OperatorEntry {
                    name: "node".into(),
                    id,
                    enc_key: [0; 32],
                    relay: false,
                    addrs: vec![],
                    valid_from_ms: 0,
                    valid_until_ms: None,
                    old_keys: vec![],
                }],
            }
        }
        (None, None) => bail!("give --roster ROSTER (federation) or --node-key KEY (single node)"),
    })
}

//! `renkei verify`: check a proof bundle offline.

use std::path::Path;

use anyhow::{Context, Result, bail};
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
    let proof = Proof::decode(&bytes)
        .with_context(|| format!("{} is not a Renkei proof bundle", proof.display()))?;
    let roster = match (roster, node_key) {
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
    };
    match proof.verify(&roster) {
        Ok(lines) => {
            println!("VALID proof");
            for l in lines {
                println!("  {l}");
            }
            Ok(0)
        }
        Err(e) => {
            println!("INVALID proof: {e}");
            Ok(1)
        }
    }
}

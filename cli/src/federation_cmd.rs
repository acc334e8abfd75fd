//! `renkei federation …` (the federation authority's tools) and `renkei roster install`.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use clap::Subcommand;
use renkei_node::keyfile;
use renkei_node::runtime::now_ms;
use renkei_protocol::ids::OperatorId;
use renkei_protocol::keys::SigningIdentity;
use renkei_protocol::roster::{OperatorEntry, Roster, SignedRoster};

/// Authority key file inside the authority directory.
pub const AUTHORITY_KEY: &str = "authority.key";
/// The signed roster inside the authority directory.
pub const ROSTER_FILE: &str = "roster.cbor";

/// `renkei federation …`
#[derive(Subcommand, Debug)]
pub enum FederationCmd {
    /// Create the federation authority key and an empty signed roster.
    Init {
        /// Authority directory (keep it offline).
        #[arg(long)]
        dir: PathBuf,
    },
    /// Add (or update) an operator in the roster and re-sign it.
    AddOperator {
        /// Authority directory.
        #[arg(long)]
        dir: PathBuf,
        /// Operator name.
        #[arg(long)]
        name: String,
        /// Operator id (base32 or hex), from `renkei key show`.
        #[arg(long, required_unless_present = "node_dir")]
        key: Option<String>,
        /// Sealing key (64 hex digits), from `renkei key show`.
        #[arg(long, required_unless_present = "node_dir")]
        seal_key: Option<String>,
        /// Read both keys from a local node directory instead.
        #[arg(long)]
        node_dir: Option<PathBuf>,
        /// This operator relays for others.
        #[arg(long)]
        relay: bool,
        /// libp2p multiaddress to dial it at (repeatable).
        #[arg(long)]
        addr: Vec<String>,
        /// Last day of validity (YYYY-MM-DD, UTC).
        #[arg(long)]
        valid_until: Option<String>,
    },
    /// Remove an operator from the roster and re-sign it.
    RemoveOperator {
        /// Authority directory.
        #[arg(long)]
        dir: PathBuf,
        /// Operator name or id.
        operator: String,
    },
    /// Print a roster and check its signature.
    Show {
        /// Roster file.
        roster: PathBuf,
        /// Authority key to check against (default: the one named in the roster).
        #[arg(long)]
        authority: Option<String>,
    },
}

fn load_authority(dir: &Path) -> Result<SigningIdentity> {
    let text = std::fs::read_to_string(dir.join(AUTHORITY_KEY)).context("reading authority.key")?;
    let bytes = hex::decode(text.trim()).context("authority.key must be 64 hex digits")?;
    let seed: [u8; 32] = bytes
        .as_slice()
        .try_into()
        .map_err(|_| anyhow::anyhow!("authority.key must be 64 hex digits"))?;
    Ok(SigningIdentity::from_seed(seed))
}

fn load_roster(dir: &Path) -> Result<Roster> {
    let bytes = std::fs::read(dir.join(ROSTER_FILE)).context("reading roster.cbor")?;
    Ok(SignedRoster::decode(&bytes)?.roster().clone())
}

fn save_roster(dir: &Path, authority: &SigningIdentity, mut roster: Roster) -> Result<()> {
    roster.serial += 1;
    roster.issued_at_ms = now_ms();
    let signed = roster.sign(authority);
    let tmp = dir.join(format!("{ROSTER_FILE}.tmp"));
    std::fs::write(&tmp, signed.encode())?;
    std::fs::rename(&tmp, dir.join(ROSTER_FILE))?;
    println!(
        "roster serial {} written to {}",
        signed.roster().serial,
        dir.join(ROSTER_FILE).display()
    );
    Ok(())
}

fn date_ms(date: &str) -> Result<u64> {
    let parts: Vec<&str> = date.split('-').collect();
    if parts.len() != 3 {
        bail!("--valid-until must be YYYY-MM-DD");
    }
    let (y, m, d): (i64, i64, i64) = (parts[0].parse()?, parts[1].parse()?, parts[2].parse()?);
    renkei_protocol::ids::check_date("valid-until", &format!("{y:04}{m:02}{d:02}"))
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    // days from civil (Howard Hinnant), end of that day
    let y2 = if m <= 2 { y - 1 } else { y };
    let era = y2.div_euclid(400);
    let yoe = y2 - era * 400;
    let doy = (153 * (m + if m > 2 { -3 } else { 9 }) + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    Ok(((days + 1) * 86_400_000) as u64)
}

pub fn run(cmd: FederationCmd) -> Result<i32> {
    match cmd {
        FederationCmd::Init { dir } => {
            std::fs::create_dir_all(&dir)?;
            let path = dir.join(AUTHORITY_KEY);
            if path.exists() {
                bail!(
                    "{} exists; refusing to overwrite the federation authority key",
                    path.display()
                );
            }
            let authority = SigningIdentity::from_seed(keyfile::random_seed()?);
            std::fs::write(&path, format!("{}\n", hex::encode(authority.seed())))?;
            #[cfg(unix)]
            std::fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(0o600))?;
            let roster = Roster {
                serial: 0,
                issued_at_ms: 0,
                authority: authority.id(),
                operators: vec![],
            };
            save_roster(&dir, &authority, roster)?;
            println!("federation authority key: {}", authority.id());
            Ok(0)
        }
        FederationCmd::AddOperator {
            dir,
            name,
            key,
            seal_key,
            node_dir,
            relay,
            addr,
            valid_until,
        } => {
            let authority = load_authority(&dir)?;
            let mut roster = load_roster(&dir)?;
            let (id, enc_key) = match node_dir {
                Some(nd) => {
                    let k = keyfile::load(&nd)?;
                    (k.id(), k.seal.public())
                }
                None => {
                    let id: OperatorId = key
                        .unwrap_or_default()
                        .parse()
                        .map_err(|e| anyhow::anyhow!("--key: {e}"))?;
                    let sk = hex::decode(seal_key.unwrap_or_default())
                        .context("--seal-key must be 64 hex digits")?;
                    let enc: [u8; 32] = sk
                        .as_slice()
                        .try_into()
                        .map_err(|_| anyhow::anyhow!("--seal-key must be 64 hex digits"))?;
                    (id, enc)
                }
            };
            id.verifying_key().map_err(|e| anyhow::anyhow!("{e}"))?;
            if !renkei_protocol::keys::check_enc_key(&enc_key) {
                bail!("--seal-key is not a valid X25519 public key");
            }
            for a in &addr {
                if !a.starts_with('/') {
                    bail!("--addr {a:?} is not a multiaddress (e.g. /ip4/203.0.113.5/tcp/7000)");
                }
            }
            let valid_until_ms = valid_until.as_deref().map(date_ms).transpose()?;
            roster.operators.retain(|o| o.name != name && o.id != id);
            roster.operators.push(OperatorEntry {
                name: name.clone(),
                id,
                enc_key,
                relay,
                addrs: addr,
                valid_from_ms: now_ms().saturating_sub(60_000),
                valid_until_ms,
                old_keys: vec![],
            });
            save_roster(&dir, &authority, roster)?;
            println!(
                "operator {name} ({id}) added{}",
                if relay { " as a relay" } else { "" }
            );
            Ok(0)
        }
        FederationCmd::RemoveOperator { dir, operator } => {
            let authority = load_authority(&dir)?;
            let mut roster = load_roster(&dir)?;
            let before = roster.operators.len();
            roster.operators.retain(|o| {
                o.name != operator && o.id.to_string() != operator && o.id.to_hex() != operator
            });
            if roster.operators.len() == before {
                bail!("no operator {operator:?} in the roster");
            }
            save_roster(&dir, &authority, roster)?;
            println!("operator {operator} removed");
            Ok(0)
        }
        FederationCmd::Show { roster, authority } => {
            let bytes =
                std::fs::read(&roster).with_context(|| format!("reading {}", roster.display()))?;
            let signed = SignedRoster::decode(&bytes)?;
            let r = signed.roster();
            let want: OperatorId = match authority {
                Some(a) => a.parse().map_err(|e| anyhow::anyhow!("--authority: {e}"))?,
                None => r.authority,
            };
            let verdict = match signed.verify(&want) {
                Ok(()) => "signature OK".to_owned(),
                Err(e) => format!("SIGNATURE INVALID: {e}"),
            };
            println!(
                "roster serial {} issued {} ms, authority {} — {verdict}",
                r.serial, r.issued_at_ms, r.authority
            );
            for o in &r.operators {
                println!(
                    "  {:<16} {}{}  addrs {:?}{}",
                    o.name,
                    o.id,
                    if o.relay { "  RELAY" } else { "" },
                    o.addrs,
                    o.valid_until_ms
                        .map(|u| format!("  until {u} ms"))
                        .unwrap_or_default()
                );
            }
            Ok(if verdict == "signature OK" { 0 } else { 1 })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_to_end_of_day_ms() {
        assert_eq!(date_ms("1970-01-01").unwrap(), 86_400_000);
        assert_eq!(date_ms("2026-11-25").unwrap(), 1_795_651_200_000);
        assert!(date_ms("2026-02-30").is_err());
    }
}

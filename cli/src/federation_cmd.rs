//! `renkei federation …` (the federation authority's tools) and `renkei roster install`.

use renkei_protocol::jst::jst;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use clap::Subcommand;
use renkei_node::keyfile;
use renkei_node::runtime::now_ms;
use renkei_protocol::ids::OperatorId;
use renkei_protocol::keys::EncPublicKey;
use renkei_protocol::keys::SigningIdentity;
use renkei_protocol::roster::{OldKey, OperatorEntry, Roster, SignedRoster};

/// Default overlap of a rotated key: how long the old key stays valid.
pub const OVERLAP_DAYS_DEFAULT: u64 = 30;

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
    /// Key rotation: give an operator its new key (from `renkei key rotate`), keep its old
    /// key in the roster's retired keys until the end of the overlap, and re-sign. The
    /// entry keeps its name, addresses, relay role and validity.
    RotateOperator {
        /// Authority directory.
        #[arg(long)]
        dir: PathBuf,
        /// The operator: its name, or its current (old) id.
        #[arg(long)]
        operator: String,
        /// New operator id (base32 or hex), printed by `renkei key rotate`.
        #[arg(long, required_unless_present = "node_dir")]
        key: Option<String>,
        /// New sealing key (64 hex digits), printed by `renkei key rotate`.
        #[arg(long, required_unless_present = "node_dir")]
        seal_key: Option<String>,
        /// Read both new keys from a local node directory instead.
        #[arg(long)]
        node_dir: Option<PathBuf>,
        /// Days the old key stays valid for signatures made (and envelopes sealed) with it.
        #[arg(long, default_value_t = OVERLAP_DAYS_DEFAULT)]
        overlap_days: u64,
    },
    /// Revoke an operator: its roster entry ends now (kept, so that proofs holding its
    /// past statements keep verifying) and the roster is re-signed.
    #[command(alias = "revoke-operator")]
    RemoveOperator {
        /// Authority directory.
        #[arg(long)]
        dir: PathBuf,
        /// Operator name or id.
        operator: String,
    },
    /// Assign an office to an operator: the federation's authoritative record of where
    /// the office is homed, signed by the authority (written to `--out`; the operator
    /// installs it with `renkei office assign`). A newer assignment moves the office.
    Assign {
        /// Authority directory.
        #[arg(long)]
        dir: PathBuf,
        /// Operator name or id.
        #[arg(long)]
        operator: String,
        /// Service kinds, comma separated (e.g. 43,11).
        #[arg(long, value_delimiter = ',', required = true)]
        kinds: Vec<String>,
        /// Where to write the assignment (default `assignment-OFFICE.cbor`).
        #[arg(long)]
        out: Option<PathBuf>,
        /// The office's name (事業所名), carried in the assignment so every operator's
        /// offices see it (none when empty).
        #[arg(long, default_value = "")]
        name: String,
        /// 事業所番号.
        office: String,
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
            let (id, enc_key) = operator_keys(key, seal_key, node_dir.as_deref())?;
            if let Some(o) = roster
                .operators
                .iter()
                .find(|o| o.name != name && o.old_keys.iter().any(|k| k.id == id))
            {
                bail!(
                    "{id} is a retired key of operator {}; a key is never reused",
                    o.name
                );
            }
            for a in &addr {
                if !a.starts_with('/') {
                    bail!("--addr {a:?} is not a multiaddress (e.g. /ip4/203.0.113.5/tcp/7000)");
                }
            }
            let valid_until_ms = valid_until.as_deref().map(date_ms).transpose()?;
            // Updating an operator keeps its start of validity and its retired keys: the
            // receipts it signed before stay verifiable.
            let previous = roster.operators.iter().find(|o| o.name == name).cloned();
            if let Some(p) = previous.as_ref().filter(|p| p.id != id) {
                eprintln!(
                    "warning: operator {name}'s key changes from {} to {id} without an overlap: \
                     envelopes sealed to the old key will not open and its signatures stop \
                     verifying; use `renkei federation rotate-operator` to rotate with an overlap",
                    p.id
                );
            }
            roster.operators.retain(|o| o.name != name && o.id != id);
            roster.operators.push(OperatorEntry {
                name: name.clone(),
                id,
                enc_key,
                relay,
                addrs: addr,
                valid_from_ms: previous
                    .as_ref()
                    .map_or_else(|| now_ms().saturating_sub(60_000), |p| p.valid_from_ms),
                valid_until_ms,
                old_keys: previous.map(|p| p.old_keys).unwrap_or_default(),
            });
            save_roster(&dir, &authority, roster)?;
            println!(
                "operator {name} ({id}) added{}",
                if relay { " as a relay" } else { "" }
            );
            Ok(0)
        }
        FederationCmd::RotateOperator {
            dir,
            operator,
            key,
            seal_key,
            node_dir,
            overlap_days,
        } => {
            let authority = load_authority(&dir)?;
            let mut roster = load_roster(&dir)?;
            let (id, enc_key) = operator_keys(key, seal_key, node_dir.as_deref())?;
            let expires_ms = now_ms().saturating_add(overlap_days.saturating_mul(86_400_000));
            let name = rotate_entry(&mut roster, &operator, id, enc_key, expires_ms)?;
            save_roster(&dir, &authority, roster)?;
            println!(
                "operator {name} rotated to {id}; its old key stays valid until {} ({overlap_days} days)",
                jst(expires_ms)
            );
            Ok(0)
        }
        FederationCmd::RemoveOperator { dir, operator } => {
            let authority = load_authority(&dir)?;
            let mut roster = load_roster(&dir)?;
            let now = now_ms();
            let Some(entry) = roster.operators.iter_mut().find(|o| {
                o.name == operator || o.id.to_string() == operator || o.id.to_hex() == operator
            }) else {
                bail!("no operator {operator:?} in the roster");
            };
            if let Some(until) = entry.valid_until_ms.filter(|u| *u <= now) {
                bail!(
                    "operator {} was already revoked at {}",
                    entry.name,
                    jst(until)
                );
            }
            // Revoked, not deleted: proofs holding its past statements keep verifying.
            entry.valid_until_ms = Some(now);
            entry.addrs.clear();
            for k in &mut entry.old_keys {
                k.expires_ms = k.expires_ms.min(now);
            }
            let name = entry.name.clone();
            save_roster(&dir, &authority, roster)?;
            println!(
                "operator {name} revoked at {}: its connections are refused and nothing it signs from now on counts; proofs holding what it signed before keep verifying. Spread the new roster (roster-install on any node)",
                jst(now)
            );
            Ok(0)
        }
        FederationCmd::Assign {
            dir,
            operator,
            kinds,
            out,
            name,
            office,
        } => {
            let authority = load_authority(&dir)?;
            let roster = load_roster(&dir)?;
            let entry = roster
                .operators
                .iter()
                .find(|o| {
                    o.name == operator || o.id.to_string() == operator || o.id.to_hex() == operator
                })
                .ok_or_else(|| anyhow::anyhow!("no operator {operator:?} in the roster"))?;
            let now = now_ms();
            if !entry.valid_at(now) {
                bail!("operator {} is not valid in the roster now", entry.name);
            }
            let binding = renkei_protocol::roster::OfficeBinding {
                office: office
                    .parse()
                    .map_err(|e| anyhow::anyhow!("{office}: {e}"))?,
                kinds: kinds
                    .iter()
                    .map(|k| k.parse())
                    .collect::<Result<_, _>>()
                    .map_err(|e| anyhow::anyhow!("--kinds: {e}"))?,
                operator: entry.id,
                since_ms: now,
                released: false,
                name: renkei_protocol::roster::OfficeBinding::name_for(&name),
            }
            .sign(&authority);
            let path = out.unwrap_or_else(|| PathBuf::from(format!("assignment-{office}.cbor")));
            std::fs::write(&path, binding.encode())
                .with_context(|| format!("writing {}", path.display()))?;
            println!(
                "office {office} assigned to operator {} since {}: {} (install it on that operator's node: renkei office assign --dir NODE {})",
                entry.name,
                jst(now),
                path.display(),
                path.display()
            );
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
                "roster serial {} issued {}, authority {} — {verdict}",
                r.serial,
                jst(r.issued_at_ms),
                r.authority
            );
            for o in &r.operators {
                println!(
                    "  {:<16} {}{}  addrs {:?}{}",
                    o.name,
                    o.id,
                    if o.relay { "  RELAY" } else { "" },
                    o.addrs,
                    o.valid_until_ms
                        .map(|u| if u <= now_ms() {
                            format!("  REVOKED at {}", jst(u))
                        } else {
                            format!("  until {}", jst(u))
                        })
                        .unwrap_or_default()
                );
                for k in &o.old_keys {
                    println!(
                        "  {:<16} retired {}  valid until {}",
                        "",
                        k.id,
                        jst(k.expires_ms)
                    );
                }
            }
            Ok(if verdict == "signature OK" { 0 } else { 1 })
        }
    }
}

/// The new keys of an operator: from `--key` and `--seal-key`, or a node directory.
fn operator_keys(
    key: Option<String>,
    seal_key: Option<String>,
    node_dir: Option<&Path>,
) -> Result<(OperatorId, EncPublicKey)> {
    let (id, enc_key) = match node_dir {
        Some(nd) => {
            let k = keyfile::load(nd)?;
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
    Ok((id, enc_key))
}

/// Rotates the entry named `operator` (name, or current id in base32 or hex) to the new
/// keys, retiring its current ones until `expires_ms`. Returns the operator's name.
fn rotate_entry(
    roster: &mut Roster,
    operator: &str,
    id: OperatorId,
    enc_key: EncPublicKey,
    expires_ms: u64,
) -> Result<String> {
    let used = roster.operators.iter().find(|o| {
        o.id == id
            || o.enc_key == enc_key
            || o.old_keys
                .iter()
                .any(|k| k.id == id || k.enc_key == enc_key)
    });
    if let Some(o) = used {
        bail!(
            "the new key is already in the roster (operator {}): `renkei key rotate` makes fresh keys, and a key is never reused",
            o.name
        );
    }
    let Some(entry) = roster
        .operators
        .iter_mut()
        .find(|o| o.name == operator || o.id.to_string() == operator || o.id.to_hex() == operator)
    else {
        bail!("no operator {operator:?} in the roster (give its name or its current id)");
    };
    if entry.old_keys.len() >= 16 {
        bail!(
            "operator {} already has 16 retired keys, the most a roster entry holds",
            entry.name
        );
    }
    entry.old_keys.push(OldKey {
        id: entry.id,
        enc_key: entry.enc_key,
        expires_ms,
    });
    entry.id = id;
    entry.enc_key = enc_key;
    Ok(entry.name.clone())
}

#[cfg(test)]
mod tests {
    use super::*;
    use renkei_protocol::keys::OperatorKeys;

    fn entry(name: &str, k: &OperatorKeys) -> OperatorEntry {
        OperatorEntry {
            name: name.into(),
            id: k.id(),
            enc_key: k.seal.public(),
            relay: false,
            addrs: vec!["/ip4/127.0.0.1/tcp/7000".into()],
            valid_from_ms: 1_000,
            valid_until_ms: None,
            old_keys: vec![],
        }
    }

    #[test]
    fn rotate_entry_retires_the_old_key_and_keeps_the_rest() {
        let (a, b) = (
            OperatorKeys::from_seeds([1; 32], [2; 32]),
            OperatorKeys::from_seeds([3; 32], [4; 32]),
        );
        let mut r = Roster {
            serial: 1,
            issued_at_ms: 0,
            authority: a.id(),
            operators: vec![entry("a", &a), entry("b", &b)],
        };
        let b2 = b.clone().rotate([5; 32], [6; 32]);
        let name = rotate_entry(
            &mut r,
            &b.id().to_string(),
            b2.id(),
            b2.seal.public(),
            9_000,
        )
        .unwrap();
        assert_eq!(name, "b");
        let e = &r.operators[1];
        assert_eq!((e.id, e.enc_key), (b2.id(), b2.seal.public()));
        assert_eq!(
            e.old_keys,
            vec![OldKey {
                id: b.id(),
                enc_key: b.seal.public(),
                expires_ms: 9_000
            }]
        );
        assert_eq!((e.valid_from_ms, e.addrs.len()), (1_000, 1));
        // A key already in the roster (current, or retired) is refused.
        assert!(rotate_entry(&mut r, "b", a.id(), b2.seal.public(), 9_000).is_err());
        assert!(rotate_entry(&mut r, "a", b.id(), b.seal.public(), 9_000).is_err());
        assert!(rotate_entry(&mut r, "nobody", b.id(), b.seal.public(), 9_000).is_err());
        // By name, a second time.
        let b3 = b2.rotate([7; 32], [8; 32]);
        rotate_entry(&mut r, "b", b3.id(), b3.seal.public(), 10_000).unwrap();
        assert_eq!(r.operators[1].old_keys.len(), 2);
        assert!(r.same_operator(&b.id(), &b3.id()));
    }

    #[test]
    fn dates_to_end_of_day_ms() {
        assert_eq!(date_ms("1970-01-01").unwrap(), 86_400_000);
        assert_eq!(date_ms("2026-11-25").unwrap(), 1_795_651_200_000);
        assert!(date_ms("2026-02-30").is_err());
    }
}

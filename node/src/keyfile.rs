//! The operator key file: `DIR/operator.key`, readable only by the owner.
//!
//! ```text
//! SIGNING_SEED SEALING_SEED                  ; first line: 128 hex digits, no space
//! retired OLD_OPERATOR_ID OLD_SEALING_SEED   ; one line per retired key, oldest first
//! ```
//!
//! The first line is the current key pair: the 32-byte ed25519 signing seed then the
//! 32-byte X25519 sealing seed, as 128 hex digits (the whole file before key rotation
//! existed, which still loads). Each `retired` line, written by [`rotate`], keeps what a
//! node needs of a key it rotated away from: the old operator id (public key, 64 hex
//! digits) to recognise envelopes addressed to it, and the old sealing seed (64 hex
//! digits) to open envelopes sealed to it during the overlap. The retired signing seed is
//! not kept: nothing is signed with it any more.

use std::io::Write;
use std::path::Path;

use renkei_protocol::ids::OperatorId;
use renkei_protocol::keys::{OperatorKeys, SealKeyPair};

use crate::config::KEY_FILE;

/// Most retired keys kept (as many as a roster entry lists).
pub const RETIRED_KEYS_MAX: usize = 16;

/// A key-file problem.
#[derive(Debug, thiserror::Error)]
pub enum KeyFileError {
    /// Reading or writing failed.
    #[error("{0}: {1}")]
    Io(String, std::io::Error),
    /// The file is not in the key-file format.
    #[error(
        "{0}: must hold 128 hex digits (signing seed then sealing seed), then optional \
         `retired OPERATOR_ID_HEX SEALING_SEED_HEX` lines ({1})"
    )]
    Format(String, String),
    /// Refusing to overwrite.
    #[error("{0} already exists; refusing to overwrite an operator key")]
    Exists(String),
    /// A secret file others may read.
    #[error(
        "{0} is readable by group or others (mode {1:o}); `chmod 600` it (and consider the secret exposed)"
    )]
    Exposed(String, u32),
    /// Too many rotations.
    #[error("{0} already keeps {RETIRED_KEYS_MAX} retired keys, the most a roster entry lists")]
    TooManyRetired(String),
}

/// Fresh seeds from the OS (`getrandom`: the system call, no file to open).
pub fn random_seed() -> Result<[u8; 32], KeyFileError> {
    let mut s = [0u8; 32];
    getrandom::fill(&mut s)
        .map_err(|e| KeyFileError::Io("getrandom".into(), std::io::Error::other(e.to_string())))?;
    Ok(s)
}

/// Writes a new secret file (a token), readable by its owner only (0600).
pub fn write_secret(path: &Path, text: &str) -> Result<(), KeyFileError> {
    let name = path.display().to_string();
    let mut f = open_options()
        .open(path)
        .map_err(|e| KeyFileError::Io(name.clone(), e))?;
    f.write_all(text.as_bytes())
        .map_err(|e| KeyFileError::Io(name.clone(), e))?;
    f.sync_all().map_err(|e| KeyFileError::Io(name, e))
}

/// Reads a secret file, refusing one that others than its owner may read.
pub fn read_secret(path: &Path) -> Result<String, KeyFileError> {
    let name = path.display().to_string();
    let f = std::fs::File::open(path).map_err(|e| KeyFileError::Io(name.clone(), e))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = f
            .metadata()
            .map_err(|e| KeyFileError::Io(name.clone(), e))?
            .permissions()
            .mode();
        if mode & 0o077 != 0 {
            return Err(KeyFileError::Exposed(name, mode & 0o777));
        }
    }
    let mut text = String::new();
    std::io::Read::read_to_string(&mut &f, &mut text).map_err(|e| KeyFileError::Io(name, e))?;
    Ok(text)
}

/// The file's text for `keys`.
fn render(keys: &OperatorKeys) -> String {
    let mut text = format!(
        "{}{}\n",
        hex::encode(keys.identity.seed()),
        hex::encode(keys.seal.seed())
    );
    for (id, seal) in keys.old_ids.iter().zip(&keys.old_seals) {
        text.push_str(&format!(
            "retired {} {}\n",
            id.to_hex(),
            hex::encode(seal.seed())
        ));
    }
    text
}

fn open_options() -> std::fs::OpenOptions {
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut opts, 0o600);
    opts
}

/// Writes a new key file; refuses to overwrite.
pub fn create(dir: &Path, keys: &OperatorKeys) -> Result<(), KeyFileError> {
    let path = dir.join(KEY_FILE);
    let name = path.display().to_string();
    let mut f = open_options().open(&path).map_err(|e| {
        if e.kind() == std::io::ErrorKind::AlreadyExists {
            KeyFileError::Exists(name.clone())
        } else {
            KeyFileError::Io(name.clone(), e)
        }
    })?;
    f.write_all(render(keys).as_bytes())
        .map_err(|e| KeyFileError::Io(name.clone(), e))?;
    f.sync_all().map_err(|e| KeyFileError::Io(name, e))
}

fn seed32(hex_text: &str, what: &str, name: &str) -> Result<[u8; 32], KeyFileError> {
    let bytes =
        hex::decode(hex_text).map_err(|_| KeyFileError::Format(name.into(), what.into()))?;
    <[u8; 32]>::try_from(bytes.as_slice())
        .map_err(|_| KeyFileError::Format(name.into(), format!("{what}: not 64 hex digits")))
}

/// Parses key-file text (`name` is for messages).
pub fn parse(text: &str, name: &str) -> Result<OperatorKeys, KeyFileError> {
    let mut lines = text.lines().map(str::trim).filter(|l| !l.is_empty());
    let first = lines
        .next()
        .ok_or_else(|| KeyFileError::Format(name.into(), "empty".into()))?;
    if first.len() != 128 {
        return Err(KeyFileError::Format(
            name.into(),
            "first line is not 128 hex digits".into(),
        ));
    }
    let sign = seed32(&first[..64], "signing seed", name)?;
    let seal = seed32(&first[64..], "sealing seed", name)?;
    let mut keys = OperatorKeys::from_seeds(sign, seal);
    for (n, line) in lines.enumerate() {
        let what = format!("retired key line {}", n + 1);
        let parts: Vec<&str> = line.split_whitespace().collect();
        let ["retired", id, seal] = parts.as_slice() else {
            return Err(KeyFileError::Format(name.into(), what));
        };
        let id = OperatorId(seed32(id, &what, name)?);
        if id.verifying_key().is_err() {
            return Err(KeyFileError::Format(
                name.into(),
                format!("{what}: not an ed25519 public key"),
            ));
        }
        keys.old_ids.push(id);
        keys.old_seals
            .push(SealKeyPair::from_seed(seed32(seal, &what, name)?));
    }
    if keys.old_ids.len() > RETIRED_KEYS_MAX {
        return Err(KeyFileError::TooManyRetired(name.into()));
    }
    Ok(keys)
}

/// Reads the key file.
pub fn load(dir: &Path) -> Result<OperatorKeys, KeyFileError> {
    let path = dir.join(KEY_FILE);
    let name = path.display().to_string();
    let text = read_secret(&path)?;
    parse(&text, &name)
}

/// Key rotation: the seeds given become the current key pair, the current one is retired
/// (its id and sealing seed kept, its signing seed dropped). The file is replaced
/// atomically (written beside it, synced, renamed). Returns the new keys.
///
/// The caller makes sure the node is not running (see `renkei key rotate`).
pub fn rotate(
    dir: &Path,
    sign_seed: [u8; 32],
    seal_seed: [u8; 32],
) -> Result<OperatorKeys, KeyFileError> {
    let path = dir.join(KEY_FILE);
    let name = path.display().to_string();
    let keys = load(dir)?;
    if keys.old_ids.len() >= RETIRED_KEYS_MAX {
        return Err(KeyFileError::TooManyRetired(name));
    }
    let rotated = keys.rotate(sign_seed, seal_seed);
    let tmp = dir.join(format!("{KEY_FILE}.new"));
    let tmp_name = tmp.display().to_string();
    let _ = std::fs::remove_file(&tmp);
    let mut f = open_options()
        .open(&tmp)
        .map_err(|e| KeyFileError::Io(tmp_name.clone(), e))?;
    f.write_all(render(&rotated).as_bytes())
        .map_err(|e| KeyFileError::Io(tmp_name.clone(), e))?;
    f.sync_all()
        .map_err(|e| KeyFileError::Io(tmp_name.clone(), e))?;
    drop(f);
    std::fs::rename(&tmp, &path).map_err(|e| KeyFileError::Io(name.clone(), e))?;
    if let Ok(d) = std::fs::File::open(dir) {
        d.sync_all().map_err(|e| KeyFileError::Io(name, e))?;
    }
    Ok(rotated)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tmpdir(tag: &str) -> std::path::PathBuf {
        let d = std::env::temp_dir().join(format!("renkei-keyfile-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    #[test]
    fn old_format_still_loads() {
        let d = tmpdir("old");
        let text = format!("{}{}\n", hex::encode([7u8; 32]), hex::encode([8u8; 32]));
        std::fs::write(d.join(KEY_FILE), text).unwrap();
        #[cfg(unix)]
        {
            // Written with the umask's mode (0644 here): refused until made private.
            use std::os::unix::fs::PermissionsExt;
            let perms = |m| std::fs::Permissions::from_mode(m);
            std::fs::set_permissions(d.join(KEY_FILE), perms(0o644)).unwrap();
            let err = load(&d).unwrap_err().to_string();
            assert!(
                err.contains("readable by group or others (mode 644)"),
                "{err}"
            );
            std::fs::set_permissions(d.join(KEY_FILE), perms(0o600)).unwrap();
        }
        let k = load(&d).unwrap();
        let want = OperatorKeys::from_seeds([7; 32], [8; 32]);
        assert_eq!(k.id(), want.id());
        assert_eq!(k.seal.public(), want.seal.public());
        assert!(k.old_ids.is_empty() && k.old_seals.is_empty());
        // Rewritten by `create`, a key without retired keys is still exactly one line.
        let d2 = tmpdir("old2");
        create(&d2, &want).unwrap();
        assert_eq!(
            std::fs::read_to_string(d2.join(KEY_FILE)).unwrap(),
            std::fs::read_to_string(d.join(KEY_FILE)).unwrap()
        );
        let _ = std::fs::remove_dir_all(&d);
        let _ = std::fs::remove_dir_all(&d2);
    }

    #[test]
    fn rotation_round_trips_and_keeps_old_sealing_keys() {
        let d = tmpdir("rot");
        let k0 = OperatorKeys::from_seeds([1; 32], [2; 32]);
        create(&d, &k0).unwrap();
        let k1 = rotate(&d, [3; 32], [4; 32]).unwrap();
        let k2 = rotate(&d, [5; 32], [6; 32]).unwrap();
        let back = load(&d).unwrap();
        assert_eq!(back.id(), k2.id());
        assert_eq!(back.identity.seed(), [5; 32]);
        assert_eq!(back.seal.seed(), [6; 32]);
        assert_eq!(back.old_ids, vec![k0.id(), k1.id()]);
        let seals: Vec<_> = back.old_seals.iter().map(SealKeyPair::public).collect();
        assert_eq!(seals, vec![k0.seal.public(), k1.seal.public()]);
        assert!(back.seal_for(&k0.seal.public()).is_some());
        assert!(back.is_own_id(&k0.id()) && back.is_own_id(&k1.id()));
        // No retired signing seed is written anywhere.
        let text = std::fs::read_to_string(d.join(KEY_FILE)).unwrap();
        assert!(!text.contains(&hex::encode([1u8; 32])), "{text}");
        assert!(!text.contains(&hex::encode([3u8; 32])), "{text}");
        assert_eq!(text.lines().count(), 3);
        assert!(!d.join(format!("{KEY_FILE}.new")).exists());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(d.join(KEY_FILE))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o077, 0, "key file readable by others: {mode:o}");
        }
        let _ = std::fs::remove_dir_all(&d);
    }

    #[test]
    fn malformed_files_are_refused() {
        let good = format!("{}{}", hex::encode([7u8; 32]), hex::encode([8u8; 32]));
        let id = OperatorKeys::from_seeds([9; 32], [9; 32]).id().to_hex();
        let seal = hex::encode([9u8; 32]);
        for bad in [
            String::new(),
            good[..126].to_owned(),
            format!("{good}\nretired {id}"),
            format!("{good}\nold {id} {seal}"),
            format!("{good}\nretired {id} {}", &seal[..10]),
            format!("{good}\nretired {} {seal}", "zz".repeat(32)),
        ] {
            assert!(
                matches!(parse(&bad, "k"), Err(KeyFileError::Format(..))),
                "{bad:?}"
            );
        }
        assert_eq!(
            parse(&format!("{good}\nretired {id} {seal}\n"), "k")
                .unwrap()
                .old_ids
                .len(),
            1
        );
    }
}

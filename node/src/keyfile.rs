//! The operator key file: `DIR/operator.key`, the two 32-byte seeds (ed25519 signing,
//! X25519 sealing) as 128 hex digits on one line, readable only by the owner.

use std::io::Write;
use std::path::Path;

use renkei_protocol::keys::OperatorKeys;

use crate::config::KEY_FILE;

/// A key-file problem.
#[derive(Debug, thiserror::Error)]
pub enum KeyFileError {
    /// Reading or writing failed.
    #[error("{0}: {1}")]
    Io(String, std::io::Error),
    /// The file does not hold 128 hex digits.
    #[error("{0}: must hold 128 hex digits (signing seed then sealing seed)")]
    Format(String),
    /// Refusing to overwrite.
    #[error("{0} already exists; refusing to overwrite an operator key")]
    Exists(String),
}

/// Fresh seeds from the OS.
pub fn random_seed() -> Result<[u8; 32], KeyFileError> {
    let mut s = [0u8; 32];
    let mut f = std::fs::File::open("/dev/urandom")
        .map_err(|e| KeyFileError::Io("/dev/urandom".into(), e))?;
    std::io::Read::read_exact(&mut f, &mut s)
        .map_err(|e| KeyFileError::Io("/dev/urandom".into(), e))?;
    Ok(s)
}

/// Writes a new key file; refuses to overwrite.
pub fn create(dir: &Path, keys: &OperatorKeys) -> Result<(), KeyFileError> {
    let path = dir.join(KEY_FILE);
    let name = path.display().to_string();
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut opts, 0o600);
    let mut f = opts.open(&path).map_err(|e| {
        if e.kind() == std::io::ErrorKind::AlreadyExists {
            KeyFileError::Exists(name.clone())
        } else {
            KeyFileError::Io(name.clone(), e)
        }
    })?;
    writeln!(
        f,
        "{}{}",
        hex::encode(keys.identity.seed()),
        hex::encode(keys.seal.seed())
    )
    .map_err(|e| KeyFileError::Io(name.clone(), e))?;
    f.sync_all().map_err(|e| KeyFileError::Io(name, e))
}

/// Reads the key file.
pub fn load(dir: &Path) -> Result<OperatorKeys, KeyFileError> {
    let path = dir.join(KEY_FILE);
    let name = path.display().to_string();
    let text = std::fs::read_to_string(&path).map_err(|e| KeyFileError::Io(name.clone(), e))?;
    let bytes = hex::decode(text.trim()).map_err(|_| KeyFileError::Format(name.clone()))?;
    if bytes.len() != 64 {
        return Err(KeyFileError::Format(name));
    }
    let mut a = [0u8; 32];
    let mut b = [0u8; 32];
    a.copy_from_slice(&bytes[..32]);
    b.copy_from_slice(&bytes[32..]);
    Ok(OperatorKeys::from_seeds(a, b))
}

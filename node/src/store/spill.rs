//! A spill file for the memory store: values appended to an unlinked temporary file instead
//! of the heap, so a simulated federation of millions of envelopes needs memory for its
//! indexes only (the kernel's page cache keeps what is read often).
//!
//! Values are immutable once appended: a store that overwrites or deletes a key merely
//! stops referring to the old bytes (the file only grows, and disappears with the process).
//! Recent values sit in a tail buffer until it fills; a value is either wholly in the file
//! or wholly in the tail.

use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

/// Tail buffer size: one write per this many appended bytes.
const TAIL_BYTES: usize = 1 << 20;

/// Where a spilled value lives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Spill {
    off: u64,
    len: u32,
}

impl Spill {
    /// The value's length.
    pub(crate) fn len(self) -> usize {
        self.len as usize
    }

    /// The value's position in its file.
    pub(crate) fn offset(self) -> u64 {
        self.off
    }
}

/// The spill file of one pool.
#[derive(Debug)]
pub(crate) struct Arena {
    file: File,
    path: PathBuf,
    /// Bytes written to the file.
    flushed: u64,
    /// Appended values not yet written.
    tail: Vec<u8>,
}

impl Arena {
    /// A new, empty spill file in `dir`, unlinked at once: nothing is left behind however
    /// the process ends.
    pub(crate) fn create(dir: &Path) -> io::Result<Self> {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let path = dir.join(format!("renkei-spill-{}-{n}.tmp", std::process::id()));
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .open(&path)?;
        std::fs::remove_file(&path)?;
        Ok(Self {
            file,
            path,
            flushed: 0,
            tail: Vec::with_capacity(TAIL_BYTES),
        })
    }

    /// Total bytes appended so far.
    pub(crate) fn len(&self) -> u64 {
        self.flushed + self.tail.len() as u64
    }

    /// Appends `value`.
    pub(crate) fn append(&mut self, value: &[u8]) -> io::Result<Spill> {
        let len = u32::try_from(value.len()).map_err(|_| {
            io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("a value of {} bytes is too large to spill", value.len()),
            )
        })?;
        if self.tail.len() + value.len() > TAIL_BYTES {
            self.flush()?;
        }
        let off = self.len();
        if value.len() >= TAIL_BYTES {
            self.file
                .write_all_at(value, off)
                .map_err(|e| self.named(e))?;
            self.flushed += value.len() as u64;
        } else {
            self.tail.extend_from_slice(value);
        }
        Ok(Spill { off, len })
    }

    /// Appends the bytes of `s` to `out`.
    pub(crate) fn read_into(&self, s: Spill, out: &mut Vec<u8>) -> io::Result<()> {
        if s.off >= self.flushed {
            let at = (s.off - self.flushed) as usize;
            out.extend_from_slice(&self.tail[at..at + s.len()]);
            return Ok(());
        }
        let start = out.len();
        out.resize(start + s.len(), 0);
        self.file
            .read_exact_at(&mut out[start..], s.off)
            .map_err(|e| self.named(e))
    }

    /// The bytes of `s`.
    pub(crate) fn read(&self, s: Spill) -> io::Result<Vec<u8>> {
        let mut v = Vec::with_capacity(s.len());
        self.read_into(s, &mut v)?;
        Ok(v)
    }

    fn flush(&mut self) -> io::Result<()> {
        if self.tail.is_empty() {
            return Ok(());
        }
        self.file
            .write_all_at(&self.tail, self.flushed)
            .map_err(|e| self.named(e))?;
        self.flushed += self.tail.len() as u64;
        self.tail.clear();
        Ok(())
    }

    fn named(&self, e: io::Error) -> io::Error {
        io::Error::new(
            e.kind(),
            format!("spill file {} (unlinked): {e}", self.path.display()),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_read_back_from_tail_and_file_alike() {
        let dir = std::env::temp_dir();
        let mut a = Arena::create(&dir).unwrap();
        let mut spills = Vec::new();
        // Enough to flush the tail several times, with one value larger than the tail.
        for i in 0..3000u32 {
            let n = if i == 1500 {
                TAIL_BYTES + 7
            } else {
                (i as usize * 37) % 2000 + 1
            };
            let v: Vec<u8> = (0..n).map(|j| (i as usize + j) as u8).collect();
            spills.push((a.append(&v).unwrap(), v));
        }
        assert!(a.flushed > 0 && !a.tail.is_empty());
        for (s, v) in &spills {
            assert_eq!(&a.read(*s).unwrap(), v);
        }
        assert_eq!(
            a.len(),
            spills.iter().map(|(s, _)| s.len() as u64).sum::<u64>()
        );
        // The file is unlinked from the start: nothing is left in the directory.
        assert!(!a.path.exists());
    }
}

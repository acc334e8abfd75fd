//! A spill file for the memory store: values appended to an unlinked temporary file instead
//! of the heap, so a simulated federation of millions of envelopes needs memory for its
//! indexes only (the kernel's page cache keeps what is read often).
//!
//! Values are immutable once appended: a store that overwrites or deletes a key merely
//! stops referring to the old bytes (the file only grows, and disappears with the process).
//! Recent values sit in a tail buffer until it fills; a value is either wholly in the file,
//! wholly in one buffer on its way there, or wholly in the tail.
//!
//! A full tail is written by the process's spill writer thread, not by the thread that
//! appends: copying a megabyte into the kernel's page cache is work the simulation thread
//! need not wait for (at national scale it was a tenth of that thread's time). Until the
//! writer says a buffer is in the file, reads of its values copy from the buffer itself;
//! buffers come back to their arena to be filled again, so the heap does not grow by a
//! megabyte per write.

use std::collections::VecDeque;
use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{Sender, channel};
use std::sync::{Arc, Mutex, OnceLock};

/// Tail buffer size: one write per this many appended bytes.
const TAIL_BYTES: usize = 1 << 20;
/// Buffers one arena may have on their way to its file before appending waits for the
/// writer (bounds the memory a slow disk can tie up).
const MAX_IN_FLIGHT: usize = 64;

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
    #[cfg(any(test, feature = "simnet"))]
    pub(crate) fn offset(self) -> u64 {
        self.off
    }
}

/// What the writer thread reports back to one arena.
#[derive(Debug, Default)]
struct Progress {
    /// Bytes of the file written (the writer writes an arena's buffers in order).
    written: AtomicU64,
    /// The first write that failed, if one did.
    failed: Mutex<Option<String>>,
}

/// One buffer to write.
struct Job {
    file: Arc<File>,
    off: u64,
    buf: Arc<Vec<u8>>,
    progress: Arc<Progress>,
}

/// The process's spill writer: one thread, started at the first full buffer, writing
/// buffers in the order they are handed over.
fn writer() -> &'static Mutex<Sender<Job>> {
    static WRITER: OnceLock<Mutex<Sender<Job>>> = OnceLock::new();
    WRITER.get_or_init(|| {
        let (tx, rx) = channel::<Job>();
        std::thread::Builder::new()
            .name("spill-writer".into())
            .spawn(move || {
                for Job {
                    file,
                    off,
                    buf,
                    progress,
                } in rx
                {
                    let result = file.write_all_at(&buf, off);
                    let end = off + buf.len() as u64;
                    // Let go of the buffer before saying it is written, so that its arena
                    // can fill it again.
                    drop(buf);
                    match result {
                        Ok(()) => progress.written.store(end, Ordering::Release),
                        Err(e) => {
                            let mut f = progress.failed.lock().unwrap_or_else(|p| p.into_inner());
                            f.get_or_insert_with(|| e.to_string());
                        }
                    }
                }
            })
            .unwrap_or_else(|e| panic!("starting the spill writer thread: {e}"));
        Mutex::new(tx)
    })
}

/// The spill file of one pool.
#[derive(Debug)]
pub(crate) struct Arena {
    file: Arc<File>,
    path: PathBuf,
    /// Bytes handed to the writer (in the file or on their way).
    flushed: u64,
    /// Appended values not yet handed over.
    tail: Vec<u8>,
    /// Buffers handed over and not yet known written, oldest first, with their offsets.
    in_flight: VecDeque<(u64, Arc<Vec<u8>>)>,
    /// Written buffers, to be filled again.
    spare: Vec<Vec<u8>>,
    progress: Arc<Progress>,
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
            file: Arc::new(file),
            path,
            flushed: 0,
            tail: Vec::with_capacity(TAIL_BYTES),
            in_flight: VecDeque::new(),
            spare: Vec::new(),
            progress: Arc::default(),
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
        self.tail.extend_from_slice(value);
        if value.len() >= TAIL_BYTES {
            // A value larger than a tail is a buffer of its own.
            self.flush()?;
        }
        Ok(Spill { off, len })
    }

    /// Appends the bytes of `s` to `out`.
    pub(crate) fn read_into(&self, s: Spill, out: &mut Vec<u8>) -> io::Result<()> {
        let end = s.off + s.len() as u64;
        if s.off >= self.flushed {
            let at = (s.off - self.flushed) as usize;
            out.extend_from_slice(&self.tail[at..at + s.len()]);
            return Ok(());
        }
        if end > self.progress.written.load(Ordering::Acquire) {
            // Still on its way to the file, unless the writer finished it since.
            if let Some((at, buf)) = self
                .in_flight
                .iter()
                .find(|(at, buf)| *at <= s.off && end <= at + buf.len() as u64)
            {
                let i = (s.off - at) as usize;
                out.extend_from_slice(&buf[i..i + s.len()]);
                return Ok(());
            }
            self.check()?;
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

    /// Hands the tail to the writer.
    fn flush(&mut self) -> io::Result<()> {
        if self.tail.is_empty() {
            return Ok(());
        }
        self.reclaim()?;
        while self.in_flight.len() >= MAX_IN_FLIGHT {
            std::thread::yield_now();
            self.reclaim()?;
        }
        let next = self
            .spare
            .pop()
            .unwrap_or_else(|| Vec::with_capacity(TAIL_BYTES));
        let buf = Arc::new(std::mem::replace(&mut self.tail, next));
        let job = Job {
            file: Arc::clone(&self.file),
            off: self.flushed,
            buf: Arc::clone(&buf),
            progress: Arc::clone(&self.progress),
        };
        self.in_flight.push_back((self.flushed, buf));
        self.flushed += self.in_flight.back().map_or(0, |(_, b)| b.len() as u64);
        writer()
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .send(job)
            .map_err(|_| io::Error::other("the spill writer thread has stopped"))
    }

    /// Takes back the buffers the writer has written; reports a failed write.
    fn reclaim(&mut self) -> io::Result<()> {
        self.check()?;
        let written = self.progress.written.load(Ordering::Acquire);
        while let Some((at, buf)) = self.in_flight.front()
            && at + buf.len() as u64 <= written
        {
            let Some((_, buf)) = self.in_flight.pop_front() else {
                break;
            };
            // The writer lets go of a buffer before it reports it written.
            if let Ok(mut b) = Arc::try_unwrap(buf)
                && b.capacity() == TAIL_BYTES
                && self.spare.len() < 2
            {
                b.clear();
                self.spare.push(b);
            }
        }
        Ok(())
    }

    /// The writer's first failure for this file, as an error.
    fn check(&self) -> io::Result<()> {
        let failed = self
            .progress
            .failed
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        match failed.as_ref() {
            Some(e) => Err(io::Error::other(format!(
                "spill file {} (unlinked): writing failed: {e}",
                self.path.display()
            ))),
            None => Ok(()),
        }
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
    fn values_read_back_from_tail_buffers_and_file_alike() {
        let dir = std::env::temp_dir();
        let mut a = Arena::create(&dir).unwrap();
        let mut spills = Vec::new();
        // Enough to flush the tail several times, with one value larger than the tail;
        // read back as they go (some still in flight) and all at the end.
        for i in 0..6000u32 {
            let n = if i == 1500 {
                TAIL_BYTES + 7
            } else {
                (i as usize * 37) % 2000 + 1
            };
            let v: Vec<u8> = (0..n).map(|j| (i as usize + j) as u8).collect();
            spills.push((a.append(&v).unwrap(), v));
            let (s, v) = &spills[(i as usize * 7919) % spills.len()];
            assert_eq!(&a.read(*s).unwrap(), v);
        }
        assert!(a.flushed > 0 && !a.tail.is_empty());
        for (s, v) in &spills {
            assert_eq!(&a.read(*s).unwrap(), v);
        }
        assert_eq!(
            a.len(),
            spills.iter().map(|(s, _)| s.len() as u64).sum::<u64>()
        );
        // Once the writer has caught up, everything handed over is in the file.
        while a.progress.written.load(Ordering::Acquire) < a.flushed {
            std::thread::yield_now();
        }
        let mut whole = vec![0u8; a.flushed as usize];
        a.file.read_exact_at(&mut whole, 0).unwrap();
        for (s, v) in spills.iter().filter(|(s, _)| s.off < a.flushed) {
            assert_eq!(&whole[s.off as usize..][..s.len()], &v[..]);
        }
        a.reclaim().unwrap();
        assert!(a.in_flight.is_empty() && !a.spare.is_empty());
        // The file is unlinked from the start: nothing is left in the directory.
        assert!(!a.path.exists());
    }

    #[test]
    fn a_failed_write_is_reported_with_the_file() {
        let dir = std::env::temp_dir();
        let mut a = Arena::create(&dir).unwrap();
        // A file opened read-only: the writer's write fails.
        let ro = OpenOptions::new()
            .read(true)
            .open("/proc/self/exe")
            .unwrap();
        a.file = Arc::new(ro);
        let big = vec![1u8; TAIL_BYTES];
        a.append(&big).unwrap();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
        let err = loop {
            match a.append(&big) {
                Err(e) => break e,
                Ok(_) => {
                    assert!(std::time::Instant::now() < deadline, "no error reported");
                    std::thread::sleep(std::time::Duration::from_millis(10));
                }
            }
        };
        let msg = err.to_string();
        assert!(
            msg.contains("spill file") && msg.contains("writing failed"),
            "{msg}"
        );
    }
}

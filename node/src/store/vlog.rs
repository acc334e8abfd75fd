//! The store's write-ahead and value log: append-only segment files under `DIR/log/`.
//!
//! Every commit group is written here as one sequential write followed by one
//! `fdatasync` — the store's single durability point. A group writes its large values as
//! blob records and then one group record listing every key operation (large values by
//! pointer). sled then holds the index (small records and pointers) and is flushed in the
//! background: after a crash the groups it missed are replayed from here.
//!
//! Record: `len u32 LE ‖ crc32 u32 LE (of kind ‖ payload) ‖ kind u8 ‖ payload`. A torn or
//! corrupt record at the end of the last segment (a crash mid-write, before the sync, so
//! nothing was promised) is cut off on open; anywhere else it is an error.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use super::StoreError;

/// A segment is closed and a new one started once it is this large.
pub const SEGMENT_BYTES_MAX: u64 = 256 * 1024 * 1024;
/// Record kind: a large value.
pub const KIND_BLOB: u8 = 1;
/// Record kind: a commit group.
pub const KIND_GROUP: u8 = 2;
const HEADER: usize = 9;
/// Encoded size of a [`Ptr`].
pub const PTR_BYTES: usize = 16;

/// Where a blob's payload lies.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Ptr {
    /// Segment number.
    pub seg: u32,
    /// Payload offset in the segment.
    pub off: u64,
    /// Payload length.
    pub len: u32,
}

impl Ptr {
    /// 16 bytes: seg, off, len (big-endian).
    pub fn encode(&self) -> [u8; PTR_BYTES] {
        let mut b = [0u8; PTR_BYTES];
        b[..4].copy_from_slice(&self.seg.to_be_bytes());
        b[4..12].copy_from_slice(&self.off.to_be_bytes());
        b[12..].copy_from_slice(&self.len.to_be_bytes());
        b
    }

    /// The inverse of [`Ptr::encode`].
    pub fn decode(b: &[u8]) -> Option<Ptr> {
        if b.len() != PTR_BYTES {
            return None;
        }
        Some(Ptr {
            seg: u32::from_be_bytes(b[..4].try_into().ok()?),
            off: u64::from_be_bytes(b[4..12].try_into().ok()?),
            len: u32::from_be_bytes(b[12..].try_into().ok()?),
        })
    }
}

/// A position in the log: the end of a record.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Pos {
    /// Segment number.
    pub seg: u32,
    /// Byte offset in it.
    pub off: u64,
}

/// The log.
pub struct Log {
    dir: PathBuf,
    /// A segment is closed once it is this large.
    segment_bytes: u64,
    /// Open segments by number (index = segment number - first).
    segments: Vec<File>,
    first: u32,
    cur_len: u64,
}

fn io(path: &Path, e: std::io::Error) -> StoreError {
    StoreError::Backend(format!("{}: {e}", path.display()))
}

fn seg_name(n: u32) -> String {
    format!("{n:010}.log")
}

impl Log {
    /// Opens (creating if needed) the log in `dir`. The caller then [`Log::replay`]s.
    pub fn open(dir: &Path) -> Result<Log, StoreError> {
        Self::open_with(dir, SEGMENT_BYTES_MAX)
    }

    /// [`Log::open`] with segments closed at `segment_bytes` (tests use small ones).
    pub fn open_with(dir: &Path, segment_bytes: u64) -> Result<Log, StoreError> {
        std::fs::create_dir_all(dir).map_err(|e| io(dir, e))?;
        let mut nums: Vec<u32> = std::fs::read_dir(dir)
            .map_err(|e| io(dir, e))?
            .filter_map(|e| e.ok())
            .filter_map(|e| {
                e.file_name()
                    .to_str()?
                    .strip_suffix(".log")?
                    .parse::<u32>()
                    .ok()
            })
            .collect();
        nums.sort_unstable();
        if nums.is_empty() {
            nums.push(1);
        }
        for w in nums.windows(2) {
            if w[1] != w[0] + 1 {
                return Err(StoreError::Backend(format!(
                    "{}: log segment {} is missing",
                    dir.display(),
                    w[0] + 1
                )));
            }
        }
        let mut segments = Vec::new();
        for n in &nums {
            let p = dir.join(seg_name(*n));
            let f = OpenOptions::new()
                .read(true)
                .append(true)
                .create(true)
                .open(&p)
                .map_err(|e| io(&p, e))?;
            segments.push(f);
        }
        let last = segments
            .last()
            .map_or(Ok(0), |f| f.metadata().map(|m| m.len()));
        let cur_len = last.map_err(|e| io(dir, e))?;
        Ok(Log {
            dir: dir.to_path_buf(),
            segment_bytes: segment_bytes.max(1),
            segments,
            first: nums[0],
            cur_len,
        })
    }

    /// The segment being written.
    pub fn cur_seg(&self) -> u32 {
        self.first + self.segments.len() as u32 - 1
    }

    /// The oldest segment.
    pub fn first_seg(&self) -> u32 {
        self.first
    }

    /// Bytes in segment `seg` (0 if it is not there).
    pub fn seg_len(&self, seg: u32) -> u64 {
        seg.checked_sub(self.first)
            .and_then(|i| self.segments.get(i as usize))
            .and_then(|f| f.metadata().ok())
            .map_or(0, |m| m.len())
    }

    /// Deletes the oldest segment. The caller has made sure no index points into it and no
    /// replay starts in it; segments stay contiguous, so a crash before or after the
    /// removal opens either way.
    pub fn drop_first(&mut self) -> Result<(), StoreError> {
        if self.segments.len() < 2 {
            return Err(StoreError::Backend(
                "the log's only segment cannot be dropped".into(),
            ));
        }
        let p = self.dir.join(seg_name(self.first));
        std::fs::remove_file(&p).map_err(|e| io(&p, e))?;
        File::open(&self.dir)
            .and_then(|d| d.sync_all())
            .map_err(|e| io(&self.dir, e))?;
        self.segments.remove(0);
        self.first += 1;
        Ok(())
    }

    /// Starts a new segment if the current one is full. Call before building a group.
    pub fn roll_if_full(&mut self) -> Result<(), StoreError> {
        if self.cur_len < self.segment_bytes {
            return Ok(());
        }
        let n = self.cur_seg() + 1;
        let p = self.dir.join(seg_name(n));
        let f = OpenOptions::new()
            .read(true)
            .append(true)
            .create(true)
            .open(&p)
            .map_err(|e| io(&p, e))?;
        File::open(&self.dir)
            .and_then(|d| d.sync_all())
            .map_err(|e| io(&self.dir, e))?;
        self.segments.push(f);
        self.cur_len = 0;
        Ok(())
    }

    /// Appends a record to `buf` (to be written by [`Log::write_and_sync`]); returns where
    /// its payload will lie.
    pub fn append(&self, buf: &mut Vec<u8>, kind: u8, payload: &[u8]) -> Ptr {
        let off = self.cur_len + buf.len() as u64 + HEADER as u64;
        let mut h = crc32fast::Hasher::new();
        h.update(&[kind]);
        h.update(payload);
        buf.extend_from_slice(&(payload.len() as u32).to_le_bytes());
        buf.extend_from_slice(&h.finalize().to_le_bytes());
        buf.push(kind);
        buf.extend_from_slice(payload);
        Ptr {
            seg: self.cur_seg(),
            off,
            len: payload.len() as u32,
        }
    }

    /// The position just after `buf` once written.
    pub fn end_after(&self, buf: &[u8]) -> Pos {
        Pos {
            seg: self.cur_seg(),
            off: self.cur_len + buf.len() as u64,
        }
    }

    /// Writes `buf` at the end of the current segment and makes it durable.
    pub fn write_and_sync(&mut self, buf: &[u8]) -> Result<(), StoreError> {
        self.write_unsynced(buf)?()
    }

    /// Writes `buf` at the end of the current segment without waiting for the disk, and
    /// returns the flush that makes it durable (a handle of its own on the segment, so it
    /// can run on another thread while the log is written on).
    pub fn write_unsynced(
        &mut self,
        buf: &[u8],
    ) -> Result<impl FnOnce() -> Result<(), StoreError> + Send + 'static, StoreError> {
        let p = self.dir.join(seg_name(self.cur_seg()));
        let f = self
            .segments
            .last_mut()
            .ok_or_else(|| StoreError::Backend("log has no segment".into()))?;
        f.write_all(buf).map_err(|e| io(&p, e))?;
        let handle = f.try_clone().map_err(|e| io(&p, e))?;
        self.cur_len += buf.len() as u64;
        Ok(move || handle.sync_data().map_err(|e| io(&p, e)))
    }

    /// Reads a blob's payload.
    pub fn read(&self, ptr: Ptr) -> Result<Vec<u8>, StoreError> {
        let f = ptr
            .seg
            .checked_sub(self.first)
            .and_then(|i| self.segments.get(i as usize))
            .ok_or_else(|| StoreError::Backend(format!("log segment {} is not there", ptr.seg)))?;
        let mut out = vec![0u8; ptr.len as usize];
        f.read_exact_at(&mut out, ptr.off)
            .map_err(|e| StoreError::Backend(format!("log segment {}: {e}", ptr.seg)))?;
        Ok(out)
    }

    /// Calls `f(kind, payload, end position)` for every record from `from` on, in order.
    /// A torn or corrupt tail of the last segment is cut off (nothing in it was
    /// acknowledged). Records are read one at a time, so replay memory does not grow with
    /// the log.
    pub fn replay(
        &mut self,
        from: Pos,
        mut f: impl FnMut(u8, &[u8], Pos) -> Result<(), StoreError>,
    ) -> Result<(), StoreError> {
        let last = self.cur_seg();
        let mut seg = from.seg.max(self.first);
        let mut off = if seg == from.seg { from.off } else { 0 };
        while seg <= last {
            let file = &self.segments[(seg - self.first) as usize];
            let len = file.metadata().map_err(|e| io(&self.dir, e))?.len();
            loop {
                if off == len {
                    break;
                }
                match read_record(file, off, len) {
                    Some((kind, payload, next)) => {
                        off = next;
                        f(kind, &payload, Pos { seg, off })?;
                    }
                    None if seg == last => {
                        tracing::warn!(
                            segment = seg,
                            offset = off,
                            bytes = len - off,
                            "cutting off a torn record at the end of the log"
                        );
                        file.set_len(off).map_err(|e| io(&self.dir, e))?;
                        file.sync_all().map_err(|e| io(&self.dir, e))?;
                        self.cur_len = off;
                        break;
                    }
                    None => {
                        return Err(StoreError::Corrupt {
                            tree: "log",
                            detail: format!("segment {seg}: bad record at offset {off}"),
                        });
                    }
                }
            }
            seg += 1;
            off = 0;
        }
        Ok(())
    }

    /// Bytes in all segments.
    pub fn size(&self) -> u64 {
        self.segments
            .iter()
            .filter_map(|f| f.metadata().ok())
            .map(|m| m.len())
            .sum()
    }
}

fn read_record(f: &File, off: u64, len: u64) -> Option<(u8, Vec<u8>, u64)> {
    if len - off < HEADER as u64 {
        return None;
    }
    let mut h = [0u8; HEADER];
    f.read_exact_at(&mut h, off).ok()?;
    let plen = u32::from_le_bytes(h[..4].try_into().ok()?) as u64;
    let crc = u32::from_le_bytes(h[4..8].try_into().ok()?);
    if len - off - (HEADER as u64) < plen {
        return None;
    }
    let mut payload = vec![0u8; plen as usize];
    f.read_exact_at(&mut payload, off + HEADER as u64).ok()?;
    let mut c = crc32fast::Hasher::new();
    c.update(&[h[8]]);
    c.update(&payload);
    if c.finalize() != crc {
        return None;
    }
    Some((h[8], payload, off + HEADER as u64 + plen))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tmp(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("renkei-vlog-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        d
    }

    #[test]
    fn blobs_read_back_and_a_torn_tail_is_cut() {
        let d = tmp("torn");
        let mut log = Log::open(&d).unwrap();
        let mut buf = Vec::new();
        let a = log.append(&mut buf, KIND_BLOB, b"first value");
        let b = log.append(&mut buf, KIND_GROUP, b"group");
        log.write_and_sync(&buf).unwrap();
        assert_eq!(log.read(a).unwrap(), b"first value");
        assert_eq!(log.read(b).unwrap(), b"group");
        assert_eq!(Ptr::decode(&a.encode()), Some(a));
        // A torn write: half a record at the end.
        let mut torn = Vec::new();
        log.append(&mut torn, KIND_GROUP, b"never acknowledged");
        log.write_and_sync(&torn[..torn.len() / 2]).unwrap();
        drop(log);
        let mut log = Log::open(&d).unwrap();
        let mut recs = Vec::new();
        log.replay(Pos { seg: 1, off: 0 }, |k, p, end| {
            recs.push((k, p.to_vec(), end));
            Ok(())
        })
        .unwrap();
        assert_eq!(recs.len(), 2);
        assert_eq!(recs[1].1, b"group");
        assert_eq!(log.size(), recs[1].2.off);
        // Writing after the cut continues cleanly.
        let mut buf = Vec::new();
        let c = log.append(&mut buf, KIND_BLOB, b"after");
        log.write_and_sync(&buf).unwrap();
        assert_eq!(log.read(c).unwrap(), b"after");
        let _ = std::fs::remove_dir_all(&d);
    }

    #[test]
    fn a_flipped_byte_in_a_closed_segment_is_corruption() {
        let d = tmp("flip");
        let mut log = Log::open(&d).unwrap();
        let mut buf = Vec::new();
        log.append(&mut buf, KIND_BLOB, b"value");
        log.write_and_sync(&buf).unwrap();
        log.cur_len = SEGMENT_BYTES_MAX;
        log.roll_if_full().unwrap();
        drop(log);
        let p = d.join(seg_name(1));
        let mut bytes = std::fs::read(&p).unwrap();
        bytes[HEADER] ^= 1;
        std::fs::write(&p, bytes).unwrap();
        let mut log = Log::open(&d).unwrap();
        let e = log
            .replay(Pos { seg: 1, off: 0 }, |_, _, _| Ok(()))
            .unwrap_err()
            .to_string();
        assert!(e.contains("segment 1: bad record at offset 0"), "{e}");
        let _ = std::fs::remove_dir_all(&d);
    }
}

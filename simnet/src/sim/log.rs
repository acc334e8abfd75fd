//! The event log: every processed input and released effect is folded into a SHA-256
//! (the run's fingerprint: same seed, same hash) and, when tracing, written as a text line.

use std::io::Write;

use sha2::{Digest, Sha256};

/// Event-log fingerprint and optional trace sink.
pub struct EventLog {
    hash: Sha256,
    trace: Option<Box<dyn Write + Send + Sync>>,
    trace_error: Option<std::io::Error>,
    records: u64,
    /// Records held back to be folded later, in an order of the caller's choosing (see
    /// [`EventLog::divert`]).
    diverted: Option<Vec<Diverted>>,
}

/// A record held back: time, node, tag, numbers.
pub(crate) type Diverted = (u64, usize, &'static str, Vec<u64>);

impl std::fmt::Debug for EventLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EventLog")
            .field("records", &self.records)
            .field("tracing", &self.trace.is_some())
            .finish()
    }
}

impl EventLog {
    pub(crate) fn new() -> Self {
        EventLog {
            hash: Sha256::new(),
            trace: None,
            trace_error: None,
            records: 0,
            diverted: None,
        }
    }

    pub(crate) fn set_trace(&mut self, w: Box<dyn Write + Send + Sync>) {
        self.trace = Some(w);
    }

    /// Folds one record: time, node, a tag and a few numbers.
    pub(crate) fn record(&mut self, t: u64, node: usize, tag: &'static str, nums: &[u64]) {
        if let Some(d) = self.diverted.as_mut() {
            d.push((t, node, tag, nums.to_vec()));
            return;
        }
        self.records += 1;
        self.hash.update(t.to_le_bytes());
        self.hash.update((node as u64).to_le_bytes());
        self.hash.update(tag.as_bytes());
        for n in nums {
            self.hash.update(n.to_le_bytes());
        }
        if let Some(w) = self.trace.as_mut() {
            let mut line = format!("{t} n{node} {tag}");
            for n in nums {
                line.push(' ');
                line.push_str(&n.to_string());
            }
            line.push('\n');
            if let Err(e) = w.write_all(line.as_bytes()) {
                self.trace_error.get_or_insert(e);
                self.trace = None;
            }
        }
    }

    /// Holds back every record from now until [`EventLog::take_diverted`].
    pub(crate) fn divert(&mut self) {
        self.diverted.get_or_insert_with(Vec::new);
    }

    /// The records held back since [`EventLog::divert`]; records are folded again.
    pub(crate) fn take_diverted(&mut self) -> Vec<Diverted> {
        self.diverted.take().unwrap_or_default()
    }

    /// Folds records held back earlier.
    pub(crate) fn fold(&mut self, records: Vec<Diverted>) {
        for (t, node, tag, nums) in records {
            self.record(t, node, tag, &nums);
        }
    }

    /// A free-text trace line (faults, derived options); folded into the hash too.
    pub(crate) fn note(&mut self, t: u64, text: &str) {
        self.records += 1;
        self.hash.update(t.to_le_bytes());
        self.hash.update(text.as_bytes());
        if let Some(w) = self.trace.as_mut()
            && let Err(e) = writeln!(w, "{t} # {text}")
        {
            self.trace_error.get_or_insert(e);
            self.trace = None;
        }
    }

    /// Records folded so far.
    pub fn records(&self) -> u64 {
        self.records
    }

    /// The fingerprint so far (hex).
    pub fn hash_hex(&self) -> String {
        hex::encode(self.hash.clone().finalize())
    }

    /// Flushes the trace; returns the first write error, if any.
    pub fn finish(&mut self) -> Result<(), std::io::Error> {
        if let Some(w) = self.trace.as_mut() {
            w.flush()?;
        }
        match self.trace_error.take() {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }
}

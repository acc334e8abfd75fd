//! Hash maps and sets for what is only looked up, never iterated, so that their order
//! cannot show in a run (the workspace's clippy rule asks for B-trees elsewhere): the
//! checkers look up millions of units, envelopes and sent records.
#![allow(clippy::disallowed_types)]

/// A map that is only looked up.
pub type LookupMap<K, V> = std::collections::HashMap<K, V>;
/// A set that is only looked up.
pub type LookupSet<T> = std::collections::HashSet<T>;

//! The standard-spec CSV files (ケアプランデータ連携標準仕様 Ver 4.1): layouts as data, file
//! names, MS932 decoding, validation, and send units.
//!
//! Renkei checks what an office sends before it leaves, with findings a clerk can act on,
//! and never rewrites the bytes: what is validated is what is delivered.
//!
//! # Layout
//!
//! - [`layout`]: column layouts per CSV version, embedded from `protocol/spec/*.toml`.
//! - [`name`]: file names ([`parse_file_name`]).
//! - [`decode`](mod@decode): Shift_JIS (MS932) decoding, BOM / UTF-8 detection.
//! - [`format`](mod@format): value formats checked on bytes.
//! - [`validate`]: one file against its layout ([`check_file`]).
//! - [`unit`](mod@unit): send units ([`check_send_unit`], [`group_send_units`]).
//! - [`finding`]: findings ([`Finding`], [`Severity`]).
//! - [`rule_ja`](mod@rule_ja): what each rule means, in Japanese ([`rule_ja()`]).
//!
//! Rule ids and messages are listed in `docs/CSV.md`.

pub mod decode;
pub mod finding;
pub mod format;
pub mod layout;
pub mod name;
pub mod rule_ja;
pub mod unit;
pub mod validate;

pub use finding::{Finding, Severity};
pub use name::{FileName, parse_file_name};
pub use rule_ja::rule_ja;
pub use unit::{
    RelationKey, SendUnit, UnitKind, UnitReport, check_send_unit, check_send_unit_in,
    group_send_units,
};
pub use validate::{FileReport, Scratch, check_file, check_file_in};

//! The roster: the operators recognised by the federation, signed by the federation
//! authority key (the trust anchor), and office bindings: "office X is homed at operator Y
//! since T", signed by Y.
//!
//! ```text
//! roster   = [1, serial: uint, issued_at_ms: uint, authority: bstr .size 32, [* operator]]
//! operator = [name: tstr, id: bstr .size 32, enc_key: bstr .size 32, relay: bool,
//!             [* addr: tstr], valid_from_ms: uint, valid_until_ms: uint / null,
//!             [* [old_id: bstr .size 32, old_enc_key: bstr .size 32, expires_ms: uint]]]
//! signed_roster = [roster: bstr, signature: bstr .size 64]   ; label "renkei/roster/v1"
//! binding  = [1, office: tstr, [* kind: tstr], operator: bstr .size 32, since_ms: uint,
//!             released: bool]
//! signed_binding = [binding: bstr, signature: bstr .size 64] ; label "renkei/binding/v1"
//! ```

use ciborium::value::Value;

use crate::cbor::{self, Fields};
use crate::error::{DecodeError, VerifyError};
use crate::ids::{OfficeNumber, OperatorId, ServiceKind};
use crate::keys::{
    EncPublicKey, SignatureCheck, SigningIdentity, Strict, check_labelled, verify_labelled,
};
use crate::limits::{BINDING_BYTES_MAX, ROSTER_BYTES_MAX, ROSTER_OPERATORS_MAX};

/// Signature label of rosters.
pub const ROSTER_SIG_LABEL: &[u8] = b"renkei/roster/v1";
/// Signature label of bindings.
pub const BINDING_SIG_LABEL: &[u8] = b"renkei/binding/v1";
const ROSTER_VERSION: u64 = 1;
const BINDING_VERSION: u64 = 1;
/// A binding that names its office (7 fields): version 1's fields, then the name.
const BINDING_VERSION_NAMED: u64 = 2;
/// Characters of an office name a binding carries, at most.
pub const BINDING_NAME_CHARS_MAX: usize = 100;

/// A retired key pair of an operator, still valid until `expires_ms`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OldKey {
    /// The old signing key.
    pub id: OperatorId,
    /// The old sealing key.
    pub enc_key: EncPublicKey,
    /// Until when signatures by (and seals to) this key are accepted.
    pub expires_ms: u64,
}

/// One operator of the federation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OperatorEntry {
    /// Display name.
    pub name: String,
    /// Current signing key (identity, libp2p PeerId).
    pub id: OperatorId,
    /// Current sealing key.
    pub enc_key: EncPublicKey,
    /// Whether this operator relays for others.
    pub relay: bool,
    /// libp2p multiaddresses to dial.
    pub addrs: Vec<String>,
    /// Start of validity.
    pub valid_from_ms: u64,
    /// End of validity, if any.
    pub valid_until_ms: Option<u64>,
    /// Retired keys in their overlap period.
    pub old_keys: Vec<OldKey>,
}

impl OperatorEntry {
    /// Whether the operator's current key is valid at `at_ms`.
    pub fn valid_at(&self, at_ms: u64) -> bool {
        at_ms >= self.valid_from_ms && self.valid_until_ms.is_none_or(|u| at_ms < u)
    }
}

/// The federation roster.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Roster {
    /// Increases with every new roster; nodes keep the highest.
    pub serial: u64,
    /// Issue time.
    pub issued_at_ms: u64,
    /// The federation authority's public key.
    pub authority: OperatorId,
    /// The operators.
    pub operators: Vec<OperatorEntry>,
}

impl Roster {
    /// The entry whose current key is `id`.
    pub fn operator(&self, id: &OperatorId) -> Option<&OperatorEntry> {
        self.operators.iter().find(|o| &o.id == id)
    }

    /// The operator entry for which `key` was a valid signing key at `at_ms`: its current
    /// key within validity, or an old key before its expiry.
    pub fn signer_valid_at(&self, key: &OperatorId, at_ms: u64) -> Option<&OperatorEntry> {
        self.operators.iter().find(|o| {
            (o.id == *key && o.valid_at(at_ms))
                || o.old_keys.iter().any(|k| {
                    k.id == *key
                        && at_ms < k.expires_ms
                        && at_ms >= o.valid_from_ms
                        && o.valid_until_ms.is_none_or(|u| at_ms < u)
                })
        })
    }

    /// The entry that lists `key` as its current key or, failing that, as one of its
    /// retired keys (whatever their expiry): the operator an envelope addressed to an old
    /// key, or a binding signed by one, belongs to now.
    pub fn operator_with_key(&self, key: &OperatorId) -> Option<&OperatorEntry> {
        self.operator(key).or_else(|| {
            self.operators
                .iter()
                .find(|o| o.old_keys.iter().any(|k| k.id == *key))
        })
    }

    /// Whether `a` and `b` are keys of the same operator: equal, or both the current or a
    /// retired key of one roster entry (key rotation).
    pub fn same_operator(&self, a: &OperatorId, b: &OperatorId) -> bool {
        a == b
            || self.operators.iter().any(|o| {
                let has = |k: &OperatorId| o.id == *k || o.old_keys.iter().any(|x| x.id == *k);
                has(a) && has(b)
            })
    }

    /// Operators that relay.
    pub fn relays(&self) -> impl Iterator<Item = &OperatorEntry> {
        self.operators.iter().filter(|o| o.relay)
    }

    fn to_value(&self) -> Value {
        let ops = self
            .operators
            .iter()
            .map(|o| {
                Value::Array(vec![
                    cbor::text(&o.name),
                    cbor::bytes(o.id.as_bytes()),
                    cbor::bytes(&o.enc_key),
                    Value::Bool(o.relay),
                    Value::Array(o.addrs.iter().map(|a| cbor::text(a)).collect()),
                    cbor::uint(o.valid_from_ms),
                    o.valid_until_ms.map_or(Value::Null, cbor::uint),
                    Value::Array(
                        o.old_keys
                            .iter()
                            .map(|k| {
                                Value::Array(vec![
                                    cbor::bytes(k.id.as_bytes()),
                                    cbor::bytes(&k.enc_key),
                                    cbor::uint(k.expires_ms),
                                ])
                            })
                            .collect(),
                    ),
                ])
            })
            .collect();
        Value::Array(vec![
            cbor::uint(ROSTER_VERSION),
            cbor::uint(self.serial),
            cbor::uint(self.issued_at_ms),
            cbor::bytes(self.authority.as_bytes()),
            Value::Array(ops),
        ])
    }

    /// Canonical bytes.
    pub fn encode(&self) -> Vec<u8> {
        cbor::encode(&self.to_value())
    }

    /// Decodes canonical roster bytes.
    pub fn decode(bytes: &[u8]) -> Result<Roster, DecodeError> {
        const W: &str = "roster";
        let mut f = Fields::new(cbor::decode_canonical(bytes, W, ROSTER_BYTES_MAX)?, W, 5)?;
        f.version(ROSTER_VERSION)?;
        let serial = f.uint("serial")?;
        let issued_at_ms = f.uint("issued_at")?;
        let authority = OperatorId(f.array("authority")?);
        let mut operators = Vec::new();
        for item in f.list("operators", ROSTER_OPERATORS_MAX)? {
            let mut g = Fields::new(item, "roster operator", 8)?;
            let name = g.text("name")?;
            let id = OperatorId(g.array("id")?);
            let enc_key = g.array("enc_key")?;
            let relay = g.bool("relay")?;
            let addrs = g
                .list("addrs", 16)?
                .into_iter()
                .map(|a| match a {
                    Value::Text(s) => Ok(s),
                    _ => Err(DecodeError::Field {
                        what: W,
                        field: "addrs",
                        expected: "text strings",
                    }),
                })
                .collect::<Result<_, _>>()?;
            let valid_from_ms = g.uint("valid_from")?;
            let valid_until_ms = g.opt_uint("valid_until")?;
            let mut old_keys = Vec::new();
            for k in g.list("old_keys", 16)? {
                let mut h = Fields::new(k, "roster old key", 3)?;
                old_keys.push(OldKey {
                    id: OperatorId(h.array("id")?),
                    enc_key: h.array("enc_key")?,
                    expires_ms: h.uint("expires")?,
                });
            }
            operators.push(OperatorEntry {
                name,
                id,
                enc_key,
                relay,
                addrs,
                valid_from_ms,
                valid_until_ms,
                old_keys,
            });
        }
        Ok(Roster {
            serial,
            issued_at_ms,
            authority,
            operators,
        })
    }

    /// Signs the roster with the federation authority key (whose id must be `authority`).
    pub fn sign(self, authority: &SigningIdentity) -> SignedRoster {
        let bytes = self.encode();
        let signature = authority.sign(ROSTER_SIG_LABEL, &bytes);
        SignedRoster {
            roster: self,
            bytes,
            signature,
        }
    }
}

/// A roster with the authority's signature.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SignedRoster {
    roster: Roster,
    bytes: Vec<u8>,
    signature: [u8; 64],
}

impl SignedRoster {
    /// The roster.
    pub fn roster(&self) -> &Roster {
        &self.roster
    }
    /// Canonical `[roster bytes, signature]`.
    pub fn encode(&self) -> Vec<u8> {
        cbor::encode(&Value::Array(vec![
            cbor::bytes(&self.bytes),
            cbor::bytes(&self.signature),
        ]))
    }
    /// Decodes. Does not verify.
    pub fn decode(bytes: &[u8]) -> Result<SignedRoster, DecodeError> {
        const W: &str = "signed roster";
        let mut f = Fields::new(
            cbor::decode_canonical(bytes, W, ROSTER_BYTES_MAX + 128)?,
            W,
            2,
        )?;
        let inner = f.bytes("roster")?;
        let signature = f.array("signature")?;
        Ok(SignedRoster {
            roster: Roster::decode(&inner)?,
            bytes: inner,
            signature,
        })
    }
    /// Verifies that the roster is signed by `authority`, the federation's trust anchor.
    pub fn verify(&self, authority: &OperatorId) -> Result<(), VerifyError> {
        self.verify_by(authority, &Strict)
    }

    /// [`SignedRoster::verify`] by `check`.
    pub fn verify_by(
        &self,
        authority: &OperatorId,
        check: &dyn SignatureCheck,
    ) -> Result<(), VerifyError> {
        if &self.roster.authority != authority {
            return Err(VerifyError::WrongAuthority {
                got: self.roster.authority.to_string(),
                want: authority.to_string(),
            });
        }
        check_labelled(
            check,
            "roster",
            authority,
            ROSTER_SIG_LABEL,
            &self.bytes,
            &self.signature,
        )
    }
}

/// "Office X is homed at operator Y since T" (or, with `released`, no longer).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OfficeBinding {
    /// The office.
    pub office: OfficeNumber,
    /// Service kinds it runs.
    pub kinds: Vec<ServiceKind>,
    /// Its home operator.
    pub operator: OperatorId,
    /// Since when.
    pub since_ms: u64,
    /// Whether this record releases the office.
    pub released: bool,
    /// The office's name (事業所名, public like its number), so offices at other operators
    /// see who sends and receives; empty when the home has none. A binding with a name is
    /// version 2 (seven fields); one without keeps version 1's bytes.
    pub name: String,
}

impl OfficeBinding {
    fn to_value(&self) -> Value {
        let named = !self.name.is_empty();
        let mut v = vec![
            cbor::uint(if named {
                BINDING_VERSION_NAMED
            } else {
                BINDING_VERSION
            }),
            cbor::text(self.office.as_str()),
            Value::Array(self.kinds.iter().map(|k| cbor::text(k.as_str())).collect()),
            cbor::bytes(self.operator.as_bytes()),
            cbor::uint(self.since_ms),
            Value::Bool(self.released),
        ];
        if named {
            v.push(cbor::text(&self.name));
        }
        Value::Array(v)
    }

    /// An office name as a binding may carry it: trimmed, at most
    /// [`BINDING_NAME_CHARS_MAX`] characters, no control characters.
    pub fn name_for(name: &str) -> String {
        name.trim()
            .chars()
            .filter(|c| !c.is_control())
            .take(BINDING_NAME_CHARS_MAX)
            .collect()
    }

    fn name_ok(name: &str) -> bool {
        !name.is_empty() && Self::name_for(name) == name
    }
    /// Canonical bytes.
    pub fn encode(&self) -> Vec<u8> {
        cbor::encode(&self.to_value())
    }

    /// Decodes canonical binding bytes.
    pub fn decode(bytes: &[u8]) -> Result<OfficeBinding, DecodeError> {
        const W: &str = "office binding";
        let value = cbor::decode_canonical(bytes, W, BINDING_BYTES_MAX)?;
        let named = matches!(&value, Value::Array(items) if items.len() == 7);
        let mut f = Fields::new(value, W, if named { 7 } else { 6 })?;
        f.version(if named {
            BINDING_VERSION_NAMED
        } else {
            BINDING_VERSION
        })?;
        let office = f.parse("office")?;
        let mut kinds = Vec::new();
        for k in f.list("kinds", 32)? {
            match k {
                Value::Text(s) => kinds.push(s.parse().map_err(|e| f.id_err("kinds", e))?),
                _ => {
                    return Err(DecodeError::Field {
                        what: W,
                        field: "kinds",
                        expected: "text strings",
                    });
                }
            }
        }
        let operator = OperatorId(f.array("operator")?);
        let since_ms = f.uint("since")?;
        let released = f.bool("released")?;
        let name = if named {
            let n = f.text("name")?;
            if !Self::name_ok(&n) {
                return Err(DecodeError::Field {
                    what: W,
                    field: "name",
                    expected: "a non-empty office name of at most 100 characters, trimmed, without control characters",
                });
            }
            n
        } else {
            String::new()
        };
        Ok(OfficeBinding {
            office,
            kinds,
            operator,
            since_ms,
            released,
            name,
        })
    }
    /// Signs the binding as its operator.
    pub fn sign(self, operator: &SigningIdentity) -> SignedBinding {
        let bytes = self.encode();
        let signature = operator.sign(BINDING_SIG_LABEL, &bytes);
        SignedBinding {
            binding: self,
            bytes,
            signature,
        }
    }
}

/// A binding with its operator's signature.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SignedBinding {
    binding: OfficeBinding,
    bytes: Vec<u8>,
    signature: [u8; 64],
}

impl SignedBinding {
    /// The binding.
    pub fn binding(&self) -> &OfficeBinding {
        &self.binding
    }
    /// The binding, without its signature.
    pub fn into_binding(self) -> OfficeBinding {
        self.binding
    }
    /// Canonical `[binding bytes, signature]`.
    pub fn encode(&self) -> Vec<u8> {
        cbor::encode(&Value::Array(vec![
            cbor::bytes(&self.bytes),
            cbor::bytes(&self.signature),
        ]))
    }
    /// Decodes. Does not verify.
    pub fn decode(bytes: &[u8]) -> Result<SignedBinding, DecodeError> {
        const W: &str = "signed binding";
        let mut f = Fields::new(
            cbor::decode_canonical(bytes, W, BINDING_BYTES_MAX + 128)?,
            W,
            2,
        )?;
        let inner = f.bytes("binding")?;
        let signature = f.array("signature")?;
        Ok(SignedBinding {
            binding: OfficeBinding::decode(&inner)?,
            bytes: inner,
            signature,
        })
    }
    /// Verifies the binding: signed by its operator (a claim), or by the roster's
    /// federation authority (an assignment, which outranks claims: see
    /// [`BindingSigner`]); either way the operator must be in the roster at the binding's
    /// time. Says who signed.
    pub fn verify(&self, roster: &Roster) -> Result<BindingSigner, VerifyError> {
        self.verify_by(roster, &Strict)
    }

    /// [`SignedBinding::verify`] by `check`.
    pub fn verify_by(
        &self,
        roster: &Roster,
        check: &dyn SignatureCheck,
    ) -> Result<BindingSigner, VerifyError> {
        let b = &self.binding;
        let signer = match check_labelled(
            check,
            "binding",
            &b.operator,
            BINDING_SIG_LABEL,
            &self.bytes,
            &self.signature,
        ) {
            Ok(()) => BindingSigner::Operator,
            Err(operator_err) => {
                check_labelled(
                    check,
                    "binding",
                    &roster.authority,
                    BINDING_SIG_LABEL,
                    &self.bytes,
                    &self.signature,
                )
                .map_err(|_| operator_err)?;
                BindingSigner::Authority
            }
        };
        let known = match signer {
            BindingSigner::Operator => roster.signer_valid_at(&b.operator, b.since_ms).is_some(),
            // The authority names the operator by its current (or a retired) key.
            BindingSigner::Authority => roster
                .operator_with_key(&b.operator)
                .is_some_and(|o| o.valid_at(b.since_ms)),
        };
        if !known {
            return Err(VerifyError::UnknownSigner {
                what: "binding",
                key: b.operator.to_string(),
                at_ms: b.since_ms,
            });
        }
        Ok(signer)
    }

    /// Whether the binding is signed with `key` (no roster needed: for a node checking
    /// an assignment it is handed against the authority key it trusts).
    pub fn signed_by(&self, key: &OperatorId) -> bool {
        verify_labelled(
            "binding",
            key,
            BINDING_SIG_LABEL,
            &self.bytes,
            &self.signature,
        )
        .is_ok()
    }
}

/// Who signed an office binding.
///
/// An operator signs *claims* for the offices it homes; the federation authority signs
/// *assignments* — "office X is homed at operator Y since T", the federation's
/// authoritative record (as PEPPOL's SML is for where a participant is). A node takes an
/// assignment over any claim, and a newer assignment over an older one (an office moving
/// operators); a claim never displaces an assignment. No operator alone can then take an
/// office the authority assigned elsewhere.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BindingSigner {
    /// The binding's own operator (a claim).
    Operator,
    /// The federation authority (an assignment).
    Authority,
}

impl BindingSigner {
    /// Whether this is an authority's assignment.
    pub fn is_authority(self) -> bool {
        self == BindingSigner::Authority
    }
}

#[cfg(test)]
mod binding_decode_tests {
    use super::*;

    fn signed(office: &str, kinds: &[&str], since_ms: u64, released: bool) -> Vec<u8> {
        named(office, kinds, since_ms, released, "")
    }

    fn named(office: &str, kinds: &[&str], since_ms: u64, released: bool, name: &str) -> Vec<u8> {
        let op = SigningIdentity::from_seed([9; 32]);
        OfficeBinding {
            office: office.parse().unwrap_or_else(|e| panic!("{office}: {e}")),
            kinds: kinds.iter().map(|k| k.parse().unwrap()).collect(),
            operator: op.id(),
            since_ms,
            released,
            name: name.into(),
        }
        .sign(&op)
        .encode()
    }

    #[test]
    fn a_binding_names_its_office_in_version_2_and_keeps_version_1_without() {
        let plain = signed("1310000017", &["43"], 5, false);
        let with = named("1310000017", &["43"], 5, false, "ひばり居宅介護支援事業所");
        let b = SignedBinding::decode(&with).unwrap();
        assert_eq!(b.binding().name, "ひばり居宅介護支援事業所");
        assert_eq!(SignedBinding::decode(&plain).unwrap().binding().name, "");
        // Version 1 bytes are what they always were: [1, office, kinds, operator, since,
        // released]; a named one is [2, …, name].
        let inner = |b: &[u8]| SignedBinding::decode(b).unwrap().bytes.clone();
        assert_eq!(inner(&plain)[..2], [0x86, 0x01]);
        assert_eq!(inner(&with)[..2], [0x87, 0x02]);
        // A name the binding may not carry is refused, naming the field.
        for bad in [
            " padded",
            "\u{7}bell",
            &"名".repeat(BINDING_NAME_CHARS_MAX + 1),
        ] {
            let b = named("1310000017", &["43"], 5, false, bad);
            let e = SignedBinding::decode(&b).unwrap_err();
            assert!(e.to_string().contains("name"), "{e}");
        }
        assert_eq!(OfficeBinding::name_for("  みどり\u{7}園 "), "みどり園");
    }

    #[test]
    fn bindings_round_trip_and_damaged_ones_are_refused_or_read_as_what_they_say() {
        let cases = [
            signed("1310000017", &["43"], 0, false),
            signed(
                "2710000016",
                &["11", "13", "43", "46"],
                1_745_830_800_000,
                false,
            ),
            signed("0110000002", &[], 23, true),
            signed("1310000017", &["15"], u64::MAX, false),
            named("1310000017", &["43"], 7, false, "ひばり居宅介護支援事業所"),
        ];
        for b in &cases {
            let d = SignedBinding::decode(b).expect("a signed binding decodes");
            assert_eq!(&d.encode(), b);
            for n in 0..b.len() {
                assert!(SignedBinding::decode(&b[..n]).is_err(), "truncated at {n}");
            }
            let mut longer = b.clone();
            longer.push(0);
            let e = SignedBinding::decode(&longer).unwrap_err();
            assert!(e.to_string().contains("bytes left after the value"), "{e}");
            for i in 0..b.len() {
                for x in [0x01u8, 0x02, 0x04, 0x08, 0x10, 0x20, 0x40, 0x80, 0xff] {
                    let mut m = b.clone();
                    m[i] ^= x;
                    // What still decodes is exactly what it encodes (canonical bytes).
                    if let Ok(d) = SignedBinding::decode(&m) {
                        assert_eq!(d.encode(), m, "byte {i} ^ {x:#04x}");
                    }
                }
            }
        }
    }
}

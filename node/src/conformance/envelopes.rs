//! The envelopes the checks send: the test unit sealed to the target and signed by the
//! tester (or by an operator outside the roster), each with a fresh id.

use renkei_protocol::envelope::{Envelope, Header};
use renkei_protocol::ids::{EnvelopeId, OperatorId};
use renkei_protocol::keys::OperatorKeys;
use renkei_protocol::roster::{OfficeBinding, Roster};

use super::ConformanceError;
use crate::core::unit::check_unit;
use crate::keyfile::random_seed;

/// Builds envelopes of one unit for one target.
pub(super) struct Builder {
    unit: Vec<(String, Vec<u8>)>,
    header: Header,
}

fn random() -> Result<[u8; 32], ConformanceError> {
    random_seed().map_err(|e| ConformanceError::Random(e.to_string()))
}

impl Builder {
    /// Checks the unit and prepares a header for `target` (its sealing key from the roster).
    pub(super) fn new(
        unit: &[(String, Vec<u8>)],
        roster: &Roster,
        target: &OperatorId,
        now_ms: u64,
    ) -> Result<Builder, ConformanceError> {
        let refs: Vec<(&str, &[u8])> = unit
            .iter()
            .map(|(n, b)| (n.as_str(), b.as_slice()))
            .collect();
        let info = check_unit(&refs).map_err(|findings| {
            ConformanceError::Unit(
                findings
                    .iter()
                    .take(3)
                    .map(|f| format!("{} {}: {}", f.file, f.rule, f.message))
                    .collect::<Vec<_>>()
                    .join("; "),
            )
        })?;
        let entry = roster
            .operator(target)
            .ok_or(ConformanceError::TargetNotInRoster(*target))?;
        let header = Header {
            outer: renkei_protocol::envelope::Outer {
                id: EnvelopeId([0; 16]),
                from: info.from,
                to: info.to,
                origin: *target,
                destination: *target,
                sealed_to: entry.enc_key,
                doc_kind: info.doc_kind,
                stamp: info.stamp,
                supersedes: None,
                created_at_ms: now_ms,
            },
            subject: info.subject,
            files: Envelope::file_entries(&refs),
            // The kit's units are test data: a fixed salt hides nothing real.
            salt: Some([0x4b; 16]),
        };
        Ok(Builder {
            unit: unit.to_vec(),
            header,
        })
    }

    /// The tester's binding of the unit's sending office to itself, signed: what the
    /// target needs to take a unit from that office with the tester as origin.
    pub(super) fn sender_binding(&self, tester: &OperatorKeys, now_ms: u64) -> Vec<u8> {
        claim(&self.header.from, tester, now_ms)
    }

    /// A lying member's claim: the tester binds the unit's *receiving* office — homed at
    /// the target — to itself, signed (a claim of an office another operator homes).
    pub(super) fn rival_binding(&self, tester: &OperatorKeys, now_ms: u64) -> Vec<u8> {
        claim(&self.header.to, tester, now_ms)
    }

    /// The receiving office's number.
    pub(super) fn to_office(&self) -> &renkei_protocol::ids::OfficeNumber {
        &self.header.to.office
    }

    /// The office the unit is for.
    pub(super) fn office(&self) -> String {
        format!("{} ({})", self.header.to.office, self.header.to.kind)
    }

    /// A fresh envelope of the unit signed by `origin`.
    pub(super) fn envelope(&self, origin: &OperatorKeys) -> Result<Envelope, ConformanceError> {
        let mut header = self.header.clone();
        let id = random()?;
        header.id = EnvelopeId(id[..16].try_into().unwrap_or([1; 16]));
        header.origin = origin.id();
        let files: Vec<&[u8]> = self.unit.iter().map(|(_, b)| b.as_slice()).collect();
        Envelope::seal_and_sign(header, &files, origin, random()?)
            .map_err(|e| ConformanceError::Unit(e.to_string()))
    }

    /// A lying member's forged sender: a fresh envelope signed by `origin` (the tester) as
    /// if it came from an office the target homes (the unit's receiving office), to that
    /// office. The target must refuse it `sender_not_bound` before it opens anything.
    pub(super) fn forged_sender(
        &self,
        origin: &OperatorKeys,
    ) -> Result<Envelope, ConformanceError> {
        let mut header = self.header.clone();
        let id = random()?;
        header.id = EnvelopeId(id[..16].try_into().unwrap_or([2; 16]));
        header.origin = origin.id();
        header.from = header.to.clone();
        let files: Vec<&[u8]> = self.unit.iter().map(|(_, b)| b.as_slice()).collect();
        Envelope::seal_and_sign(header, &files, origin, random()?)
            .map_err(|e| ConformanceError::Unit(e.to_string()))
    }

    /// A fresh operator identity that no roster knows.
    pub(super) fn outsider() -> Result<OperatorKeys, ConformanceError> {
        Ok(OperatorKeys::from_seeds(random()?, random()?))
    }
}

/// The tester's signed claim that `party`'s office is homed at the tester since `now_ms`.
fn claim(party: &renkei_protocol::envelope::Party, tester: &OperatorKeys, now_ms: u64) -> Vec<u8> {
    OfficeBinding {
        office: party.office.clone(),
        kinds: vec![party.kind.clone()],
        operator: tester.id(),
        since_ms: now_ms,
        released: false,
        name: String::new(),
    }
    .sign(&tester.identity)
    .encode()
}

/// `bytes` with the last byte flipped: for an encoded envelope, a corrupted origin
/// signature (the signature is the last field).
pub(super) fn corrupt_signature(mut bytes: Vec<u8>) -> Vec<u8> {
    if let Some(last) = bytes.last_mut() {
        *last ^= 0x01;
    }
    bytes
}

#[cfg(test)]
mod tests {
    use super::*;
    use renkei_protocol::roster::OperatorEntry;

    const NAME: &str = "UPJSK_202504_4071481594_11_4074478647_43_20250428164608.CSV";
    const FILE: &[u8] = include_bytes!(
        "../../../fixtures/valid/d3_jisseki/UPJSK_202504_4071481594_11_4074478647_43_20250428164608.CSV"
    );

    fn roster(target: &OperatorKeys) -> Roster {
        Roster {
            serial: 1,
            issued_at_ms: 0,
            authority: target.id(),
            operators: vec![OperatorEntry {
                name: "target".into(),
                id: target.id(),
                enc_key: target.seal.public(),
                relay: false,
                addrs: Vec::new(),
                valid_from_ms: 0,
                valid_until_ms: None,
                old_keys: Vec::new(),
            }],
        }
    }

    #[test]
    fn envelopes_open_at_the_target_and_a_corrupted_one_fails_only_its_signature() {
        let target = OperatorKeys::from_seeds([1; 32], [2; 32]);
        let tester = OperatorKeys::from_seeds([3; 32], [4; 32]);
        let b = Builder::new(
            &[(NAME.into(), FILE.to_vec())],
            &roster(&target),
            &target.id(),
            5,
        )
        .unwrap();
        assert_eq!(b.office(), "4074478647 (43)");
        let env = b.envelope(&tester).unwrap();
        assert_ne!(env.id(), b.envelope(&tester).unwrap().id(), "ids are fresh");
        env.verify().unwrap();
        assert_eq!(env.header().origin, tester.id());
        assert_eq!(env.open(&target).unwrap().files, vec![FILE.to_vec()]);

        let forged = Envelope::decode(&corrupt_signature(env.encode())).unwrap();
        assert_eq!(forged.header(), env.header());
        assert!(forged.verify().is_err());
    }

    #[test]
    fn an_invalid_unit_is_refused_before_any_check() {
        let target = OperatorKeys::from_seeds([1; 32], [2; 32]);
        let e = Builder::new(
            &[("notes.txt".into(), b"hello".to_vec())],
            &roster(&target),
            &target.id(),
            5,
        );
        assert!(matches!(e, Err(ConformanceError::Unit(_))));
    }
}

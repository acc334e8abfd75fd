//! The mapping between libp2p peer ids and Renkei operator ids.
//!
//! An operator's id is its 32-byte ed25519 public key, which is also its libp2p identity
//! key. libp2p encodes small public keys (ed25519 ones included) inline in the peer id
//! with the identity multihash, so the mapping is exact in both directions.

use libp2p::identity::{self, ed25519};
use libp2p::multiaddr::Protocol;
use libp2p::{Multiaddr, PeerId};
use renkei_protocol::ids::OperatorId;

use super::NetError;

/// Multihash code of the identity hash, used by libp2p for inlined public keys.
const IDENTITY_MULTIHASH_CODE: u64 = 0x00;

/// The libp2p peer id of an operator.
///
/// Fails when the operator id is not a valid ed25519 public key.
pub fn peer_id_of(op: &OperatorId) -> Result<PeerId, NetError> {
    let key = ed25519::PublicKey::try_from_bytes(op.as_bytes()).map_err(|e| {
        NetError::InvalidOperatorKey {
            operator: op.to_string(),
            detail: e.to_string(),
        }
    })?;
    Ok(identity::PublicKey::from(key).to_peer_id())
}

/// The operator behind a libp2p peer id, if the peer's key is ed25519 (inlined in its id).
pub fn operator_of(peer: &PeerId) -> Option<OperatorId> {
    let multihash = peer.as_ref();
    if multihash.code() != IDENTITY_MULTIHASH_CODE {
        return None;
    }
    let key = identity::PublicKey::try_decode_protobuf(multihash.digest()).ok()?;
    let key = key.try_into_ed25519().ok()?;
    Some(OperatorId(key.to_bytes()))
}

/// The operator of an address ending in `/p2p/PEER_ID`, if that peer id is an operator's
/// (ed25519) key.
pub fn operator_of_multiaddr(addr: &Multiaddr) -> Option<OperatorId> {
    match addr.iter().last()? {
        Protocol::P2p(peer) => operator_of(&peer),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use renkei_protocol::keys::OperatorKeys;

    #[test]
    fn operator_and_peer_ids_round_trip() {
        let keys = OperatorKeys::from_seeds([7; 32], [8; 32]);
        let op = keys.id();
        let peer = peer_id_of(&op).unwrap();
        assert_eq!(operator_of(&peer), Some(op));

        let keypair = identity::Keypair::ed25519_from_bytes(keys.identity.seed()).unwrap();
        assert_eq!(keypair.public().to_peer_id(), peer);
    }

    #[test]
    fn operator_of_a_multiaddr_is_its_p2p_suffix() {
        let keys = OperatorKeys::from_seeds([7; 32], [8; 32]);
        let peer = peer_id_of(&keys.id()).unwrap();
        let addr: Multiaddr = format!("/ip4/127.0.0.1/tcp/4001/p2p/{peer}")
            .parse()
            .unwrap();
        assert_eq!(operator_of_multiaddr(&addr), Some(keys.id()));
        let bare: Multiaddr = "/ip4/127.0.0.1/tcp/4001".parse().unwrap();
        assert_eq!(operator_of_multiaddr(&bare), None);
    }

    #[test]
    fn random_peer_ids_have_no_operator() {
        // `PeerId::random` uses a non-identity multihash.
        assert_eq!(operator_of(&PeerId::random()), None);
    }

    #[test]
    fn invalid_operator_key_is_an_error() {
        // Some small y coordinates are not on the curve; find one.
        let bad = (2u8..=255)
            .map(|y| {
                let mut bytes = [0u8; 32];
                bytes[0] = y;
                OperatorId(bytes)
            })
            .find(|op| op.verifying_key().is_err())
            .unwrap();
        let e = peer_id_of(&bad).unwrap_err();
        assert!(matches!(e, NetError::InvalidOperatorKey { .. }), "{e}");
    }
}

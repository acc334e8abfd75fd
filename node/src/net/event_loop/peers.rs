//! Connections: the allowed set, PeerUp/PeerDown, and redialling kept peers.

use std::collections::BTreeSet;

use libp2p::{Multiaddr, PeerId};
use renkei_protocol::ids::OperatorId;
use tokio::time::Instant;

use super::EventLoop;
use crate::net::{NetEvent, operator_of, peer_id_of};

impl EventLoop {
    pub(super) fn set_allowed(&mut self, allowed: BTreeSet<OperatorId>) {
        tracing::info!(operators = allowed.len(), "allowed set updated");
        self.allowed = allowed;
        self.admit();
        let removed: Vec<OperatorId> = self
            .up
            .iter()
            .filter(|op| !self.allowed.contains(op))
            .copied()
            .collect();
        for op in removed {
            self.up.remove(&op);
            self.emit(NetEvent::PeerDown(op));
            tracing::info!(operator = %op, "operator no longer allowed; disconnecting");
            if let Ok(peer) = peer_id_of(&op) {
                let _ = self.swarm.disconnect_peer_id(peer);
            }
        }
        let added: Vec<OperatorId> = self
            .connections
            .keys()
            .filter(|op| self.allowed.contains(op) && !self.up.contains(op))
            .copied()
            .collect();
        for op in added {
            self.up.insert(op);
            self.emit(NetEvent::PeerUp(op));
        }
    }

    /// Whether `op` counts as a peer: a roster operator — or, while this node has no roster
    /// yet, anyone authenticated, so it can ask the peer for the roster (the core refuses
    /// everything else from outside a roster).
    pub(super) fn admits(&self, op: &OperatorId) -> bool {
        self.allowed.is_empty() || self.allowed.contains(op)
    }

    /// Tells the connection gate who may connect: the allowed set and the kept peers.
    pub(super) fn admit(&mut self) {
        let admitted = self
            .allowed
            .iter()
            .chain(self.keep.keys())
            .filter_map(|op| peer_id_of(op).ok())
            .collect();
        let roster = !self.allowed.is_empty();
        self.swarm.behaviour_mut().gate.set(admitted, roster);
    }

    pub(super) fn redial_due(&mut self) {
        let now = Instant::now();
        let due: Vec<OperatorId> = self
            .keep
            .iter()
            .filter(|(op, r)| !self.connections.contains_key(op) && r.next_at <= now)
            .map(|(op, _)| *op)
            .collect();
        for op in due {
            if let Err(e) = self.dial(op) {
                tracing::debug!(operator = %op, error = %e, "redial failed");
            }
            let max = self.config.reconnect_delay_max;
            if let Some(r) = self.keep.get_mut(&op) {
                r.next_at = now + r.delay;
                r.delay = (r.delay * 2).min(max);
            }
        }
    }

    pub(super) fn on_connected(&mut self, peer: PeerId, count: u32, remote: &Multiaddr) {
        let Some(op) = operator_of(&peer) else {
            tracing::warn!(%peer, %remote, "peer without an ed25519 identity; disconnecting");
            let _ = self.swarm.disconnect_peer_id(peer);
            return;
        };
        self.connections.insert(op, count);
        self.last_dial_error.remove(&op);
        if count != 1 {
            return;
        }
        let allowed = self.admits(&op);
        tracing::info!(operator = %op, %remote, allowed, "peer connected");
        if let Some(r) = self.keep.get_mut(&op) {
            r.connected_since = Some(Instant::now());
        }
        if allowed && self.up.insert(op) {
            self.emit(NetEvent::PeerUp(op));
        }
    }

    pub(super) fn on_disconnected(&mut self, peer: PeerId, remaining: u32, cause: &str) {
        let Some(op) = operator_of(&peer) else {
            return;
        };
        if remaining > 0 {
            self.connections.insert(op, remaining);
            return;
        }
        self.connections.remove(&op);
        tracing::info!(operator = %op, %cause, "peer disconnected");
        if self.up.remove(&op) {
            self.emit(NetEvent::PeerDown(op));
        }
        let (min, max) = (
            self.config.reconnect_delay_min,
            self.config.reconnect_delay_max,
        );
        if let Some(r) = self.keep.get_mut(&op) {
            let now = Instant::now();
            // A connection that lived long enough resets the backoff.
            if r.connected_since
                .is_some_and(|t| now.duration_since(t) >= max)
            {
                r.delay = min;
            }
            r.connected_since = None;
            r.next_at = now + r.delay;
        }
    }
}

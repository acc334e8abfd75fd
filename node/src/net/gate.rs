//! The connection gate: an inbound connection is denied when it is established (after the
//! noise handshake has authenticated the peer's key, before any stream is opened or any
//! request read) unless the peer is in the allowed set (the roster) or one this node keeps
//! connected. Outbound connections are this node's own choice and pass.
//!
//! Without it, a process outside the roster could open connections and, on each, up to the
//! stream limit of requests of up to `MESSAGE_BYTES_MAX`, all read and decoded before the
//! `NotInRoster` answer.

use std::collections::BTreeSet;
use std::convert::Infallible;
use std::fmt;
use std::task::{Context, Poll};

use libp2p::core::Endpoint;
use libp2p::core::transport::PortUse;
use libp2p::swarm::{
    ConnectionDenied, ConnectionId, FromSwarm, NetworkBehaviour, THandler, THandlerInEvent,
    THandlerOutEvent, ToSwarm, dummy,
};
use libp2p::{Multiaddr, PeerId};

/// Why an inbound connection was denied.
#[derive(Debug)]
pub(crate) struct NotAdmitted(pub(crate) PeerId);

impl fmt::Display for NotAdmitted {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "peer {} is not an operator of this node's roster",
            self.0
        )
    }
}

impl std::error::Error for NotAdmitted {}

/// The behaviour holding the admitted peers.
#[derive(Default)]
pub(crate) struct Gate {
    admitted: BTreeSet<PeerId>,
    /// Whether the node has a roster: until it has one, every authenticated peer is
    /// admitted, so that a peer holding the roster can connect and hand it over (the core
    /// still refuses everything but the directory exchange to peers outside a roster).
    closed: bool,
    /// Inbound connections denied so far (for logs).
    denied: u64,
}

impl Gate {
    /// Replaces the admitted set (the event loop disconnects peers that left the allowed
    /// set itself); `roster`: whether the node has a roster (then only `admitted` pass).
    pub(crate) fn set(&mut self, admitted: BTreeSet<PeerId>, roster: bool) {
        self.admitted = admitted;
        self.closed |= roster;
    }
}

impl NetworkBehaviour for Gate {
    type ConnectionHandler = dummy::ConnectionHandler;
    type ToSwarm = Infallible;

    fn handle_established_inbound_connection(
        &mut self,
        _: ConnectionId,
        peer: PeerId,
        _: &Multiaddr,
        remote: &Multiaddr,
    ) -> Result<THandler<Self>, ConnectionDenied> {
        if self.admitted.contains(&peer) || !self.closed {
            return Ok(dummy::ConnectionHandler);
        }
        self.denied += 1;
        // One line per 64 denials: a flood must not flood the log as well.
        if self.denied % 64 == 1 {
            tracing::warn!(%peer, %remote, denied = self.denied,
                "denied an inbound connection from outside the roster");
        }
        Err(ConnectionDenied::new(NotAdmitted(peer)))
    }

    fn handle_established_outbound_connection(
        &mut self,
        _: ConnectionId,
        _: PeerId,
        _: &Multiaddr,
        _: Endpoint,
        _: PortUse,
    ) -> Result<THandler<Self>, ConnectionDenied> {
        Ok(dummy::ConnectionHandler)
    }

    fn on_swarm_event(&mut self, _: FromSwarm) {}

    fn on_connection_handler_event(
        &mut self,
        _: PeerId,
        _: ConnectionId,
        event: THandlerOutEvent<Self>,
    ) {
        match event {}
    }

    fn poll(&mut self, _: &mut Context<'_>) -> Poll<ToSwarm<Self::ToSwarm, THandlerInEvent<Self>>> {
        Poll::Pending
    }
}

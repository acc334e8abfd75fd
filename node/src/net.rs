//! The libp2p network layer: one event-loop actor with a typed, cloneable handle.
//!
//! [`Network::new`] returns a [`NetClient`] (commands with replies), a bounded receiver of
//! [`NetEvent`]s and the [`EventLoop`] that the runtime spawns. The events mirror the core's
//! inputs (`Inbound`, `Response`, `SendFailed`, `PeerUp`, `PeerDown`) and the client's
//! `send`/`respond` mirror its `Send`/`Respond` effects, so the runtime maps them 1:1. No
//! routing logic lives here; every libp2p type stays inside this module (only
//! [`Multiaddr`] is re-exported, for addresses from the roster and config).
//!
//! Transports: TCP + noise + yamux, and QUIC. Behaviours: identify, ping and
//! request-response on `/renkei/relay/1` with a length-prefixed canonical-CBOR codec
//! (see `codec`). Only operators in the allowed set (the roster, [`NetClient::set_allowed`])
//! may use the relay protocol; others are answered `Refused { NotInRoster }` here, before
//! the core. Frames over the size limit are refused with a message naming the limit.
//!
//! # Layout
//!
//! - `peer_ids`: [`peer_id_of`] / [`operator_of`], the exact PeerId ↔ OperatorId mapping
//!   (and [`operator_of_multiaddr`] for `…/p2p/PEER_ID` addresses).
//! - `codec`: the stream framing and size limits.
//! - `behaviour`: the behaviour and swarm construction.
//! - `client`: [`NetClient`] and its commands.
//! - `event_loop`: [`EventLoop`], the actor owning the swarm; `event_loop/relay` handles
//!   `/renkei/relay/1` traffic and `event_loop/peers` connections and redials.

mod behaviour;
mod client;
mod codec;
mod event_loop;
mod gate;
mod peer_ids;

use std::collections::BTreeSet;
use std::fmt;
use std::time::Duration;

use renkei_protocol::ids::OperatorId;
use renkei_protocol::keys::OperatorKeys;
use renkei_protocol::limits::MESSAGE_BYTES_MAX;
use renkei_protocol::wire::{Request, Response};
use tokio::sync::mpsc;

pub use client::NetClient;
pub use event_loop::EventLoop;
pub use libp2p::Multiaddr;
pub use peer_ids::{operator_of, operator_of_multiaddr, peer_id_of};

/// Default time a request may take from sending to its response.
pub const REQUEST_TIMEOUT_DEFAULT: Duration = Duration::from_secs(30);
/// Default time a connection without open streams stays up.
pub const IDLE_CONNECTION_TIMEOUT_DEFAULT: Duration = Duration::from_secs(5 * 60);
/// Default first delay before redialling a kept peer.
pub const RECONNECT_DELAY_MIN_DEFAULT: Duration = Duration::from_secs(1);
/// Default longest delay between redials of a kept peer.
pub const RECONNECT_DELAY_MAX_DEFAULT: Duration = Duration::from_secs(60);
/// Default capacity of the command and event channels.
pub const CHANNEL_CAPACITY_DEFAULT: usize = 256;
/// Default bound on inbound connections established at once (from admitted peers).
pub const CONNECTIONS_MAX_DEFAULT: u32 = 256;
/// Default bound on connections with one peer (TCP and QUIC, and a dial race).
pub const CONNECTIONS_PER_PEER_MAX_DEFAULT: u32 = 4;
/// Default bound on inbound connections still in their handshake.
pub const PENDING_INCOMING_MAX_DEFAULT: u32 = 64;
/// Default bound on concurrent relay-protocol streams per connection (libp2p's own is 100).
pub const STREAMS_PER_CONNECTION_MAX_DEFAULT: usize = 16;
/// Default bound on request body bytes being read at once, over all streams.
pub const INBOUND_BYTES_IN_FLIGHT_MAX_DEFAULT: usize = 128 * 1024 * 1024;
/// Default bound on one peer's requests handed to the core and not answered yet; more are
/// answered `Refused { RateLimited }`.
pub const INBOUND_PENDING_PER_PEER_MAX_DEFAULT: usize = 8;

/// Settings of the network layer.
#[derive(Clone)]
pub struct Config {
    /// The operator's ed25519 signing seed (`OperatorKeys::identity.seed()`); its public key
    /// is the node's PeerId and OperatorId.
    pub identity_seed: [u8; 32],
    /// Operators allowed to use `/renkei/relay/1` at start (usually the roster's).
    pub allowed: BTreeSet<OperatorId>,
    /// Time from sending a request to its response before it fails with `SendFailed`.
    pub request_timeout: Duration,
    /// Time a connection without open streams stays up.
    pub idle_connection_timeout: Duration,
    /// Largest request or response frame sent or accepted, in bytes. Defaults to the
    /// protocol's `MESSAGE_BYTES_MAX`; lower it only for tests or constrained nodes.
    pub message_bytes_max: usize,
    /// First delay before redialling a kept peer (doubles per failure).
    pub reconnect_delay_min: Duration,
    /// Longest delay between redials of a kept peer.
    pub reconnect_delay_max: Duration,
    /// Capacity of the command and event channels.
    pub channel_capacity: usize,
    /// Inbound connections established at once.
    pub connections_max: u32,
    /// Connections with one peer.
    pub connections_per_peer_max: u32,
    /// Inbound connections in their handshake at once.
    pub pending_incoming_max: u32,
    /// Concurrent relay-protocol streams per connection.
    pub streams_per_connection_max: usize,
    /// Request body bytes read at once over all streams (a frame waits for room).
    pub inbound_bytes_in_flight_max: usize,
    /// One peer's requests handed on and not answered yet; more are `RateLimited`.
    pub inbound_pending_per_peer_max: usize,
}

impl Config {
    /// Defaults for this operator's keys, with an empty allowed set.
    pub fn new(keys: &OperatorKeys) -> Self {
        Config {
            identity_seed: keys.identity.seed(),
            allowed: BTreeSet::new(),
            request_timeout: REQUEST_TIMEOUT_DEFAULT,
            idle_connection_timeout: IDLE_CONNECTION_TIMEOUT_DEFAULT,
            message_bytes_max: MESSAGE_BYTES_MAX,
            reconnect_delay_min: RECONNECT_DELAY_MIN_DEFAULT,
            reconnect_delay_max: RECONNECT_DELAY_MAX_DEFAULT,
            channel_capacity: CHANNEL_CAPACITY_DEFAULT,
            connections_max: CONNECTIONS_MAX_DEFAULT,
            connections_per_peer_max: CONNECTIONS_PER_PEER_MAX_DEFAULT,
            pending_incoming_max: PENDING_INCOMING_MAX_DEFAULT,
            streams_per_connection_max: STREAMS_PER_CONNECTION_MAX_DEFAULT,
            inbound_bytes_in_flight_max: INBOUND_BYTES_IN_FLIGHT_MAX_DEFAULT,
            inbound_pending_per_peer_max: INBOUND_PENDING_PER_PEER_MAX_DEFAULT,
        }
    }
}

impl fmt::Debug for Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Config")
            .field("identity_seed", &"<secret>")
            .field("allowed", &self.allowed)
            .field("request_timeout", &self.request_timeout)
            .field("idle_connection_timeout", &self.idle_connection_timeout)
            .field("message_bytes_max", &self.message_bytes_max)
            .field("reconnect_delay_min", &self.reconnect_delay_min)
            .field("reconnect_delay_max", &self.reconnect_delay_max)
            .field("channel_capacity", &self.channel_capacity)
            .field("connections_max", &self.connections_max)
            .field("connections_per_peer_max", &self.connections_per_peer_max)
            .field("pending_incoming_max", &self.pending_incoming_max)
            .field(
                "streams_per_connection_max",
                &self.streams_per_connection_max,
            )
            .field(
                "inbound_bytes_in_flight_max",
                &self.inbound_bytes_in_flight_max,
            )
            .field(
                "inbound_pending_per_peer_max",
                &self.inbound_pending_per_peer_max,
            )
            .finish()
    }
}

/// Something that happened on the network; maps 1:1 to the core's inputs (plus
/// `Listening`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum NetEvent {
    /// An allowed peer's request; answer it with [`NetClient::respond`] and this `id`.
    Inbound {
        /// Correlates the answer (the core's `InboundId`).
        id: u64,
        /// The authenticated peer.
        from: OperatorId,
        /// The decoded request.
        request: Request,
    },
    /// A peer's response to [`NetClient::send`].
    Response {
        /// The id given to `send` (the core's `OutboundId`).
        id: u64,
        /// The peer.
        from: OperatorId,
        /// The decoded response.
        response: Response,
    },
    /// A [`NetClient::send`] failed: dial failure, timeout, connection closed, a frame over
    /// the limit or undecodable. Whether the peer got the request is unknown.
    SendFailed {
        /// The id given to `send`.
        id: u64,
        /// The peer.
        to: OperatorId,
        /// What went wrong.
        error: String,
    },
    /// The first connection to an allowed peer (or a connected peer became allowed).
    PeerUp(OperatorId),
    /// The last connection to an allowed peer closed (or a connected peer was disallowed).
    PeerDown(OperatorId),
    /// The node listens on this address.
    Listening(Multiaddr),
}

/// Errors of the network layer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NetError {
    /// The operator id is not a valid ed25519 public key, so it has no PeerId.
    #[error("operator {operator} has no libp2p identity: {detail}")]
    InvalidOperatorKey {
        /// The operator id.
        operator: String,
        /// Why.
        detail: String,
    },
    /// Setting up the transports or the behaviour failed.
    #[error("cannot set up the network: {0}")]
    Transport(String),
    /// Listening on an address failed.
    #[error("cannot listen on {addr}: {detail}")]
    Listen {
        /// The address.
        addr: String,
        /// Why.
        detail: String,
    },
    /// Dialling a peer failed at once (e.g. no usable address).
    #[error("cannot dial {operator}: {detail}")]
    Dial {
        /// The operator.
        operator: String,
        /// Why.
        detail: String,
    },
    /// The event loop has stopped (shut down or dropped).
    #[error("the network event loop has stopped")]
    Stopped,
}

/// Inbound requests handed on whose stream failed (timed out, connection closed) before
/// they were answered: the driver drops them unread ([`NetClient::take_gone`]).
#[derive(Clone, Debug, Default)]
pub(crate) struct Gone(std::sync::Arc<std::sync::Mutex<BTreeSet<u64>>>);

impl Gone {
    pub(crate) fn insert(&self, id: u64) {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).insert(id);
    }

    pub(crate) fn take(&self, id: u64) -> bool {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).remove(&id)
    }
}

/// Constructor of the network actor.
#[derive(Debug)]
pub struct Network;

impl Network {
    /// Builds the swarm and returns the client, the event receiver and the event loop to
    /// spawn (`tokio::spawn(event_loop.run())`). Must be called within a tokio runtime.
    #[allow(clippy::new_ret_no_self)] // the file-sharing example's shape: (client, events, loop)
    pub fn new(
        config: Config,
    ) -> Result<(NetClient, mpsc::Receiver<NetEvent>, EventLoop), NetError> {
        let swarm = behaviour::build_swarm(&config)?;
        let local = operator_of(swarm.local_peer_id()).ok_or_else(|| {
            NetError::Transport("the local identity is not an ed25519 key".to_owned())
        })?;
        let capacity = config.channel_capacity.max(1);
        let (command_tx, command_rx) = mpsc::channel(capacity);
        let (event_tx, event_rx) = mpsc::channel(capacity);
        let gone = Gone::default();
        let event_loop = EventLoop::new(swarm, config, command_rx, event_tx, gone.clone());
        Ok((
            NetClient::new(command_tx, local, gone),
            event_rx,
            event_loop,
        ))
    }
}

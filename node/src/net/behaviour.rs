//! The libp2p behaviour (relay request-response, identify, ping) and the swarm built on
//! TCP + noise + yamux and QUIC.

use libp2p::request_response::{self, ProtocolSupport};
use libp2p::swarm::NetworkBehaviour;
use libp2p::{Swarm, SwarmBuilder, connection_limits, identify, identity, noise, ping, tcp, yamux};

use super::codec::{RELAY, RelayCodec};
use super::gate::Gate;
use super::{Config, NetError};

/// The identify protocol name announced by Renkei nodes.
const IDENTIFY_PROTOCOL: &str = "/renkei/id/1";

/// Everything the node speaks over libp2p.
#[derive(NetworkBehaviour)]
pub(crate) struct NodeBehaviour {
    /// Inbound connections only from admitted peers (first: denies before the others set
    /// anything up).
    pub(crate) gate: Gate,
    /// Connections per peer and in all.
    pub(crate) limits: connection_limits::Behaviour,
    /// `/renkei/relay/1`.
    pub(crate) relay: request_response::Behaviour<RelayCodec>,
    /// Exchange of listen addresses and agent versions.
    pub(crate) identify: identify::Behaviour,
    /// Liveness checks.
    pub(crate) ping: ping::Behaviour,
}

/// Builds the swarm for this operator's identity.
pub(crate) fn build_swarm(config: &Config) -> Result<Swarm<NodeBehaviour>, NetError> {
    let keypair = identity::Keypair::ed25519_from_bytes(config.identity_seed)
        .map_err(|e| NetError::Transport(format!("invalid identity key: {e}")))?;
    let codec = RelayCodec::new(config.message_bytes_max, config.inbound_bytes_in_flight_max);
    let limits = connection_limits::ConnectionLimits::default()
        .with_max_pending_incoming(Some(config.pending_incoming_max))
        .with_max_established_incoming(Some(config.connections_max))
        .with_max_established(Some(config.connections_max.saturating_add(64)))
        .with_max_established_per_peer(Some(config.connections_per_peer_max));
    let streams = config.streams_per_connection_max;
    let request_timeout = config.request_timeout;
    let idle_timeout = config.idle_connection_timeout;
    let swarm = SwarmBuilder::with_existing_identity(keypair)
        .with_tokio()
        .with_tcp(
            tcp::Config::default().nodelay(true),
            noise::Config::new,
            yamux::Config::default,
        )
        .map_err(|e| NetError::Transport(format!("cannot set up TCP: {e}")))?
        .with_quic()
        .with_behaviour(|key| NodeBehaviour {
            gate: Gate::default(),
            limits: connection_limits::Behaviour::new(limits),
            relay: request_response::Behaviour::with_codec(
                codec,
                [(RELAY, ProtocolSupport::Full)],
                request_response::Config::default()
                    .with_request_timeout(request_timeout)
                    .with_max_concurrent_streams(streams),
            ),
            identify: identify::Behaviour::new(
                identify::Config::new(IDENTIFY_PROTOCOL.to_owned(), key.public())
                    .with_agent_version(format!("renkei/{}", env!("CARGO_PKG_VERSION"))),
            ),
            ping: ping::Behaviour::new(ping::Config::new()),
        })
        .map_err(|e| NetError::Transport(format!("cannot set up the behaviour: {e}")))?
        .with_swarm_config(|c| c.with_idle_connection_timeout(idle_timeout))
        .build();
    Ok(swarm)
}

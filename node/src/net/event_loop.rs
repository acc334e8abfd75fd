//! [`EventLoop`]: the actor that owns the swarm. One `select!` over commands, swarm events,
//! the event backlog and the redial timer; pending replies and requests in maps keyed by id.

mod peers;
mod relay;

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::time::Duration;

use futures::StreamExt;
use libp2p::core::transport::ListenerId;
use libp2p::request_response::{self, InboundRequestId, OutboundRequestId, ResponseChannel};
use libp2p::swarm::dial_opts::{DialOpts, PeerCondition};
use libp2p::swarm::{DialError, SwarmEvent};
use libp2p::{Multiaddr, PeerId, Swarm};
use renkei_protocol::ids::OperatorId;
use tokio::sync::{mpsc, oneshot};
use tokio::time::{Instant, MissedTickBehavior};

use super::behaviour::{NodeBehaviour, NodeBehaviourEvent};
use super::client::Command;
use super::codec::{RequestFrame, ResponseFrame};
use super::{Config, NetError, NetEvent, operator_of, peer_id_of};

/// Addresses remembered per peer (the most recent ones are kept).
const ADDRESSES_PER_PEER_MAX: usize = 16;
/// How often kept peers are checked for a redial (and refused peers for closing).
const REDIAL_CHECK_INTERVAL: Duration = Duration::from_millis(500);
/// How long the connection of a refused peer outside the roster stays open, so that the
/// refusal is delivered before the connection closes.
const REFUSED_PEER_CLOSE_DELAY: Duration = Duration::from_secs(2);

type RelayEvent = request_response::Event<RequestFrame, ResponseFrame>;

/// An inbound request handed to the runtime and not answered yet.
struct PendingInbound {
    channel: ResponseChannel<ResponseFrame>,
    from: OperatorId,
    request_id: InboundRequestId,
}

/// A `listen` waiting for its first address.
struct PendingListen {
    listener: ListenerId,
    addr: Multiaddr,
    reply: oneshot::Sender<Result<Multiaddr, NetError>>,
}

/// Redial state of a peer in the keep-connected set.
struct Redial {
    delay: Duration,
    next_at: Instant,
    connected_since: Option<Instant>,
}

/// The network actor. Spawn [`EventLoop::run`] on the tokio runtime; it ends on
/// [`super::NetClient::shutdown`] or when every client is dropped.
pub struct EventLoop {
    swarm: Swarm<NodeBehaviour>,
    config: Config,
    commands: mpsc::Receiver<Command>,
    events: mpsc::Sender<NetEvent>,
    /// Events not yet taken by the receiver; the swarm is not polled while this is full.
    backlog: VecDeque<NetEvent>,
    events_closed: bool,
    allowed: BTreeSet<OperatorId>,
    addresses: BTreeMap<OperatorId, Vec<Multiaddr>>,
    /// Open connections per operator.
    connections: BTreeMap<OperatorId, u32>,
    /// Allowed peers reported `PeerUp` and not yet `PeerDown`.
    up: BTreeSet<OperatorId>,
    keep: BTreeMap<OperatorId, Redial>,
    last_dial_error: BTreeMap<OperatorId, String>,
    pending_listens: Vec<PendingListen>,
    outbound: BTreeMap<OutboundRequestId, (u64, OperatorId)>,
    inbound: BTreeMap<u64, PendingInbound>,
    inbound_ids: BTreeMap<InboundRequestId, u64>,
    next_inbound: u64,
    /// Peers outside the allowed set that were refused, and when to close their
    /// connections (after a grace period, so the refusal reaches them first).
    closing: BTreeMap<PeerId, Instant>,
    /// Requests handed on whose stream failed before the answer.
    gone: super::Gone,
}

impl std::fmt::Debug for EventLoop {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EventLoop")
            .field("local", self.swarm.local_peer_id())
            .field("connections", &self.connections)
            .finish_non_exhaustive()
    }
}

enum Flow {
    Continue,
    Stop(oneshot::Sender<()>),
}

impl EventLoop {
    pub(crate) fn new(
        swarm: Swarm<NodeBehaviour>,
        config: Config,
        commands: mpsc::Receiver<Command>,
        events: mpsc::Sender<NetEvent>,
        gone: super::Gone,
    ) -> Self {
        let mut swarm = swarm;
        swarm.behaviour_mut().gate.set(
            config
                .allowed
                .iter()
                .filter_map(|op| peer_id_of(op).ok())
                .collect(),
            !config.allowed.is_empty(),
        );
        EventLoop {
            gone,
            swarm,
            allowed: config.allowed.clone(),
            config,
            commands,
            events,
            backlog: VecDeque::new(),
            events_closed: false,
            addresses: BTreeMap::new(),
            connections: BTreeMap::new(),
            up: BTreeSet::new(),
            keep: BTreeMap::new(),
            last_dial_error: BTreeMap::new(),
            pending_listens: Vec::new(),
            outbound: BTreeMap::new(),
            inbound: BTreeMap::new(),
            inbound_ids: BTreeMap::new(),
            next_inbound: 1,
            closing: BTreeMap::new(),
        }
    }

    /// Runs until shut down or until every [`super::NetClient`] is dropped.
    pub async fn run(mut self) {
        tracing::info!(
            operator = %self.local(),
            peer_id = %self.swarm.local_peer_id(),
            "network event loop started"
        );
        let mut redial = tokio::time::interval(REDIAL_CHECK_INTERVAL);
        redial.set_missed_tick_behavior(MissedTickBehavior::Delay);
        let backlog_max = self.config.channel_capacity.max(1);
        // A second handle so that a reserved permit does not borrow `self`.
        let events = self.events.clone();
        let stopped = loop {
            tokio::select! {
                command = self.commands.recv() => match command {
                    None => break None,
                    Some(command) => {
                        if let Flow::Stop(reply) = self.on_command(command) {
                            break Some(reply);
                        }
                    }
                },
                permit = events.reserve(), if !self.backlog.is_empty() => match permit {
                    Ok(permit) => {
                        if let Some(event) = self.backlog.pop_front() {
                            permit.send(event);
                        }
                    }
                    Err(_) => {
                        tracing::warn!("network event receiver dropped; discarding events");
                        self.events_closed = true;
                        self.backlog.clear();
                    }
                },
                event = self.swarm.select_next_some(), if self.backlog.len() < backlog_max => {
                    self.on_swarm_event(event);
                }
                _ = redial.tick() => {
                    self.redial_due();
                    self.close_refused_due();
                }
            }
        };
        tracing::info!(operator = %self.local(), "network event loop stopped");
        drop(self);
        if let Some(reply) = stopped {
            let _ = reply.send(());
        }
    }

    fn local(&self) -> String {
        operator_of(self.swarm.local_peer_id()).map_or_else(String::new, |o| o.to_string())
    }

    fn emit(&mut self, event: NetEvent) {
        if !self.events_closed {
            self.backlog.push_back(event);
        }
    }

    fn remember(&mut self, peer: OperatorId, addrs: Vec<Multiaddr>) {
        let known = self.addresses.entry(peer).or_default();
        for addr in addrs {
            known.retain(|a| a != &addr);
            known.push(addr);
        }
        let excess = known.len().saturating_sub(ADDRESSES_PER_PEER_MAX);
        known.drain(..excess);
    }

    fn dial(&mut self, op: OperatorId) -> Result<(), NetError> {
        let peer = peer_id_of(&op)?;
        let addrs = self.addresses.get(&op).cloned().unwrap_or_default();
        let opts = DialOpts::peer_id(peer)
            .addresses(addrs)
            .condition(PeerCondition::DisconnectedAndNotDialing)
            .build();
        match self.swarm.dial(opts) {
            Ok(()) => {
                tracing::debug!(operator = %op, "dialling");
                Ok(())
            }
            Err(DialError::DialPeerConditionFalse(_)) => Ok(()),
            Err(e) => Err(NetError::Dial {
                operator: op.to_string(),
                detail: e.to_string(),
            }),
        }
    }

    fn on_command(&mut self, command: Command) -> Flow {
        match command {
            Command::Listen { addr, reply } => match self.swarm.listen_on(addr.clone()) {
                Ok(listener) => self.pending_listens.push(PendingListen {
                    listener,
                    addr,
                    reply,
                }),
                Err(e) => {
                    let _ = reply.send(Err(NetError::Listen {
                        addr: addr.to_string(),
                        detail: e.to_string(),
                    }));
                }
            },
            Command::Dial { peer, addrs, reply } => {
                self.remember(peer, addrs);
                let _ = reply.send(self.dial(peer));
            }
            Command::AddAddresses { peer, addrs, reply } => {
                let result = peer_id_of(&peer).map(|_| self.remember(peer, addrs));
                let _ = reply.send(result);
            }
            Command::KeepConnected { peer, addrs, reply } => {
                let result = peer_id_of(&peer).map(|_| {
                    self.remember(peer, addrs);
                    let now = Instant::now();
                    let connected = self.connections.contains_key(&peer);
                    self.keep.entry(peer).or_insert(Redial {
                        delay: self.config.reconnect_delay_min,
                        next_at: now,
                        connected_since: connected.then_some(now),
                    });
                });
                if result.is_ok() {
                    self.admit();
                    self.redial_due();
                }
                let _ = reply.send(result);
            }
            Command::StopKeeping { peer } => {
                self.keep.remove(&peer);
                self.admit();
            }
            Command::Send { to, id, request } => self.send(to, id, request.encode()),
            Command::SendRaw { to, id, body } => self.send(to, id, body),
            Command::Respond { id, response } => self.respond(id, response),
            Command::SetAllowed { allowed, reply } => {
                self.set_allowed(allowed);
                let _ = reply.send(());
            }
            Command::Connected { reply } => {
                let _ = reply.send(self.connections.keys().copied().collect());
            }
            Command::Shutdown { reply } => return Flow::Stop(reply),
        }
        Flow::Continue
    }

    fn on_swarm_event(&mut self, event: SwarmEvent<NodeBehaviourEvent>) {
        match event {
            SwarmEvent::NewListenAddr {
                listener_id,
                address,
            } => {
                tracing::info!(%address, "listening");
                if let Some(i) = self
                    .pending_listens
                    .iter()
                    .position(|p| p.listener == listener_id)
                {
                    let pending = self.pending_listens.swap_remove(i);
                    let _ = pending.reply.send(Ok(address.clone()));
                }
                self.emit(NetEvent::Listening(address));
            }
            SwarmEvent::ListenerClosed {
                listener_id,
                reason,
                ..
            } => {
                let detail = match reason {
                    Ok(()) => "listener closed".to_owned(),
                    Err(e) => e.to_string(),
                };
                tracing::info!(%detail, "listener closed");
                self.fail_listen(listener_id, detail);
            }
            SwarmEvent::ListenerError { listener_id, error } => {
                tracing::warn!(%error, "listener error");
                self.fail_listen(listener_id, error.to_string());
            }
            SwarmEvent::ConnectionEstablished {
                peer_id,
                endpoint,
                num_established,
                ..
            } => self.on_connected(
                peer_id,
                num_established.get(),
                endpoint.get_remote_address(),
            ),
            SwarmEvent::ConnectionClosed {
                peer_id,
                num_established,
                cause,
                ..
            } => {
                let cause = cause.map_or_else(|| "closed".to_owned(), |c| c.to_string());
                self.on_disconnected(peer_id, num_established, &cause);
            }
            SwarmEvent::OutgoingConnectionError { peer_id, error, .. } => {
                let op = peer_id.as_ref().and_then(operator_of);
                tracing::info!(operator = ?op, %error, "dial failed");
                if let Some(op) = op {
                    self.last_dial_error.insert(op, error.to_string());
                }
            }
            SwarmEvent::IncomingConnectionError {
                send_back_addr,
                error,
                ..
            } => {
                tracing::debug!(%send_back_addr, %error, "incoming connection failed");
            }
            SwarmEvent::Behaviour(NodeBehaviourEvent::Relay(event)) => self.on_relay(event),
            SwarmEvent::Behaviour(NodeBehaviourEvent::Identify(event)) => {
                tracing::debug!(?event, "identify");
            }
            SwarmEvent::Behaviour(NodeBehaviourEvent::Ping(event)) => {
                if let Err(e) = &event.result {
                    tracing::debug!(peer = %event.peer, error = %e, "ping failed");
                }
            }
            other => tracing::trace!(?other, "swarm event"),
        }
    }

    fn fail_listen(&mut self, listener_id: ListenerId, detail: String) {
        if let Some(i) = self
            .pending_listens
            .iter()
            .position(|p| p.listener == listener_id)
        {
            let PendingListen { addr, reply, .. } = self.pending_listens.swap_remove(i);
            let _ = reply.send(Err(NetError::Listen {
                addr: addr.to_string(),
                detail,
            }));
        }
    }
}

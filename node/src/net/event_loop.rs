//! [`EventLoop`]: the actor that owns the swarm. One `select!` over commands, swarm events,
//! the event backlog and the redial timer; pending replies and requests in maps keyed by id.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::time::Duration;

use futures::StreamExt;
use libp2p::core::transport::ListenerId;
use libp2p::request_response::{self, InboundRequestId, OutboundRequestId, ResponseChannel};
use libp2p::swarm::dial_opts::{DialOpts, PeerCondition};
use libp2p::swarm::{DialError, SwarmEvent};
use libp2p::{Multiaddr, PeerId, Swarm};
use renkei_protocol::ids::OperatorId;
use renkei_protocol::wire::{RefusalCode, Response};
use tokio::sync::{mpsc, oneshot};
use tokio::time::{Instant, MissedTickBehavior};

use super::behaviour::{NodeBehaviour, NodeBehaviourEvent};
use super::client::Command;
use super::codec::{RequestFrame, ResponseFrame, too_large_message};
use super::{Config, NetError, NetEvent, operator_of, peer_id_of};

/// Addresses remembered per peer (the most recent ones are kept).
const ADDRESSES_PER_PEER_MAX: usize = 16;
/// How often kept peers are checked for a redial.
const REDIAL_CHECK_INTERVAL: Duration = Duration::from_millis(500);

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
    /// Refusals to peers outside the allowed set; their connection closes once sent.
    refused: BTreeSet<InboundRequestId>,
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
    ) -> Self {
        EventLoop {
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
            refused: BTreeSet::new(),
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
                _ = redial.tick() => self.redial_due(),
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
                    self.redial_due();
                }
                let _ = reply.send(result);
            }
            Command::StopKeeping { peer } => {
                self.keep.remove(&peer);
            }
            Command::Send { to, id, request } => self.send(to, id, request),
            Command::Respond { id, response } => self.respond(id, response),
            Command::SetAllowed { allowed } => self.set_allowed(allowed),
            Command::Connected { reply } => {
                let _ = reply.send(self.connections.keys().copied().collect());
            }
            Command::Shutdown { reply } => return Flow::Stop(reply),
        }
        Flow::Continue
    }

    fn send(&mut self, to: OperatorId, id: u64, request: renkei_protocol::wire::Request) {
        let peer = match peer_id_of(&to) {
            Ok(peer) => peer,
            Err(e) => {
                self.emit(NetEvent::SendFailed {
                    id,
                    to,
                    error: e.to_string(),
                });
                return;
            }
        };
        let bytes = request.encode();
        let max = self.config.message_bytes_max;
        if bytes.len() > max {
            let error = format!(
                "{}; not sent",
                too_large_message("request", bytes.len(), max)
            );
            tracing::warn!(operator = %to, id, %error, "refusing to send");
            self.emit(NetEvent::SendFailed { id, to, error });
            return;
        }
        let addrs = self.addresses.get(&to).cloned().unwrap_or_default();
        tracing::debug!(operator = %to, id, bytes = bytes.len(), "sending request");
        let request_id = self
            .swarm
            .behaviour_mut()
            .relay
            .send_request_with_addresses(&peer, RequestFrame::Encoded(bytes), addrs);
        self.outbound.insert(request_id, (id, to));
    }

    fn respond(&mut self, id: u64, response: Response) {
        let Some(pending) = self.inbound.remove(&id) else {
            tracing::warn!(
                id,
                "no pending inbound request with this id; response dropped"
            );
            return;
        };
        self.inbound_ids.remove(&pending.request_id);
        let bytes = response.encode();
        let max = self.config.message_bytes_max;
        let frame = if bytes.len() > max {
            let message = too_large_message("response", bytes.len(), max);
            tracing::warn!(operator = %pending.from, id, %message, "answering TooLarge instead");
            ResponseFrame::Decoded(Response::Refused {
                code: RefusalCode::TooLarge,
                message,
            })
        } else {
            ResponseFrame::Encoded(bytes)
        };
        if self
            .swarm
            .behaviour_mut()
            .relay
            .send_response(pending.channel, frame)
            .is_err()
        {
            tracing::warn!(
                operator = %pending.from,
                id,
                "response not sent: the request timed out or its connection closed"
            );
        }
    }

    fn set_allowed(&mut self, allowed: BTreeSet<OperatorId>) {
        tracing::info!(operators = allowed.len(), "allowed set updated");
        self.allowed = allowed;
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

    fn redial_due(&mut self) {
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

    fn on_connected(&mut self, peer: PeerId, count: u32, remote: &Multiaddr) {
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
        let allowed = self.allowed.contains(&op);
        tracing::info!(operator = %op, %remote, allowed, "peer connected");
        if let Some(r) = self.keep.get_mut(&op) {
            r.connected_since = Some(Instant::now());
        }
        if allowed && self.up.insert(op) {
            self.emit(NetEvent::PeerUp(op));
        }
    }

    fn on_disconnected(&mut self, peer: PeerId, remaining: u32, cause: &str) {
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

    fn on_relay(&mut self, event: RelayEvent) {
        match event {
            request_response::Event::Message {
                peer,
                message:
                    request_response::Message::Request {
                        request_id,
                        request,
                        channel,
                    },
                ..
            } => self.on_request(peer, request_id, request, channel),
            request_response::Event::Message {
                peer,
                message:
                    request_response::Message::Response {
                        request_id,
                        response,
                    },
                ..
            } => {
                let Some((id, to)) = self.outbound.remove(&request_id) else {
                    tracing::warn!(%peer, "response to an unknown request");
                    return;
                };
                let decoded = match response {
                    ResponseFrame::Decoded(r) => Ok(r),
                    ResponseFrame::Encoded(bytes) => {
                        Response::decode(&bytes).map_err(|e| format!("cannot decode response: {e}"))
                    }
                };
                match decoded {
                    Ok(response) => {
                        tracing::debug!(operator = %to, id, "response received");
                        self.emit(NetEvent::Response {
                            id,
                            from: to,
                            response,
                        });
                    }
                    Err(error) => self.emit(NetEvent::SendFailed { id, to, error }),
                }
            }
            request_response::Event::OutboundFailure {
                peer,
                request_id,
                error,
                ..
            } => {
                let Some((id, to)) = self.outbound.remove(&request_id) else {
                    tracing::warn!(%peer, %error, "failure of an unknown request");
                    return;
                };
                let dial_failed = matches!(error, request_response::OutboundFailure::DialFailure);
                let error = match self.last_dial_error.get(&to) {
                    Some(dial) if dial_failed => format!("{error}: {dial}"),
                    _ => error.to_string(),
                };
                tracing::info!(operator = %to, id, %error, "request failed");
                self.emit(NetEvent::SendFailed { id, to, error });
            }
            request_response::Event::InboundFailure {
                peer,
                request_id,
                error,
                ..
            } => {
                tracing::warn!(%peer, %error, "inbound request failed");
                if let Some(id) = self.inbound_ids.remove(&request_id) {
                    self.inbound.remove(&id);
                }
                if self.refused.remove(&request_id) {
                    self.close_if_not_allowed(peer);
                }
            }
            request_response::Event::ResponseSent {
                peer, request_id, ..
            } => {
                tracing::debug!(%peer, "response sent");
                if self.refused.remove(&request_id) {
                    self.close_if_not_allowed(peer);
                }
            }
        }
    }

    fn close_if_not_allowed(&mut self, peer: PeerId) {
        let keep = operator_of(&peer)
            .is_some_and(|op| self.allowed.contains(&op) || self.keep.contains_key(&op));
        if !keep {
            tracing::info!(%peer, "closing the connection of a peer outside the roster");
            let _ = self.swarm.disconnect_peer_id(peer);
        }
    }

    fn refuse(
        &mut self,
        channel: ResponseChannel<ResponseFrame>,
        code: RefusalCode,
        message: String,
    ) {
        let frame = ResponseFrame::Decoded(Response::Refused { code, message });
        if self
            .swarm
            .behaviour_mut()
            .relay
            .send_response(channel, frame)
            .is_err()
        {
            tracing::debug!("refusal not sent: the stream is gone");
        }
    }

    fn on_request(
        &mut self,
        peer: PeerId,
        request_id: InboundRequestId,
        request: RequestFrame,
        channel: ResponseChannel<ResponseFrame>,
    ) {
        let from = match operator_of(&peer) {
            Some(op) if self.allowed.contains(&op) => op,
            other => {
                let who = other.map_or_else(|| peer.to_string(), |op| op.to_string());
                let message = format!("operator {who} is not in this node's roster");
                tracing::info!(%who, "refusing a request from outside the roster");
                self.refused.insert(request_id);
                self.refuse(channel, RefusalCode::NotInRoster, message);
                return;
            }
        };
        match request {
            RequestFrame::Decoded(request) => {
                let id = self.next_inbound;
                self.next_inbound += 1;
                tracing::debug!(operator = %from, id, "inbound request");
                self.inbound.insert(
                    id,
                    PendingInbound {
                        channel,
                        from,
                        request_id,
                    },
                );
                self.inbound_ids.insert(request_id, id);
                self.emit(NetEvent::Inbound { id, from, request });
            }
            RequestFrame::Invalid { code, message } => {
                tracing::info!(operator = %from, ?code, %message, "refusing an invalid request");
                self.refuse(channel, code, message);
            }
            RequestFrame::Encoded(_) => {
                // The codec never yields encoded inbound requests.
                self.refuse(
                    channel,
                    RefusalCode::Malformed,
                    "request was not decoded".to_owned(),
                );
            }
        }
    }
}

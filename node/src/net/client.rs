//! [`NetClient`]: the cloneable handle that sends commands to the event loop.

use std::collections::BTreeSet;

use libp2p::Multiaddr;
use renkei_protocol::ids::OperatorId;
use renkei_protocol::wire::{Request, Response};
use tokio::sync::{mpsc, oneshot};

use super::NetError;

/// A command for the event loop; those with a reply carry a oneshot sender.
#[derive(Debug)]
pub(crate) enum Command {
    Listen {
        addr: Multiaddr,
        reply: oneshot::Sender<Result<Multiaddr, NetError>>,
    },
    Dial {
        peer: OperatorId,
        addrs: Vec<Multiaddr>,
        reply: oneshot::Sender<Result<(), NetError>>,
    },
    AddAddresses {
        peer: OperatorId,
        addrs: Vec<Multiaddr>,
        reply: oneshot::Sender<Result<(), NetError>>,
    },
    KeepConnected {
        peer: OperatorId,
        addrs: Vec<Multiaddr>,
        reply: oneshot::Sender<Result<(), NetError>>,
    },
    StopKeeping {
        peer: OperatorId,
    },
    Send {
        to: OperatorId,
        id: u64,
        request: Request,
    },
    SendRaw {
        to: OperatorId,
        id: u64,
        body: Vec<u8>,
    },
    Respond {
        id: u64,
        response: Response,
    },
    SetAllowed {
        allowed: BTreeSet<OperatorId>,
        reply: oneshot::Sender<()>,
    },
    Connected {
        reply: oneshot::Sender<Vec<OperatorId>>,
    },
    Shutdown {
        reply: oneshot::Sender<()>,
    },
}

/// The handle to the network actor. Cheap to clone; every method fails with
/// [`NetError::Stopped`] once the event loop has ended.
#[derive(Clone, Debug)]
pub struct NetClient {
    commands: mpsc::Sender<Command>,
    local: OperatorId,
    gone: super::Gone,
}

impl NetClient {
    pub(crate) fn new(
        commands: mpsc::Sender<Command>,
        local: OperatorId,
        gone: super::Gone,
    ) -> Self {
        NetClient {
            commands,
            local,
            gone,
        }
    }

    /// Whether the inbound request `id` lost its stream before being answered (and forgets
    /// it): the driver then drops it without handing it to the core.
    pub fn take_gone(&self, id: u64) -> bool {
        self.gone.take(id)
    }

    /// This node's operator id (its PeerId's key).
    pub fn local_operator(&self) -> OperatorId {
        self.local
    }

    async fn command(&self, command: Command) -> Result<(), NetError> {
        self.commands
            .send(command)
            .await
            .map_err(|_| NetError::Stopped)
    }

    async fn ask<T>(
        &self,
        make: impl FnOnce(oneshot::Sender<T>) -> Command,
    ) -> Result<T, NetError> {
        let (reply, answer) = oneshot::channel();
        self.command(make(reply)).await?;
        answer.await.map_err(|_| NetError::Stopped)
    }

    /// Listens on `addr` and returns the first actual address (the bound port for
    /// `/tcp/0` or `/udp/0/quic-v1`). Every address is also reported as
    /// [`super::NetEvent::Listening`].
    pub async fn listen(&self, addr: Multiaddr) -> Result<Multiaddr, NetError> {
        self.ask(|reply| Command::Listen { addr, reply }).await?
    }

    /// Remembers `addrs` for `peer` and dials it now (unless already connected or dialling).
    /// The outcome shows as [`super::NetEvent::PeerUp`] or in the logs.
    pub async fn dial(&self, peer: OperatorId, addrs: Vec<Multiaddr>) -> Result<(), NetError> {
        self.ask(|reply| Command::Dial { peer, addrs, reply })
            .await?
    }

    /// Remembers `addrs` for `peer`, used when [`NetClient::send`] needs a connection.
    pub async fn add_addresses(
        &self,
        peer: OperatorId,
        addrs: Vec<Multiaddr>,
    ) -> Result<(), NetError> {
        self.ask(|reply| Command::AddAddresses { peer, addrs, reply })
            .await?
    }

    /// Remembers `addrs` for `peer` and keeps a connection to it: dials now and redials
    /// with exponential backoff whenever it is not connected.
    pub async fn keep_connected(
        &self,
        peer: OperatorId,
        addrs: Vec<Multiaddr>,
    ) -> Result<(), NetError> {
        self.ask(|reply| Command::KeepConnected { peer, addrs, reply })
            .await?
    }

    /// Stops redialling `peer` (an open connection stays until idle).
    pub async fn stop_keeping(&self, peer: OperatorId) -> Result<(), NetError> {
        self.command(Command::StopKeeping { peer }).await
    }

    /// Sends `request` to `to`, dialling a known address if not connected. `id` (the core's
    /// `OutboundId`) comes back in exactly one [`super::NetEvent::Response`] or
    /// [`super::NetEvent::SendFailed`].
    pub async fn send(&self, to: OperatorId, id: u64, request: Request) -> Result<(), NetError> {
        self.command(Command::Send { to, id, request }).await
    }

    /// Sends `body` as the frame of a `/renkei/relay/1` request exactly as given, without
    /// encoding or checking it: for conformance checks that must send undecodable or
    /// oversize requests (see [`crate::conformance`]). It still must fit this client's
    /// `message_bytes_max`. The answer comes back like [`NetClient::send`]'s.
    pub async fn send_raw(&self, to: OperatorId, id: u64, body: Vec<u8>) -> Result<(), NetError> {
        self.command(Command::SendRaw { to, id, body }).await
    }

    /// Answers the [`super::NetEvent::Inbound`] with this `id` (the core's `InboundId`). A
    /// response over the size limit is replaced by `Refused { TooLarge }`.
    pub async fn respond(&self, id: u64, response: Response) -> Result<(), NetError> {
        self.command(Command::Respond { id, response }).await
    }

    /// Replaces the set of operators allowed to use `/renkei/relay/1` (the roster's).
    /// Connected peers that become allowed are reported `PeerUp`; allowed peers that are
    /// removed are reported `PeerDown` and disconnected. Returns once the new set is in
    /// force: a request that arrives afterwards is judged by it.
    pub async fn set_allowed(&self, allowed: BTreeSet<OperatorId>) -> Result<(), NetError> {
        self.ask(|reply| Command::SetAllowed { allowed, reply })
            .await
    }

    /// The operators with at least one open connection (allowed or not), in id order.
    pub async fn connected(&self) -> Result<Vec<OperatorId>, NetError> {
        self.ask(|reply| Command::Connected { reply }).await
    }

    /// Stops the event loop, closing every connection and listener. Pending sends get no
    /// further events.
    pub async fn shutdown(&self) -> Result<(), NetError> {
        self.ask(|reply| Command::Shutdown { reply }).await
    }
}

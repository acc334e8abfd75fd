//! What the simulator's queue holds, and the faults a scenario (or a test) can inject.

use std::fmt;

use renkei_core::{ApiCommand, ApiId, Auth, OutboundId, Sealed};
use renkei_protocol::wire::{Request, Response};

/// A node index (0 is the national relay in generated topologies).
pub type NodeIx = usize;

/// A fault, injected now or at a scheduled time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fault {
    /// Cut the link both ways; after the keepalive the peers see it down.
    Partition(NodeIx, NodeIx),
    /// Drop messages from the first node to the second only (the connection stays up).
    PartitionOneWay(NodeIx, NodeIx),
    /// Heal the link (both directions); it reconnects after the reconnect delay.
    Repair(NodeIx, NodeIx),
    /// Queue messages on the link (both ways) instead of delivering them.
    Hold(NodeIx, NodeIx),
    /// Deliver the held messages and stop holding.
    Release(NodeIx, NodeIx),
    /// Crash a node. `mid_batch`: at its next batch, after `handle` and before `commit`.
    Crash {
        /// The node.
        node: NodeIx,
        /// Crash between handle and commit.
        mid_batch: bool,
    },
    /// Restart a crashed node from its store.
    Restart(NodeIx),
    /// Cut every link of a node both ways.
    Isolate(NodeIx),
    /// Repair every link of a node.
    Rejoin(NodeIx),
}

impl fmt::Display for Fault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Fault::Partition(a, b) => write!(f, "partition n{a} <-> n{b}"),
            Fault::PartitionOneWay(a, b) => write!(f, "partition n{a} -> n{b} (one way)"),
            Fault::Repair(a, b) => write!(f, "repair n{a} <-> n{b}"),
            Fault::Hold(a, b) => write!(f, "hold n{a} <-> n{b}"),
            Fault::Release(a, b) => write!(f, "release n{a} <-> n{b}"),
            Fault::Crash {
                node,
                mid_batch: true,
            } => write!(f, "crash n{node} between handle and commit"),
            Fault::Crash {
                node,
                mid_batch: false,
            } => write!(f, "crash n{node}"),
            Fault::Restart(n) => write!(f, "restart n{n}"),
            Fault::Isolate(n) => write!(f, "isolate n{n}"),
            Fault::Rejoin(n) => write!(f, "rejoin n{n}"),
        }
    }
}

/// Why a request failed at its sender.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum FailWhy {
    Timeout,
    NoConnection,
    ConnectionLost,
}

impl FailWhy {
    pub(crate) fn text(self) -> &'static str {
        match self {
            FailWhy::Timeout => "request timed out",
            FailWhy::NoConnection => "no connection to peer",
            FailWhy::ConnectionLost => "connection lost",
        }
    }
}

/// One entry of the event queue.
#[derive(Debug, Clone)]
pub(crate) enum Event {
    Api {
        node: NodeIx,
        id: ApiId,
        auth: Auth,
        cmd: ApiCommand,
    },
    Request {
        to: NodeIx,
        to_life: u64,
        from: NodeIx,
        from_life: u64,
        out: OutboundId,
        request: Request,
    },
    Response {
        to: NodeIx,
        life: u64,
        from: NodeIx,
        out: OutboundId,
        response: Response,
    },
    Fail {
        node: NodeIx,
        life: u64,
        out: OutboundId,
        why: FailWhy,
    },
    Peer {
        node: NodeIx,
        life: u64,
        peer: NodeIx,
        up: bool,
    },
    Wake {
        node: NodeIx,
        life: u64,
        at: u64,
    },
    /// A submission's seal job, run (the prepare stage's answer to `Effect::Seal`).
    Sealed {
        node: NodeIx,
        life: u64,
        ticket: u64,
        sealed: Box<Sealed>,
    },
    Fault(Fault),
    LinkCheck {
        a: NodeIx,
        b: NodeIx,
        epoch: u64,
    },
    Reconnect {
        a: NodeIx,
        b: NodeIx,
        epoch: u64,
    },
    CrashFallback {
        node: NodeIx,
        life: u64,
    },
}

impl Event {
    /// The node whose core this event feeds, if any (used to batch inputs).
    pub(crate) fn input_node(&self) -> Option<NodeIx> {
        match self {
            Event::Api { node, .. }
            | Event::Fail { node, .. }
            | Event::Peer { node, .. }
            | Event::Wake { node, .. }
            | Event::Sealed { node, .. }
            | Event::Request { to: node, .. }
            | Event::Response { to: node, .. } => Some(*node),
            Event::Fault(_)
            | Event::LinkCheck { .. }
            | Event::Reconnect { .. }
            | Event::CrashFallback { .. } => None,
        }
    }
}

/// Approximate wire size of a request (for the bandwidth term of the latency).
pub(crate) fn request_size(r: &Request) -> u64 {
    match r {
        Request::Deliver(envs) => envs.iter().map(|e| e.len() as u64 + 8).sum::<u64>() + 16,
        Request::Receipts(rs) => rs.iter().map(|e| e.len() as u64 + 4).sum::<u64>() + 16,
        Request::DirectorySync { .. } => 32,
    }
}

/// Approximate wire size of a response.
pub(crate) fn response_size(r: &Response) -> u64 {
    match r {
        Response::HopAcks(acks) => acks.len() as u64 * 200 + 16,
        Response::Directory {
            bindings, roster, ..
        } => {
            bindings.iter().map(|b| b.len() as u64 + 4).sum::<u64>()
                + roster.as_ref().map_or(0, |r| r.len() as u64)
                + 32
        }
        _ => 64,
    }
}

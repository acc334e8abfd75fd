//! One libp2p identity connected to the target: requests with a bound on the answer, and
//! polite answers to what the target asks meanwhile (it forwards receipts to the origin,
//! which is the tester, and asks for directory sync).

use std::collections::BTreeSet;
use std::time::Duration;

use renkei_protocol::ids::OperatorId;
use renkei_protocol::keys::OperatorKeys;
use renkei_protocol::limits::MESSAGE_BYTES_MAX;
use renkei_protocol::wire::{HopOutcome, Request, Response};
use tokio::sync::mpsc;

use super::ConformanceError;
use crate::net::{Config, Multiaddr, NetClient, NetEvent, Network};

/// Extra frame room of the kit's own network, so that it can send an oversize frame.
pub(super) const OVERSIZE_ROOM: usize = 1024 * 1024;

/// A connection to the target as one operator identity.
pub(super) struct Session {
    client: NetClient,
    events: mpsc::Receiver<NetEvent>,
    target: OperatorId,
    next_id: u64,
    timeout: Duration,
    /// Receipts the target forwarded to us (the origin) during the session.
    pub(super) receipts: Vec<Vec<u8>>,
    /// Signed bindings the tester publishes to the target's directory sync (the test
    /// unit's sending office, bound to the tester: a destination takes a unit only from
    /// an office bound to its origin).
    pub(super) bindings: Vec<Vec<u8>>,
    /// Directory syncs of the target this session answered with `bindings`.
    pub(super) bindings_served: u32,
    /// The cursor the session's binding log ends at: the time it opened, so a target that
    /// read the log of an earlier run (its cursor from then is smaller) reads this one's.
    cursor: u64,
}

impl Session {
    /// Starts a network actor with `keys`' identity that lets only the target use
    /// `/renkei/relay/1`, and remembers the target's address.
    pub(super) async fn open(
        keys: &OperatorKeys,
        target: OperatorId,
        addr: Multiaddr,
        timeout: Duration,
    ) -> Result<Session, ConformanceError> {
        let mut config = Config::new(keys);
        config.allowed = BTreeSet::from([target]);
        config.request_timeout = timeout;
        config.message_bytes_max = MESSAGE_BYTES_MAX + OVERSIZE_ROOM;
        let (client, events, event_loop) = Network::new(config)?;
        tokio::spawn(event_loop.run());
        client.add_addresses(target, vec![addr]).await?;
        Ok(Session {
            client,
            events,
            target,
            next_id: 1,
            timeout,
            receipts: Vec::new(),
            bindings: Vec::new(),
            bindings_served: 0,
            cursor: std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(1, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
                .max(1),
        })
    }

    /// Sends `request` and waits for the answer (or the failure, as text).
    pub(super) async fn request(&mut self, request: Request) -> Result<Response, String> {
        let id = self.next();
        self.client
            .send(self.target, id, request)
            .await
            .map_err(|e| e.to_string())?;
        self.answer(id).await
    }

    /// Sends `body` as the request frame as it is, and waits for the answer.
    pub(super) async fn request_raw(&mut self, body: Vec<u8>) -> Result<Response, String> {
        let id = self.next();
        self.client
            .send_raw(self.target, id, body)
            .await
            .map_err(|e| e.to_string())?;
        self.answer(id).await
    }

    /// Whether the target still answers (a directory sync), as a detail for the log.
    pub(super) async fn still_up(&mut self) -> Result<(), String> {
        match self
            .request(Request::DirectorySync {
                roster_serial: u64::MAX,
                cursor: u64::MAX,
            })
            .await
        {
            Ok(Response::Directory { .. }) => Ok(()),
            Ok(other) => Err(format!(
                "afterwards the node answers a directory sync with {other:?}"
            )),
            Err(e) => Err(format!(
                "afterwards the node does not answer a directory sync: {e}"
            )),
        }
    }

    /// Waits `d`, answering what the target asks meanwhile (its directory sync after a
    /// retry-later, say).
    pub(super) async fn pause(&mut self, d: Duration) {
        let until = tokio::time::Instant::now() + d;
        while let Ok(Some(event)) = tokio::time::timeout_at(until, self.events.recv()).await {
            if let NetEvent::Inbound {
                id: inbound,
                request,
                ..
            } = event
            {
                self.serve(inbound, request).await;
            }
        }
    }

    /// Stops the network actor.
    pub(super) async fn close(self) {
        let _ = self.client.shutdown().await;
    }

    fn next(&mut self) -> u64 {
        let id = self.next_id;
        self.next_id += 1;
        id
    }

    async fn answer(&mut self, id: u64) -> Result<Response, String> {
        // The network's own request timeout fails the request first; this bound only
        // covers a stalled actor.
        let deadline = tokio::time::Instant::now() + self.timeout + Duration::from_secs(10);
        loop {
            let event = tokio::time::timeout_at(deadline, self.events.recv())
                .await
                .map_err(|_| format!("no answer within {} s", self.timeout.as_secs()))?
                .ok_or_else(|| "the network actor stopped".to_owned())?;
            match event {
                NetEvent::Response {
                    id: got, response, ..
                } if got == id => return Ok(response),
                NetEvent::SendFailed { id: got, error, .. } if got == id => return Err(error),
                NetEvent::Inbound {
                    id: inbound,
                    request,
                    ..
                } => self.serve(inbound, request).await,
                other => tracing::debug!(?other, "conformance: network event"),
            }
        }
    }

    /// Answers the target's own requests: receipts are taken (we are their origin), a
    /// directory sync gets the tester's bindings, deliveries are declined.
    async fn serve(&mut self, id: u64, request: Request) {
        let response = match request {
            Request::Receipts(rs) => {
                let n = rs.len() as u64;
                self.receipts.extend(rs);
                Response::ReceiptsTaken(n)
            }
            Request::DirectorySync { cursor, .. } => {
                let fresh = cursor < self.cursor;
                if fresh {
                    self.bindings_served += 1;
                }
                Response::Directory {
                    roster: None,
                    bindings: if fresh {
                        self.bindings.clone()
                    } else {
                        Vec::new()
                    },
                    next_cursor: cursor.max(self.cursor),
                    more: false,
                }
            }
            Request::Deliver(envs) => Response::HopAcks(
                envs.iter()
                    .map(|_| renkei_protocol::wire::HopAck {
                        id: renkei_protocol::ids::EnvelopeId([0; 16]),
                        outcome: HopOutcome::RetryLater(
                            "the conformance kit does not take deliveries".to_owned(),
                        ),
                    })
                    .collect(),
            ),
        };
        if let Err(e) = self.client.respond(id, response).await {
            tracing::warn!(error = %e, "conformance: cannot answer the target");
        }
    }
}

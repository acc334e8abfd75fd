//! Relay protocol traffic: outbound requests, inbound requests (authorization and
//! refusals), responses and failures.

use libp2p::PeerId;
use libp2p::request_response::{self, InboundRequestId, ResponseChannel};
use renkei_protocol::ids::OperatorId;
use renkei_protocol::wire::{RefusalCode, Response};

use tokio::time::Instant;

use super::{EventLoop, PendingInbound, REFUSED_PEER_CLOSE_DELAY, RelayEvent};
use crate::net::codec::{RequestFrame, ResponseFrame, too_large_message};
use crate::net::{NetEvent, operator_of, peer_id_of};

impl EventLoop {
    /// Sends the encoded request `bytes` (refused here when over the frame limit).
    pub(super) fn send(&mut self, to: OperatorId, id: u64, bytes: Vec<u8>) {
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

    pub(super) fn respond(&mut self, id: u64, response: Response) {
        let Some(pending) = self.inbound.remove(&id) else {
            // Its stream failed while the core worked on it.
            self.gone.take(id);
            tracing::debug!(
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

    pub(super) fn on_relay(&mut self, event: RelayEvent) {
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
                if let Some(id) = self.inbound_ids.remove(&request_id)
                    && self.inbound.remove(&id).is_some()
                {
                    // Handed on and not answered: the driver drops it if it has not
                    // reached the core yet.
                    self.gone.insert(id);
                }
            }
            request_response::Event::ResponseSent { peer, .. } => {
                tracing::debug!(%peer, "response sent");
            }
        }
    }

    /// Closes the connections of refused peers whose grace period is over, unless they
    /// became allowed or kept meanwhile.
    pub(super) fn close_refused_due(&mut self) {
        let now = Instant::now();
        let due: Vec<PeerId> = self
            .closing
            .iter()
            .filter(|(_, at)| **at <= now)
            .map(|(peer, _)| *peer)
            .collect();
        for peer in due {
            self.closing.remove(&peer);
            let keep = operator_of(&peer)
                .is_some_and(|op| self.admits(&op) || self.keep.contains_key(&op));
            if !keep && self.swarm.is_connected(&peer) {
                tracing::info!(%peer, "closing the connection of a peer outside the roster");
                let _ = self.swarm.disconnect_peer_id(peer);
            }
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
                if !self.allowed.is_empty() {
                    self.closing
                        .entry(peer)
                        .or_insert_with(|| Instant::now() + REFUSED_PEER_CLOSE_DELAY);
                }
                self.refuse(channel, RefusalCode::NotInRoster, message);
                return;
            }
        };
        match request {
            RequestFrame::Decoded(_)
                if self.inbound.values().filter(|p| p.from == from).count()
                    >= self.config.inbound_pending_per_peer_max =>
            {
                let max = self.config.inbound_pending_per_peer_max;
                tracing::info!(operator = %from, max, "rate limiting a peer");
                self.refuse(
                    channel,
                    RefusalCode::RateLimited,
                    format!(
                        "{max} requests of operator {from} are still being handled, this node's limit per peer; retry after an answer"
                    ),
                );
            }
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

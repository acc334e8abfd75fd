//! `GET /metrics` in the Prometheus text format.

use std::fmt::Write;

use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};

use super::AppState;
use crate::core::{ApiCommand, ApiReply, Auth};

pub(super) async fn metrics(
    State(state): State<AppState>,
    headers: axum::http::HeaderMap,
) -> Response {
    // The node's figures are for its operator: the metrics token (DIR/metrics.token, for a
    // scraper) or the admin token.
    let allowed = super::bearer(&headers).is_some_and(|h| {
        super::constant_time_eq(&h, &state.metrics_hash)
            || super::constant_time_eq(&h, &state.admin_hash)
    });
    if !allowed {
        return super::error::json_error(
            axum::http::StatusCode::UNAUTHORIZED,
            "unauthorized",
            "metrics need the node's metrics token (DIR/metrics.token) or its admin token".into(),
        );
    }
    let ApiReply::Status(s) = state.core.call(Auth::Operator, ApiCommand::Status).await else {
        return (
            axum::http::StatusCode::SERVICE_UNAVAILABLE,
            "core unavailable\n",
        )
            .into_response();
    };
    let c = &s.counters;
    let mut out = String::new();
    let mut counter = |name: &str, help: &str, v: u64| {
        let _ = writeln!(
            out,
            "# HELP renkei_{name} {help}\n# TYPE renkei_{name} counter\nrenkei_{name} {v}"
        );
    };
    counter(
        "submitted_total",
        "Send units accepted from offices.",
        c.submitted,
    );
    counter(
        "relayed_in_total",
        "Envelopes accepted for relay.",
        c.relayed_in,
    );
    counter(
        "delivered_total",
        "Envelopes delivered into local inboxes.",
        c.delivered,
    );
    counter(
        "rejected_total",
        "Definitive rejections issued.",
        c.rejected,
    );
    counter("expired_total", "Expired receipts issued.", c.expired);
    counter(
        "duplicates_total",
        "Duplicate envelopes answered from the dedup index.",
        c.duplicates,
    );
    counter(
        "batches_sent_total",
        "Delivery batches sent to peers.",
        c.batches_sent,
    );
    counter("retries_total", "Envelope send retries.", c.retries);
    counter(
        "receipts_in_total",
        "Receipts applied to sent items.",
        c.receipts_in,
    );
    counter(
        "refused_total",
        "Peer requests refused as a whole.",
        c.refused,
    );
    counter(
        "damaged_in_transit_total",
        "Envelopes a next hop found damaged (bad origin signature on bytes this node sent intact); sent again.",
        c.damaged_in_transit,
    );
    counter(
        "binding_conflicts_total",
        "Office binding conflicts seen.",
        c.binding_conflicts,
    );
    counter(
        "bindings_refused_total",
        "Office bindings ignored because their signature does not verify.",
        c.bindings_refused,
    );
    let mut gauge = |name: &str, help: &str, v: usize| {
        let _ = writeln!(
            out,
            "# HELP renkei_{name} {help}\n# TYPE renkei_{name} gauge\nrenkei_{name} {v}"
        );
    };
    gauge(
        "roster_stale",
        "1 when the installed roster is older than delivery.roster_max_age_days (renkei status says what to do).",
        usize::from(s.roster_warning.is_some()),
    );
    gauge(
        "roster_age_seconds",
        "Seconds since the installed roster was issued (0 without a roster).",
        s.roster_issued_at_ms.map_or(0, |t| {
            (crate::runtime::now_ms().saturating_sub(t) / 1000) as usize
        }),
    );
    gauge(
        "outbox_envelopes",
        "Envelopes awaiting a hop acknowledgement.",
        s.outbox,
    );
    gauge(
        "receipt_outbox",
        "Receipts awaiting forwarding.",
        s.receipt_outbox,
    );
    gauge("offices", "Offices homed here.", s.offices);
    gauge("peers_up", "Connected peers.", s.peers_up.len());
    gauge(
        "binding_conflicts",
        "Current office binding conflicts.",
        s.binding_conflicts.len(),
    );
    let load = state.core.load();
    let get = |a: &std::sync::atomic::AtomicU64| a.load(std::sync::atomic::Ordering::Relaxed);
    for (name, help, v) in [
        (
            "core_handle_seconds_total",
            "Time the core spent deciding (handling inputs).",
            get(&load.handle_ns) as f64 / 1e9,
        ),
        (
            "core_commit_seconds_total",
            "Time the core spent committing batches.",
            get(&load.commit_ns) as f64 / 1e9,
        ),
        (
            "core_batches_total",
            "Batches the core handled (one commit each).",
            get(&load.batches) as f64,
        ),
        (
            "core_inputs_total",
            "Inputs the core handled.",
            get(&load.inputs) as f64,
        ),
    ] {
        let _ = writeln!(
            out,
            "# HELP renkei_{name} {help}\n# TYPE renkei_{name} counter\nrenkei_{name} {v}"
        );
    }
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], out).into_response()
}

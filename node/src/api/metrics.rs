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
    load.commits.write(
        &mut out,
        "renkei_commit_duration_seconds",
        "Duration of each group commit (one per batch of inputs): writing the group and its flush (fdatasync), which runs beside the core.",
    );
    state.requests.write(
        &mut out,
        "renkei_http_request_duration_seconds",
        "Duration of each HTTP request, from its head to its response.",
    );
    delivery(&mut out, c);
    if let Some(Ok(bytes)) = state.core.with_store(|s| s.size_bytes()).await {
        let _ = writeln!(
            out,
            "# HELP renkei_store_bytes Size of the node's store (the local store's files, or the PostgreSQL table with its indexes).\n\
             # TYPE renkei_store_bytes gauge\nrenkei_store_bytes {bytes}"
        );
    }
    node_info(&mut out, &state.info);
    process(&mut out);
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], out).into_response()
}

/// `renkei_delivery_duration_seconds`: acceptance to the destination's `Delivered`, per
/// unit this node originated.
fn delivery(out: &mut String, c: &crate::core::Counters) {
    let name = "renkei_delivery_duration_seconds";
    let _ = writeln!(
        out,
        "# HELP {name} Time from a unit's acceptance here to its destination's Delivered receipt.\n\
         # TYPE {name} histogram"
    );
    let mut cumulative = 0;
    for (i, bound) in crate::core::DELIVERY_BUCKETS_MS.iter().enumerate() {
        cumulative += c.delivery_ms_buckets[i];
        let _ = writeln!(
            out,
            "{name}_bucket{{le=\"{}\"}} {cumulative}",
            *bound as f64 / 1000.0
        );
    }
    let count: u64 = c.delivery_ms_buckets.iter().sum();
    let _ = writeln!(
        out,
        "{name}_bucket{{le=\"+Inf\"}} {count}\n{name}_sum {}\n{name}_count {count}",
        c.delivery_ms_sum as f64 / 1000.0
    );
}

/// `renkei_build_info`, and on PostgreSQL which node is active under which fence.
fn node_info(out: &mut String, info: &super::NodeInfo) {
    let _ = writeln!(
        out,
        "# HELP renkei_build_info The node's version and store (always 1).\n\
         # TYPE renkei_build_info gauge\n\
         renkei_build_info{{version=\"{}\",store=\"{}\"}} 1",
        info.version, info.store
    );
    if let Some((node, fence)) = &info.lease {
        let node = node.replace('\\', "\\\\").replace('"', "\\\"");
        let _ = writeln!(
            out,
            "# HELP renkei_active This node holds its operator's lease (a standby serves no metrics).\n\
             # TYPE renkei_active gauge\n\
             renkei_active{{node=\"{node}\"}} 1\n\
             # HELP renkei_lease_fence The fencing number this node's commits carry.\n\
             # TYPE renkei_lease_fence gauge\n\
             renkei_lease_fence {fence}"
        );
    }
}

/// The standard process metrics, from /proc (Linux; nothing elsewhere).
fn process(out: &mut String) {
    // The kernel reports CPU time in USER_HZ ticks, 100 per second in the Linux ABI.
    const TICKS: f64 = 100.0;
    let Ok(stat) = std::fs::read_to_string("/proc/self/stat") else {
        return;
    };
    // Fields after the command name (which may hold spaces), from field 3 on.
    let Some(rest) = stat.rsplit_once(')').map(|(_, r)| r) else {
        return;
    };
    let f: Vec<&str> = rest.split_whitespace().collect();
    let field = |n: usize| f.get(n - 3).and_then(|v| v.parse::<f64>().ok());
    let mut gauge = |name: &str, kind: &str, help: &str, v: f64| {
        let _ = writeln!(
            out,
            "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {v}"
        );
    };
    if let (Some(u), Some(s)) = (field(14), field(15)) {
        gauge(
            "process_cpu_seconds_total",
            "counter",
            "User and system CPU time spent.",
            (u + s) / TICKS,
        );
    }
    if let Some(v) = field(23) {
        gauge(
            "process_virtual_memory_bytes",
            "gauge",
            "Virtual memory size.",
            v,
        );
    }
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    if let Some(kb) = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
    {
        gauge(
            "process_resident_memory_bytes",
            "gauge",
            "Resident memory size.",
            kb * 1024.0,
        );
    }
    if let Ok(fds) = std::fs::read_dir("/proc/self/fd") {
        gauge(
            "process_open_fds",
            "gauge",
            "Open file descriptors.",
            fds.count() as f64,
        );
    }
    let boot = std::fs::read_to_string("/proc/stat").ok().and_then(|s| {
        s.lines()
            .find_map(|l| l.strip_prefix("btime "))
            .and_then(|v| v.trim().parse::<f64>().ok())
    });
    if let (Some(boot), Some(start)) = (boot, field(22)) {
        gauge(
            "process_start_time_seconds",
            "gauge",
            "Start time of the process since the Unix epoch.",
            boot + start / TICKS,
        );
    }
}

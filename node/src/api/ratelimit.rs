//! Per-client-IP limit on failed authentications (token guessing). After
//! [`FAILURES_MAX`] answers of `401` to one IP address within [`WINDOW`], every request from
//! that address is answered `429` until the oldest failure leaves the window.
//!
//! Why the token check itself needs no constant-time comparison: the core looks offices up
//! by the SHA-256 of the presented token in a map. What a timing difference could reveal is
//! how much of a guess's *hash* matches a stored hash, and the hash of a guess says nothing
//! useful about the token that produces a stored hash (preimage resistance). Tokens are 32
//! random bytes, so guessing is hopeless anyway; this limit keeps guessing from costing the
//! node work and makes it visible (a warning is logged when an address is blocked).

use std::collections::{BTreeMap, VecDeque};
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::{ConnectInfo, Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::error::json_error;

/// Failed authentications allowed per address within [`WINDOW`].
pub const FAILURES_MAX: usize = 20;
/// The sliding window.
pub const WINDOW: Duration = Duration::from_secs(60);
/// Addresses tracked at most (the oldest-failing are forgotten first beyond this).
const ADDRESSES_MAX: usize = 65_536;

/// Recent authentication failures per client address.
#[derive(Clone, Default)]
pub struct AuthFailures {
    inner: Arc<Mutex<BTreeMap<IpAddr, VecDeque<Instant>>>>,
}

impl AuthFailures {
    /// Seconds until `ip` may try again, if it is blocked now.
    fn blocked_for(&self, ip: IpAddr, now: Instant) -> Option<u64> {
        let mut map = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        let q = map.get_mut(&ip)?;
        while q.front().is_some_and(|t| now.duration_since(*t) >= WINDOW) {
            q.pop_front();
        }
        if q.is_empty() {
            map.remove(&ip);
            return None;
        }
        (q.len() >= FAILURES_MAX).then(|| {
            let oldest = q.front().copied().unwrap_or(now);
            WINDOW
                .saturating_sub(now.duration_since(oldest))
                .as_secs()
                .max(1)
        })
    }

    fn record(&self, ip: IpAddr, now: Instant) {
        let mut map = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        if map.len() >= ADDRESSES_MAX && !map.contains_key(&ip) {
            let stalest = map
                .iter()
                .min_by_key(|(_, q)| q.back().copied())
                .map(|(k, _)| *k);
            if let Some(k) = stalest {
                map.remove(&k);
            }
        }
        let q = map.entry(ip).or_default();
        q.push_back(now);
        while q.len() > FAILURES_MAX {
            q.pop_front();
        }
        if q.len() == FAILURES_MAX {
            tracing::warn!(client = %ip, "too many failed authentications; blocking for up to {}s", WINDOW.as_secs());
        }
    }
}

/// Middleware: refuses blocked addresses with `429`, counts `401` answers.
pub async fn limit_failed_auth(
    State(failures): State<AuthFailures>,
    req: Request,
    next: Next,
) -> Response {
    let ip = req
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip());
    let Some(ip) = ip else {
        return next.run(req).await;
    };
    if let Some(secs) = failures.blocked_for(ip, Instant::now()) {
        let mut r = json_error(
            StatusCode::TOO_MANY_REQUESTS,
            "rate_limited",
            format!(
                "too many failed authentications from {ip} ({FAILURES_MAX} within {}s); try again in {secs}s",
                WINDOW.as_secs()
            ),
        );
        if let Ok(v) = HeaderValue::from_str(&secs.to_string()) {
            r.headers_mut().insert(header::RETRY_AFTER, v);
        }
        return r.into_response();
    }
    let resp = next.run(req).await;
    if resp.status() == StatusCode::UNAUTHORIZED {
        failures.record(ip, Instant::now());
    }
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocks_after_the_limit_and_forgets_after_the_window() {
        let f = AuthFailures::default();
        let ip: IpAddr = [127, 0, 0, 1].into();
        let other: IpAddr = [127, 0, 0, 2].into();
        let t0 = Instant::now();
        for i in 0..FAILURES_MAX {
            assert_eq!(f.blocked_for(ip, t0), None, "blocked after {i}");
            f.record(ip, t0);
        }
        assert_eq!(f.blocked_for(ip, t0), Some(WINDOW.as_secs()));
        assert_eq!(f.blocked_for(other, t0), None);
        assert_eq!(f.blocked_for(ip, t0 + WINDOW), None);
    }
}

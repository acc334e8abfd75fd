//! Per-client-IP limit on failed authentications (token guessing). After
//! [`FAILURES_MAX`] answers of `401` to one client address within [`WINDOW`], requests from
//! that address are answered `429` until the oldest failure leaves the window — except a
//! request that carries a valid token: an office behind the same address (one NAT, one
//! proxy) as someone mistyping is never locked out. Whether a token is valid is known from
//! the admin and metrics tokens, from the offices recently seen valid, or by asking the core
//! (one lookup in its token map: what any authenticated request costs; throttling it would
//! let a guesser lock the valid tokens of its address out again). A blocked address gets
//! `429` for requests without a valid token, which makes guessing visible and keeps
//! token-less hammering off the handlers. The client address is the TCP peer, or, for a
//! request from a proxy listed in `trusted_proxies`, the address it forwards for.
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
#[derive(Clone)]
pub struct AuthFailures {
    inner: Arc<Mutex<Table>>,
    /// Failures within [`WINDOW`] that block an address (`limits.failed_auth_max`).
    max: usize,
}

impl Default for AuthFailures {
    fn default() -> Self {
        AuthFailures::with_max(FAILURES_MAX)
    }
}

impl AuthFailures {
    /// A table blocking an address after `max` failures within [`WINDOW`].
    pub fn with_max(max: usize) -> AuthFailures {
        AuthFailures {
            inner: Arc::default(),
            max: max.max(1),
        }
    }
}

/// The addresses with their failure times, and the order they came in (for eviction
/// without scanning the table: when it is full, the address tracked longest goes).
#[derive(Default)]
struct Table {
    map: BTreeMap<IpAddr, VecDeque<Instant>>,
    /// First-seen order; may name addresses already gone from `map` (skipped lazily).
    order: VecDeque<IpAddr>,
}

/// The limiter's state: the failures, and what it needs to recognise a valid token.
#[derive(Clone)]
pub struct Guard {
    failures: AuthFailures,
    app: super::AppState,
}

impl Guard {
    /// A guard over the node's API.
    pub fn new(app: super::AppState) -> Guard {
        Guard {
            failures: AuthFailures::with_max(app.failed_auth_max),
            app,
        }
    }

    /// Whether the request's bearer token is valid.
    async fn carries_valid_token(&self, key: Option<[u8; 32]>) -> bool {
        let Some(key) = key else {
            return false;
        };
        if super::constant_time_eq(&key, &self.app.admin_hash)
            || super::constant_time_eq(&key, &self.app.metrics_hash)
            || self.app.uploads.known(&key, Instant::now())
        {
            return true;
        }
        let reply = self
            .app
            .core
            .call(
                crate::core::Auth::Office(key),
                crate::core::ApiCommand::WhoAmI,
            )
            .await;
        let valid = matches!(reply, crate::core::ApiReply::Office(_));
        if valid {
            self.app.uploads.remember(key, Instant::now());
        }
        valid
    }
}

impl AuthFailures {
    /// Seconds until `ip` may try again, if it is blocked now.
    fn blocked_for(&self, ip: IpAddr, now: Instant) -> Option<u64> {
        let mut table = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        let map = &mut table.map;
        let q = map.get_mut(&ip)?;
        while q.front().is_some_and(|t| now.duration_since(*t) >= WINDOW) {
            q.pop_front();
        }
        if q.is_empty() {
            map.remove(&ip);
            return None;
        }
        (q.len() >= self.max).then(|| {
            let oldest = q.front().copied().unwrap_or(now);
            WINDOW
                .saturating_sub(now.duration_since(oldest))
                .as_secs()
                .max(1)
        })
    }

    fn record(&self, ip: IpAddr, now: Instant) {
        let mut table = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        let Table { map, order } = &mut *table;
        if !map.contains_key(&ip) {
            while map.len() >= ADDRESSES_MAX {
                match order.pop_front() {
                    Some(old) => {
                        map.remove(&old);
                    }
                    None => break,
                }
            }
            order.push_back(ip);
            if order.len() > 2 * ADDRESSES_MAX {
                // Addresses that left the table by themselves: forget them here too.
                order.retain(|a| map.contains_key(a));
            }
        }
        let q = map.entry(ip).or_default();
        q.push_back(now);
        while q.len() > self.max {
            q.pop_front();
        }
        if q.len() == self.max {
            tracing::warn!(client = %ip, "too many failed authentications; blocking for up to {}s", WINDOW.as_secs());
        }
    }
}

/// Middleware: refuses blocked addresses with `429` (unless the request carries a valid
/// token), counts `401` answers.
pub async fn limit_failed_auth(State(guard): State<Guard>, req: Request, next: Next) -> Response {
    let peer = req
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip());
    let Some(peer) = peer else {
        return next.run(req).await;
    };
    let ip = super::client_ip(peer, req.headers(), &guard.app.trusted_proxies);
    if let Some(secs) = guard.failures.blocked_for(ip, Instant::now())
        && !guard
            .carries_valid_token(super::bearer(req.headers()))
            .await
    {
        let mut r = json_error(
            StatusCode::TOO_MANY_REQUESTS,
            "rate_limited",
            format!(
                "too many failed authentications from {ip} ({} within {}s); try again in {secs}s",
                guard.failures.max,
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
        guard.failures.record(ip, Instant::now());
    }
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_table_forgets_the_address_tracked_longest() {
        let f = AuthFailures::default();
        let t0 = Instant::now();
        let addr = |i: usize| IpAddr::from([10, (i >> 16) as u8, (i >> 8) as u8, i as u8]);
        for _ in 0..FAILURES_MAX {
            f.record(addr(0), t0);
        }
        for i in 1..=ADDRESSES_MAX {
            f.record(addr(i), t0);
        }
        let table = f.inner.lock().unwrap();
        assert_eq!(table.map.len(), ADDRESSES_MAX);
        assert!(!table.map.contains_key(&addr(0)), "the first address went");
        assert!(table.map.contains_key(&addr(ADDRESSES_MAX)));
    }

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

//! Uploads: the office is known before a byte of the body is read, each office has a bound
//! on upload bytes in flight and on uploads per hour, and a unit is checked on the bounded
//! prepare pool, never on the core's thread.
//!
//! Bytes in flight rather than a count: care software sends many small units at once at
//! month start (the relay benchmark sends 20 at a time from one office), while one office
//! with several maximum-size uploads is what could fill the prepare pool. A request counts
//! as its `Content-Length`, or as the upload limit when it has none (chunked).
//!
//! Order for `POST /v1/send-units`: [`gate`] (token → office, limits; `401`/`429` before
//! the body), then the body deadline (`read_body_in_time`), then the handler, which hands
//! the files to [`Uploads::prepare`] and the prepared unit to the core.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::Response;
use tokio::sync::Semaphore;

use super::AppState;
use super::error::{json_error, unexpected};
use crate::core::{ApiCommand, ApiReply, PreparedUnit};

/// The limits of one node's uploads.
#[derive(Debug, Clone, Copy)]
pub struct UploadLimits {
    /// Upload bytes of one office being received or checked at once.
    pub bytes_in_flight_per_office: u64,
    /// What a request without `Content-Length` counts as (the upload limit).
    pub upload_bytes_max: u64,
    /// Uploads one office may start per hour.
    pub per_office_per_hour: u32,
    /// Units checked at once (the prepare pool's size).
    pub prepare_workers: usize,
}

/// Upload bookkeeping shared by the handlers.
#[derive(Clone)]
pub struct Uploads {
    limits: UploadLimits,
    pool: crate::prepare_pool::PreparePool,
    /// Token hashes the core named an office for lately, and when: the gate asks the core
    /// again after [`KNOWN_FOR`] (the core checks the token again on the submission itself,
    /// so a token revoked meanwhile still gets nothing sent).
    known: Arc<Mutex<BTreeMap<[u8; 32], Instant>>>,
    /// Per office (token hash): bytes in flight, and (window start, uploads started).
    offices: Arc<Mutex<BTreeMap<[u8; 32], OfficeUse>>>,
    prepare: Arc<Semaphore>,
}

#[derive(Default)]
struct OfficeUse {
    in_flight: u64,
    window: Option<Instant>,
    started: u32,
    /// This office's share of the prepare pool.
    prepare: Option<Arc<Semaphore>>,
}

const HOUR: Duration = Duration::from_secs(3600);
/// How long the gate trusts that a token names an office without asking the core.
const KNOWN_FOR: Duration = Duration::from_secs(30);
/// Tokens remembered at most (then the memory starts over).
const KNOWN_MAX: usize = 4096;

/// An upload slot of one office, given back when dropped (the request finished, failed,
/// or its client went away).
pub struct Slot {
    offices: Arc<Mutex<BTreeMap<[u8; 32], OfficeUse>>>,
    key: [u8; 32],
    bytes: u64,
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut map = self.offices.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(u) = map.get_mut(&self.key) {
            u.in_flight = u.in_flight.saturating_sub(self.bytes);
            if u.in_flight == 0 && u.window.is_none_or(|w| w.elapsed() >= HOUR) {
                map.remove(&self.key);
            }
        }
    }
}

/// Why an upload may not start now.
#[derive(Debug, PartialEq, Eq)]
pub enum Refusal {
    /// This office's uploads in flight already hold this many bytes of its allowance.
    InFlight(u64),
    /// This office has started its hourly allowance; retry after so many seconds.
    Hourly(u32, u64),
}

impl Uploads {
    /// Bookkeeping with these limits, checking on `pool` (at most `prepare_workers` at
    /// once).
    pub fn new(limits: UploadLimits, pool: crate::prepare_pool::PreparePool) -> Uploads {
        Uploads {
            limits,
            pool,
            known: Arc::default(),
            offices: Arc::default(),
            prepare: Arc::new(Semaphore::new(limits.prepare_workers.max(1))),
        }
    }

    /// Whether the core named an office for `key` within [`KNOWN_FOR`].
    pub(crate) fn known(&self, key: &[u8; 32], now: Instant) -> bool {
        let map = self.known.lock().unwrap_or_else(|p| p.into_inner());
        map.get(key)
            .is_some_and(|t| now.duration_since(*t) < KNOWN_FOR)
    }

    pub(crate) fn remember(&self, key: [u8; 32], now: Instant) {
        let mut map = self.known.lock().unwrap_or_else(|p| p.into_inner());
        if map.len() >= KNOWN_MAX {
            map.clear();
        }
        map.insert(key, now);
    }

    /// Takes an upload slot of `bytes` (`None`: length unknown) for the office of token
    /// hash `key`. An upload alone is always let through (the body limit bounds it).
    pub fn start(&self, key: [u8; 32], bytes: Option<u64>, now: Instant) -> Result<Slot, Refusal> {
        let bytes = bytes
            .unwrap_or(self.limits.upload_bytes_max)
            .min(self.limits.upload_bytes_max);
        let mut map = self.offices.lock().unwrap_or_else(|p| p.into_inner());
        let u = map.entry(key).or_default();
        if u.in_flight > 0
            && u.in_flight.saturating_add(bytes) > self.limits.bytes_in_flight_per_office
        {
            return Err(Refusal::InFlight(u.in_flight));
        }
        match u.window {
            Some(w) if now.duration_since(w) < HOUR => {
                if u.started >= self.limits.per_office_per_hour {
                    let left = HOUR.saturating_sub(now.duration_since(w)).as_secs().max(1);
                    return Err(Refusal::Hourly(self.limits.per_office_per_hour, left));
                }
            }
            _ => {
                u.window = Some(now);
                u.started = 0;
            }
        }
        u.started += 1;
        u.in_flight += bytes;
        Ok(Slot {
            offices: self.offices.clone(),
            key,
            bytes,
        })
    }

    /// Hashes and checks a unit of the office of token hash `key` on the prepare pool (at
    /// most `prepare_workers` at once; one office at most all
    /// but one of them, so another office's unit always finds a worker soon). If the
    /// request is dropped while it waits for a worker, it never starts; once started, the
    /// check runs to its end (it is linear in the upload, bounded by the upload limit) and
    /// its result is dropped.
    pub async fn prepare(
        &self,
        key: [u8; 32],
        files: Vec<(String, Vec<u8>)>,
    ) -> Option<PreparedUnit> {
        let share = {
            let workers = self.limits.prepare_workers.max(1);
            let mut map = self.offices.lock().unwrap_or_else(|p| p.into_inner());
            map.entry(key)
                .or_default()
                .prepare
                .get_or_insert_with(|| Arc::new(Semaphore::new(workers.saturating_sub(1).max(1))))
                .clone()
        };
        let own = share.acquire_owned().await.ok()?;
        let permit = self.prepare.clone().acquire_owned().await.ok()?;
        let bytes = files.iter().map(|(_, b)| b.len()).sum();
        self.pool
            .run_sized(bytes, move || {
                let unit = PreparedUnit::new(files);
                drop((permit, own));
                unit
            })
            .await
    }
}

/// Middleware on the upload route: the token must name an office of this node, and the
/// office must be within its limits, before the body is read. The slot rides in the
/// request's extensions and is released when the request ends.
pub async fn gate(State(state): State<AppState>, mut req: Request, next: Next) -> Response {
    let Some(key) = super::bearer(req.headers()) else {
        return json_error(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "send Authorization: Bearer <office token>".into(),
        );
    };
    let now = Instant::now();
    if !state.uploads.known(&key, now) {
        match state
            .core
            .call(crate::core::Auth::Office(key), ApiCommand::WhoAmI)
            .await
        {
            ApiReply::Office(_) => state.uploads.remember(key, now),
            other => return unexpected(other),
        }
    }
    let length = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok());
    match state.uploads.start(key, length, now) {
        Ok(slot) => {
            req.extensions_mut().insert(Arc::new(slot));
            next.run(req).await
        }
        Err(refusal) => too_many(refusal),
    }
}

fn too_many(refusal: Refusal) -> Response {
    let (message, retry) = match refusal {
        Refusal::InFlight(n) => (
            format!(
                "this office already has {n} bytes of uploads in progress, the node's limit; wait for them to finish and try again"
            ),
            1,
        ),
        Refusal::Hourly(n, left) => (
            format!(
                "this office has sent {n} uploads in the last hour, the node's limit; try again in {left} s"
            ),
            left,
        ),
    };
    let mut r = json_error(StatusCode::TOO_MANY_REQUESTS, "rate_limited", message);
    if let Ok(v) = HeaderValue::from_str(&retry.to_string()) {
        r.headers_mut().insert(header::RETRY_AFTER, v);
    }
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIB: u64 = 1024 * 1024;

    fn uploads(per_hour: u32) -> Uploads {
        Uploads::new(
            UploadLimits {
                bytes_in_flight_per_office: 12 * MIB,
                upload_bytes_max: 6 * MIB,
                per_office_per_hour: per_hour,
                prepare_workers: 1,
            },
            crate::prepare_pool::PreparePool::new(1).unwrap(),
        )
    }

    #[test]
    fn bytes_in_flight_are_per_office_and_released_on_drop() {
        let u = uploads(100);
        let now = Instant::now();
        let a1 = u.start([1; 32], Some(6 * MIB), now).expect("first");
        let _a2 = u.start([1; 32], None, now).expect("second, unknown length");
        assert_eq!(
            u.start([1; 32], Some(4096), now).err(),
            Some(Refusal::InFlight(12 * MIB))
        );
        // Another office is not affected, and many small uploads fit.
        for _ in 0..20 {
            std::mem::forget(u.start([2; 32], Some(4096), now).expect("small"));
        }
        drop(a1);
        assert!(u.start([1; 32], Some(4096), now).is_ok());
    }

    #[test]
    fn one_upload_alone_always_starts() {
        let u = uploads(100);
        assert!(u.start([3; 32], Some(u64::MAX), Instant::now()).is_ok());
    }

    #[test]
    fn hourly_allowance_refuses_then_renews() {
        let u = uploads(3);
        let now = Instant::now();
        for _ in 0..3 {
            drop(
                u.start([7; 32], Some(10), now)
                    .expect("within the hour's allowance"),
            );
        }
        match u.start([7; 32], Some(10), now + Duration::from_secs(600)) {
            Err(Refusal::Hourly(3, left)) => assert_eq!(left, 3000),
            other => panic!("expected the hourly refusal, got {:?}", other.err()),
        }
        assert!(u.start([7; 32], Some(10), now + HOUR).is_ok());
    }
}

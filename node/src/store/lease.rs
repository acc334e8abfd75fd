//! Which of an operator's nodes is active, on PostgreSQL: one lease row with a holder, an
//! expiry in the database's clock and a fencing number.
//!
//! A node takes the lease when it is free or expired, which adds one to the fencing number;
//! while active it renews the lease every `ttl / 4`. Every commit of its store checks, in
//! the commit's transaction and under a share lock on the row, that the lease still carries
//! its fencing number ([`super::pg`]): a node that was paused past its expiry while another
//! took over can never commit again, so it never releases anything (a receipt, an
//! "accepted") that is not in the database. The database's clock decides expiry, so the
//! nodes' clocks do not matter.

use std::time::Duration;

use super::StoreError;
use super::pg::{Conn, Fence};

/// What an attempt to take the lease found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Attempt {
    /// This node holds the lease now, under this fencing number.
    Taken(Fence),
    /// Another node holds it.
    HeldBy {
        /// Its name.
        holder: String,
        /// Milliseconds until it expires unless renewed.
        expires_in_ms: i64,
    },
}

/// The lease of this node (held or wanted).
pub struct Lease {
    conn: Conn,
    url: String,
    holder: String,
    ttl: Duration,
    fence: Option<Fence>,
}

impl Lease {
    /// Connects to the database for the lease of node `holder`.
    pub fn connect(url: &str, holder: &str, ttl: Duration) -> Result<Lease, StoreError> {
        Ok(Lease {
            conn: Self::conn(url, ttl)?,
            url: url.to_owned(),
            holder: holder.to_owned(),
            ttl,
            fence: None,
        })
    }

    fn conn(url: &str, ttl: Duration) -> Result<Conn, StoreError> {
        // Waiting on a lock (the holder's commit, paused mid-way, until the server ends it)
        // is bounded: the attempt fails and is made again.
        Conn::connect(
            url,
            "lease",
            &format!(
                "SET lock_timeout = {0}; SET idle_in_transaction_session_timeout = {0}",
                ttl.as_millis().max(1)
            ),
        )
    }

    /// Connects again (after the connection was lost: the database restarted or failed
    /// over). The fencing number held is kept: renewing tells whether it still counts.
    pub fn reconnect(&mut self) -> Result<(), StoreError> {
        self.conn = Self::conn(&self.url, self.ttl)?;
        Ok(())
    }

    /// This node's name in the lease.
    pub fn holder(&self) -> &str {
        &self.holder
    }

    /// The fencing number held, if the lease was taken.
    pub fn fence(&self) -> Option<Fence> {
        self.fence
    }

    /// Takes the lease if nobody holds it or its holder let it expire.
    pub fn try_take(&mut self) -> Result<Attempt, StoreError> {
        let (holder, ttl) = (self.holder.clone(), self.ttl.as_secs_f64());
        let attempt = self.conn.call(move |c| {
            let taken = c.client.query_opt(
                "INSERT INTO renkei_lease (id, holder, fence, expires_at) \
                 VALUES (1, $1, 1, now() + make_interval(secs => $2)) \
                 ON CONFLICT (id) DO UPDATE SET holder = EXCLUDED.holder, \
                   fence = renkei_lease.fence + 1, expires_at = EXCLUDED.expires_at \
                 WHERE renkei_lease.expires_at < now() \
                 RETURNING fence",
                &[&holder, &ttl],
            )?;
            if let Some(row) = taken {
                return Ok(Attempt::Taken(Fence(row.get(0))));
            }
            let row = c.client.query_one(
                "SELECT holder, (extract(epoch FROM expires_at - now()) * 1000)::bigint \
                 FROM renkei_lease WHERE id = 1",
                &[],
            )?;
            Ok(Attempt::HeldBy {
                holder: row.get(0),
                expires_in_ms: row.get(1),
            })
        })?;
        if let Attempt::Taken(f) = &attempt {
            self.fence = Some(*f);
        }
        Ok(attempt)
    }

    /// Pushes the expiry `ttl` ahead. `false`: the lease carries another fencing number now
    /// (this node was deposed) or was never taken.
    pub fn renew(&self) -> Result<bool, StoreError> {
        let Some(Fence(mine)) = self.fence else {
            return Ok(false);
        };
        let ttl = self.ttl.as_secs_f64();
        let n = self.conn.call(move |c| {
            c.client.execute(
                "UPDATE renkei_lease SET expires_at = now() + make_interval(secs => $2) \
                 WHERE id = 1 AND fence = $1",
                &[&mine, &ttl],
            )
        })?;
        Ok(n == 1)
    }

    /// Lets the lease go at once (a clean stop): a standby takes over without waiting for
    /// the expiry. Does nothing if another node holds it by now.
    pub fn release(&mut self) -> Result<(), StoreError> {
        let Some(Fence(mine)) = self.fence.take() else {
            return Ok(());
        };
        self.conn.call(move |c| {
            c.client.execute(
                "UPDATE renkei_lease SET expires_at = now() - interval '1 second' \
                 WHERE id = 1 AND fence = $1",
                &[&mine],
            )
        })?;
        Ok(())
    }

    /// The current holder and fencing number, as the database has them.
    pub fn current(&self) -> Result<Option<(String, Fence, i64)>, StoreError> {
        self.conn.call(|c| {
            Ok(c.client
                .query_opt(
                    "SELECT holder, fence, (extract(epoch FROM expires_at - now()) * 1000)::bigint \
                 FROM renkei_lease WHERE id = 1",
                    &[],
                )?
                .map(|r| (r.get(0), Fence(r.get(1)), r.get(2))))
        })
    }
}

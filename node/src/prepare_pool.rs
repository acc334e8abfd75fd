//! The prepare pool: a fixed set of long-lived threads that run the prepare stage (the
//! standard-spec check of uploads; decoding, verifying and opening peers' envelopes) off
//! the core's thread.
//!
//! Fixed threads rather than tokio's blocking pool: the checks keep per-thread caches
//! (decoded verifying keys, the CSV reader's compiled tables, decode buffers), and the
//! blocking pool hands work to whichever of up to 512 threads is free, so the caches were
//! cold on most calls (`renkei bench relay` delivered a third less). Callers bound what
//! they queue with their own semaphores (per office, per pool size).

use tokio::sync::oneshot;

type Job = Box<dyn FnOnce() + Send>;

/// Inputs up to this size are prepared where they arrive (a tokio worker, never the core's
/// thread): the hop to a pool thread and back cost more than their check. Measured with
/// `renkei bench relay` (docs/PERFORMANCE.md).
pub const INLINE_BYTES_MAX: usize = 64 * 1024;

/// A handle to the pool; cheap to clone. The threads end when every handle is dropped.
#[derive(Clone)]
pub struct PreparePool {
    jobs: crossbeam_channel::Sender<Job>,
}

impl PreparePool {
    /// Starts `workers` threads (at least one), named `renkei-prepare-N`.
    pub fn new(workers: usize) -> std::io::Result<PreparePool> {
        // A channel every thread receives from (one job wakes one thread): with std's
        // single-receiver channel behind a lock, each job woke the thread holding the lock
        // and then the next one waiting for it.
        let (jobs, rx) = crossbeam_channel::unbounded::<Job>();
        for i in 0..workers.max(1) {
            let rx = rx.clone();
            std::thread::Builder::new()
                .name(format!("renkei-prepare-{i}"))
                .spawn(move || {
                    while let Ok(job) = rx.recv() {
                        job();
                    }
                })?;
        }
        Ok(PreparePool { jobs })
    }

    /// Runs `f` where it is cheapest: inline when the input is small (`bytes` up to
    /// [`INLINE_BYTES_MAX`]: a 4 KiB unit checks in about 50 µs, less than the hops to a
    /// pool thread and back cost), else on a pool thread.
    pub async fn run_sized<T: Send + 'static>(
        &self,
        bytes: usize,
        f: impl FnOnce() -> T + Send + 'static,
    ) -> Option<T> {
        if bytes <= INLINE_BYTES_MAX {
            return Some(f());
        }
        self.run(f).await
    }

    /// Runs `f` on a pool thread and waits for its result (`None` if the pool is gone).
    pub async fn run<T: Send + 'static>(
        &self,
        f: impl FnOnce() -> T + Send + 'static,
    ) -> Option<T> {
        let (tx, rx) = oneshot::channel();
        let job: Job = Box::new(move || {
            let _ = tx.send(f());
        });
        self.jobs.send(job).ok()?;
        rx.await.ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn jobs_run_on_the_named_threads_and_return_their_results() {
        let pool = PreparePool::new(2).unwrap();
        let names: Vec<String> = futures::future::join_all((0..8).map(|i| {
            let pool = pool.clone();
            async move {
                pool.run(move || (i, std::thread::current().name().unwrap_or("").to_owned()))
                    .await
                    .unwrap()
            }
        }))
        .await
        .into_iter()
        .enumerate()
        .map(|(k, (i, name))| {
            assert_eq!(k, i);
            name
        })
        .collect();
        assert!(
            names.iter().all(|n| n.starts_with("renkei-prepare-")),
            "{names:?}"
        );
    }
}

//! A fixed set of hashing threads.
//!
//! Why not tokio's blocking pool: it runs each job on whichever of up to 512
//! threads is free, and glibc keeps a freed 19 MiB argon2 buffer in each
//! thread's arena, so resident memory grows with the number of threads that
//! ever hashed (a gigabyte under a login burst). A fixed set of threads, each
//! reusing its own arena, keeps memory at about threads × memory cost, and the
//! semaphore keeps at most one queued job per thread; the rest wait as futures.
//!
//! The wait is bounded: at most `max_queue` jobs wait, each at most
//! `max_wait`; past either the caller gets [`ErrorKind::Unavailable`] at once
//! (HTTP 503 `Server busy, try again later`). A waiting job whose caller goes
//! away (the client disconnected, the request future was dropped) leaves the
//! queue without ever running.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use auth_module::{Error, Result};
use tokio::sync::{Semaphore, oneshot};

use crate::hashing::PasswordHashing;

type Job = Box<dyn FnOnce(&PasswordHashing) + Send>;

#[derive(Debug)]
pub(crate) struct HashPool {
    jobs: Mutex<mpsc::Sender<Job>>,
    permits: Semaphore,
    waiting: AtomicUsize,
    max_queue: usize,
    max_wait: Duration,
}

/// The message of a refusal for a full or slow queue.
pub(crate) const BUSY: &str = "Server busy, try again later";

/// Counts one waiting job while it lives.
struct Waiting<'a>(&'a AtomicUsize);

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

impl HashPool {
    /// `threads` threads hashing with `hashing`; they exit when the pool is
    /// dropped. At most `max_queue` jobs wait, each at most `max_wait`.
    pub(crate) fn new(
        hashing: Arc<PasswordHashing>,
        threads: usize,
        max_queue: usize,
        max_wait: Duration,
    ) -> std::io::Result<Self> {
        let (tx, rx) = mpsc::channel::<Job>();
        let rx = Arc::new(Mutex::new(rx));
        for i in 0..threads {
            let (rx, hashing) = (rx.clone(), hashing.clone());
            std::thread::Builder::new()
                .name(format!("emailpass-hash-{i}"))
                .spawn(move || {
                    loop {
                        let job = {
                            let guard = rx.lock().unwrap_or_else(|e| e.into_inner());
                            match guard.recv() {
                                Ok(job) => job,
                                Err(_) => return,
                            }
                        };
                        job(&hashing);
                    }
                })?;
        }
        Ok(HashPool {
            jobs: Mutex::new(tx),
            permits: Semaphore::new(threads),
            waiting: AtomicUsize::new(0),
            max_queue,
            max_wait,
        })
    }

    /// Runs `job` on a hashing thread, waiting (asynchronously) for a free one.
    pub(crate) async fn run<T: Send + 'static>(
        &self,
        job: impl FnOnce(&PasswordHashing) -> T + Send + 'static,
    ) -> Result<T> {
        let _permit = match self.permits.try_acquire() {
            Ok(permit) => permit,
            Err(_) => {
                if self.waiting.fetch_add(1, Ordering::AcqRel) >= self.max_queue {
                    self.waiting.fetch_sub(1, Ordering::AcqRel);
                    return Err(Error::unavailable(BUSY));
                }
                let _waiting = Waiting(&self.waiting);
                // Dropping this future (the caller went away) leaves the
                // queue: the job is only sent once a thread is free.
                match tokio::time::timeout(self.max_wait, self.permits.acquire()).await {
                    Ok(Ok(permit)) => permit,
                    Ok(Err(e)) => {
                        return Err(
                            Error::unexpected("password hashing is shut down").with_source(e)
                        );
                    }
                    Err(_) => return Err(Error::unavailable(BUSY)),
                }
            }
        };
        let (tx, rx) = oneshot::channel();
        let boxed: Job = Box::new(move |h| {
            let _ = tx.send(job(h));
        });
        self.jobs
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .send(boxed)
            .map_err(|_| Error::unexpected("password hashing threads are gone"))?;
        rx.await
            .map_err(|e| Error::unexpected("password hashing job failed").with_source(e))
    }
}

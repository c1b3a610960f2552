//! A fixed set of hashing threads.
//!
//! Why not tokio's blocking pool: it runs each job on whichever of up to 512
//! threads is free, and glibc keeps a freed 19 MiB argon2 buffer in each
//! thread's arena, so resident memory grows with the number of threads that
//! ever hashed (a gigabyte under a login burst). A fixed set of threads, each
//! reusing its own arena, keeps memory at about threads × memory cost, and the
//! semaphore keeps at most one queued job per thread; the rest wait as futures.

use std::sync::mpsc;
use std::sync::{Arc, Mutex};

use auth_module::{Error, Result};
use tokio::sync::{Semaphore, oneshot};

use crate::hashing::PasswordHashing;

type Job = Box<dyn FnOnce(&PasswordHashing) + Send>;

#[derive(Debug)]
pub(crate) struct HashPool {
    jobs: Mutex<mpsc::Sender<Job>>,
    permits: Semaphore,
}

impl HashPool {
    /// `threads` threads hashing with `hashing`; they exit when the pool is dropped.
    pub(crate) fn new(hashing: Arc<PasswordHashing>, threads: usize) -> std::io::Result<Self> {
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
        })
    }

    /// Runs `job` on a hashing thread, waiting (asynchronously) for a free one.
    pub(crate) async fn run<T: Send + 'static>(
        &self,
        job: impl FnOnce(&PasswordHashing) -> T + Send + 'static,
    ) -> Result<T> {
        let _permit = self
            .permits
            .acquire()
            .await
            .map_err(|e| Error::unexpected("password hashing is shut down").with_source(e))?;
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

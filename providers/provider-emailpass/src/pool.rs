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

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::time::{Duration, Instant};

use auth_module::{Error, Result};
use tokio::sync::{Semaphore, oneshot};

use crate::hashing::PasswordHashing;

type Job = Box<dyn FnOnce(&PasswordHashing) + Send>;

/// The jobs handed to the threads. Each thread waits on the condition
/// variable with its own deadline (the mutex is free while it waits), so
/// every idle thread frees its memory area `release_after` after its own
/// last hash, not after the threads waiting before it took their turns.
#[derive(Default)]
struct Queue {
    state: Mutex<QueueState>,
    ready: Condvar,
}

#[derive(Default)]
struct QueueState {
    jobs: VecDeque<Job>,
    closed: bool,
}

impl std::fmt::Debug for Queue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Queue").finish_non_exhaustive()
    }
}

impl Queue {
    fn push(&self, job: Job) -> Result<()> {
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        if state.closed {
            return Err(Error::unexpected("password hashing threads are gone"));
        }
        state.jobs.push_back(job);
        drop(state);
        self.ready.notify_one();
        Ok(())
    }

    /// The next job; `Ok(None)` once `deadline` passes first (`None`: wait
    /// without one); `Err(())` when the pool is dropped.
    fn next(&self, deadline: Option<Instant>) -> std::result::Result<Option<Job>, ()> {
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        loop {
            if let Some(job) = state.jobs.pop_front() {
                return Ok(Some(job));
            }
            if state.closed {
                return Err(());
            }
            state = match deadline {
                None => self
                    .ready
                    .wait(state)
                    .unwrap_or_else(PoisonError::into_inner),
                Some(deadline) => {
                    let Some(left) = deadline.checked_duration_since(Instant::now()) else {
                        return Ok(None);
                    };
                    self.ready
                        .wait_timeout(state, left)
                        .unwrap_or_else(PoisonError::into_inner)
                        .0
                }
            };
        }
    }

    fn close(&self) {
        self.state
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .closed = true;
        self.ready.notify_all();
    }
}

#[derive(Debug)]
pub(crate) struct HashPool {
    jobs: Arc<Queue>,
    permits: Semaphore,
    waiting: AtomicUsize,
    max_queue: usize,
    max_wait: Duration,
    /// Bytes of memory areas this pool's threads hold (read by tests).
    #[cfg_attr(not(test), allow(dead_code))]
    held: Arc<AtomicUsize>,
}

/// How much lower than the process's the hashing threads' priority is (a
/// nice value, on Linux).
#[cfg(target_os = "linux")]
const NICER_BY: i32 = 10;

/// Lowers the calling hashing thread's priority by [`NICER_BY`] (at most to
/// nice 19), where the OS allows it. Hashing is throughput work; what waits
/// on a busy core is latency work: a database driver's reply, the runtime's
/// next request step. At the same priority, with every core hashing, each
/// of those waits for a time slice (milliseconds) while the try holds its
/// identifier's turn; a lower priority lets them run at once. Measured: the
/// state writes of a 32-connection login load that took 3 ms or more fell
/// from 275 and 253 per 10 s to 45 and 48.
fn lower_priority() {
    #[cfg(target_os = "linux")]
    {
        // On Linux, PRIO_PROCESS with a thread id sets that thread only.
        let me = Some(rustix::thread::gettid());
        let lowered = rustix::process::getpriority_process(me)
            .and_then(|nice| rustix::process::setpriority_process(me, (nice + NICER_BY).min(19)));
        if let Err(e) = lowered {
            tracing::debug!(error = %e, "a hashing thread keeps its priority");
        }
    }
}

/// The message of a refusal for a full or slow queue.
pub(crate) const BUSY: &str = "Server busy, try again later";

/// Process-wide counts over every pool (every emailpass instance), for metrics.
static QUEUED: AtomicUsize = AtomicUsize::new(0);
static WAITED: AtomicU64 = AtomicU64::new(0);
static WAIT_MICROS: AtomicU64 = AtomicU64::new(0);
static REFUSED: AtomicU64 = AtomicU64::new(0);
static HASHED: AtomicU64 = AtomicU64::new(0);

/// The password-hashing queue of this process (all emailpass instances), for
/// metrics: a snapshot of monotonic counters and the current queue depth.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
#[non_exhaustive]
pub struct HashingStats {
    /// Hashes waiting for a thread now.
    pub queued: u64,
    /// Hashes that had to wait for a thread, since start.
    pub waited: u64,
    /// Seconds spent waiting by those hashes, in all.
    pub wait_seconds: f64,
    /// Hashes refused with 503 (queue full or waited too long), since start.
    pub refused: u64,
    /// Hashes run, since start.
    pub hashed: u64,
}

/// The current [`HashingStats`].
pub fn hashing_stats() -> HashingStats {
    HashingStats {
        queued: QUEUED.load(Ordering::Relaxed) as u64,
        waited: WAITED.load(Ordering::Relaxed),
        wait_seconds: WAIT_MICROS.load(Ordering::Relaxed) as f64 / 1e6,
        refused: REFUSED.load(Ordering::Relaxed),
        hashed: HASHED.load(Ordering::Relaxed),
    }
}

/// Counts one waiting job while it lives (in its pool and process-wide), and
/// how long it waited.
struct Waiting<'a>(&'a AtomicUsize, std::time::Instant);

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
        QUEUED.fetch_sub(1, Ordering::Relaxed);
        WAITED.fetch_add(1, Ordering::Relaxed);
        let micros = u64::try_from(self.1.elapsed().as_micros()).unwrap_or(u64::MAX);
        WAIT_MICROS.fetch_add(micros, Ordering::Relaxed);
    }
}

impl HashPool {
    /// `threads` threads hashing with `hashing`; they exit when the pool is
    /// dropped. At most `max_queue` jobs wait, each at most `max_wait`. A
    /// thread idle for `release_after` frees its memory area.
    pub(crate) fn new(
        hashing: Arc<PasswordHashing>,
        threads: usize,
        max_queue: usize,
        max_wait: Duration,
        release_after: Duration,
    ) -> std::io::Result<Self> {
        let jobs = Arc::new(Queue::default());
        let held = Arc::new(AtomicUsize::new(0));
        for i in 0..threads {
            let (jobs, hashing, held) = (jobs.clone(), hashing.clone(), held.clone());
            std::thread::Builder::new()
                .name(format!("emailpass-hash-{i}"))
                .spawn(move || {
                    lower_priority();
                    let mut mine = 0;
                    // While it holds an area, a thread waits at most until
                    // `release_after` past its last hash, then frees it.
                    let mut idle_from = Instant::now();
                    loop {
                        let deadline = (mine > 0).then(|| idle_from + release_after);
                        match jobs.next(deadline) {
                            Ok(Some(job)) => {
                                job(&hashing);
                                idle_from = Instant::now();
                            }
                            Ok(None) => crate::hashing::release_memory(),
                            Err(()) => return,
                        }
                        let now = crate::hashing::held_here();
                        if now >= mine {
                            held.fetch_add(now - mine, Ordering::Relaxed);
                        } else {
                            held.fetch_sub(mine - now, Ordering::Relaxed);
                        }
                        mine = now;
                    }
                })?;
        }
        Ok(HashPool {
            jobs,
            permits: Semaphore::new(threads),
            waiting: AtomicUsize::new(0),
            max_queue,
            max_wait,
            held,
        })
    }

    /// Bytes of memory areas this pool's threads hold now.
    #[cfg(test)]
    pub(crate) fn held_bytes(&self) -> usize {
        self.held.load(Ordering::Relaxed)
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
                    REFUSED.fetch_add(1, Ordering::Relaxed);
                    return Err(Error::unavailable(BUSY));
                }
                QUEUED.fetch_add(1, Ordering::Relaxed);
                let _waiting = Waiting(&self.waiting, std::time::Instant::now());
                // Dropping this future (the caller went away) leaves the
                // queue: the job is only sent once a thread is free.
                match tokio::time::timeout(self.max_wait, self.permits.acquire()).await {
                    Ok(Ok(permit)) => permit,
                    Ok(Err(e)) => {
                        return Err(
                            Error::unexpected("password hashing is shut down").with_source(e)
                        );
                    }
                    Err(_) => {
                        REFUSED.fetch_add(1, Ordering::Relaxed);
                        return Err(Error::unavailable(BUSY));
                    }
                }
            }
        };
        HASHED.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = oneshot::channel();
        let boxed: Job = Box::new(move |h| {
            let _ = tx.send(job(h));
        });
        self.jobs.push(boxed)?;
        rx.await
            .map_err(|e| Error::unexpected("password hashing job failed").with_source(e))
    }
}

impl Drop for HashPool {
    fn drop(&mut self) {
        // The threads finish the jobs queued and exit.
        self.jobs.close();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::HashOptions;

    /// Idle hashing threads free their memory areas; the next hash maps one
    /// again.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn idle_threads_free_their_memory() {
        let hashing = Arc::new(PasswordHashing::new(HashOptions::default()).unwrap());
        let pool = HashPool::new(
            hashing,
            2,
            16,
            Duration::from_secs(10),
            Duration::from_millis(200),
        )
        .unwrap();
        let area = 19456 * 1024;
        let (a, b) = tokio::join!(
            pool.run(|h| h.hash("one").unwrap()),
            pool.run(|h| h.hash("two").unwrap())
        );
        assert!(a.unwrap().starts_with("$argon2id$"));
        assert!(b.unwrap().starts_with("$argon2id$"));
        // The count is updated just after each job answers.
        let eventually = |want: fn(usize) -> bool| {
            let pool = &pool;
            async move {
                let deadline = std::time::Instant::now() + Duration::from_secs(5);
                while !want(pool.held_bytes()) && std::time::Instant::now() < deadline {
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
                pool.held_bytes()
            }
        };
        let busy = eventually(|n| n >= 19456 * 1024).await;
        assert!(busy >= area, "an area is held after hashing: {busy}");
        assert_eq!(
            eventually(|n| n == 0).await,
            0,
            "every area freed when idle"
        );
        pool.run(|h| h.hash("three").unwrap()).await.unwrap();
        let again = eventually(|n| n >= 19456 * 1024).await;
        assert!(again >= area, "mapped again on demand: {again}");
    }

    /// Every idle thread frees its area `release_after` past its own last
    /// hash: not one after another, each waiting out the one before it.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn idle_threads_free_their_memory_together() {
        let hashing = Arc::new(PasswordHashing::new(HashOptions::default()).unwrap());
        let release_after = Duration::from_secs(1);
        let pool = HashPool::new(hashing, 3, 16, Duration::from_secs(10), release_after).unwrap();
        // Each job waits for the other two, so each thread runs one.
        let all = Arc::new(std::sync::Barrier::new(3));
        let job = |password: &'static str| {
            let all = all.clone();
            move |h: &PasswordHashing| {
                all.wait();
                h.hash(password).unwrap()
            }
        };
        let (a, b, c) = tokio::join!(
            pool.run(job("one")),
            pool.run(job("two")),
            pool.run(job("three"))
        );
        assert!(a.is_ok() && b.is_ok() && c.is_ok());
        let done = std::time::Instant::now();
        while pool.held_bytes() > 0 && done.elapsed() < Duration::from_secs(5) {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let freed_after = done.elapsed();
        assert_eq!(pool.held_bytes(), 0);
        // In turns, the last of three would free its area after 3 s.
        assert!(
            freed_after < release_after * 2,
            "every area freed about release_after past the last hash: {freed_after:?}"
        );
    }
}

#[cfg(test)]
mod cancel_tests {
    use super::*;
    use crate::HashOptions;
    use std::sync::atomic::AtomicBool;

    /// A waiting hash whose caller goes away (a client that disconnected:
    /// Hashing threads run at a lower priority than the threads that
    /// start their jobs.
    #[cfg(target_os = "linux")]
    #[tokio::test]
    async fn hashing_threads_run_at_a_lower_priority() {
        let nice = || rustix::process::getpriority_process(Some(rustix::thread::gettid())).unwrap();
        let here = nice();
        let hashing = Arc::new(PasswordHashing::new(HashOptions::default()).unwrap());
        let pool = HashPool::new(
            hashing,
            1,
            16,
            Duration::from_secs(10),
            Duration::from_secs(10),
        )
        .unwrap();
        let there = pool.run(move |_| nice()).await.unwrap();
        assert_eq!(there, (here + NICER_BY).min(19), "here {here}");
    }

    /// its request future is dropped) leaves the queue and never runs.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_dropped_waiting_job_never_runs() {
        let hashing = Arc::new(PasswordHashing::new(HashOptions::default()).unwrap());
        let pool = Arc::new(
            HashPool::new(
                hashing,
                1,
                16,
                Duration::from_secs(10),
                Duration::from_secs(10),
            )
            .unwrap(),
        );
        // Hold the only thread until told to go.
        let (go_tx, go_rx) = std::sync::mpsc::channel::<()>();
        let busy = {
            let pool = Arc::clone(&pool);
            tokio::spawn(async move {
                pool.run(move |_| {
                    let _ = go_rx.recv();
                })
                .await
            })
        };
        tokio::time::sleep(Duration::from_millis(100)).await;
        let ran = Arc::new(AtomicBool::new(false));
        let waiting = {
            let (pool, ran) = (Arc::clone(&pool), Arc::clone(&ran));
            tokio::spawn(async move { pool.run(move |_| ran.store(true, Ordering::SeqCst)).await })
        };
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert_eq!(pool.waiting.load(Ordering::SeqCst), 1, "one job waits");
        waiting.abort(); // the caller goes away
        let _ = waiting.await;
        assert_eq!(pool.waiting.load(Ordering::SeqCst), 0, "it left the queue");
        go_tx.send(()).unwrap();
        busy.await.unwrap().unwrap();
        // The thread is free and nothing else runs on it.
        pool.run(|_| ()).await.unwrap();
        assert!(!ran.load(Ordering::SeqCst), "the dropped job never ran");
    }
}

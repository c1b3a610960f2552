#![doc = include_str!("../README.md")]

pub mod identity;
#[cfg(feature = "idp")]
pub mod idp;
mod macros;
#[cfg(feature = "passkey")]
pub mod passkey;
pub mod provider;
pub mod state;
mod support;

/// Used by the suite macros; not part of the API.
#[doc(hidden)]
pub mod __private {
    use std::future::Future;

    pub use tokio::spawn;

    /// Runs a case's future to completion on a fresh current-thread runtime
    /// with every driver enabled, as `#[tokio::test]` does.
    pub fn block_on<F: Future<Output = ()>>(future: F) {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            // Invariant: only fails when the OS refuses the runtime its timer or I/O driver.
            .expect("the test runtime cannot be built")
            .block_on(future);
    }

    /// Runs a future on a fresh multi-threaded runtime (providers may use
    /// blocking threads or `spawn_blocking`).
    pub fn block_on_multi_thread<F: Future<Output = ()>>(future: F) {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            // Invariant: only fails when the OS refuses the runtime its threads.
            .expect("the test runtime cannot be built")
            .block_on(future);
    }

    /// The store's MFA records, for the cases of the `mfa` capability.
    pub fn mfa<S: auth_module::IdentityStore>(
        store: &std::sync::Arc<S>,
    ) -> std::sync::Arc<dyn auth_module::MfaStore> {
        std::sync::Arc::clone(store).mfa_store().unwrap_or_else(|| {
            panic!(
                "{store:?} keeps no MFA records: IdentityStore::mfa_store answered None \
                 (implement MfaStore and answer Some(self), or run the suite with \
                 `capabilities = [...]` without `mfa`)"
            )
        })
    }

    /// The store's verification records, for the cases of the
    /// `verification` capability.
    pub fn verification<S: auth_module::IdentityStore>(
        store: &std::sync::Arc<S>,
    ) -> std::sync::Arc<dyn auth_module::VerificationStore> {
        std::sync::Arc::clone(store)
            .verification_store()
            .unwrap_or_else(|| {
                panic!(
                    "{store:?} keeps no verification records: \
                     IdentityStore::verification_store answered None (implement \
                     VerificationStore and answer Some(self), or run the suite with \
                     `capabilities = [...]` without `verification`)"
                )
            })
    }

    /// The store's passkey credentials, for the cases of the `passkey`
    /// capability.
    pub fn passkey<S: auth_module::IdentityStore>(
        store: &std::sync::Arc<S>,
    ) -> std::sync::Arc<dyn auth_module::PasskeyStore> {
        std::sync::Arc::clone(store)
            .passkey_store()
            .unwrap_or_else(|| {
                panic!(
                    "{store:?} keeps no passkey credentials: IdentityStore::passkey_store \
                     answered None (implement PasskeyStore and answer Some(self), or run the \
                     suite with `capabilities = [...]` without `passkey`)"
                )
            })
    }

    /// Re-raises the panic of a case run on its own task, once the teardown has run.
    pub fn finish(outcome: Result<(), tokio::task::JoinError>) {
        if let Err(e) = outcome {
            match e.try_into_panic() {
                Ok(panic) => std::panic::resume_unwind(panic),
                Err(e) => panic!("the case's task did not finish: {e}"),
            }
        }
    }
}

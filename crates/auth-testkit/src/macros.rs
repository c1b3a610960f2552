//! The suite macros: one `#[test]` per case per backend.

/// Stamps, inside `mod $name`, one test per [`crate::identity`] case, each
/// run against a fresh store from `factory`.
///
/// ```ignore
/// // `factory` is called once per test: a closure or an `async fn`.
/// auth_testkit::identity_store_suite!(memory, || async { MemoryIdentityStore::new() });
///
/// // A backend that may be absent: `optional =` takes a factory answering
/// // `Option<S>`; `None` ends the test early (it should print why).
/// // `teardown =` gets the store back as `Arc<S>` after the case, even a
/// // failed one, e.g. to drop a test schema.
/// auth_testkit::identity_store_suite!(postgres, optional = pg_store, teardown = drop_schema);
///
/// // A store that needs something kept alive beside it (a temporary
/// // directory for its file): `guarded =` takes a factory answering
/// // `(S, G)`; the guard `G` is dropped after the store and the teardown.
/// auth_testkit::identity_store_suite!(file, guarded = file_store);
///
/// // A store without MFA, verification or passkey records, devices or audit
/// // log: only the capabilities it has (default:
/// // `[mfa, verification, passkey, device, audit]`).
/// auth_testkit::identity_store_suite!(plain, || async { PlainStore::new() }, capabilities = []);
/// auth_testkit::identity_store_suite!(no_passkeys, || async { MfaOnlyStore::new() },
///     capabilities = [mfa, verification]);
/// ```
///
/// The cases of a capability run against the store's own answer:
/// [`auth_module::IdentityStore::mfa_store`] for `mfa` (the MFA factor and
/// recovery-code cases), [`auth_module::IdentityStore::verification_store`]
/// for `verification`, [`auth_module::IdentityStore::passkey_store`] for
/// `passkey` (the passkey credential cases),
/// [`auth_module::IdentityStore::device_store`] for `device` (the device
/// cases), [`auth_module::IdentityStore::audit_store`] for `audit` (the audit
/// log cases); a store that answers `None` for a capability the suite runs
/// fails those cases, naming it.
///
/// The audit cases read the whole chain, and one prunes it: give each case a
/// store whose audit log no other test writes (a fresh store, schema or
/// file per case, as the factory is called once per test).
///
/// Each test runs on a fresh current-thread tokio runtime with every driver
/// enabled, as `#[tokio::test]` does, so the calling crate needs no tokio
/// macros. Names in `factory` and `teardown` resolve in the module the macro
/// is called from (`mod $name` starts with `use super::*`).
#[macro_export]
macro_rules! identity_store_suite {
    ($name:ident, optional = $factory:expr $(, teardown = $teardown:expr)?
        $(, capabilities = [$($cap:ident),* $(,)?])? $(,)?) => {
        $crate::identity_store_suite!(
            @cases $name,
            ($factory)().await.map(|store| (store, ())),
            [$($teardown)?],
            [$([$($cap)*])?]
        );
    };
    ($name:ident, guarded = $factory:expr $(, teardown = $teardown:expr)?
        $(, capabilities = [$($cap:ident),* $(,)?])? $(,)?) => {
        $crate::identity_store_suite!(
            @cases $name,
            ::core::option::Option::Some(($factory)().await),
            [$($teardown)?],
            [$([$($cap)*])?]
        );
    };
    ($name:ident, $factory:expr $(, teardown = $teardown:expr)?
        $(, capabilities = [$($cap:ident),* $(,)?])? $(,)?) => {
        $crate::identity_store_suite!(
            @cases $name,
            ::core::option::Option::Some((($factory)().await, ())),
            [$($teardown)?],
            [$([$($cap)*])?]
        );
    };
    // No `capabilities =`: all of them.
    (@cases $name:ident, $setup:expr, $teardown:tt, []) => {
        $crate::identity_store_suite!(
            @cases $name, $setup, $teardown, [[mfa verification passkey device audit]]
        );
    };
    (@cases $name:ident, $setup:expr, $teardown:tt, [[$($cap:ident)*]]) => {
        mod $name {
            #[allow(unused_imports)]
            use super::*;

            $crate::__suite_cases!(identity, [], $setup, $teardown, [
                create_and_retrieve_with_provider_identities,
                create_without_provider_identities,
                metadata_round_trips,
                duplicate_identity_is_rejected,
                duplicate_in_multi_provider_create_stores_nothing,
                same_entity_id_under_two_providers_is_allowed,
                find_provider_identity_matches_provider_and_entity,
                add_provider_identity_links_oldest_first,
                add_provider_identity_to_missing_auth_identity_is_not_found,
                update_provider_identity_replaces_only_given_fields,
                update_app_metadata_replaces_whole_value,
                delete_auth_identity_cascades,
                delete_provider_identity_keeps_auth_identity,
                missing_records_are_not_found,
                concurrent_creates_of_same_identity_yield_one,
                patch_app_metadata_changes_one_key,
                concurrent_patches_keep_every_key,
                merge_app_metadata_sets_and_removes_keys,
                concurrent_merges_keep_every_key,
                conditional_update_is_compare_and_set,
                credential_version_is_bumped_with_the_update,
                given_ids_and_timestamps_are_kept,
            ]);
            $( $crate::identity_store_suite!(@capability $cap, $setup, $teardown); )*
        }
    };
    (@capability mfa, $setup:expr, $teardown:tt) => {
        $crate::__suite_cases!(identity, [mfa], $setup, $teardown, [
            mfa_factors_are_created_and_listed_oldest_first,
            one_active_mfa_factor_per_identity_and_provider,
            concurrent_mfa_factor_creates_yield_one,
            mfa_factor_update_is_conditional,
            concurrent_mfa_step_spends_yield_one,
            recovery_codes_are_replaced_counted_and_spent_once,
            concurrent_recovery_code_spends_yield_one,
            delete_auth_identity_cascades_to_mfa_records,
            given_mfa_factor_ids_are_kept,
            create_with_mfa_factors_is_all_or_nothing,
            retrieve_tells_whether_mfa_is_enabled,
        ]);
    };
    (@capability verification, $setup:expr, $teardown:tt) => {
        $crate::__suite_cases!(identity, [verification], $setup, $teardown, [
            verification_request_creates_then_refreshes_the_pending_row,
            verification_confirm_checks_provider_and_expiry,
            concurrent_verification_confirms_yield_one,
            delete_auth_identity_cascades_to_verifications,
        ]);
    };
    (@capability passkey, $setup:expr, $teardown:tt) => {
        $crate::__suite_cases!(identity, [passkey], $setup, $teardown, [
            passkeys_are_created_found_and_listed_oldest_first,
            passkey_credential_ids_are_unique_per_provider,
            concurrent_passkey_creates_yield_one,
            passkeys_for_email_lists_that_providers_credentials,
            passkey_use_is_compare_and_set,
            concurrent_passkey_uses_yield_one,
            passkeys_are_renamed_and_deleted_by_their_owner_only,
            delete_auth_identity_cascades_to_passkeys,
        ]);
    };
    (@capability device, $setup:expr, $teardown:tt) => {
        $crate::__suite_cases!(identity, [device], $setup, $teardown, [
            devices_are_created_read_and_listed_oldest_first,
            touch_device_only_moves_last_seen_forward,
            devices_are_deleted_by_their_owner_only,
            devices_are_tallied_and_trimmed,
            devices_are_added_with_the_tally_before,
            idle_devices_are_deleted_longest_idle_first,
            delete_auth_identity_cascades_to_devices,
        ]);
    };
    (@capability audit, $setup:expr, $teardown:tt) => {
        $crate::__suite_cases!(identity, [audit], $setup, $teardown, [
            audit_entries_are_appended_in_one_chain,
            audit_query_filters_newest_first,
            audit_entries_outlive_their_identity,
            concurrent_audit_appends_form_one_chain,
            audit_prune_keeps_the_newest_and_records_the_start,
        ]);
    };
}

/// One test per case of `$kind` in the list, each also given the
/// capabilities in `[$cap ...]` (see [`__suite_case!`]).
#[doc(hidden)]
#[macro_export]
macro_rules! __suite_cases {
    ($kind:ident, $caps:tt, $setup:expr, $teardown:tt, [$($case:ident),* $(,)?]) => {
        $( $crate::__suite_case!(@with $caps, $kind, $case, $setup, $teardown); )*
    };
}

/// Stamps, inside `mod $name`, one test per [`crate::state`] case, each run
/// against a fresh store from `factory`. Same forms as
/// [`identity_store_suite!`], plus `count =`: a closure taking the store as
/// `Arc<S>` and answering a future of how many entries it holds, expired
/// ones included ([`crate::state::CountEntries`]). The case
/// [`crate::state::expired_entries_are_removed_by_writes`] needs it and checks
/// nothing without it (for a store whose backend expires keys itself, as
/// Redis does).
///
/// ```ignore
/// auth_testkit::state_store_suite!(memory, || async { MemoryStateStore::new() },
///     count = |s| async move { s.entry_count() as u64 });
/// auth_testkit::state_store_suite!(redis, optional = redis_store, teardown = flush);
/// auth_testkit::state_store_suite!(file, guarded = file_store, count = count_rows);
/// ```
#[macro_export]
macro_rules! state_store_suite {
    ($name:ident, optional = $factory:expr
        $(, teardown = $teardown:expr)? $(, count = $count:expr)? $(,)?) => {
        $crate::state_store_suite!(
            @cases $name,
            ($factory)().await.map(|store| (store, ())),
            [$($teardown)?],
            [$($count)?]
        );
    };
    ($name:ident, guarded = $factory:expr
        $(, teardown = $teardown:expr)? $(, count = $count:expr)? $(,)?) => {
        $crate::state_store_suite!(
            @cases $name,
            ::core::option::Option::Some(($factory)().await),
            [$($teardown)?],
            [$($count)?]
        );
    };
    ($name:ident, $factory:expr
        $(, teardown = $teardown:expr)? $(, count = $count:expr)? $(,)?) => {
        $crate::state_store_suite!(
            @cases $name,
            ::core::option::Option::Some((($factory)().await, ())),
            [$($teardown)?],
            [$($count)?]
        );
    };
    (@cases $name:ident, $setup:expr, $teardown:tt, $count:tt) => {
        $crate::__suite!(state, $name, $setup, $teardown, [
            set_then_get,
            value_expires_after_ttl,
            take_is_single_use,
            concurrent_takes_yield_one,
            delete_reports_live_value,
            set_replaces_value_and_ttl,
            keys_are_independent,
            increment_counts,
            increment_window_is_fixed,
            concurrent_increments_are_atomic,
            increment_each_counts_each,
            give_back_each_takes_one_off,
            concurrent_give_backs_are_atomic,
            compare_and_swap_needs_the_expected_value,
            concurrent_swaps_yield_one,
        ], counted = $count);
    };
}

/// Runs [`crate::state::expired_entries_are_removed_by_writes`] on
/// `$store` (an `Arc<S>`), with the counter built from `count =` if given.
#[doc(hidden)]
#[macro_export]
macro_rules! __state_counted_case {
    ($store:ident, []) => {
        $crate::state::expired_entries_are_removed_by_writes(&*$store, ::core::option::Option::None)
            .await
    };
    ($store:ident, [$count:expr]) => {{
        let count = $crate::state::count_entries(::std::sync::Arc::clone(&$store), $count);
        $crate::state::expired_entries_are_removed_by_writes(
            &*$store,
            ::core::option::Option::Some(&*count),
        )
        .await
    }};
}

/// The module of the state suite: its cases, and the one that counts
/// entries. `$teardown` is one bracketed token tree, `[]` or `[expr]`, so
/// that it can be repeated per case.
#[doc(hidden)]
#[macro_export]
macro_rules! __suite {
    ($kind:ident, $name:ident, $setup:expr, $teardown:tt, [$($case:ident),* $(,)?],
        counted = $count:tt) => {
        mod $name {
            #[allow(unused_imports)]
            use super::*;

            $( $crate::__suite_case!($kind, $case, $setup, $teardown); )*
            $crate::__suite_case!(
                @counted expired_entries_are_removed_by_writes, $setup, $teardown, $count
            );
        }
    };
}

/// One test: build the store (and its guard, `()` unless `guarded =`), run
/// the case on its own task (so a failing case still reaches the teardown),
/// tear down, then re-raise the case's panic. The guard is declared before
/// the `Arc`, so it is dropped after the store.
#[doc(hidden)]
#[macro_export]
macro_rules! __suite_case {
    // The state case that also takes the entry counter.
    (@counted $case:ident, $setup:expr, [$($teardown:expr)?], $count:tt) => {
        #[test]
        fn $case() {
            $crate::__private::block_on(async {
                let ::core::option::Option::Some((store, _guard)) = $setup else {
                    return;
                };
                let store = ::std::sync::Arc::new(store);
                let case_store = ::std::sync::Arc::clone(&store);
                let outcome = $crate::__private::spawn(async move {
                    $crate::__state_counted_case!(case_store, $count);
                })
                .await;
                $( ($teardown)(store).await; )?
                $crate::__private::finish(outcome);
            });
        }
    };
    ($kind:ident, $case:ident, $setup:expr, $teardown:tt) => {
        $crate::__suite_case!(@with [], $kind, $case, $setup, $teardown);
    };
    // A case that also takes capabilities of the store: `mfa`
    // (`&dyn MfaStore`), `verification` (`&dyn VerificationStore`),
    // `passkey` (`&dyn PasskeyStore`), `device` (`&dyn DeviceStore`) and/or
    // `audit` (`&dyn AuditStore`), in that order, each the store's own answer
    // ([`__suite_capability!`]).
    (@with [$($cap:ident)*], $kind:ident, $case:ident, $setup:expr, [$($teardown:expr)?]) => {
        #[test]
        fn $case() {
            $crate::__private::block_on(async {
                let ::core::option::Option::Some((store, _guard)) = $setup else {
                    return;
                };
                let store = ::std::sync::Arc::new(store);
                let case_store = ::std::sync::Arc::clone(&store);
                let outcome = $crate::__private::spawn(async move {
                    $crate::$kind::$case(
                        &*case_store
                        $(, &*$crate::__suite_capability!($cap, &case_store))*
                    )
                    .await;
                })
                .await;
                $( ($teardown)(store).await; )?
                $crate::__private::finish(outcome);
            });
        }
    };
}

/// The capability `$cap` of `$store` (an `&Arc<S>`), as the store answers
/// it: `mfa` ([`auth_module::IdentityStore::mfa_store`]), `verification`
/// ([`auth_module::IdentityStore::verification_store`]), `passkey`
/// ([`auth_module::IdentityStore::passkey_store`]), `device`
/// ([`auth_module::IdentityStore::device_store`]) or `audit`
/// ([`auth_module::IdentityStore::audit_store`]); panics, naming the store,
/// when it answers `None`.
#[doc(hidden)]
#[macro_export]
macro_rules! __suite_capability {
    (mfa, $store:expr) => {
        $crate::__private::mfa($store)
    };
    (verification, $store:expr) => {
        $crate::__private::verification($store)
    };
    (passkey, $store:expr) => {
        $crate::__private::passkey($store)
    };
    (device, $store:expr) => {
        $crate::identity::__device_store($store)
    };
    (audit, $store:expr) => {
        $crate::identity::__audit_store($store)
    };
}

/// Stamps one test per provider case ([`crate::provider`]) inside `mod $name`,
/// for provider kind `$kind` with valid options `$options` (a
/// `serde_json::Value`). Run it from the provider crate's `tests/`, where the
/// crate is linked (`use provider_x as _;`).
#[macro_export]
macro_rules! provider_suite {
    ($name:ident, $kind:ty, $options:expr $(,)?) => {
        mod $name {
            #[allow(unused_imports)]
            use super::*;

            #[test]
            fn metadata_rules() {
                $crate::provider::metadata_rules::<$kind>();
            }

            #[test]
            fn registered_at_link_time() {
                $crate::provider::registered_at_link_time::<$kind>();
            }

            #[test]
            fn builds_with_valid_options() {
                $crate::provider::builds_with_valid_options::<$kind>($options);
            }

            #[test]
            fn bad_options_are_refused() {
                $crate::provider::bad_options_are_refused::<$kind>($options);
            }

            #[test]
            fn garbage_inputs_fail_cleanly() {
                $crate::__private::block_on_multi_thread(
                    $crate::provider::garbage_inputs_fail_cleanly::<$kind>($options),
                );
            }
        }
    };
}

//! The [`IdentityStore`] conformance cases, and those of its capabilities
//! ([`MfaStore`], [`VerificationStore`], [`PasskeyStore`], [`DeviceStore`],
//! [`AuditStore`]).
//!
//! Each case is a plain async function over `&dyn IdentityStore` that panics,
//! like a failed `assert!`, when the store breaks the contract. The cases of a
//! capability also take it: `(store, mfa: &dyn MfaStore)`, `(store,
//! verifications: &dyn VerificationStore)`, `(store, passkeys: &dyn
//! PasskeyStore)`, `(store, devices: &dyn DeviceStore)` or `(store, audit:
//! &dyn AuditStore)`, the store's [`IdentityStore::mfa_store`],
//! [`IdentityStore::verification_store`], [`IdentityStore::passkey_store`],
//! [`IdentityStore::device_store`] or [`IdentityStore::audit_store`]
//! (records hang on the store's identities). Each creates its own data under
//! entity ids unique to the run, so cases may share a backend, except those
//! of the audit log, which is one chain per store: they read all of it, and
//! one prunes it.
//! [`crate::identity_store_suite!`] stamps one test per case.

use std::sync::Arc;
use std::time::Duration;

use auth_module::audit::{GENESIS, chain_hash, verify};
use auth_module::{
    AUDIT_PREFIX, AUTH_IDENTITY_PREFIX, AuditChainStart, AuditEntry, AuditQuery, AuditStore,
    AuthIdentity, DEVICE_PREFIX, Device, DeviceStore, DeviceTally, ErrorKind, IdentityStore,
    MFA_FACTOR_PREFIX, MfaFactor, MfaFactorStatus, MfaFactorUpdate, MfaStore, NewAuditEntry,
    NewAuthIdentity, NewDevice, NewMfaFactor, NewPasskeyCredential, NewProviderIdentity,
    NewVerification, PASSKEY_PREFIX, PROVIDER_IDENTITY_PREFIX, PasskeyCredential, PasskeyStore,
    PasskeyUse, ProviderIdentityUpdate, VERIFICATION_PREFIX, Verification, VerificationStore,
};
use serde_json::json;

use crate::support::{expect_kind, join_all, obj, ok, unique};

const EMAILPASS: &str = "emailpass";
const GOOGLE: &str = "google";
const GITHUB: &str = "github";

/// Long enough for any store's clock to move between two writes, so "oldest
/// first" has one right answer.
const TICK: Duration = Duration::from_millis(5);

fn email(tag: &str) -> String {
    format!("{}@example.test", unique(tag))
}

async fn create_one(store: &dyn IdentityStore, provider: &str, entity_id: &str) -> AuthIdentity {
    ok(
        store
            .create_auth_identity(NewAuthIdentity::with_provider_identity(
                NewProviderIdentity::new(provider, entity_id),
            ))
            .await,
        "create_auth_identity",
    )
}

/// Creating an auth identity with provider identities stores all of it: ids
/// have their prefixes, links point back, metadata (secrets included) round
/// trips, and reading it back answers exactly what the create returned.
pub async fn create_and_retrieve_with_provider_identities(store: &dyn IdentityStore) {
    let address = email("create");
    let subject = unique("google-sub");
    let mut new = NewAuthIdentity::with_provider_identity(
        NewProviderIdentity::new(EMAILPASS, &address)
            .user_metadata(obj(json!({ "email": address })))
            .provider_metadata(obj(json!({ "password": "$argon2id$v=19$secret" }))),
    )
    .app_metadata(obj(json!({ "customer_id": "cus_01" })));
    new.provider_identities.push(
        NewProviderIdentity::new(GOOGLE, &subject)
            .user_metadata(obj(json!({ "name": "Ada" })))
            .provider_metadata(obj(json!({ "refresh_token": "rt" }))),
    );

    let created = ok(
        store.create_auth_identity(new).await,
        "create_auth_identity",
    );
    assert!(
        created.id.starts_with(&format!("{AUTH_IDENTITY_PREFIX}_")),
        "auth identity id {:?} lacks its prefix",
        created.id
    );
    assert_eq!(
        created.app_metadata,
        Some(obj(json!({ "customer_id": "cus_01" })))
    );
    assert!(created.updated_at >= created.created_at);
    assert_eq!(created.provider_identities.len(), 2);
    for p in &created.provider_identities {
        assert!(
            p.id.starts_with(&format!("{PROVIDER_IDENTITY_PREFIX}_")),
            "provider identity id {:?} lacks its prefix",
            p.id
        );
        assert_eq!(p.auth_identity_id, created.id);
    }
    assert_ne!(
        created.provider_identities[0].id,
        created.provider_identities[1].id
    );
    let by_email = created
        .provider_identity(EMAILPASS)
        .expect("the emailpass identity is returned");
    assert_eq!(by_email.entity_id, address);
    assert_eq!(
        by_email.user_metadata,
        Some(obj(json!({ "email": address })))
    );
    assert_eq!(
        by_email.provider_metadata,
        Some(obj(json!({ "password": "$argon2id$v=19$secret" })))
    );
    let by_google = created
        .provider_identity(GOOGLE)
        .expect("the google identity is returned");
    assert_eq!(by_google.entity_id, subject);
    assert_eq!(
        by_google.provider_metadata,
        Some(obj(json!({ "refresh_token": "rt" })))
    );

    let read = ok(
        store.retrieve_auth_identity(&created.id).await,
        "retrieve_auth_identity",
    );
    assert_eq!(read, created, "retrieve answers what create returned");
}

/// An auth identity may start with no provider identity and no metadata.
pub async fn create_without_provider_identities(store: &dyn IdentityStore) {
    let created = ok(
        store.create_auth_identity(NewAuthIdentity::new()).await,
        "create_auth_identity",
    );
    assert!(created.provider_identities.is_empty());
    assert_eq!(created.app_metadata, None);
    let read = ok(
        store.retrieve_auth_identity(&created.id).await,
        "retrieve_auth_identity",
    );
    assert_eq!(read, created);
}

/// Metadata keeps every JSON shape: nesting, arrays, unicode, escapes, exact
/// integers beyond `f64`, nulls inside, and an empty object stays `Some({})`.
pub async fn metadata_round_trips(store: &dyn IdentityStore) {
    let rich = obj(json!({
        "unicode": "ünïcödé ✓ 名前",
        "escapes": "quote \" backslash \\ newline \n tab \t",
        "int": 42,
        "negative": -7,
        "big": 9_007_199_254_740_993_u64,
        "float": 1.5,
        "bool": true,
        "null": null,
        "array": [1, "two", { "three": 3 }, []],
        "nested": { "deeper": { "deepest": {} } },
    }));
    let address = email("metadata");
    let created = ok(
        store
            .create_auth_identity(
                NewAuthIdentity::with_provider_identity(
                    NewProviderIdentity::new(EMAILPASS, &address)
                        .user_metadata(rich.clone())
                        .provider_metadata(obj(json!({}))),
                )
                .app_metadata(rich.clone()),
            )
            .await,
        "create_auth_identity",
    );
    let read = ok(
        store.retrieve_auth_identity(&created.id).await,
        "retrieve_auth_identity",
    );
    assert_eq!(read.app_metadata.as_ref(), Some(&rich));
    assert_eq!(
        read.provider_identities[0].user_metadata.as_ref(),
        Some(&rich)
    );
    assert_eq!(
        read.provider_identities[0].provider_metadata,
        Some(obj(json!({}))),
        "an empty object is not NULL"
    );
    let found = ok(
        store.find_provider_identity(EMAILPASS, &address).await,
        "find_provider_identity",
    )
    .expect("the provider identity is found");
    assert_eq!(found.user_metadata.as_ref(), Some(&rich));
}

/// A second `(entity_id, provider)` is a `DuplicateError`, by create or by add,
/// and leaves the first untouched.
pub async fn duplicate_identity_is_rejected(store: &dyn IdentityStore) {
    let address = email("duplicate");
    let first = create_one(store, EMAILPASS, &address).await;

    expect_kind(
        store
            .create_auth_identity(NewAuthIdentity::with_provider_identity(
                NewProviderIdentity::new(EMAILPASS, &address),
            ))
            .await,
        ErrorKind::DuplicateError,
        "create with a taken (entity_id, provider)",
    );
    let other = ok(
        store.create_auth_identity(NewAuthIdentity::new()).await,
        "create_auth_identity",
    );
    expect_kind(
        store
            .add_provider_identity(&other.id, NewProviderIdentity::new(EMAILPASS, &address))
            .await,
        ErrorKind::DuplicateError,
        "add with a taken (entity_id, provider)",
    );
    expect_kind(
        store
            .add_provider_identity(&first.id, NewProviderIdentity::new(EMAILPASS, &address))
            .await,
        ErrorKind::DuplicateError,
        "add of the same (entity_id, provider) to its own auth identity",
    );

    let found = ok(
        store.find_provider_identity(EMAILPASS, &address).await,
        "find_provider_identity",
    )
    .expect("the first provider identity is still there");
    assert_eq!(found, first.provider_identities[0]);
    assert_eq!(
        ok(store.retrieve_auth_identity(&first.id).await, "retrieve"),
        first
    );
    assert!(
        ok(store.retrieve_auth_identity(&other.id).await, "retrieve")
            .provider_identities
            .is_empty(),
        "the failed add stored nothing"
    );
}

/// A create with several provider identities, one of them taken, fails whole:
/// none of its provider identities is stored. The same holds when the clash is
/// between two provider identities of the same call.
pub async fn duplicate_in_multi_provider_create_stores_nothing(store: &dyn IdentityStore) {
    let taken = email("taken");
    create_one(store, EMAILPASS, &taken).await;

    let fresh = unique("fresh-sub");
    let mut new = NewAuthIdentity::with_provider_identity(NewProviderIdentity::new(GOOGLE, &fresh))
        .app_metadata(obj(json!({ "customer_id": "cus_never" })));
    new.provider_identities
        .push(NewProviderIdentity::new(EMAILPASS, &taken));
    expect_kind(
        store.create_auth_identity(new).await,
        ErrorKind::DuplicateError,
        "create with a taken identity among fresh ones",
    );
    assert_eq!(
        ok(
            store.find_provider_identity(GOOGLE, &fresh).await,
            "find_provider_identity"
        ),
        None,
        "the fresh provider identity of a failed create is not stored"
    );

    let twice = email("twice");
    let mut new = NewAuthIdentity::with_provider_identity(NewProviderIdentity::new(GITHUB, &twice));
    new.provider_identities
        .push(NewProviderIdentity::new(GITHUB, &twice));
    expect_kind(
        store.create_auth_identity(new).await,
        ErrorKind::DuplicateError,
        "create with the same (entity_id, provider) twice",
    );
    assert_eq!(
        ok(
            store.find_provider_identity(GITHUB, &twice).await,
            "find_provider_identity"
        ),
        None,
        "nothing of a self-clashing create is stored"
    );
}

/// Uniqueness is per `(entity_id, provider)`: one entity id may be known to
/// several providers, in separate auth identities or the same one.
pub async fn same_entity_id_under_two_providers_is_allowed(store: &dyn IdentityStore) {
    let address = email("shared");
    let a = create_one(store, EMAILPASS, &address).await;
    let b = create_one(store, GOOGLE, &address).await;
    assert_ne!(a.id, b.id);
    let added = ok(
        store
            .add_provider_identity(&a.id, NewProviderIdentity::new(GITHUB, &address))
            .await,
        "add_provider_identity",
    );
    assert_eq!(added.auth_identity_id, a.id);
    for (provider, owner) in [(EMAILPASS, &a.id), (GOOGLE, &b.id), (GITHUB, &a.id)] {
        let found = ok(
            store.find_provider_identity(provider, &address).await,
            "find_provider_identity",
        )
        .unwrap_or_else(|| panic!("the {provider} identity is found"));
        assert_eq!(&found.auth_identity_id, owner);
        assert_eq!(found.provider, provider);
    }
}

/// `find_provider_identity` matches provider and entity id exactly.
pub async fn find_provider_identity_matches_provider_and_entity(store: &dyn IdentityStore) {
    let address = email("find");
    let created = create_one(store, EMAILPASS, &address).await;
    let found = ok(
        store.find_provider_identity(EMAILPASS, &address).await,
        "find_provider_identity",
    );
    assert_eq!(found.as_ref(), created.provider_identities.first());

    let upper = address.to_uppercase();
    for (provider, entity_id) in [
        (GOOGLE, address.as_str()),
        (EMAILPASS, "nobody@example.test"),
        (EMAILPASS, upper.as_str()),
        ("", address.as_str()),
    ] {
        assert_eq!(
            ok(
                store.find_provider_identity(provider, entity_id).await,
                "find_provider_identity"
            ),
            None,
            "({provider:?}, {entity_id:?}) matches nothing"
        );
    }
}

/// A provider identity added later is linked, readable and listed after the
/// older ones.
pub async fn add_provider_identity_links_oldest_first(store: &dyn IdentityStore) {
    let address = email("add");
    let created = create_one(store, EMAILPASS, &address).await;
    tokio::time::sleep(TICK).await;
    let added = ok(
        store
            .add_provider_identity(
                &created.id,
                NewProviderIdentity::new(GOOGLE, unique("sub"))
                    .user_metadata(obj(json!({ "name": "Ada" })))
                    .provider_metadata(obj(json!({ "token": "t" }))),
            )
            .await,
        "add_provider_identity",
    );
    assert!(
        added
            .id
            .starts_with(&format!("{PROVIDER_IDENTITY_PREFIX}_"))
    );
    assert_eq!(added.auth_identity_id, created.id);
    assert_eq!(added.user_metadata, Some(obj(json!({ "name": "Ada" }))));
    assert_eq!(added.provider_metadata, Some(obj(json!({ "token": "t" }))));
    assert!(added.created_at > created.provider_identities[0].created_at);

    tokio::time::sleep(TICK).await;
    let third = ok(
        store
            .add_provider_identity(&created.id, NewProviderIdentity::new(GITHUB, unique("gh")))
            .await,
        "add_provider_identity",
    );

    let read = ok(
        store.retrieve_auth_identity(&created.id).await,
        "retrieve_auth_identity",
    );
    assert_eq!(
        read.provider_identities,
        vec![created.provider_identities[0].clone(), added.clone(), third],
        "provider identities come oldest first"
    );
    let found = ok(
        store.find_provider_identity(GOOGLE, &added.entity_id).await,
        "find_provider_identity",
    );
    assert_eq!(found, Some(added));
}

/// Adding to an auth identity that does not exist is `NotFound` and stores
/// nothing.
pub async fn add_provider_identity_to_missing_auth_identity_is_not_found(
    store: &dyn IdentityStore,
) {
    let address = email("orphan");
    let missing = format!("{AUTH_IDENTITY_PREFIX}_{}", unique("missing"));
    expect_kind(
        store
            .add_provider_identity(&missing, NewProviderIdentity::new(EMAILPASS, &address))
            .await,
        ErrorKind::NotFound,
        "add to a missing auth identity",
    );
    assert_eq!(
        ok(
            store.find_provider_identity(EMAILPASS, &address).await,
            "find_provider_identity"
        ),
        None
    );
}

/// `update_provider_identity` replaces exactly the fields that are `Some`.
pub async fn update_provider_identity_replaces_only_given_fields(store: &dyn IdentityStore) {
    let address = email("update");
    let created = ok(
        store
            .create_auth_identity(NewAuthIdentity::with_provider_identity(
                NewProviderIdentity::new(EMAILPASS, &address)
                    .user_metadata(obj(json!({ "email": address, "name": "Old" })))
                    .provider_metadata(obj(json!({ "password": "old-hash" }))),
            ))
            .await,
        "create_auth_identity",
    );
    let original = created.provider_identities[0].clone();

    let updated = ok(
        store
            .update_provider_identity(
                &original.id,
                ProviderIdentityUpdate::new().user_metadata(obj(json!({ "name": "New" }))),
            )
            .await,
        "update user_metadata",
    );
    assert_eq!(updated.id, original.id);
    assert_eq!(updated.entity_id, original.entity_id);
    assert_eq!(updated.provider, original.provider);
    assert_eq!(updated.auth_identity_id, original.auth_identity_id);
    assert_eq!(updated.created_at, original.created_at);
    assert!(updated.updated_at >= original.updated_at);
    assert_eq!(
        updated.user_metadata,
        Some(obj(json!({ "name": "New" }))),
        "user_metadata is replaced, not merged"
    );
    assert_eq!(
        updated.provider_metadata, original.provider_metadata,
        "provider_metadata is kept"
    );

    let updated = ok(
        store
            .update_provider_identity(
                &original.id,
                ProviderIdentityUpdate::new()
                    .provider_metadata(obj(json!({ "password": "new-hash" }))),
            )
            .await,
        "update provider_metadata",
    );
    assert_eq!(updated.user_metadata, Some(obj(json!({ "name": "New" }))));
    assert_eq!(
        updated.provider_metadata,
        Some(obj(json!({ "password": "new-hash" })))
    );

    let unchanged = ok(
        store
            .update_provider_identity(&original.id, ProviderIdentityUpdate::new())
            .await,
        "empty update",
    );
    assert_eq!(unchanged.user_metadata, updated.user_metadata);
    assert_eq!(unchanged.provider_metadata, updated.provider_metadata);

    let found = ok(
        store.find_provider_identity(EMAILPASS, &address).await,
        "find_provider_identity",
    );
    assert_eq!(found.as_ref(), Some(&unchanged));
    let read = ok(
        store.retrieve_auth_identity(&created.id).await,
        "retrieve_auth_identity",
    );
    assert_eq!(read.provider_identities, vec![unchanged]);
}

/// `update_app_metadata` replaces the whole value, `None` included, and keeps
/// the provider identities.
pub async fn update_app_metadata_replaces_whole_value(store: &dyn IdentityStore) {
    let address = email("app-metadata");
    let created = ok(
        store
            .create_auth_identity(
                NewAuthIdentity::with_provider_identity(NewProviderIdentity::new(
                    EMAILPASS, &address,
                ))
                .app_metadata(obj(json!({ "customer_id": "cus_1", "extra": 1 }))),
            )
            .await,
        "create_auth_identity",
    );

    let updated = ok(
        store
            .update_app_metadata(&created.id, Some(obj(json!({ "user_id": "user_1" }))))
            .await,
        "update_app_metadata",
    );
    assert_eq!(updated.id, created.id);
    assert_eq!(
        updated.app_metadata,
        Some(obj(json!({ "user_id": "user_1" }))),
        "the old keys are gone"
    );
    assert_eq!(updated.provider_identities, created.provider_identities);
    assert_eq!(updated.created_at, created.created_at);
    assert!(updated.updated_at >= created.updated_at);
    assert_eq!(updated.actor_id("user"), Some("user_1"));
    assert_eq!(
        ok(store.retrieve_auth_identity(&created.id).await, "retrieve"),
        updated
    );

    let cleared = ok(
        store.update_app_metadata(&created.id, None).await,
        "update_app_metadata to None",
    );
    assert_eq!(cleared.app_metadata, None);
    assert_eq!(
        ok(store.retrieve_auth_identity(&created.id).await, "retrieve").app_metadata,
        None
    );
}

/// Deleting an auth identity deletes its provider identities, which frees
/// their `(entity_id, provider)`.
pub async fn delete_auth_identity_cascades(store: &dyn IdentityStore) {
    let address = email("delete");
    let subject = unique("delete-sub");
    let mut new =
        NewAuthIdentity::with_provider_identity(NewProviderIdentity::new(EMAILPASS, &address));
    new.provider_identities
        .push(NewProviderIdentity::new(GOOGLE, &subject));
    let created = ok(
        store.create_auth_identity(new).await,
        "create_auth_identity",
    );
    let keep = create_one(store, GITHUB, &address).await;

    ok(
        store.delete_auth_identity(&created.id).await,
        "delete_auth_identity",
    );
    expect_kind(
        store.retrieve_auth_identity(&created.id).await,
        ErrorKind::NotFound,
        "retrieve after delete",
    );
    for (provider, entity_id) in [(EMAILPASS, &address), (GOOGLE, &subject)] {
        assert_eq!(
            ok(
                store.find_provider_identity(provider, entity_id).await,
                "find_provider_identity"
            ),
            None,
            "the {provider} identity went with its auth identity"
        );
    }
    for p in &created.provider_identities {
        expect_kind(
            store.delete_provider_identity(&p.id).await,
            ErrorKind::NotFound,
            "delete of a cascaded provider identity",
        );
    }
    expect_kind(
        store.delete_auth_identity(&created.id).await,
        ErrorKind::NotFound,
        "second delete",
    );
    assert_eq!(
        ok(store.retrieve_auth_identity(&keep.id).await, "retrieve"),
        keep,
        "other auth identities are untouched"
    );

    let again = create_one(store, EMAILPASS, &address).await;
    assert_ne!(again.id, created.id);
}

/// Deleting a provider identity keeps its auth identity and frees its
/// `(entity_id, provider)`.
pub async fn delete_provider_identity_keeps_auth_identity(store: &dyn IdentityStore) {
    let address = email("unlink");
    let subject = unique("unlink-sub");
    let mut new =
        NewAuthIdentity::with_provider_identity(NewProviderIdentity::new(EMAILPASS, &address));
    new.provider_identities
        .push(NewProviderIdentity::new(GOOGLE, &subject));
    let created = ok(
        store.create_auth_identity(new).await,
        "create_auth_identity",
    );
    let google = created
        .provider_identity(GOOGLE)
        .expect("the google identity is returned")
        .clone();

    ok(
        store.delete_provider_identity(&google.id).await,
        "delete_provider_identity",
    );
    let read = ok(
        store.retrieve_auth_identity(&created.id).await,
        "retrieve_auth_identity",
    );
    assert_eq!(read.provider_identities.len(), 1);
    assert_eq!(read.provider_identities[0].provider, EMAILPASS);
    assert_eq!(
        ok(
            store.find_provider_identity(GOOGLE, &subject).await,
            "find_provider_identity"
        ),
        None
    );
    expect_kind(
        store.delete_provider_identity(&google.id).await,
        ErrorKind::NotFound,
        "second delete",
    );
    expect_kind(
        store
            .update_provider_identity(&google.id, ProviderIdentityUpdate::new())
            .await,
        ErrorKind::NotFound,
        "update of a deleted provider identity",
    );
    ok(
        store
            .add_provider_identity(&created.id, NewProviderIdentity::new(GOOGLE, &subject))
            .await,
        "re-adding the freed (entity_id, provider)",
    );
}

/// Every lookup of a missing record by id is `NotFound`; `find` answers `None`.
pub async fn missing_records_are_not_found(store: &dyn IdentityStore) {
    let auth_id = format!("{AUTH_IDENTITY_PREFIX}_{}", unique("missing"));
    let provider_id = format!("{PROVIDER_IDENTITY_PREFIX}_{}", unique("missing"));
    expect_kind(
        store.retrieve_auth_identity(&auth_id).await,
        ErrorKind::NotFound,
        "retrieve_auth_identity",
    );
    expect_kind(
        store
            .update_app_metadata(&auth_id, Some(obj(json!({ "a": 1 }))))
            .await,
        ErrorKind::NotFound,
        "update_app_metadata",
    );
    expect_kind(
        store.delete_auth_identity(&auth_id).await,
        ErrorKind::NotFound,
        "delete_auth_identity",
    );
    expect_kind(
        store
            .update_provider_identity(
                &provider_id,
                ProviderIdentityUpdate::new().user_metadata(obj(json!({ "a": 1 }))),
            )
            .await,
        ErrorKind::NotFound,
        "update_provider_identity",
    );
    expect_kind(
        store.delete_provider_identity(&provider_id).await,
        ErrorKind::NotFound,
        "delete_provider_identity",
    );
    assert_eq!(
        ok(
            store
                .find_provider_identity(EMAILPASS, &email("missing"))
                .await,
            "find_provider_identity"
        ),
        None
    );
    // Ids are opaque keys: odd ones are simply not found.
    for odd in ["", "'; DROP TABLE auth_identity; --", "authid_%", "AUTHID_"] {
        expect_kind(
            store.retrieve_auth_identity(odd).await,
            ErrorKind::NotFound,
            "retrieve_auth_identity with an odd id",
        );
    }
}

/// Of 20 concurrent creates of the same `(entity_id, provider)`, exactly one
/// succeeds and the others are `DuplicateError`.
pub async fn concurrent_creates_of_same_identity_yield_one(store: &dyn IdentityStore) {
    const N: usize = 20;
    let address = email("race");
    let attempts = (0..N)
        .map(|_| {
            store.create_auth_identity(NewAuthIdentity::with_provider_identity(
                NewProviderIdentity::new(EMAILPASS, &address),
            ))
        })
        .collect();
    let results = join_all(attempts).await;

    let mut winners = Vec::new();
    for result in results {
        match result {
            Ok(created) => winners.push(created),
            Err(e) => assert_eq!(
                e.kind(),
                ErrorKind::DuplicateError,
                "a losing create must be a duplicate, got: {e}"
            ),
        }
    }
    assert_eq!(winners.len(), 1, "exactly one of {N} creates succeeds");
    let winner = &winners[0];
    let found = ok(
        store.find_provider_identity(EMAILPASS, &address).await,
        "find_provider_identity",
    );
    assert_eq!(found.as_ref(), winner.provider_identities.first());
    assert_eq!(
        ok(store.retrieve_auth_identity(&winner.id).await, "retrieve"),
        *winner
    );
}

/// `patch_app_metadata` sets and removes one key and leaves the others; a
/// bad key is `InvalidData`, a missing identity `NotFound`.
pub async fn patch_app_metadata_changes_one_key(store: &dyn IdentityStore) {
    let address = email("patch");
    let created = ok(
        store
            .create_auth_identity(
                NewAuthIdentity::with_provider_identity(NewProviderIdentity::new(
                    EMAILPASS, &address,
                ))
                .app_metadata(obj(json!({ "extra": { "nested": [1, 2] } }))),
            )
            .await,
        "create_auth_identity",
    );
    let patched = ok(
        store
            .patch_app_metadata(&created.id, "customer_id", Some(json!("cus_1")))
            .await,
        "patch set",
    );
    assert_eq!(
        patched.app_metadata,
        Some(obj(
            json!({ "extra": { "nested": [1, 2] }, "customer_id": "cus_1" })
        ))
    );
    assert_eq!(patched.provider_identities, created.provider_identities);
    assert_eq!(
        ok(store.retrieve_auth_identity(&created.id).await, "retrieve"),
        patched
    );
    // An object value replaces the key's value; it is not merged.
    let replaced = ok(
        store
            .patch_app_metadata(&created.id, "extra", Some(json!({ "other": true })))
            .await,
        "patch replace",
    );
    assert_eq!(
        replaced.app_metadata,
        Some(obj(
            json!({ "extra": { "other": true }, "customer_id": "cus_1" })
        ))
    );
    let removed = ok(
        store.patch_app_metadata(&created.id, "extra", None).await,
        "patch remove",
    );
    assert_eq!(
        removed.app_metadata,
        Some(obj(json!({ "customer_id": "cus_1" })))
    );
    ok(
        store.patch_app_metadata(&created.id, "absent", None).await,
        "removing an absent key",
    );

    // From no app_metadata at all.
    let bare = create_one(store, EMAILPASS, &email("patch-bare")).await;
    assert_eq!(bare.app_metadata, None);
    let linked = ok(
        store
            .patch_app_metadata(&bare.id, "user-x_id", Some(json!("u_1")))
            .await,
        "patch from nothing",
    );
    assert_eq!(
        linked.app_metadata,
        Some(obj(json!({ "user-x_id": "u_1" })))
    );

    for bad in ["", "a.b", "a\"b", "a b", "$x", "ключ"] {
        expect_kind(
            store
                .patch_app_metadata(&created.id, bad, Some(json!(1)))
                .await,
            ErrorKind::InvalidData,
            "a key that is not letters, digits, '_' or '-'",
        );
    }
    expect_kind(
        store
            .patch_app_metadata("authid_missing", "customer_id", Some(json!("x")))
            .await,
        ErrorKind::NotFound,
        "patching a missing identity",
    );
}

/// `merge_app_metadata` merges top-level keys: `null` removes a key, any
/// other value replaces the key's whole value (an object is not merged into
/// the stored one, and its own nulls are kept), other keys stay. A bad key
/// is `InvalidData` and changes nothing; a missing identity is `NotFound`.
/// A read after the merge (through any cache) sees it.
pub async fn merge_app_metadata_sets_and_removes_keys(store: &dyn IdentityStore) {
    let created = ok(
        store
            .create_auth_identity(
                NewAuthIdentity::with_provider_identity(NewProviderIdentity::new(
                    EMAILPASS,
                    email("merge"),
                ))
                .app_metadata(obj(json!({
                    "customer_id": "cus_1",
                    "extra": { "nested": [1, 2], "deep": { "x": 1 } },
                    "gone": true,
                }))),
            )
            .await,
        "create_auth_identity",
    );
    // Read once, so a cache holds the identity before the merge.
    ok(store.retrieve_auth_identity(&created.id).await, "retrieve");
    let merged = ok(
        store
            .merge_app_metadata(
                &created.id,
                &obj(json!({
                    "roles": ["role_a", "role_b"],
                    "extra": { "deep": { "y": 2 }, "keep_null": null },
                    "gone": null,
                    "absent": null,
                })),
            )
            .await,
        "merge",
    );
    let want = obj(json!({
        "customer_id": "cus_1",
        "extra": { "deep": { "y": 2 }, "keep_null": null },
        "roles": ["role_a", "role_b"],
    }));
    assert_eq!(
        merged.app_metadata,
        Some(want.clone()),
        "the merge's answer"
    );
    assert_eq!(merged.provider_identities, created.provider_identities);
    assert_eq!(merged.credential_version, created.credential_version);
    assert!(merged.updated_at >= created.updated_at);
    assert_eq!(
        ok(store.retrieve_auth_identity(&created.id).await, "retrieve"),
        merged,
        "a read after the merge"
    );

    // A value replaces the last one whole, arrays included.
    let replaced = ok(
        store
            .merge_app_metadata(&created.id, &obj(json!({ "roles": ["role_c"] })))
            .await,
        "merge again",
    );
    assert_eq!(
        replaced.app_metadata.as_ref().and_then(|m| m.get("roles")),
        Some(&json!(["role_c"]))
    );
    // An empty patch changes nothing.
    let same = ok(
        store.merge_app_metadata(&created.id, &obj(json!({}))).await,
        "an empty merge",
    );
    assert_eq!(same.app_metadata, replaced.app_metadata);

    // A bad key refuses the whole patch.
    for bad in ["", "a.b", "a\"b", "a b", "$x", "ключ"] {
        let mut patch = obj(json!({ "fine": 1 }));
        patch.insert(bad.to_owned(), json!(1));
        expect_kind(
            store.merge_app_metadata(&created.id, &patch).await,
            ErrorKind::InvalidData,
            "a key that is not letters, digits, '_' or '-'",
        );
    }
    assert_eq!(
        ok(store.retrieve_auth_identity(&created.id).await, "retrieve").app_metadata,
        replaced.app_metadata,
        "a refused merge changes nothing"
    );
    expect_kind(
        store
            .merge_app_metadata("authid_missing", &obj(json!({ "roles": [] })))
            .await,
        ErrorKind::NotFound,
        "merging into a missing identity",
    );

    // From no app_metadata at all: removals keep it absent, a set creates
    // it, removing its last key leaves an empty object.
    let bare = create_one(store, EMAILPASS, &email("merge-bare")).await;
    let still = ok(
        store
            .merge_app_metadata(&bare.id, &obj(json!({ "x": null })))
            .await,
        "removing from nothing",
    );
    assert_eq!(still.app_metadata, None);
    let set = ok(
        store
            .merge_app_metadata(&bare.id, &obj(json!({ "roles": [], "tier-1": 0 })))
            .await,
        "merge from nothing",
    );
    assert_eq!(
        set.app_metadata,
        Some(obj(json!({ "roles": [], "tier-1": 0 })))
    );
    let emptied = ok(
        store
            .merge_app_metadata(&bare.id, &obj(json!({ "roles": null, "tier-1": null })))
            .await,
        "removing every key",
    );
    assert_eq!(emptied.app_metadata, Some(obj(json!({}))));
}

/// 20 concurrent patches of 20 different keys of one identity all stay.
pub async fn concurrent_patches_keep_every_key(store: &dyn IdentityStore) {
    const N: usize = 20;
    let created = create_one(store, EMAILPASS, &email("patch-race")).await;
    let keys: Vec<String> = (0..N).map(|i| format!("actor{i}_id")).collect();
    let patches = keys
        .iter()
        .map(|k| store.patch_app_metadata(&created.id, k, Some(json!(k))))
        .collect();
    for result in join_all(patches).await {
        ok(result, "concurrent patch");
    }
    let read = ok(store.retrieve_auth_identity(&created.id).await, "retrieve");
    let m = read.app_metadata.unwrap_or_default();
    for k in &keys {
        assert_eq!(m.get(k), Some(&json!(k)), "{k} was lost");
    }
    assert_eq!(m.len(), N);
}

/// 20 concurrent merges, each of a different key, into one identity all
/// stay, with the key every merge removes gone and the untouched key kept.
pub async fn concurrent_merges_keep_every_key(store: &dyn IdentityStore) {
    const N: usize = 20;
    let created = ok(
        store
            .create_auth_identity(
                NewAuthIdentity::with_provider_identity(NewProviderIdentity::new(
                    EMAILPASS,
                    email("merge-race"),
                ))
                .app_metadata(obj(json!({ "kept": true, "doomed": 1 }))),
            )
            .await,
        "create_auth_identity",
    );
    let patches: Vec<_> = (0..N)
        .map(|i| obj(json!({ format!("key{i}"): [i], "doomed": null })))
        .collect();
    let merges = patches
        .iter()
        .map(|patch| store.merge_app_metadata(&created.id, patch))
        .collect();
    for result in join_all(merges).await {
        ok(result, "concurrent merge");
    }
    let read = ok(store.retrieve_auth_identity(&created.id).await, "retrieve");
    let m = read.app_metadata.unwrap_or_default();
    for i in 0..N {
        assert_eq!(
            m.get(&format!("key{i}")),
            Some(&json!([i])),
            "key{i} was lost"
        );
    }
    assert_eq!(m.get("kept"), Some(&json!(true)));
    assert_eq!(m.get("doomed"), None);
    assert_eq!(m.len(), N + 1);
}

/// An update with a precondition applies only while the stored
/// `provider_metadata` is what the caller read: otherwise `Conflict`, and
/// nothing changes.
pub async fn conditional_update_is_compare_and_set(store: &dyn IdentityStore) {
    let address = email("cas");
    let created = ok(
        store
            .create_auth_identity(NewAuthIdentity::with_provider_identity(
                NewProviderIdentity::new(EMAILPASS, &address).provider_metadata(obj(
                    json!({ "password": "h1", "z": [1, { "b": 2, "a": 1 }] }),
                )),
            ))
            .await,
        "create_auth_identity",
    );
    let pid = created.provider_identities[0].id.clone();
    let read = ok(
        store.find_provider_identity(EMAILPASS, &address).await,
        "find",
    )
    .and_then(|p| p.provider_metadata);
    // A concurrent writer changes the secret first.
    ok(
        store
            .update_provider_identity(
                &pid,
                ProviderIdentityUpdate::new()
                    .provider_metadata(obj(json!({ "password": "h2", "z": [] }))),
            )
            .await,
        "the concurrent change",
    );
    expect_kind(
        store
            .update_provider_identity(
                &pid,
                ProviderIdentityUpdate::new()
                    .provider_metadata(obj(json!({ "password": "h1-rehashed" })))
                    .if_provider_metadata(read),
            )
            .await,
        ErrorKind::Conflict,
        "an update whose precondition no longer holds",
    );
    let now = ok(
        store.find_provider_identity(EMAILPASS, &address).await,
        "find",
    )
    .and_then(|p| p.provider_metadata);
    assert_eq!(now, Some(obj(json!({ "password": "h2", "z": [] }))));
    // With the current value as precondition it applies.
    let applied = ok(
        store
            .update_provider_identity(
                &pid,
                ProviderIdentityUpdate::new()
                    .provider_metadata(obj(json!({ "password": "h3" })))
                    .if_provider_metadata(now),
            )
            .await,
        "an update whose precondition holds",
    );
    assert_eq!(
        applied.provider_metadata,
        Some(obj(json!({ "password": "h3" })))
    );
    // "No metadata" is a precondition too.
    let bare = create_one(store, GOOGLE, &unique("cas-bare")).await;
    let bare_pid = bare.provider_identities[0].id.clone();
    ok(
        store
            .update_provider_identity(
                &bare_pid,
                ProviderIdentityUpdate::new()
                    .provider_metadata(obj(json!({ "token": "t" })))
                    .if_provider_metadata(None),
            )
            .await,
        "expecting no metadata",
    );
    expect_kind(
        store
            .update_provider_identity(
                &bare_pid,
                ProviderIdentityUpdate::new()
                    .provider_metadata(obj(json!({ "token": "u" })))
                    .if_provider_metadata(None),
            )
            .await,
        ErrorKind::Conflict,
        "expecting no metadata once there is some",
    );
    expect_kind(
        store
            .update_provider_identity(
                "provid_missing",
                ProviderIdentityUpdate::new().if_provider_metadata(None),
            )
            .await,
        ErrorKind::NotFound,
        "a conditional update of a missing provider identity",
    );
}

/// The credential version belongs to the auth identity: it starts at 0, and
/// an update asking for it bumps it atomically with the change, whichever
/// provider identity is updated; a failed update bumps nothing.
pub async fn credential_version_is_bumped_with_the_update(store: &dyn IdentityStore) {
    let address = email("cv");
    let mut new = NewAuthIdentity::with_provider_identity(
        NewProviderIdentity::new(EMAILPASS, &address)
            .provider_metadata(obj(json!({ "password": "h1" }))),
    );
    new.provider_identities
        .push(NewProviderIdentity::new(GOOGLE, unique("cv-sub")));
    let created = ok(store.create_auth_identity(new).await, "create");
    assert_eq!(created.credential_version, 0);
    let (pass, google) = (
        created.provider_identities[0].id.clone(),
        created.provider_identities[1].id.clone(),
    );
    ok(
        store
            .update_provider_identity(
                &pass,
                ProviderIdentityUpdate::new().user_metadata(obj(json!({ "n": 1 }))),
            )
            .await,
        "an update without a bump",
    );
    assert_eq!(
        ok(store.retrieve_auth_identity(&created.id).await, "retrieve").credential_version,
        0
    );
    ok(
        store
            .update_provider_identity(
                &pass,
                ProviderIdentityUpdate::new()
                    .provider_metadata(obj(json!({ "password": "h2" })))
                    .bump_credential_version(),
            )
            .await,
        "a password change",
    );
    ok(
        store
            .update_provider_identity(
                &google,
                ProviderIdentityUpdate::new().bump_credential_version(),
            )
            .await,
        "a change through the other provider",
    );
    let read = ok(store.retrieve_auth_identity(&created.id).await, "retrieve");
    assert_eq!(read.credential_version, 2);
    expect_kind(
        store
            .update_provider_identity(
                &pass,
                ProviderIdentityUpdate::new()
                    .provider_metadata(obj(json!({ "password": "h3" })))
                    .if_provider_metadata(None)
                    .bump_credential_version(),
            )
            .await,
        ErrorKind::Conflict,
        "a refused update",
    );
    assert_eq!(
        ok(store.retrieve_auth_identity(&created.id).await, "retrieve").credential_version,
        2,
        "a refused update bumps nothing"
    );
    // Signing out everywhere bumps it without any provider change.
    let revoked = ok(
        store.bump_credential_version(&created.id).await,
        "bump_credential_version",
    );
    assert_eq!(revoked.credential_version, 3);
    assert_eq!(revoked.provider_identities.len(), 2);
    assert_eq!(
        ok(store.retrieve_auth_identity(&created.id).await, "retrieve").credential_version,
        3
    );
    expect_kind(
        store.bump_credential_version("authid_missing").await,
        ErrorKind::NotFound,
        "bumping a missing identity",
    );
}

/// Given ids and timestamps are kept exactly (no shape check), for
/// importers; a taken id is `DuplicateError` and stores nothing.
pub async fn given_ids_and_timestamps_are_kept(store: &dyn IdentityStore) {
    let auth_id = unique("authid_IMPORTED");
    let provider_id = unique("imported-provider-id");
    let created_at = time::macros::datetime!(2024-02-03 04:05:06.123456 UTC);
    let updated_at = time::macros::datetime!(2024-05-06 07:08:09.654321 UTC);
    let address = email("imported");
    let new = NewAuthIdentity::with_provider_identity(
        NewProviderIdentity::new(EMAILPASS, &address)
            .with_id(&provider_id)
            .timestamps(created_at, updated_at),
    )
    .with_id(&auth_id)
    .timestamps(created_at, updated_at)
    .app_metadata(obj(json!({ "customer_id": "cus_old" })));
    let created = ok(
        store.create_auth_identity(new).await,
        "create with given ids",
    );
    assert_eq!(created.id, auth_id);
    assert_eq!(created.created_at, created_at);
    assert_eq!(created.updated_at, updated_at);
    let p = &created.provider_identities[0];
    assert_eq!(p.id, provider_id);
    assert_eq!(p.auth_identity_id, auth_id);
    assert_eq!((p.created_at, p.updated_at), (created_at, updated_at));
    assert_eq!(
        ok(store.retrieve_auth_identity(&auth_id).await, "retrieve"),
        created
    );

    expect_kind(
        store
            .create_auth_identity(
                NewAuthIdentity::with_provider_identity(NewProviderIdentity::new(
                    EMAILPASS,
                    email("imported-again"),
                ))
                .with_id(&auth_id),
            )
            .await,
        ErrorKind::DuplicateError,
        "a taken auth identity id",
    );
    let other = email("imported-other");
    expect_kind(
        store
            .create_auth_identity(NewAuthIdentity::with_provider_identity(
                NewProviderIdentity::new(EMAILPASS, &other).with_id(&provider_id),
            ))
            .await,
        ErrorKind::DuplicateError,
        "a taken provider identity id",
    );
    assert_eq!(
        ok(
            store.find_provider_identity(EMAILPASS, &other).await,
            "find"
        ),
        None,
        "nothing of the refused create is stored"
    );
    let added = ok(
        store
            .add_provider_identity(
                &auth_id,
                NewProviderIdentity::new(GITHUB, unique("gh"))
                    .with_id(unique("kept-gh-id"))
                    .timestamps(created_at, created_at),
            )
            .await,
        "add with a given id",
    );
    assert!(added.id.starts_with("kept-gh-id"));
    assert_eq!(added.created_at, created_at);
}

// ----- MFA factors, recovery codes, verifications ---------------------------

const TOTP: &str = "totp";
const WEBAUTHN: &str = "webauthn";
const EMAIL: &str = "email";
const TOKEN: &str = "token";

/// Now at whole microseconds, the precision every store keeps, so a time
/// given to the store compares equal to what it answers.
fn now_micros() -> time::OffsetDateTime {
    let t = time::OffsetDateTime::now_utc();
    t - time::Duration::nanoseconds(i64::from(t.nanosecond() % 1_000))
}

/// A new auth identity with no provider identity, to hang MFA records on.
async fn bare_identity(store: &dyn IdentityStore) -> AuthIdentity {
    ok(
        store.create_auth_identity(NewAuthIdentity::new()).await,
        "create",
    )
}

async fn new_factor(mfa: &dyn MfaStore, new: NewMfaFactor, what: &str) -> MfaFactor {
    ok(mfa.create_mfa_factor(new).await, what)
}

/// A verification request for `entity_id` (kind `email`, code by `token`),
/// requested now and valid for an hour.
fn verification_request(auth_identity_id: &str, entity_id: &str, hash: &str) -> NewVerification {
    let now = now_micros();
    NewVerification::new(
        auth_identity_id,
        entity_id,
        EMAIL,
        TOKEN,
        hash,
        now,
        now + time::Duration::hours(1),
    )
}

/// Factors are created pending by default with an `authmfa_` id, keep their
/// secret and metadata, and are listed oldest first, every status; an
/// unknown auth identity is `NotFound` and lists nothing.
pub async fn mfa_factors_are_created_and_listed_oldest_first(
    store: &dyn IdentityStore,
    mfa: &dyn MfaStore,
) {
    let owner = bare_identity(store).await;
    let other = bare_identity(store).await;
    let sealed = "v1.sealed-secret+/=\"quoted\" ünï";
    let first = new_factor(
        mfa,
        NewMfaFactor::new(&owner.id, TOTP, sealed).metadata(obj(json!({ "label": "phone" }))),
        "create a pending factor",
    )
    .await;
    assert!(
        first.id.starts_with(&format!("{MFA_FACTOR_PREFIX}_")),
        "factor id {:?} lacks its prefix",
        first.id
    );
    assert_eq!(first.auth_identity_id, owner.id);
    assert_eq!(first.provider, TOTP);
    assert_eq!(first.status, MfaFactorStatus::Pending, "pending by default");
    assert_eq!(first.secret, sealed);
    assert_eq!(first.metadata, Some(obj(json!({ "label": "phone" }))));
    assert_eq!(first.last_used_step, None);
    assert_eq!(first.updated_at, first.created_at);
    tokio::time::sleep(TICK).await;
    let second = new_factor(
        mfa,
        NewMfaFactor::new(&owner.id, WEBAUTHN, "key").status(MfaFactorStatus::Enabled),
        "create an enabled factor",
    )
    .await;
    assert_eq!(second.status, MfaFactorStatus::Enabled);
    assert_eq!(second.metadata, None);
    tokio::time::sleep(TICK).await;
    let third = new_factor(
        mfa,
        NewMfaFactor::new(&owner.id, TOTP, "old").status(MfaFactorStatus::Disabled),
        "create a disabled factor",
    )
    .await;
    new_factor(
        mfa,
        NewMfaFactor::new(&other.id, TOTP, "theirs"),
        "another identity's factor",
    )
    .await;

    let listed = ok(mfa.list_mfa_factors(&owner.id).await, "list_mfa_factors");
    assert_eq!(
        listed,
        vec![first.clone(), second, third],
        "every status, oldest first, as created"
    );
    assert_ne!(listed[0].id, listed[1].id);
    assert_eq!(
        ok(mfa.list_mfa_factors(&other.id).await, "list").len(),
        1,
        "each identity lists its own"
    );

    let missing = format!("{AUTH_IDENTITY_PREFIX}_{}", unique("missing"));
    expect_kind(
        mfa.create_mfa_factor(NewMfaFactor::new(&missing, TOTP, "s"))
            .await,
        ErrorKind::NotFound,
        "a factor of an unknown auth identity",
    );
    assert_eq!(
        ok(
            mfa.list_mfa_factors(&missing).await,
            "list of an unknown identity"
        ),
        Vec::new()
    );
}

/// An identity has at most one active (pending or enabled) factor per
/// provider: a second is `DuplicateError` and stores nothing. Other providers
/// and other identities are free, disabled factors do not count, and once the
/// active one is disabled a new one may be created.
pub async fn one_active_mfa_factor_per_identity_and_provider(
    store: &dyn IdentityStore,
    mfa: &dyn MfaStore,
) {
    let owner = bare_identity(store).await;
    let other = bare_identity(store).await;
    let pending = new_factor(mfa, NewMfaFactor::new(&owner.id, TOTP, "s1"), "first").await;
    for status in [MfaFactorStatus::Pending, MfaFactorStatus::Enabled] {
        let refused = mfa
            .create_mfa_factor(NewMfaFactor::new(&owner.id, TOTP, "s2").status(status))
            .await;
        if let Err(e) = &refused {
            assert_eq!(
                e.message(),
                auth_module::store::duplicate_mfa_factor(TOTP).message(),
                "the shared message"
            );
        }
        expect_kind(
            refused,
            ErrorKind::DuplicateError,
            "a second active factor of the provider",
        );
    }
    new_factor(
        mfa,
        NewMfaFactor::new(&owner.id, TOTP, "kept").status(MfaFactorStatus::Disabled),
        "a disabled factor beside the active one",
    )
    .await;
    new_factor(
        mfa,
        NewMfaFactor::new(&owner.id, WEBAUTHN, "k"),
        "another provider",
    )
    .await;
    new_factor(
        mfa,
        NewMfaFactor::new(&other.id, TOTP, "o"),
        "another identity",
    )
    .await;
    assert_eq!(
        ok(mfa.list_mfa_factors(&owner.id).await, "list").len(),
        3,
        "the refused factors were not stored"
    );

    let disabled = ok(
        mfa.update_mfa_factor(
            &pending.id,
            MfaFactorUpdate::new().status(MfaFactorStatus::Disabled),
        )
        .await,
        "disable the active factor",
    )
    .expect("the factor is disabled");
    assert_eq!(disabled.status, MfaFactorStatus::Disabled);
    let replacement = new_factor(
        mfa,
        NewMfaFactor::new(&owner.id, TOTP, "s3"),
        "a new factor once the old one is disabled",
    )
    .await;
    assert_eq!(replacement.status, MfaFactorStatus::Pending);
}

/// Of 20 concurrent creates of an active factor of one provider, exactly one
/// succeeds and the others are `DuplicateError`.
pub async fn concurrent_mfa_factor_creates_yield_one(
    store: &dyn IdentityStore,
    mfa: &dyn MfaStore,
) {
    const N: usize = 20;
    let owner = bare_identity(store).await;
    let attempts = (0..N)
        .map(|i| mfa.create_mfa_factor(NewMfaFactor::new(&owner.id, TOTP, format!("s{i}"))))
        .collect();
    let mut winners = Vec::new();
    for result in join_all(attempts).await {
        match result {
            Ok(f) => winners.push(f),
            Err(e) => assert_eq!(
                e.kind(),
                ErrorKind::DuplicateError,
                "a losing create must be a duplicate, got: {e}"
            ),
        }
    }
    assert_eq!(winners.len(), 1, "exactly one of {N} creates succeeds");
    assert_eq!(ok(mfa.list_mfa_factors(&owner.id).await, "list"), winners);
}

/// `update_mfa_factor` applies only when its conditions hold: the status is
/// one of `if_status`, and a spent TOTP step is above every step spent
/// before. Otherwise, or for a missing factor, it answers `None` and changes
/// nothing.
pub async fn mfa_factor_update_is_conditional(store: &dyn IdentityStore, mfa: &dyn MfaStore) {
    let owner = bare_identity(store).await;
    let created = new_factor(
        mfa,
        NewMfaFactor::new(&owner.id, TOTP, "s").metadata(obj(json!({ "label": "l" }))),
        "create",
    )
    .await;
    let id = created.id.clone();
    let update = |u: MfaFactorUpdate| mfa.update_mfa_factor(&id, u);

    assert_eq!(
        ok(
            update(
                MfaFactorUpdate::new()
                    .if_status(&[MfaFactorStatus::Enabled])
                    .status(MfaFactorStatus::Disabled)
            )
            .await,
            "an update whose status condition fails"
        ),
        None
    );
    assert_eq!(
        ok(mfa.list_mfa_factors(&owner.id).await, "list"),
        vec![created.clone()],
        "a declined update changes nothing"
    );
    let enabled = ok(
        update(
            MfaFactorUpdate::new()
                .if_status(&[MfaFactorStatus::Pending, MfaFactorStatus::Disabled])
                .status(MfaFactorStatus::Enabled)
                .use_step(100),
        )
        .await,
        "enable with the first code",
    )
    .expect("the status condition holds");
    assert_eq!(enabled.id, created.id);
    assert_eq!(enabled.status, MfaFactorStatus::Enabled);
    assert_eq!(enabled.last_used_step, Some(100));
    assert_eq!(enabled.secret, created.secret, "the secret is kept");
    assert_eq!(enabled.metadata, created.metadata, "the metadata is kept");
    assert_eq!(enabled.created_at, created.created_at);
    assert!(enabled.updated_at >= created.updated_at);
    assert_eq!(
        ok(mfa.list_mfa_factors(&owner.id).await, "list"),
        vec![enabled.clone()],
        "what the update answered is what is stored"
    );

    let spend = |step: i64| {
        update(
            MfaFactorUpdate::new()
                .if_status(&[MfaFactorStatus::Enabled])
                .use_step(step),
        )
    };
    assert_eq!(ok(spend(100).await, "the same step again"), None);
    assert_eq!(ok(spend(99).await, "an earlier step"), None);
    let later = ok(spend(101).await, "a later step").expect("a later step is accepted");
    assert_eq!(later.last_used_step, Some(101));
    assert_eq!(later.status, MfaFactorStatus::Enabled, "status unchanged");
    assert_eq!(ok(spend(101).await, "that step again"), None);
    // A failed status condition spends no step.
    assert_eq!(
        ok(
            update(
                MfaFactorUpdate::new()
                    .if_status(&[MfaFactorStatus::Pending])
                    .use_step(500)
            )
            .await,
            "a step with a failing status condition"
        ),
        None
    );
    assert_eq!(
        ok(spend(102).await, "the next step")
            .expect("step 500 was not remembered")
            .last_used_step,
        Some(102)
    );
    // No condition at all: applies to any status.
    let disabled = ok(
        update(MfaFactorUpdate::new().status(MfaFactorStatus::Disabled)).await,
        "an unconditional update",
    )
    .expect("it applies");
    assert_eq!(disabled.status, MfaFactorStatus::Disabled);
    assert_eq!(disabled.last_used_step, Some(102), "the step is kept");
    assert_eq!(ok(spend(103).await, "a step of a disabled factor"), None);
    assert_eq!(
        ok(
            mfa.update_mfa_factor(
                &format!("{MFA_FACTOR_PREFIX}_{}", unique("missing")),
                MfaFactorUpdate::new().status(MfaFactorStatus::Enabled),
            )
            .await,
            "an update of a missing factor"
        ),
        None
    );
}

/// Of 20 concurrent updates spending the same TOTP step, exactly one applies.
pub async fn concurrent_mfa_step_spends_yield_one(store: &dyn IdentityStore, mfa: &dyn MfaStore) {
    const N: usize = 20;
    const STEP: i64 = 58_000_000;
    let owner = bare_identity(store).await;
    let factor = new_factor(
        mfa,
        NewMfaFactor::new(&owner.id, TOTP, "s").status(MfaFactorStatus::Enabled),
        "create",
    )
    .await;
    let spends = (0..N)
        .map(|_| {
            mfa.update_mfa_factor(
                &factor.id,
                MfaFactorUpdate::new()
                    .if_status(&[MfaFactorStatus::Enabled])
                    .use_step(STEP),
            )
        })
        .collect();
    let applied: Vec<MfaFactor> = join_all(spends)
        .await
        .into_iter()
        .filter_map(|r| ok(r, "a concurrent spend"))
        .collect();
    assert_eq!(
        applied.len(),
        1,
        "exactly one of {N} spends of one step applies"
    );
    assert_eq!(applied[0].last_used_step, Some(STEP));
    assert_eq!(ok(mfa.list_mfa_factors(&owner.id).await, "list"), applied);
}

/// Recovery codes: a replace sets exactly the given hashes (a hash given
/// twice is one code; empty deletes them all), each is spent once by any of
/// its candidate hashes, and only by its own identity. An unknown identity
/// is `NotFound` for a replace and has no codes.
pub async fn recovery_codes_are_replaced_counted_and_spent_once(
    store: &dyn IdentityStore,
    mfa: &dyn MfaStore,
) {
    let owner = bare_identity(store).await;
    let other = bare_identity(store).await;
    let [h1, h2, h3, h4, stranger] = ["h1", "h2", "h3", "h4", "x"].map(unique);
    let count = |id: String| async move { ok(mfa.count_recovery_codes(&id).await, "count") };
    let consume = |id: String, candidates: Vec<String>| async move {
        ok(
            mfa.consume_recovery_code(&id, &candidates).await,
            "consume_recovery_code",
        )
    };

    assert_eq!(count(owner.id.clone()).await, 0, "no codes at first");
    assert!(!consume(owner.id.clone(), vec![h1.clone()]).await);
    ok(
        mfa.replace_recovery_codes(
            &owner.id,
            vec![h1.clone(), h2.clone(), h3.clone(), h2.clone()],
        )
        .await,
        "replace_recovery_codes",
    );
    assert_eq!(count(owner.id.clone()).await, 3);
    ok(
        mfa.replace_recovery_codes(&other.id, vec![h1.clone()])
            .await,
        "the other identity's codes",
    );
    assert!(
        consume(owner.id.clone(), vec![stranger.clone(), h2.clone()]).await,
        "one candidate matches"
    );
    assert_eq!(count(owner.id.clone()).await, 2);
    assert!(
        !consume(owner.id.clone(), vec![h2.clone()]).await,
        "spent once"
    );
    assert!(!consume(owner.id.clone(), vec![]).await, "no candidate");
    assert!(!consume(owner.id.clone(), vec![stranger.clone()]).await);
    assert!(
        !consume(other.id.clone(), vec![h3.clone()]).await,
        "another identity's code"
    );
    assert_eq!(count(other.id.clone()).await, 1);

    ok(
        mfa.replace_recovery_codes(&owner.id, vec![h4.clone()])
            .await,
        "a new set",
    );
    assert_eq!(count(owner.id.clone()).await, 1);
    assert!(
        !consume(owner.id.clone(), vec![h1.clone()]).await,
        "the old set is gone"
    );
    assert!(consume(owner.id.clone(), vec![h4.clone()]).await);
    ok(
        mfa.replace_recovery_codes(&other.id, Vec::new()).await,
        "an empty set",
    );
    assert_eq!(count(other.id.clone()).await, 0, "empty deletes them all");
    assert!(!consume(other.id.clone(), vec![h1.clone()]).await);

    let missing = format!("{AUTH_IDENTITY_PREFIX}_{}", unique("missing"));
    expect_kind(
        mfa.replace_recovery_codes(&missing, vec![h1.clone()]).await,
        ErrorKind::NotFound,
        "codes of an unknown auth identity",
    );
    expect_kind(
        mfa.replace_recovery_codes(&missing, Vec::new()).await,
        ErrorKind::NotFound,
        "no codes for an unknown auth identity",
    );
    assert_eq!(count(missing.clone()).await, 0);
    assert!(!consume(missing, vec![h1]).await);
}

/// Of 20 concurrent spends of one recovery code, exactly one succeeds.
pub async fn concurrent_recovery_code_spends_yield_one(
    store: &dyn IdentityStore,
    mfa: &dyn MfaStore,
) {
    const N: usize = 20;
    let owner = bare_identity(store).await;
    let [code, spare] = ["code", "spare"].map(unique);
    ok(
        mfa.replace_recovery_codes(&owner.id, vec![code.clone(), spare])
            .await,
        "replace",
    );
    let candidates = [unique("old-key"), code];
    let spends = (0..N)
        .map(|_| mfa.consume_recovery_code(&owner.id, &candidates))
        .collect();
    let spent = join_all(spends)
        .await
        .into_iter()
        .filter(|r| match r {
            Ok(spent) => *spent,
            Err(e) => panic!("a concurrent spend failed: {e}"),
        })
        .count();
    assert_eq!(spent, 1, "exactly one of {N} spends of one code succeeds");
    assert_eq!(
        ok(mfa.count_recovery_codes(&owner.id).await, "count"),
        1,
        "only that code was spent"
    );
}

/// A request creates the (identity, entity) row with an `authver_` id and
/// the code's hash; a second request of a pending row replaces its code,
/// times and metadata and keeps its id. Rows are per entity kind, and an
/// unknown auth identity is `NotFound`.
pub async fn verification_request_creates_then_refreshes_the_pending_row(
    store: &dyn IdentityStore,
    verifications: &dyn VerificationStore,
) {
    let owner = bare_identity(store).await;
    let address = email("verify");
    let [h1, h2, h3] = ["v1", "v2", "v3"].map(unique);
    let first_request = verification_request(&owner.id, &address, &h1)
        .metadata(Some(obj(json!({ "redirect": "/a" }))));
    let first = ok(
        verifications
            .request_verification(first_request.clone())
            .await,
        "request_verification",
    );
    assert!(
        first.id.starts_with(&format!("{VERIFICATION_PREFIX}_")),
        "verification id {:?} lacks its prefix",
        first.id
    );
    assert_eq!(first.auth_identity_id, owner.id);
    assert_eq!(first.entity_id, address);
    assert_eq!(first.entity_type, EMAIL);
    assert_eq!(first.code_provider, TOKEN);
    assert_eq!(first.code_hash.as_deref(), Some(h1.as_str()));
    assert_eq!(first.requested_at, Some(first_request.requested_at));
    assert_eq!(first.expires_at, Some(first_request.expires_at));
    assert_eq!(first.verified_at, None);
    assert_eq!(first.metadata, Some(obj(json!({ "redirect": "/a" }))));
    assert_eq!(first.updated_at, first.created_at);
    assert_eq!(
        ok(
            verifications
                .find_verification(&owner.id, &address, EMAIL)
                .await,
            "find_verification"
        ),
        Some(first.clone())
    );
    assert_eq!(
        ok(
            verifications.verification_by_code(&h1).await,
            "verification_by_code"
        ),
        Some(first.clone())
    );

    tokio::time::sleep(TICK).await;
    let mut second_request = verification_request(&owner.id, &address, &h2);
    second_request.code_provider = "link".to_owned();
    second_request.expires_at = second_request.requested_at + time::Duration::minutes(5);
    let second = ok(
        verifications
            .request_verification(second_request.clone())
            .await,
        "a second request",
    );
    assert_eq!(second.id, first.id, "one row per (identity, entity)");
    assert_eq!(second.code_hash.as_deref(), Some(h2.as_str()));
    assert_eq!(second.code_provider, "link");
    assert_eq!(second.requested_at, Some(second_request.requested_at));
    assert_eq!(second.expires_at, Some(second_request.expires_at));
    assert_eq!(second.metadata, None, "the new request's metadata");
    assert_eq!(second.created_at, first.created_at);
    assert!(second.updated_at > first.updated_at);
    assert_eq!(second.verified_at, None);
    assert_eq!(
        ok(
            verifications.verification_by_code(&h1).await,
            "the replaced code"
        ),
        None
    );
    assert_eq!(
        ok(
            verifications.verification_by_code(&h2).await,
            "the new code"
        ),
        Some(second.clone())
    );
    assert_eq!(
        ok(
            verifications
                .find_verification(&owner.id, &address, EMAIL)
                .await,
            "find"
        ),
        Some(second.clone())
    );

    let mut phone = verification_request(&owner.id, &address, &h3);
    phone.entity_type = "phone".to_owned();
    let phone = ok(
        verifications.request_verification(phone).await,
        "another kind",
    );
    assert_ne!(phone.id, first.id, "rows are per entity kind");
    assert_eq!(
        ok(
            verifications
                .find_verification(&owner.id, &address, "phone")
                .await,
            "find"
        ),
        Some(phone)
    );
    assert_eq!(
        ok(
            verifications
                .find_verification(&owner.id, &email("unknown"), EMAIL)
                .await,
            "find of an unknown entity"
        ),
        None
    );
    let missing = format!("{AUTH_IDENTITY_PREFIX}_{}", unique("missing"));
    expect_kind(
        verifications
            .request_verification(verification_request(&missing, &address, &unique("v")))
            .await,
        ErrorKind::NotFound,
        "a request for an unknown auth identity",
    );
}

/// Confirming needs the pending code's hash, its provider, and a time before
/// expiry (strictly); then the row is verified at that time and has no code,
/// so a second confirmation finds nothing. A request after that answers the
/// verified row unchanged.
pub async fn verification_confirm_checks_provider_and_expiry(
    store: &dyn IdentityStore,
    verifications: &dyn VerificationStore,
) {
    let owner = bare_identity(store).await;
    let address = email("confirm");
    let code = unique("code");
    let requested = ok(
        verifications
            .request_verification(verification_request(&owner.id, &address, &code))
            .await,
        "request",
    );
    let expires_at = requested.expires_at.expect("a pending row expires");
    let confirm = |provider: &'static str, now: time::OffsetDateTime| {
        let code = code.clone();
        async move {
            ok(
                verifications
                    .confirm_verification(&code, provider, now)
                    .await,
                "confirm_verification",
            )
        }
    };

    assert_eq!(confirm("sms", now_micros()).await, None, "wrong provider");
    assert_eq!(
        confirm(TOKEN, expires_at + time::Duration::seconds(1)).await,
        None,
        "after expiry"
    );
    assert_eq!(confirm(TOKEN, expires_at).await, None, "at expiry");
    assert_eq!(
        ok(verifications.verification_by_code(&code).await, "by code"),
        Some(requested.clone()),
        "refused confirmations change nothing"
    );
    assert_eq!(
        ok(
            verifications
                .confirm_verification(&unique("other-code"), TOKEN, now_micros())
                .await,
            "an unknown code"
        ),
        None
    );

    let at = expires_at - time::Duration::microseconds(1);
    let confirmed = confirm(TOKEN, at).await.expect("the code is confirmed");
    assert_eq!(confirmed.id, requested.id);
    assert_eq!(confirmed.verified_at, Some(at));
    assert_eq!(confirmed.code_hash, None, "the code is used up");
    assert_eq!(confirmed.updated_at, at);
    assert_eq!(confirmed.created_at, requested.created_at);
    assert_eq!(confirmed.requested_at, requested.requested_at);
    assert_eq!(confirmed.metadata, requested.metadata);
    assert_eq!(
        ok(
            verifications
                .find_verification(&owner.id, &address, EMAIL)
                .await,
            "find"
        ),
        Some(confirmed.clone()),
        "what the confirmation answered is what is stored"
    );
    assert_eq!(
        ok(
            verifications.verification_by_code(&code).await,
            "by the used code"
        ),
        None
    );
    assert_eq!(confirm(TOKEN, at).await, None, "a second confirmation");

    let again_code = unique("again");
    let again = ok(
        verifications
            .request_verification(verification_request(&owner.id, &address, &again_code))
            .await,
        "a request after verification",
    );
    assert_eq!(again, confirmed, "a verified row is answered unchanged");
    assert_ne!(
        again.code_hash.as_deref(),
        Some(again_code.as_str()),
        "which says no code was stored"
    );
    assert_eq!(
        ok(
            verifications.verification_by_code(&again_code).await,
            "by the new code"
        ),
        None
    );
    assert_eq!(
        ok(
            verifications
                .find_verification(&owner.id, &address, EMAIL)
                .await,
            "find"
        ),
        Some(confirmed)
    );
}

/// Of 20 concurrent confirmations of one code, exactly one succeeds.
pub async fn concurrent_verification_confirms_yield_one(
    store: &dyn IdentityStore,
    verifications: &dyn VerificationStore,
) {
    const N: usize = 20;
    let owner = bare_identity(store).await;
    let code = unique("race-code");
    ok(
        verifications
            .request_verification(verification_request(&owner.id, &email("race"), &code))
            .await,
        "request",
    );
    let now = now_micros();
    let confirms = (0..N)
        .map(|_| verifications.confirm_verification(&code, TOKEN, now))
        .collect();
    let confirmed: Vec<Verification> = join_all(confirms)
        .await
        .into_iter()
        .filter_map(|r| ok(r, "a concurrent confirmation"))
        .collect();
    assert_eq!(
        confirmed.len(),
        1,
        "exactly one of {N} confirmations succeeds"
    );
    assert_eq!(confirmed[0].verified_at, Some(now));
}

/// Deleting an auth identity deletes its factors and recovery codes, and
/// leaves other identities' alone.
pub async fn delete_auth_identity_cascades_to_mfa_records(
    store: &dyn IdentityStore,
    mfa: &dyn MfaStore,
) {
    let doomed = bare_identity(store).await;
    let kept = bare_identity(store).await;
    let mut factors = Vec::new();
    let mut codes = Vec::new();
    for owner in [&doomed, &kept] {
        factors.push(
            new_factor(
                mfa,
                NewMfaFactor::new(&owner.id, TOTP, "s").status(MfaFactorStatus::Enabled),
                "create a factor",
            )
            .await,
        );
        let code = unique("cascade-code");
        ok(
            mfa.replace_recovery_codes(&owner.id, vec![code.clone(), unique("spare")])
                .await,
            "replace",
        );
        codes.push(code);
    }
    let kept_before = ok(mfa.list_mfa_factors(&kept.id).await, "list");

    ok(store.delete_auth_identity(&doomed.id).await, "delete");
    assert_eq!(
        ok(mfa.list_mfa_factors(&doomed.id).await, "list"),
        Vec::new(),
        "factors went with their identity"
    );
    assert_eq!(
        ok(
            mfa.update_mfa_factor(&factors[0].id, MfaFactorUpdate::new().use_step(1))
                .await,
            "update of a deleted factor"
        ),
        None
    );
    assert_eq!(ok(mfa.count_recovery_codes(&doomed.id).await, "count"), 0);
    assert!(!ok(
        mfa.consume_recovery_code(&doomed.id, std::slice::from_ref(&codes[0]))
            .await,
        "consume"
    ));
    expect_kind(
        mfa.create_mfa_factor(NewMfaFactor::new(&doomed.id, TOTP, "s"))
            .await,
        ErrorKind::NotFound,
        "a factor of a deleted identity",
    );

    assert_eq!(
        ok(mfa.list_mfa_factors(&kept.id).await, "list"),
        kept_before,
        "other identities keep theirs"
    );
    assert_eq!(ok(mfa.count_recovery_codes(&kept.id).await, "count"), 2);
    assert!(ok(
        mfa.consume_recovery_code(&kept.id, std::slice::from_ref(&codes[1]))
            .await,
        "consume"
    ));
}

/// Deleting an auth identity deletes its verifications, and leaves other
/// identities' alone.
pub async fn delete_auth_identity_cascades_to_verifications(
    store: &dyn IdentityStore,
    verifications: &dyn VerificationStore,
) {
    let doomed = bare_identity(store).await;
    let kept = bare_identity(store).await;
    let address = email("cascade");
    let mut hashes = Vec::new();
    for owner in [&doomed, &kept] {
        let hash = unique("cascade-verify");
        ok(
            verifications
                .request_verification(verification_request(&owner.id, &address, &hash))
                .await,
            "request",
        );
        hashes.push(hash);
    }
    let kept_before = ok(
        verifications
            .find_verification(&kept.id, &address, EMAIL)
            .await,
        "find",
    );

    ok(store.delete_auth_identity(&doomed.id).await, "delete");
    assert_eq!(
        ok(
            verifications
                .find_verification(&doomed.id, &address, EMAIL)
                .await,
            "find"
        ),
        None,
        "verifications went with their identity"
    );
    assert_eq!(
        ok(
            verifications.verification_by_code(&hashes[0]).await,
            "by code"
        ),
        None
    );
    expect_kind(
        verifications
            .request_verification(verification_request(&doomed.id, &address, &unique("v")))
            .await,
        ErrorKind::NotFound,
        "a verification of a deleted identity",
    );

    assert_eq!(
        ok(
            verifications
                .find_verification(&kept.id, &address, EMAIL)
                .await,
            "find"
        ),
        kept_before,
        "other identities keep theirs"
    );
    assert!(
        ok(
            verifications.verification_by_code(&hashes[1]).await,
            "by code"
        )
        .is_some(),
        "the other identity's pending code is still there"
    );
}

/// A given factor id and creation time are kept exactly (no shape check),
/// for importers, with the given status; a taken id is `DuplicateError` and
/// stores nothing.
pub async fn given_mfa_factor_ids_are_kept(store: &dyn IdentityStore, mfa: &dyn MfaStore) {
    let owner = bare_identity(store).await;
    let id = unique("imported-FACTOR");
    let created_at = time::macros::datetime!(2024-02-03 04:05:06.123456 UTC);
    let imported = new_factor(
        mfa,
        NewMfaFactor::new(&owner.id, TOTP, "sealed")
            .status(MfaFactorStatus::Enabled)
            .keep(&id, created_at),
        "create with a given id",
    )
    .await;
    assert_eq!(imported.id, id);
    assert_eq!(imported.created_at, created_at);
    assert_eq!(imported.updated_at, created_at);
    assert_eq!(imported.status, MfaFactorStatus::Enabled);
    assert_eq!(
        ok(mfa.list_mfa_factors(&owner.id).await, "list"),
        vec![imported.clone()]
    );
    // Oldest first goes by the kept time, not by insertion.
    let older = new_factor(
        mfa,
        NewMfaFactor::new(&owner.id, WEBAUTHN, "k").keep(
            unique("imported-older"),
            created_at - time::Duration::days(1),
        ),
        "an older imported factor",
    )
    .await;
    assert_eq!(
        ok(mfa.list_mfa_factors(&owner.id).await, "list"),
        vec![older, imported.clone()]
    );

    let other = bare_identity(store).await;
    expect_kind(
        mfa.create_mfa_factor(NewMfaFactor::new(&other.id, TOTP, "s").keep(&id, created_at))
            .await,
        ErrorKind::DuplicateError,
        "a taken factor id",
    );
    assert_eq!(
        ok(mfa.list_mfa_factors(&other.id).await, "list"),
        Vec::new(),
        "nothing of the refused create is stored"
    );
    assert_eq!(
        ok(mfa.list_mfa_factors(&owner.id).await, "list")[1],
        imported,
        "the factor holding the id is untouched"
    );
}

/// `create_auth_identity_with_mfa` stores an identity, its provider
/// identities and its factors together (each factor hung on the new
/// identity, ids and times kept), or, when any of them is refused, nothing
/// at all: not the identity, not its entity id, not one factor.
pub async fn create_with_mfa_factors_is_all_or_nothing(
    store: &dyn IdentityStore,
    mfa: &dyn MfaStore,
) {
    let id = unique("imported-authid");
    let address = email("with-mfa");
    let created_at = time::macros::datetime!(2024-02-03 04:05:06.123456 UTC);
    let (enabled_id, disabled_id) = (unique("imported-f1"), unique("imported-f2"));
    let created = ok(
        mfa.create_auth_identity_with_mfa(
            NewAuthIdentity::with_provider_identity(NewProviderIdentity::new(EMAILPASS, &address))
                .with_id(&id),
            vec![
                NewMfaFactor::new("replaced", TOTP, "sealed-1")
                    .status(MfaFactorStatus::Enabled)
                    .keep(&enabled_id, created_at)
                    .metadata(obj(json!({ "label": "phone" }))),
                NewMfaFactor::new("replaced", TOTP, "sealed-2")
                    .status(MfaFactorStatus::Disabled)
                    .keep(&disabled_id, created_at + time::Duration::seconds(1)),
            ],
        )
        .await,
        "create with factors",
    );
    assert_eq!(created.id, id);
    assert!(
        created.mfa_enabled != Some(false),
        "an identity created with an enabled factor has MFA enabled"
    );
    let read = ok(store.retrieve_auth_identity(&id).await, "retrieve");
    assert_eq!(read.provider_identities, created.provider_identities);
    assert!(read.mfa_enabled != Some(false), "read: MFA is enabled");
    let factors = ok(mfa.list_mfa_factors(&id).await, "list");
    let listed: Vec<(&str, &str, MfaFactorStatus, &str)> = factors
        .iter()
        .map(|f| {
            (
                f.id.as_str(),
                f.auth_identity_id.as_str(),
                f.status,
                f.secret.as_str(),
            )
        })
        .collect();
    assert_eq!(
        listed,
        [
            (
                enabled_id.as_str(),
                id.as_str(),
                MfaFactorStatus::Enabled,
                "sealed-1"
            ),
            (
                disabled_id.as_str(),
                id.as_str(),
                MfaFactorStatus::Disabled,
                "sealed-2"
            ),
        ]
    );
    assert_eq!(factors[0].created_at, created_at);
    assert_eq!(factors[0].metadata, Some(obj(json!({ "label": "phone" }))));

    // Refused, with nothing stored: a taken factor id, two active factors of
    // one provider, a taken identity id.
    let refused_id = unique("refused-authid");
    let refused_address = email("with-mfa-refused");
    let attempt = |factors: Vec<NewMfaFactor>, auth_id: &str| {
        mfa.create_auth_identity_with_mfa(
            NewAuthIdentity::with_provider_identity(NewProviderIdentity::new(
                EMAILPASS,
                &refused_address,
            ))
            .with_id(auth_id),
            factors,
        )
    };
    expect_kind(
        attempt(
            vec![
                NewMfaFactor::new("x", WEBAUTHN, "k"),
                NewMfaFactor::new("x", TOTP, "s").keep(&enabled_id, created_at),
            ],
            &refused_id,
        )
        .await,
        ErrorKind::DuplicateError,
        "a taken factor id",
    );
    expect_kind(
        attempt(
            vec![
                NewMfaFactor::new("x", TOTP, "s").status(MfaFactorStatus::Enabled),
                NewMfaFactor::new("x", TOTP, "t"),
            ],
            &refused_id,
        )
        .await,
        ErrorKind::DuplicateError,
        "two active factors of one provider",
    );
    for what in ["a taken factor id", "two active factors"] {
        expect_kind(
            store.retrieve_auth_identity(&refused_id).await,
            ErrorKind::NotFound,
            what,
        );
        assert!(
            ok(
                store
                    .find_provider_identity(EMAILPASS, &refused_address)
                    .await,
                "find"
            )
            .is_none(),
            "{what}: the entity id stays free"
        );
        assert_eq!(
            ok(mfa.list_mfa_factors(&refused_id).await, "list"),
            Vec::new(),
            "{what}: no factor is stored"
        );
    }
    expect_kind(
        mfa.create_auth_identity_with_mfa(
            NewAuthIdentity::new().with_id(&id),
            vec![NewMfaFactor::new("x", WEBAUTHN, "k")],
        )
        .await,
        ErrorKind::DuplicateError,
        "a taken identity id",
    );
    assert_eq!(
        ok(mfa.list_mfa_factors(&id).await, "list"),
        factors,
        "the identity holding the id keeps its factors, and gains none"
    );

    // No factor: as `create_auth_identity`, with a generated id.
    let plain = ok(
        mfa.create_auth_identity_with_mfa(NewAuthIdentity::new(), Vec::new())
            .await,
        "create without factors",
    );
    assert!(plain.id.starts_with(&format!("{AUTH_IDENTITY_PREFIX}_")));
    assert!(plain.mfa_enabled != Some(true));
}

/// A read identity's [`auth_module::AuthIdentity::mfa_enabled`] is never
/// wrong: a store (or cache) that says `Some(false)` lets logins skip MFA,
/// so it must follow every factor change. `None` (not known) is always
/// allowed.
pub async fn retrieve_tells_whether_mfa_is_enabled(store: &dyn IdentityStore, mfa: &dyn MfaStore) {
    let owner = bare_identity(store).await;
    let read = || store.retrieve_auth_identity(&owner.id);
    let said = |v: Option<bool>, want: bool, when: &str| {
        assert!(v.is_none() || v == Some(want), "{when}: mfa_enabled {v:?}");
    };
    said(ok(read().await, "read").mfa_enabled, false, "no factor");
    // Read once more, so a cache holds the answer before the change.
    said(
        ok(read().await, "read").mfa_enabled,
        false,
        "no factor, again",
    );
    let factor = new_factor(mfa, NewMfaFactor::new(&owner.id, TOTP, "s"), "create").await;
    said(
        ok(read().await, "read").mfa_enabled,
        false,
        "a pending factor",
    );
    ok(
        mfa.update_mfa_factor(
            &factor.id,
            MfaFactorUpdate::new()
                .if_status(&[MfaFactorStatus::Pending])
                .status(MfaFactorStatus::Enabled),
        )
        .await,
        "enable",
    )
    .expect("the factor was pending");
    said(
        ok(read().await, "read").mfa_enabled,
        true,
        "an enabled factor",
    );
    ok(
        mfa.update_mfa_factor(
            &factor.id,
            MfaFactorUpdate::new().status(MfaFactorStatus::Disabled),
        )
        .await,
        "disable",
    )
    .expect("any status");
    said(
        ok(read().await, "read").mfa_enabled,
        false,
        "a disabled factor",
    );
}

// ----- Passkeys -------------------------------------------------------------

/// The passkey provider instances of the cases: a credential id is unique
/// per provider, so two of them.
const PASSKEY: &str = "passkey";
const PASSKEY_WORK: &str = "passkey-work";

/// How far a time the store answers may be from the one it was given (SQL
/// stores keep microseconds), or from now for a time the store sets.
const GIVEN_TIME_TOLERANCE: time::Duration = time::Duration::milliseconds(1);
const NOW_TOLERANCE: time::Duration = time::Duration::seconds(5);

/// Asserts that `got` is within `tolerance` of `want`.
#[track_caller]
fn assert_near(
    got: time::OffsetDateTime,
    want: time::OffsetDateTime,
    tolerance: time::Duration,
    what: &str,
) {
    assert!(
        (got - want).abs() <= tolerance,
        "{what}: {got} is not within {tolerance} of {want}"
    );
}

/// A new passkey of `owner` at `provider` with a fresh credential id (and
/// user handle), the record's defaults otherwise.
fn new_passkey(owner: &str, provider: &str) -> NewPasskeyCredential {
    passkey_with_id(owner, provider, &unique("cred"))
}

/// A new passkey of `owner` at `provider` for `credential_id`.
fn passkey_with_id(owner: &str, provider: &str, credential_id: &str) -> NewPasskeyCredential {
    NewPasskeyCredential::new(
        owner,
        provider,
        credential_id,
        unique("handle"),
        json!({ "cred": { "cred_id": credential_id, "counter": 0 } }),
    )
}

async fn create_passkey(
    passkeys: &dyn PasskeyStore,
    new: NewPasskeyCredential,
    what: &str,
) -> PasskeyCredential {
    ok(passkeys.create_passkey(new).await, what)
}

/// What a login at `at` leaving the counter at `sign_count` writes.
fn passkey_use(sign_count: u32, backed_up: bool, at: time::OffsetDateTime) -> PasskeyUse {
    PasskeyUse::new(
        sign_count,
        json!({ "cred": { "counter": sign_count }, "flags": { "backup_state": backed_up } }),
        backed_up,
        at,
    )
}

/// A passkey is stored with every field as given, an `authpk_` id, a
/// creation time of now and no last use; an identity's passkeys are listed
/// oldest first, every provider; a credential is found by (provider,
/// credential id) and by nothing else. An unknown identity lists nothing.
pub async fn passkeys_are_created_found_and_listed_oldest_first(
    store: &dyn IdentityStore,
    passkeys: &dyn PasskeyStore,
) {
    let owner = bare_identity(store).await;
    let other = bare_identity(store).await;
    let address = email("passkey");
    let record = json!({
        "cred": {
            "cred_id": "AQID-_w",
            "cred": { "type_": "ES256", "key": { "x": [1, 2, 255], "y": "ünï \"quoted\"" } },
            "counter": 7,
            "user_verified": true,
            "backup_eligible": true,
            "backup_state": true,
            "registration_policy": null,
            "extensions": {},
            "attestation_format": "none"
        },
        "rp_id": "example.test"
    });
    let mut new = passkey_with_id(&owner.id, PASSKEY, &unique("cred"));
    new.email = Some(address.clone());
    new.name = "Laptop — Touch ID".to_owned();
    new.credential = record.clone();
    new.sign_count = 7;
    new.backed_up = true;
    new.transports = vec!["internal".to_owned(), "hybrid".to_owned()];
    let first = create_passkey(passkeys, new.clone(), "create a passkey").await;
    assert!(
        first.id.starts_with(&format!("{PASSKEY_PREFIX}_")),
        "passkey id {:?} lacks its prefix",
        first.id
    );
    assert_eq!(first.auth_identity_id, owner.id);
    assert_eq!(first.provider, PASSKEY);
    assert_eq!(first.credential_id, new.credential_id);
    assert_eq!(first.user_handle, new.user_handle);
    assert_eq!(first.email, Some(address));
    assert_eq!(first.name, "Laptop — Touch ID");
    assert_eq!(first.credential, record, "the credential JSON round trips");
    assert_eq!(first.sign_count, 7);
    assert!(first.backed_up);
    assert_eq!(first.transports, ["internal", "hybrid"]);
    assert_near(
        first.created_at,
        time::OffsetDateTime::now_utc(),
        NOW_TOLERANCE,
        "created_at is now",
    );
    assert_eq!(first.last_used_at, None, "never used yet");

    tokio::time::sleep(TICK).await;
    let second = create_passkey(
        passkeys,
        new_passkey(&owner.id, PASSKEY_WORK),
        "a passkey of another provider",
    )
    .await;
    assert_eq!(second.provider, PASSKEY_WORK);
    assert_eq!(second.email, None);
    assert_eq!(second.name, "Passkey", "the default name");
    assert_eq!(second.sign_count, 0);
    assert!(!second.backed_up);
    assert_eq!(second.transports, Vec::<String>::new());
    assert_ne!(second.id, first.id);
    tokio::time::sleep(TICK).await;
    let third = create_passkey(passkeys, new_passkey(&owner.id, PASSKEY), "a third").await;
    let theirs = create_passkey(
        passkeys,
        new_passkey(&other.id, PASSKEY),
        "another identity's passkey",
    )
    .await;

    assert_eq!(
        ok(passkeys.list_passkeys(&owner.id).await, "list_passkeys"),
        vec![first.clone(), second.clone(), third],
        "every provider, oldest first, as created"
    );
    assert_eq!(
        ok(passkeys.list_passkeys(&other.id).await, "list"),
        vec![theirs],
        "each identity lists its own"
    );
    assert_eq!(
        ok(
            passkeys.find_passkey(PASSKEY, &first.credential_id).await,
            "find_passkey"
        ),
        Some(first.clone()),
        "what the create answered is what is stored"
    );
    assert_eq!(
        ok(
            passkeys
                .find_passkey(PASSKEY_WORK, &first.credential_id)
                .await,
            "find under another provider"
        ),
        None,
        "a credential id is looked up per provider"
    );
    assert_eq!(
        ok(
            passkeys
                .find_passkey(PASSKEY_WORK, &second.credential_id)
                .await,
            "find"
        ),
        Some(second)
    );
    assert_eq!(
        ok(
            passkeys.find_passkey(PASSKEY, &unique("unknown")).await,
            "find an unknown credential"
        ),
        None
    );
    let missing = format!("{AUTH_IDENTITY_PREFIX}_{}", unique("missing"));
    assert_eq!(
        ok(
            passkeys.list_passkeys(&missing).await,
            "list of an unknown identity"
        ),
        Vec::new()
    );
}

/// A credential id is unique per provider: a second create of it, by any
/// identity, is `DuplicateError` and stores nothing, while the same id under
/// another provider is allowed. A passkey of an unknown auth identity is
/// `NotFound`.
pub async fn passkey_credential_ids_are_unique_per_provider(
    store: &dyn IdentityStore,
    passkeys: &dyn PasskeyStore,
) {
    let owner = bare_identity(store).await;
    let other = bare_identity(store).await;
    let credential_id = unique("cred");
    let original = create_passkey(
        passkeys,
        passkey_with_id(&owner.id, PASSKEY, &credential_id),
        "create",
    )
    .await;
    for (who, what) in [
        (&owner.id, "the same credential id again"),
        (&other.id, "the same credential id by another identity"),
    ] {
        let mut again = passkey_with_id(who, PASSKEY, &credential_id);
        again.name = "Duplicate".to_owned();
        expect_kind(
            passkeys.create_passkey(again).await,
            ErrorKind::DuplicateError,
            what,
        );
    }
    let elsewhere = create_passkey(
        passkeys,
        passkey_with_id(&other.id, PASSKEY_WORK, &credential_id),
        "the same credential id under another provider",
    )
    .await;
    assert_eq!(elsewhere.credential_id, credential_id);
    assert_eq!(
        ok(passkeys.list_passkeys(&owner.id).await, "list"),
        vec![original.clone()],
        "the refused passkeys were not stored"
    );
    assert_eq!(
        ok(passkeys.list_passkeys(&other.id).await, "list"),
        vec![elsewhere.clone()]
    );
    assert_eq!(
        ok(passkeys.find_passkey(PASSKEY, &credential_id).await, "find"),
        Some(original),
        "the first one is kept unchanged"
    );
    assert_eq!(
        ok(
            passkeys.find_passkey(PASSKEY_WORK, &credential_id).await,
            "find"
        ),
        Some(elsewhere)
    );

    let missing = format!("{AUTH_IDENTITY_PREFIX}_{}", unique("missing"));
    let orphan = unique("orphan-cred");
    expect_kind(
        passkeys
            .create_passkey(passkey_with_id(&missing, PASSKEY, &orphan))
            .await,
        ErrorKind::NotFound,
        "a passkey of an unknown auth identity",
    );
    assert_eq!(
        ok(passkeys.find_passkey(PASSKEY, &orphan).await, "find"),
        None,
        "nothing was stored"
    );
}

/// Of 16 concurrent creates of one credential id at one provider, exactly
/// one succeeds and the others are `DuplicateError`.
pub async fn concurrent_passkey_creates_yield_one(
    store: &dyn IdentityStore,
    passkeys: &dyn PasskeyStore,
) {
    const N: usize = 16;
    let owner = bare_identity(store).await;
    let credential_id = unique("race-cred");
    let attempts = (0..N)
        .map(|i| {
            let mut new = passkey_with_id(&owner.id, PASSKEY, &credential_id);
            new.name = format!("Passkey {i}");
            passkeys.create_passkey(new)
        })
        .collect();
    let mut winners = Vec::new();
    for result in join_all(attempts).await {
        match result {
            Ok(p) => winners.push(p),
            Err(e) => assert_eq!(
                e.kind(),
                ErrorKind::DuplicateError,
                "a losing create must be a duplicate, got: {e}"
            ),
        }
    }
    assert_eq!(winners.len(), 1, "exactly one of {N} creates succeeds");
    assert_eq!(ok(passkeys.list_passkeys(&owner.id).await, "list"), winners);
    assert_eq!(
        ok(passkeys.find_passkey(PASSKEY, &credential_id).await, "find"),
        winners.pop()
    );
}

/// `passkeys_for_email` answers the credentials of that provider registered
/// with that e-mail, whoever's, oldest first; not those of another provider,
/// another e-mail or none.
pub async fn passkeys_for_email_lists_that_providers_credentials(
    store: &dyn IdentityStore,
    passkeys: &dyn PasskeyStore,
) {
    let owner = bare_identity(store).await;
    let other = bare_identity(store).await;
    let address = email("passkey-login");
    let with_email = |owner: &str, provider: &str, address: Option<&str>| {
        let mut new = new_passkey(owner, provider);
        new.email = address.map(str::to_owned);
        new
    };
    let a = create_passkey(
        passkeys,
        with_email(&owner.id, PASSKEY, Some(&address)),
        "a passkey with the e-mail",
    )
    .await;
    tokio::time::sleep(TICK).await;
    let b = create_passkey(
        passkeys,
        with_email(&other.id, PASSKEY, Some(&address)),
        "another identity's passkey with the e-mail",
    )
    .await;
    tokio::time::sleep(TICK).await;
    let c = create_passkey(
        passkeys,
        with_email(&owner.id, PASSKEY, Some(&address)),
        "a second passkey of the owner with the e-mail",
    )
    .await;
    let work = create_passkey(
        passkeys,
        with_email(&owner.id, PASSKEY_WORK, Some(&address)),
        "the e-mail under another provider",
    )
    .await;
    create_passkey(
        passkeys,
        with_email(&owner.id, PASSKEY, Some(&email("elsewhere"))),
        "another e-mail",
    )
    .await;
    create_passkey(passkeys, with_email(&owner.id, PASSKEY, None), "no e-mail").await;

    assert_eq!(
        ok(
            passkeys.passkeys_for_email(PASSKEY, &address).await,
            "passkeys_for_email"
        ),
        vec![a, b, c],
        "that provider's credentials with that e-mail, oldest first"
    );
    assert_eq!(
        ok(
            passkeys.passkeys_for_email(PASSKEY_WORK, &address).await,
            "passkeys_for_email"
        ),
        vec![work]
    );
    assert_eq!(
        ok(
            passkeys.passkeys_for_email(PASSKEY, &email("nobody")).await,
            "an e-mail nobody registered"
        ),
        Vec::new()
    );
}

/// `record_passkey_use` is a compare-and-set on the signature counter: from
/// the wrong counter it answers `None` and changes nothing; from the right
/// one it sets the counter, the credential record, the backup flag and
/// `last_used_at` together, and keeps the rest. A missing passkey is `None`.
pub async fn passkey_use_is_compare_and_set(
    store: &dyn IdentityStore,
    passkeys: &dyn PasskeyStore,
) {
    let owner = bare_identity(store).await;
    let mut new = new_passkey(&owner.id, PASSKEY);
    new.sign_count = 5;
    let created = create_passkey(passkeys, new, "create").await;
    let stored = || passkeys.find_passkey(PASSKEY, &created.credential_id);

    let at = now_micros();
    for expected in [4, 6, 0] {
        assert_eq!(
            ok(
                passkeys
                    .record_passkey_use(&created.id, expected, passkey_use(6, true, at))
                    .await,
                "a use from the wrong counter"
            ),
            None,
            "expected counter {expected} is not the stored 5"
        );
    }
    assert_eq!(
        ok(stored().await, "find"),
        Some(created.clone()),
        "a declined use changes nothing"
    );

    let used = ok(
        passkeys
            .record_passkey_use(&created.id, 5, passkey_use(6, true, at))
            .await,
        "a use from the right counter",
    )
    .expect("the counter was 5");
    assert_eq!(used.sign_count, 6);
    assert_eq!(used.credential, passkey_use(6, true, at).credential);
    assert!(used.backed_up);
    let last_used = used.last_used_at.expect("last_used_at is set");
    assert_near(last_used, at, GIVEN_TIME_TOLERANCE, "last_used_at");
    // The rest is kept.
    let mut expected = created.clone();
    expected.sign_count = used.sign_count;
    expected.credential = used.credential.clone();
    expected.backed_up = used.backed_up;
    expected.last_used_at = used.last_used_at;
    assert_eq!(used, expected, "only the use's fields change");
    assert_eq!(
        ok(stored().await, "find"),
        Some(used.clone()),
        "what the use answered is what is stored"
    );
    assert_eq!(
        ok(
            passkeys
                .record_passkey_use(&created.id, 5, passkey_use(7, true, at))
                .await,
            "the old counter again"
        ),
        None
    );

    // The next use, from the new counter; the backup flag may go back, and
    // the counter takes the whole u32 range.
    let later = at + time::Duration::seconds(30);
    let again = ok(
        passkeys
            .record_passkey_use(&created.id, 6, passkey_use(u32::MAX, false, later))
            .await,
        "the next use",
    )
    .expect("the counter was 6");
    assert_eq!(again.sign_count, u32::MAX);
    assert!(!again.backed_up);
    assert_near(
        again.last_used_at.expect("last_used_at is set"),
        later,
        GIVEN_TIME_TOLERANCE,
        "last_used_at moves on",
    );
    assert_eq!(
        ok(passkeys.list_passkeys(&owner.id).await, "list"),
        vec![again.clone()]
    );
    assert!(
        ok(
            passkeys
                .record_passkey_use(&created.id, u32::MAX, passkey_use(0, false, later))
                .await,
            "a use from the largest counter"
        )
        .is_some()
    );

    let missing = format!("{PASSKEY_PREFIX}_{}", unique("missing"));
    assert_eq!(
        ok(
            passkeys
                .record_passkey_use(&missing, 0, passkey_use(1, false, at))
                .await,
            "a use of a missing passkey"
        ),
        None
    );
}

/// Of 16 concurrent uses from one counter, exactly one applies.
pub async fn concurrent_passkey_uses_yield_one(
    store: &dyn IdentityStore,
    passkeys: &dyn PasskeyStore,
) {
    const N: u32 = 16;
    const COUNTER: u32 = 10;
    let owner = bare_identity(store).await;
    let mut new = new_passkey(&owner.id, PASSKEY);
    new.sign_count = COUNTER;
    let created = create_passkey(passkeys, new, "create").await;
    let at = now_micros();
    // Each use leaves another counter, so the stored one tells who won.
    let uses = (1..=N)
        .map(|i| {
            passkeys.record_passkey_use(&created.id, COUNTER, passkey_use(COUNTER + i, true, at))
        })
        .collect();
    let applied: Vec<PasskeyCredential> = join_all(uses)
        .await
        .into_iter()
        .filter_map(|r| ok(r, "a concurrent use"))
        .collect();
    assert_eq!(
        applied.len(),
        1,
        "exactly one of {N} uses from one counter applies"
    );
    assert!(applied[0].sign_count > COUNTER);
    assert_eq!(
        ok(passkeys.list_passkeys(&owner.id).await, "list"),
        applied,
        "the winner's use is what is stored"
    );
}

/// Renaming and deleting are scoped to the owning identity: through another
/// identity a passkey is as absent (`None`, `false`) and stays unchanged.
/// A rename changes the name only; a deleted passkey is gone for every call.
pub async fn passkeys_are_renamed_and_deleted_by_their_owner_only(
    store: &dyn IdentityStore,
    passkeys: &dyn PasskeyStore,
) {
    let owner = bare_identity(store).await;
    let other = bare_identity(store).await;
    let created = create_passkey(passkeys, new_passkey(&owner.id, PASSKEY), "create").await;
    let kept = create_passkey(passkeys, new_passkey(&owner.id, PASSKEY), "a second").await;
    let stored = || passkeys.find_passkey(PASSKEY, &created.credential_id);

    assert_eq!(
        ok(
            passkeys
                .rename_passkey(&other.id, &created.id, "Stolen")
                .await,
            "a rename by another identity"
        ),
        None
    );
    assert_eq!(ok(stored().await, "find"), Some(created.clone()));
    let renamed = ok(
        passkeys
            .rename_passkey(&owner.id, &created.id, "Work laptop ✓")
            .await,
        "a rename by the owner",
    )
    .expect("the owner's passkey");
    let mut expected = created.clone();
    expected.name = "Work laptop ✓".to_owned();
    assert_eq!(renamed, expected, "only the name changes");
    assert_eq!(ok(stored().await, "find"), Some(renamed.clone()));
    assert_eq!(
        ok(
            passkeys
                .rename_passkey(
                    &owner.id,
                    &format!("{PASSKEY_PREFIX}_{}", unique("missing")),
                    "x"
                )
                .await,
            "a rename of a missing passkey"
        ),
        None
    );

    assert!(
        !ok(
            passkeys.delete_passkey(&other.id, &created.id).await,
            "a delete by another identity"
        ),
        "another identity's passkey is as absent"
    );
    assert_eq!(ok(stored().await, "find"), Some(renamed));
    assert!(ok(
        passkeys.delete_passkey(&owner.id, &created.id).await,
        "a delete by the owner"
    ));
    assert_eq!(ok(stored().await, "find"), None, "the passkey is gone");
    assert_eq!(
        ok(passkeys.list_passkeys(&owner.id).await, "list"),
        vec![kept],
        "the other passkey stays"
    );
    assert!(!ok(
        passkeys.delete_passkey(&owner.id, &created.id).await,
        "a second delete"
    ));
    assert_eq!(
        ok(
            passkeys.rename_passkey(&owner.id, &created.id, "x").await,
            "a rename of a deleted passkey"
        ),
        None
    );
    assert_eq!(
        ok(
            passkeys
                .record_passkey_use(&created.id, 0, passkey_use(1, false, now_micros()))
                .await,
            "a use of a deleted passkey"
        ),
        None
    );
}

/// Deleting an auth identity deletes its passkeys (their credential ids are
/// free again), and leaves other identities' alone.
pub async fn delete_auth_identity_cascades_to_passkeys(
    store: &dyn IdentityStore,
    passkeys: &dyn PasskeyStore,
) {
    let doomed = bare_identity(store).await;
    let kept = bare_identity(store).await;
    let address = email("cascade-passkey");
    let mut created = Vec::new();
    for owner in [&doomed, &kept] {
        let mut new = new_passkey(&owner.id, PASSKEY);
        new.email = Some(address.clone());
        created.push(create_passkey(passkeys, new, "create").await);
    }
    let kept_before = ok(passkeys.list_passkeys(&kept.id).await, "list");

    ok(store.delete_auth_identity(&doomed.id).await, "delete");
    assert_eq!(
        ok(passkeys.list_passkeys(&doomed.id).await, "list"),
        Vec::new(),
        "passkeys went with their identity"
    );
    assert_eq!(
        ok(
            passkeys
                .find_passkey(PASSKEY, &created[0].credential_id)
                .await,
            "find"
        ),
        None
    );
    assert_eq!(
        ok(
            passkeys.passkeys_for_email(PASSKEY, &address).await,
            "passkeys_for_email"
        ),
        vec![created[1].clone()]
    );
    assert_eq!(
        ok(
            passkeys
                .record_passkey_use(&created[0].id, 0, passkey_use(1, false, now_micros()))
                .await,
            "a use of a deleted passkey"
        ),
        None
    );
    expect_kind(
        passkeys
            .create_passkey(new_passkey(&doomed.id, PASSKEY))
            .await,
        ErrorKind::NotFound,
        "a passkey of a deleted identity",
    );

    assert_eq!(
        ok(passkeys.list_passkeys(&kept.id).await, "list"),
        kept_before,
        "other identities keep theirs"
    );
    create_passkey(
        passkeys,
        passkey_with_id(&kept.id, PASSKEY, &created[0].credential_id),
        "the deleted passkey's credential id is free again",
    )
    .await;
}

// ----- Devices --------------------------------------------------------------

/// The store's devices, for the cases of the `device` capability (used by
/// [`crate::identity_store_suite!`]; not part of the API).
#[doc(hidden)]
pub fn __device_store<S: IdentityStore>(store: &Arc<S>) -> Arc<dyn DeviceStore> {
    Arc::clone(store).device_store().unwrap_or_else(|| {
        panic!(
            "{store:?} keeps no devices: IdentityStore::device_store answered None \
             (implement DeviceStore and answer Some(self), or run the suite with \
             `capabilities = [...]` without `device`)"
        )
    })
}

/// The store's audit log, for the cases of the `audit` capability (used by
/// [`crate::identity_store_suite!`]; not part of the API).
#[doc(hidden)]
pub fn __audit_store<S: IdentityStore>(store: &Arc<S>) -> Arc<dyn AuditStore> {
    Arc::clone(store).audit_store().unwrap_or_else(|| {
        panic!(
            "{store:?} keeps no audit log: IdentityStore::audit_store answered None \
             (implement AuditStore and answer Some(self), or run the suite with \
             `capabilities = [...]` without `audit`)"
        )
    })
}

/// The actor type and provider instance of the device cases.
const ACTOR: &str = "customer";

async fn create_device(devices: &dyn DeviceStore, new: NewDevice, what: &str) -> Device {
    ok(devices.create_device(new).await, what)
}

/// A device of `owner` with a user agent and network.
fn new_device(owner: &str) -> NewDevice {
    NewDevice::new(owner, ACTOR, EMAILPASS).client(
        Some("Mozilla/5.0 (X11; Linux x86_64) Ünïcode ✓".to_owned()),
        Some("203.0.113.0/24".to_owned()),
    )
}

/// Devices are created with an `authdev_` id, the given fields, and
/// `created_at` = `last_seen_at` = now; `device` answers what the create
/// did, for its owner only; each identity lists its own, oldest first. A
/// device of an unknown auth identity is `NotFound` and stores nothing.
pub async fn devices_are_created_read_and_listed_oldest_first(
    store: &dyn IdentityStore,
    devices: &dyn DeviceStore,
) {
    let owner = bare_identity(store).await;
    let other = bare_identity(store).await;
    let first = create_device(devices, new_device(&owner.id), "create").await;
    assert!(
        first.id.starts_with(&format!("{DEVICE_PREFIX}_")),
        "{}",
        first.id
    );
    assert_eq!(first.auth_identity_id, owner.id);
    assert_eq!(first.actor_type, ACTOR);
    assert_eq!(first.auth_provider, EMAILPASS);
    assert_eq!(
        first.user_agent.as_deref(),
        Some("Mozilla/5.0 (X11; Linux x86_64) Ünïcode ✓")
    );
    assert_eq!(first.network.as_deref(), Some("203.0.113.0/24"));
    assert_near(
        first.created_at,
        time::OffsetDateTime::now_utc(),
        NOW_TOLERANCE,
        "created_at is now",
    );
    assert_eq!(first.last_seen_at, first.created_at, "seen when created");

    tokio::time::sleep(TICK).await;
    let second = create_device(
        devices,
        NewDevice::new(&owner.id, "admin", GOOGLE),
        "a device with no user agent or network",
    )
    .await;
    assert_eq!(
        (second.user_agent.as_deref(), second.network.as_deref()),
        (None, None)
    );
    assert_eq!(
        (second.actor_type.as_str(), second.auth_provider.as_str()),
        ("admin", GOOGLE)
    );
    assert_ne!(second.id, first.id);
    tokio::time::sleep(TICK).await;
    let third = create_device(devices, new_device(&owner.id), "a third").await;
    let theirs = create_device(devices, new_device(&other.id), "another identity's").await;

    assert_eq!(
        ok(devices.list_devices(&owner.id).await, "list_devices"),
        vec![first.clone(), second.clone(), third],
        "oldest first, as created"
    );
    assert_eq!(
        ok(devices.list_devices(&other.id).await, "list"),
        vec![theirs.clone()],
        "each identity lists its own"
    );
    assert_eq!(
        ok(devices.device(&owner.id, &first.id).await, "device"),
        Some(first.clone()),
        "what the create answered is what is stored"
    );
    assert_eq!(
        ok(devices.device(&owner.id, &second.id).await, "device"),
        Some(second)
    );
    assert_eq!(
        ok(
            devices.device(&other.id, &first.id).await,
            "device of another identity"
        ),
        None,
        "another identity's device is as absent"
    );
    assert_eq!(
        ok(
            devices.device(&owner.id, &theirs.id).await,
            "device of another identity"
        ),
        None
    );
    let missing_device = format!("{DEVICE_PREFIX}_{}", unique("missing"));
    assert_eq!(
        ok(
            devices.device(&owner.id, &missing_device).await,
            "a missing device"
        ),
        None
    );

    let missing = format!("{AUTH_IDENTITY_PREFIX}_{}", unique("missing"));
    expect_kind(
        devices.create_device(new_device(&missing)).await,
        ErrorKind::NotFound,
        "a device of an unknown auth identity",
    );
    assert_eq!(
        ok(
            devices.list_devices(&missing).await,
            "list of an unknown identity"
        ),
        Vec::new(),
        "nothing was stored"
    );
}

/// `touch_device` moves `last_seen_at` to the given time when that is later
/// (kept to the millisecond at least) and never back; either way it answers
/// `true` for the owner's device, and `false`, changing nothing, for another
/// identity's or a missing one. Nothing else of the device changes.
pub async fn touch_device_only_moves_last_seen_forward(
    store: &dyn IdentityStore,
    devices: &dyn DeviceStore,
) {
    let owner = bare_identity(store).await;
    let other = bare_identity(store).await;
    let created = create_device(devices, new_device(&owner.id), "create").await;
    let stored = || devices.device(&owner.id, &created.id);

    let later = time::OffsetDateTime::now_utc() + time::Duration::minutes(5);
    assert!(ok(
        devices.touch_device(&owner.id, &created.id, later).await,
        "a touch by the owner"
    ));
    let touched = ok(stored().await, "device").expect("the device exists");
    assert_near(
        touched.last_seen_at,
        later,
        GIVEN_TIME_TOLERANCE,
        "last_seen_at moves to the touch",
    );
    assert!(touched.last_seen_at <= later, "never past the touch");
    let mut expected = created.clone();
    expected.last_seen_at = touched.last_seen_at;
    assert_eq!(touched, expected, "only last_seen_at changes");

    for (at, what) in [
        (later - time::Duration::minutes(1), "an earlier touch"),
        (created.created_at, "a touch at creation"),
        (touched.last_seen_at, "a touch at the same time"),
    ] {
        assert!(
            ok(devices.touch_device(&owner.id, &created.id, at).await, what),
            "{what}: the device exists"
        );
        assert_eq!(
            ok(stored().await, "device"),
            Some(touched.clone()),
            "{what}: last_seen_at never goes back"
        );
    }

    let much_later = later + time::Duration::hours(1);
    assert!(
        !ok(
            devices
                .touch_device(&other.id, &created.id, much_later)
                .await,
            "a touch by another identity"
        ),
        "another identity's device is as absent"
    );
    assert_eq!(ok(stored().await, "device"), Some(touched.clone()));
    let missing = format!("{DEVICE_PREFIX}_{}", unique("missing"));
    assert!(!ok(
        devices.touch_device(&owner.id, &missing, much_later).await,
        "a touch of a missing device"
    ));
    assert!(ok(
        devices
            .touch_device(&owner.id, &created.id, much_later)
            .await,
        "a later touch"
    ));
    assert_near(
        ok(stored().await, "device")
            .expect("the device exists")
            .last_seen_at,
        much_later,
        GIVEN_TIME_TOLERANCE,
        "last_seen_at moves on",
    );
}

/// `delete_devices` deletes, in one write, those of the given ids that are
/// devices of the identity, and answers them in the order given (each once);
/// another identity's devices and missing ids are skipped and stay as they
/// are.
pub async fn devices_are_deleted_by_their_owner_only(
    store: &dyn IdentityStore,
    devices: &dyn DeviceStore,
) {
    let owner = bare_identity(store).await;
    let other = bare_identity(store).await;
    let a = create_device(devices, new_device(&owner.id), "a").await;
    tokio::time::sleep(TICK).await;
    let b = create_device(devices, new_device(&owner.id), "b").await;
    tokio::time::sleep(TICK).await;
    let c = create_device(devices, new_device(&owner.id), "c").await;
    let theirs = create_device(devices, new_device(&other.id), "another identity's").await;

    assert_eq!(
        ok(
            devices.delete_devices(&owner.id, &[]).await,
            "delete nothing"
        ),
        Vec::<String>::new()
    );
    assert_eq!(
        ok(
            devices
                .delete_devices(&other.id, &[a.id.clone(), b.id.clone()])
                .await,
            "a delete by another identity"
        ),
        Vec::<String>::new(),
        "another identity's devices are as absent"
    );
    assert_eq!(
        ok(devices.list_devices(&owner.id).await, "list"),
        vec![a.clone(), b.clone(), c.clone()]
    );

    let missing = format!("{DEVICE_PREFIX}_{}", unique("missing"));
    let deleted = ok(
        devices
            .delete_devices(
                &owner.id,
                &[
                    c.id.clone(),
                    missing.clone(),
                    theirs.id.clone(),
                    a.id.clone(),
                    c.id.clone(),
                ],
            )
            .await,
        "a delete by the owner",
    );
    assert_eq!(
        deleted,
        vec![c.id.clone(), a.id.clone()],
        "the owner's devices among the ids, in the order given, each once"
    );
    assert_eq!(
        ok(devices.list_devices(&owner.id).await, "list"),
        vec![b.clone()],
        "the device not named stays"
    );
    assert_eq!(ok(devices.device(&owner.id, &a.id).await, "device"), None);
    assert_eq!(
        ok(devices.list_devices(&other.id).await, "list"),
        vec![theirs],
        "another identity's device named by the owner stays"
    );
    assert_eq!(
        ok(
            devices
                .delete_devices(&owner.id, std::slice::from_ref(&a.id))
                .await,
            "a second delete"
        ),
        Vec::<String>::new()
    );
    assert!(!ok(
        devices
            .touch_device(&owner.id, &a.id, time::OffsetDateTime::now_utc())
            .await,
        "a touch of a deleted device"
    ));
}

/// `device_tally` counts an identity's devices and says whether one has the
/// given user agent and network (an absent one equal only to an absent
/// one); `trim_devices` deletes all but the `keep` to keep (those used since
/// their sign-in first, then the most recently seen) and answers their ids,
/// leaving other identities alone.
pub async fn devices_are_tallied_and_trimmed(store: &dyn IdentityStore, devices: &dyn DeviceStore) {
    let owner = bare_identity(store).await;
    let other = bare_identity(store).await;
    let tally = |ua: Option<&'static str>, net: Option<&'static str>| {
        let owner = owner.id.clone();
        async move { ok(devices.device_tally(&owner, ua, net).await, "tally") }
    };
    assert_eq!(tally(None, None).await, DeviceTally::new(0, false));
    let seen = new_device(&owner.id);
    let (ua, net) = (seen.user_agent.clone(), seen.network.clone());
    let a = create_device(devices, seen, "a").await;
    tokio::time::sleep(TICK).await;
    let b = create_device(
        devices,
        NewDevice::new(&owner.id, ACTOR, EMAILPASS),
        "b (no user agent, no network)",
    )
    .await;
    tokio::time::sleep(TICK).await;
    let c = create_device(devices, new_device(&owner.id), "c").await;
    let theirs = create_device(devices, new_device(&other.id), "another identity's").await;
    let t = ok(
        devices
            .device_tally(&owner.id, ua.as_deref(), net.as_deref())
            .await,
        "tally",
    );
    assert_eq!(t, DeviceTally::new(3, true), "three, one from this client");
    assert_eq!(
        tally(None, None).await,
        DeviceTally::new(3, true),
        "b has neither"
    );
    assert_eq!(
        tally(Some("Other/1"), net.as_deref().map(|_| "203.0.113.0/24")).await,
        DeviceTally::new(3, false),
        "another user agent"
    );
    assert_eq!(
        ok(
            devices
                .device_tally(&owner.id, ua.as_deref(), Some("198.51.100.0/24"))
                .await,
            "tally"
        ),
        DeviceTally::new(3, false),
        "another network"
    );

    // a is seen again: b is now the least recently seen, then c.
    let later = time::OffsetDateTime::now_utc() + time::Duration::minutes(1);
    assert!(ok(
        devices.touch_device(&owner.id, &a.id, later).await,
        "touch"
    ));
    assert_eq!(
        ok(devices.trim_devices(&owner.id, 3).await, "trim to 3"),
        Vec::<String>::new(),
        "nothing beyond three"
    );
    let mut gone = ok(devices.trim_devices(&owner.id, 1).await, "trim to 1");
    gone.sort();
    let mut expected = vec![b.id.clone(), c.id.clone()];
    expected.sort();
    assert_eq!(gone, expected, "all but the most recently seen");
    let left: Vec<String> = ok(devices.list_devices(&owner.id).await, "list")
        .into_iter()
        .map(|d| d.id)
        .collect();
    assert_eq!(left, vec![a.id.clone()]);

    // A device used since its sign-in is kept before newer ones never used,
    // even when they were seen after it: d is used a millisecond after its
    // sign-in, e and f are signed in later and never used.
    let d = create_device(devices, new_device(&owner.id), "d").await;
    let used = d.created_at + time::Duration::milliseconds(1);
    assert!(ok(
        devices.touch_device(&owner.id, &d.id, used).await,
        "touch d"
    ));
    tokio::time::sleep(TICK).await;
    let e = create_device(devices, new_device(&owner.id), "e").await;
    tokio::time::sleep(TICK).await;
    let f = create_device(devices, new_device(&owner.id), "f").await;
    let mut gone = ok(devices.trim_devices(&owner.id, 3).await, "trim to 3");
    gone.sort();
    assert_eq!(
        gone,
        vec![e.id.clone()],
        "the older of the unused goes first"
    );
    let mut left: Vec<String> = ok(devices.list_devices(&owner.id).await, "list")
        .into_iter()
        .map(|d| d.id)
        .collect();
    left.sort();
    let mut expected = vec![a.id.clone(), d.id.clone(), f.id.clone()];
    expected.sort();
    assert_eq!(left, expected, "the used ones and the newest unused stay");
    assert_eq!(
        ok(devices.trim_devices(&owner.id, 2).await, "trim to 2"),
        vec![f.id],
        "then the last unused one, before any used one"
    );
    assert_eq!(
        ok(devices.list_devices(&other.id).await, "list"),
        vec![theirs.clone()],
        "another identity's devices stay"
    );
    assert_eq!(
        ok(devices.trim_devices(&other.id, 0).await, "trim to 0"),
        vec![theirs.id],
        "keep 0: every device goes"
    );
}

/// `add_device` stores a device as `create_device` does and answers the
/// identity's tally just before it, for the new device's client; a device of
/// an unknown identity is `NotFound` and stores nothing.
pub async fn devices_are_added_with_the_tally_before(
    store: &dyn IdentityStore,
    devices: &dyn DeviceStore,
) {
    let owner = bare_identity(store).await;
    let other = bare_identity(store).await;
    let add =
        |new: NewDevice, what: &'static str| async move { ok(devices.add_device(new).await, what) };
    let (tally, first) = add(new_device(&owner.id), "the first").await;
    assert_eq!(tally, DeviceTally::new(0, false), "none before the first");
    assert!(first.id.starts_with(DEVICE_PREFIX), "{}", first.id);
    assert_eq!(
        ok(devices.device(&owner.id, &first.id).await, "read"),
        Some(first.clone()),
        "stored as answered"
    );
    let (tally, _) = add(new_device(&owner.id), "the same client again").await;
    assert_eq!(
        tally,
        DeviceTally::new(1, true),
        "one before, from this client"
    );
    let (tally, bare) = add(
        NewDevice::new(&owner.id, ACTOR, EMAILPASS),
        "no user agent, no network",
    )
    .await;
    assert_eq!(
        tally,
        DeviceTally::new(2, false),
        "two before, neither bare"
    );
    assert_eq!((bare.user_agent, bare.network), (None, None));
    let (tally, _) = add(new_device(&other.id), "another identity's").await;
    assert_eq!(
        tally,
        DeviceTally::new(0, false),
        "another identity's are apart"
    );
    assert_eq!(ok(devices.list_devices(&owner.id).await, "list").len(), 3);
    let missing = format!("{AUTH_IDENTITY_PREFIX}_{}", unique("missing"));
    expect_kind(
        devices.add_device(new_device(&missing)).await,
        ErrorKind::NotFound,
        "a device of a missing identity",
    );
    assert_eq!(
        ok(devices.list_devices(&missing).await, "list"),
        Vec::new(),
        "nothing stored"
    );
}

/// `delete_idle_devices` deletes up to `limit` devices of any identity last
/// seen before the given time and answers their `(auth_identity_id, id)`;
/// a device seen since stays.
pub async fn idle_devices_are_deleted_longest_idle_first(
    store: &dyn IdentityStore,
    devices: &dyn DeviceStore,
) {
    let owner = bare_identity(store).await;
    let other = bare_identity(store).await;
    let idle_a = create_device(devices, new_device(&owner.id), "idle a").await;
    let idle_b = create_device(devices, new_device(&other.id), "idle b").await;
    let active = create_device(devices, new_device(&owner.id), "active").await;
    tokio::time::sleep(TICK).await;
    let cutoff = time::OffsetDateTime::now_utc();
    tokio::time::sleep(TICK).await;
    assert!(ok(
        devices
            .touch_device(&owner.id, &active.id, time::OffsetDateTime::now_utc())
            .await,
        "touch"
    ));
    let active = ok(devices.device(&owner.id, &active.id).await, "device").expect("active");

    assert_eq!(
        ok(devices.delete_idle_devices(cutoff, 0).await, "a limit of 0"),
        Vec::new()
    );
    let mut swept = ok(devices.delete_idle_devices(cutoff, 1).await, "a limit of 1");
    assert_eq!(swept.len(), 1, "at most the limit: {swept:?}");
    swept.extend(ok(
        devices.delete_idle_devices(cutoff, 1000).await,
        "the rest",
    ));
    let idle = [
        (owner.id.clone(), idle_a.id.clone()),
        (other.id.clone(), idle_b.id.clone()),
    ];
    for pair in &idle {
        assert_eq!(
            swept.iter().filter(|p| *p == pair).count(),
            1,
            "{pair:?} is swept once: {swept:?}"
        );
    }
    assert!(
        !swept.iter().any(|(_, id)| *id == active.id),
        "a device seen after the cutoff stays"
    );
    for (owner, id) in &swept {
        assert_eq!(
            ok(devices.device(owner, id).await, "device"),
            None,
            "a swept device is gone"
        );
    }
    assert_eq!(
        ok(devices.list_devices(&owner.id).await, "list"),
        vec![active]
    );
    assert_eq!(
        ok(devices.list_devices(&other.id).await, "list"),
        Vec::new()
    );
    let again = ok(devices.delete_idle_devices(cutoff, 1000).await, "again");
    assert!(
        !again.iter().any(|p| idle.contains(p)),
        "nothing of them is left to sweep: {again:?}"
    );
}

/// Deleting an auth identity deletes its devices, and leaves other
/// identities' alone.
pub async fn delete_auth_identity_cascades_to_devices(
    store: &dyn IdentityStore,
    devices: &dyn DeviceStore,
) {
    let doomed = bare_identity(store).await;
    let kept = bare_identity(store).await;
    let gone = create_device(devices, new_device(&doomed.id), "create").await;
    create_device(devices, new_device(&doomed.id), "a second").await;
    create_device(devices, new_device(&kept.id), "another identity's").await;
    let kept_before = ok(devices.list_devices(&kept.id).await, "list");

    ok(store.delete_auth_identity(&doomed.id).await, "delete");
    assert_eq!(
        ok(devices.list_devices(&doomed.id).await, "list"),
        Vec::new(),
        "devices went with their identity"
    );
    assert_eq!(
        ok(devices.device(&doomed.id, &gone.id).await, "device"),
        None
    );
    assert!(!ok(
        devices
            .touch_device(&doomed.id, &gone.id, time::OffsetDateTime::now_utc())
            .await,
        "a touch of a deleted identity's device"
    ));
    expect_kind(
        devices.create_device(new_device(&doomed.id)).await,
        ErrorKind::NotFound,
        "a device of a deleted identity",
    );
    assert_eq!(
        ok(devices.list_devices(&kept.id).await, "list"),
        kept_before,
        "other identities keep theirs"
    );
}

// ----- The audit log --------------------------------------------------------

/// The seq and hash of the newest entry, `(0, GENESIS)` before the first.
async fn audit_head(audit: &dyn AuditStore) -> (u64, String) {
    let newest = ok(audit.query_audit(&AuditQuery::newest(1)).await, "query");
    newest
        .first()
        .map_or((0, GENESIS.to_owned()), |e| (e.seq, e.hash.clone()))
}

/// Every entry of the chain, oldest first, walked in pages of 7.
async fn whole_chain(audit: &dyn AuditStore) -> Vec<AuditEntry> {
    let mut all: Vec<AuditEntry> = Vec::new();
    loop {
        let after = all.last().map_or(0, |e| e.seq);
        let page = ok(audit.audit_chain(after, 7).await, "audit_chain");
        assert!(page.len() <= 7, "a page holds at most the limit");
        if page.is_empty() {
            return all;
        }
        all.extend(page);
    }
}

/// Asserts that [`verify`] finds the chain intact, and answers its report.
async fn assert_intact(audit: &dyn AuditStore, what: &str) -> auth_module::audit::ChainReport {
    let report = ok(verify(audit).await, "verify");
    assert_eq!(report.broken, None, "{what}: the chain is intact");
    report
}

/// An entry with every field set, `detail` of every JSON shape.
fn full_entry(action: &str, who: &str) -> NewAuditEntry {
    let mut entry = NewAuditEntry::new(action, "succeeded")
        .identity(who)
        .actor_type(ACTOR)
        .provider(EMAILPASS)
        .detail("email", "j***@example.test")
        .detail(
            "nested",
            json!({ "z": [1, 2.5, null, true], "a": { "ünï": "✓ \"quoted\"\n" } }),
        )
        .detail("big", u64::MAX)
        .detail("negative", -42);
    entry.network = Some("2001:db8:1234::/48".to_owned());
    entry.user_agent = Some("curl/8.5.0".to_owned());
    entry
}

/// Appends are chained: each entry takes the next `seq` after the newest
/// (1 and 64 zeros first), has an `authaud_` id, `at` of the store's clock in
/// whole milliseconds, and `hash` = [`chain_hash`] of the hash before and
/// itself. Reading the chain back answers exactly what the appends did
/// (`detail` included), and [`verify`] finds it intact. Appending nothing
/// changes nothing.
pub async fn audit_entries_are_appended_in_one_chain(
    _store: &dyn IdentityStore,
    audit: &dyn AuditStore,
) {
    let (head_seq, head_hash) = audit_head(audit).await;
    if head_seq == 0 {
        assert_eq!(
            ok(audit.audit_chain_start().await, "audit_chain_start"),
            None,
            "a log never swept starts at 1, after 64 zeros"
        );
    }
    assert_eq!(
        ok(audit.append_audit(Vec::new()).await, "an empty append"),
        Vec::new()
    );
    let who = unique("audit-who");
    let action = unique("audit.chain");
    let first = ok(
        audit
            .append_audit(vec![
                full_entry(&action, &who),
                NewAuditEntry::new(&action, "failed"),
                NewAuditEntry::new(&action, "throttled").identity(&who),
            ])
            .await,
        "append three",
    );
    let second = ok(
        audit
            .append_audit(vec![full_entry(&action, &who).detail("n", 4)])
            .await,
        "append one",
    );
    assert_eq!((first.len(), second.len()), (3, 1));

    let mut prev = head_hash;
    for (i, entry) in first.iter().enumerate() {
        assert_eq!(
            entry.seq,
            head_seq + 1 + i as u64,
            "one append's entries are consecutive"
        );
        assert_eq!(
            entry.prev_hash, prev,
            "entry {} follows the one before",
            entry.seq
        );
        assert_eq!(
            entry.hash,
            chain_hash(&entry.prev_hash, entry),
            "its hash covers it"
        );
        assert!(
            entry.id.starts_with(&format!("{AUDIT_PREFIX}_")),
            "{}",
            entry.id
        );
        assert_eq!(
            entry.at.nanosecond() % 1_000_000,
            0,
            "at is whole milliseconds"
        );
        assert_near(
            entry.at,
            time::OffsetDateTime::now_utc(),
            NOW_TOLERANCE,
            "at is now",
        );
        prev.clone_from(&entry.hash);
    }
    let entry = &first[0];
    assert_eq!(
        (entry.action.as_str(), entry.outcome.as_str()),
        (action.as_str(), "succeeded")
    );
    assert_eq!(entry.auth_identity_id.as_deref(), Some(who.as_str()));
    assert_eq!(entry.actor_type.as_deref(), Some(ACTOR));
    assert_eq!(entry.provider.as_deref(), Some(EMAILPASS));
    assert_eq!(entry.network.as_deref(), Some("2001:db8:1234::/48"));
    assert_eq!(entry.user_agent.as_deref(), Some("curl/8.5.0"));
    assert_eq!(entry.detail, full_entry(&action, &who).detail);
    assert_eq!(first[1].auth_identity_id, None);
    assert!(first[1].detail.is_empty());
    assert!(second[0].seq > first[2].seq, "a later append comes later");
    assert_ne!(first[0].id, first[1].id);

    let appended: Vec<AuditEntry> = first.iter().chain(&second).cloned().collect();
    let chain = whole_chain(audit).await;
    for entry in &appended {
        assert_eq!(
            chain.iter().find(|e| e.id == entry.id),
            Some(entry),
            "what the append answered is what is stored, to the millisecond"
        );
    }
    assert_eq!(
        ok(audit.audit_chain(head_seq, 2).await, "a page of 2"),
        first[..2].to_vec(),
        "the chain after a seq, oldest first, up to the limit"
    );
    assert_eq!(
        ok(audit.audit_chain(head_seq, 0).await, "a page of 0"),
        Vec::new()
    );
    assert_eq!(
        ok(
            audit.audit_chain(second[0].seq, 10).await,
            "after the newest"
        ),
        Vec::new()
    );
    let report = assert_intact(audit, "after appends").await;
    assert_eq!(
        report.head_hash, second[0].hash,
        "the head is the newest entry"
    );
    assert_eq!(report.checked, chain.len() as u64);
    assert_eq!(
        audit_head(audit).await,
        (second[0].seq, second[0].hash.clone()),
        "an empty append changes nothing"
    );
}

/// `query_audit` answers the entries its filters select (identity, action,
/// `since` inclusive, `until` exclusive, below a `seq`), newest first, up to
/// the limit.
pub async fn audit_query_filters_newest_first(_store: &dyn IdentityStore, audit: &dyn AuditStore) {
    let (a, b) = (unique("audit-a"), unique("audit-b"));
    let (x, y) = (unique("audit.x"), unique("audit.y"));
    let append = |entries: Vec<NewAuditEntry>| audit.append_audit(entries);
    let early = ok(
        append(vec![
            NewAuditEntry::new(&x, "succeeded").identity(&a),
            NewAuditEntry::new(&x, "failed").identity(&b),
        ])
        .await,
        "append",
    );
    let a_y = ok(
        append(vec![NewAuditEntry::new(&y, "succeeded").identity(&a)]).await,
        "append",
    );
    tokio::time::sleep(TICK).await;
    let middle = time::OffsetDateTime::now_utc();
    tokio::time::sleep(TICK).await;
    let late = ok(
        append(vec![
            NewAuditEntry::new(&x, "succeeded").identity(&a),
            NewAuditEntry::new(&x, "throttled"),
        ])
        .await,
        "append",
    );
    let (a_x1, b_x, a_y, a_x2, anon_x) = (&early[0], &early[1], &a_y[0], &late[0], &late[1]);
    let query = |f: &dyn Fn(&mut AuditQuery)| {
        let mut q = AuditQuery::newest(100);
        f(&mut q);
        async move { ok(audit.query_audit(&q).await, "query_audit") }
    };
    let ids = |entries: Vec<AuditEntry>| entries.into_iter().map(|e| e.id).collect::<Vec<_>>();
    let want = |entries: &[&AuditEntry]| entries.iter().map(|e| e.id.clone()).collect::<Vec<_>>();

    let by_a = query(&|q| q.auth_identity_id = Some(a.clone())).await;
    assert_eq!(
        ids(by_a.clone()),
        want(&[a_x2, a_y, a_x1]),
        "an identity's, newest first"
    );
    assert_eq!(by_a[0], *a_x2, "entries are answered whole");
    assert_eq!(
        ids(query(&|q| {
            q.auth_identity_id = Some(a.clone());
            q.limit = 2;
        })
        .await),
        want(&[a_x2, a_y]),
        "up to the limit"
    );
    assert_eq!(
        ids(query(&|q| {
            q.auth_identity_id = Some(a.clone());
            q.before_seq = Some(a_y.seq);
        })
        .await),
        want(&[a_x1]),
        "below a seq: the next page"
    );
    assert_eq!(
        ids(query(&|q| q.action = Some(x.clone())).await),
        want(&[anon_x, a_x2, b_x, a_x1]),
        "an action's, whoever's"
    );
    assert_eq!(
        ids(query(&|q| {
            q.action = Some(x.clone());
            q.auth_identity_id = Some(a.clone());
        })
        .await),
        want(&[a_x2, a_x1]),
        "filters combine"
    );
    assert_eq!(
        ids(query(&|q| {
            q.action = Some(x.clone());
            q.since = Some(middle);
        })
        .await),
        want(&[anon_x, a_x2]),
        "since a time"
    );
    assert_eq!(
        ids(query(&|q| {
            q.action = Some(x.clone());
            q.until = Some(middle);
        })
        .await),
        want(&[b_x, a_x1]),
        "until a time"
    );
    assert_eq!(
        ids(query(&|q| {
            q.action = Some(x.clone());
            q.since = Some(a_x2.at);
            q.until = Some(anon_x.at + time::Duration::milliseconds(1));
        })
        .await),
        want(&[anon_x, a_x2]),
        "since is inclusive, to the millisecond"
    );
    assert_eq!(
        ids(query(&|q| {
            q.action = Some(x.clone());
            q.until = Some(a_x2.at);
            q.since = Some(middle);
        })
        .await),
        Vec::<String>::new(),
        "until is exclusive"
    );
    assert_eq!(
        ids(query(&|q| {
            q.auth_identity_id = Some(a.clone());
            q.limit = 0;
        })
        .await),
        Vec::<String>::new(),
        "a limit of 0"
    );
    assert_eq!(
        ids(query(&|q| {
            q.auth_identity_id = Some(a.clone());
            q.limit = usize::MAX;
        })
        .await)
        .len(),
        3,
        "a huge limit is fine (the store may cap it)"
    );
    assert_eq!(
        ids(query(&|q| q.auth_identity_id = Some(unique("audit-nobody"))).await),
        Vec::<String>::new(),
        "an identity never named"
    );
    let newest = ok(audit.query_audit(&AuditQuery::newest(2)).await, "newest");
    assert_eq!(newest.len(), 2);
    assert!(newest[0].seq > newest[1].seq, "newest first");
    assert!(newest[0].seq >= anon_x.seq);
}

/// Audit entries outlive the identity they name: deleting it deletes none,
/// and an entry may name an identity that never existed.
pub async fn audit_entries_outlive_their_identity(
    store: &dyn IdentityStore,
    audit: &dyn AuditStore,
) {
    let doomed = bare_identity(store).await;
    let appended = ok(
        audit
            .append_audit(vec![
                NewAuditEntry::new("register", "succeeded").identity(&doomed.id),
                NewAuditEntry::new("identity.deleted", "succeeded").identity(&doomed.id),
            ])
            .await,
        "append",
    );
    ok(store.delete_auth_identity(&doomed.id).await, "delete");
    let mut q = AuditQuery::newest(10);
    q.auth_identity_id = Some(doomed.id.clone());
    assert_eq!(
        ok(audit.query_audit(&q).await, "query"),
        appended.into_iter().rev().collect::<Vec<_>>(),
        "the entries stay"
    );
    let never = format!("{AUTH_IDENTITY_PREFIX}_{}", unique("never"));
    ok(
        audit
            .append_audit(vec![NewAuditEntry::new("login", "failed").identity(&never)])
            .await,
        "an entry naming an identity that never existed",
    );
    assert_intact(audit, "after the identity is gone").await;
}

/// Of 16 concurrent appends (of 1 to 3 entries each), each entry gets its
/// own `seq`, one append's entries are consecutive, and the chain stays
/// intact.
pub async fn concurrent_audit_appends_form_one_chain(
    _store: &dyn IdentityStore,
    audit: &dyn AuditStore,
) {
    const N: usize = 16;
    let (head_seq, _) = audit_head(audit).await;
    let action = unique("audit.race");
    let appends = (0..N)
        .map(|i| {
            let entries = (0..=i % 3)
                .map(|j| NewAuditEntry::new(&action, "succeeded").detail("n", i * 10 + j))
                .collect();
            audit.append_audit(entries)
        })
        .collect();
    let results: Vec<Vec<AuditEntry>> = join_all(appends)
        .await
        .into_iter()
        .map(|r| ok(r, "a concurrent append"))
        .collect();
    let mut seqs = Vec::new();
    for (i, entries) in results.iter().enumerate() {
        assert_eq!(entries.len(), i % 3 + 1);
        for pair in entries.windows(2) {
            assert_eq!(
                pair[1].seq,
                pair[0].seq + 1,
                "one append's entries are consecutive"
            );
            assert_eq!(pair[1].prev_hash, pair[0].hash);
        }
        seqs.extend(entries.iter().map(|e| e.seq));
    }
    seqs.sort_unstable();
    let total = seqs.len();
    seqs.dedup();
    assert_eq!(seqs.len(), total, "no seq is given twice");
    assert!(seqs[0] > head_seq, "every seq follows the head before");
    let chain = whole_chain(audit).await;
    for entry in results.iter().flatten() {
        assert_eq!(
            chain.iter().find(|e| e.seq == entry.seq),
            Some(entry),
            "what each append answered is what is stored"
        );
    }
    let report = assert_intact(audit, "after concurrent appends").await;
    assert!(report.checked >= total as u64);
}

/// `prune_audit` removes the entries appended before the given time, except
/// the newest of all, and records where the chain now starts (the first
/// entry kept, and the hash it follows), so [`verify`] finds what is left
/// intact; with nothing to remove it answers 0 and changes nothing. Later
/// appends continue the chain.
///
/// It prunes the whole log: run it on a store of its own.
pub async fn audit_prune_keeps_the_newest_and_records_the_start(
    _store: &dyn IdentityStore,
    audit: &dyn AuditStore,
) {
    let far_future = || time::OffsetDateTime::now_utc() + time::Duration::days(1);
    if audit_head(audit).await.0 == 0 {
        assert_eq!(
            ok(audit.prune_audit(far_future()).await, "prune an empty log"),
            0
        );
        assert_eq!(ok(audit.audit_chain_start().await, "start"), None);
    }
    let action = unique("audit.prune");
    let entry = || NewAuditEntry::new(&action, "succeeded");
    let old = ok(
        audit.append_audit(vec![entry(), entry(), entry()]).await,
        "append old",
    );
    tokio::time::sleep(TICK).await;
    let cutoff = time::OffsetDateTime::now_utc();
    tokio::time::sleep(TICK).await;
    let new = ok(
        audit.append_audit(vec![entry(), entry()]).await,
        "append new",
    );
    let before = whole_chain(audit).await;
    let expected_removed = before.iter().filter(|e| e.seq < new[0].seq).count() as u64;

    let removed = ok(audit.prune_audit(cutoff).await, "prune");
    assert_eq!(
        removed, expected_removed,
        "every entry before the cutoff is removed"
    );
    let after = whole_chain(audit).await;
    assert!(
        after.iter().all(|e| !old.iter().any(|o| o.id == e.id)),
        "the old ones are gone"
    );
    assert_eq!(after[..2], new[..], "the new ones stay, unchanged");
    assert_eq!(
        ok(audit.audit_chain_start().await, "start"),
        Some(AuditChainStart::new(new[0].seq, new[0].prev_hash.clone())),
        "the chain starts at the first entry kept"
    );
    let report = assert_intact(audit, "after a prune").await;
    assert_eq!(report.start_seq, new[0].seq);

    assert_eq!(
        ok(audit.prune_audit(cutoff).await, "prune again"),
        0,
        "nothing left to remove"
    );
    assert_eq!(
        ok(audit.audit_chain_start().await, "start"),
        Some(AuditChainStart::new(new[0].seq, new[0].prev_hash.clone())),
        "a prune that removes nothing leaves the start"
    );

    // Everything is older than a day from now, but the newest stays.
    let removed = ok(audit.prune_audit(far_future()).await, "prune all");
    assert_eq!(removed, after.len() as u64 - 1, "all but the newest");
    let newest = after.last().expect("entries").clone();
    assert_eq!(whole_chain(audit).await, vec![newest.clone()]);
    assert_eq!(
        ok(audit.audit_chain_start().await, "start"),
        Some(AuditChainStart::new(newest.seq, newest.prev_hash.clone()))
    );
    assert_eq!(
        ok(audit.prune_audit(far_future()).await, "prune all again"),
        0
    );
    let report = assert_intact(audit, "after pruning all but the newest").await;
    assert_eq!((report.checked, report.start_seq), (1, newest.seq));

    let next = ok(
        audit.append_audit(vec![entry()]).await,
        "append after a prune",
    );
    assert_eq!(next[0].seq, newest.seq + 1, "the chain continues");
    assert_eq!(next[0].prev_hash, newest.hash);
    let report = assert_intact(audit, "after an append after a prune").await;
    assert_eq!(
        (report.checked, report.head_hash.as_str()),
        (2, next[0].hash.as_str())
    );
}

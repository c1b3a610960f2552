//! The [`IdentityStore`] conformance cases.
//!
//! Each case is a plain async function over `&dyn IdentityStore` that panics,
//! like a failed `assert!`, when the store breaks the contract. Each creates its
//! own data under entity ids unique to the run, so cases may share a backend.
//! [`crate::identity_store_suite!`] stamps one test per case.

use std::time::Duration;

use auth_module::{
    AUTH_IDENTITY_PREFIX, AuthIdentity, ErrorKind, IdentityStore, NewAuthIdentity,
    NewProviderIdentity, PROVIDER_IDENTITY_PREFIX, ProviderIdentityUpdate,
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

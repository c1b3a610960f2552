//! An identity's passkeys as its owner manages them: list, rename, remove
//! (`GET /auth/passkeys`, `PATCH|DELETE /auth/passkeys/{id}`).

use serde_json::{Value, json};
use time::format_description::well_known::Rfc3339;

use crate::error::{Error, Result};
use crate::events::Event;
use crate::model::AuthIdentity;
use crate::module::AuthModule;
use crate::provider::ProviderFlow;
use crate::records::PasskeyCredential;
use crate::store_traits::PasskeyStore;

/// The event of a removed passkey.
pub const PASSKEY_REMOVED_EVENT: &str = "auth.passkey_removed";

/// The longest passkey name, in characters.
pub const MAX_PASSKEY_NAME: usize = 100;

/// The answer to removing the only way an identity has to sign in.
pub const LAST_WAY_TO_SIGN_IN: &str = "Cannot remove the last way to sign in";

/// The store's passkeys; a store that keeps none has none (every passkey id
/// is then unknown).
fn store(module: &AuthModule) -> Option<std::sync::Arc<dyn PasskeyStore>> {
    std::sync::Arc::clone(module.identity_store()).passkey_store()
}

fn not_found(id: &str) -> Error {
    Error::not_found(format!("Passkey with id: {id} was not found"))
}

/// A passkey as its owner sees it: `{id, name, created_at, last_used_at,
/// backed_up, transports}` (never the credential record).
pub fn passkey_json(p: &PasskeyCredential) -> Value {
    let ts = |t: time::OffsetDateTime| t.format(&Rfc3339).ok();
    json!({
        "id": p.id,
        "name": p.name,
        "created_at": ts(p.created_at),
        "last_used_at": p.last_used_at.and_then(ts),
        "backed_up": p.backed_up,
        "transports": p.transports,
    })
}

/// Whether `p` is the credential of a passkey MFA factor (its user handle
/// is the factor's id): managed as a factor (`/auth/mfa/factors`), not here.
fn is_factor_credential(p: &PasskeyCredential) -> bool {
    p.user_handle
        .strip_prefix(crate::records::MFA_FACTOR_PREFIX)
        .is_some_and(|rest| rest.starts_with('_'))
}

/// The sign-in passkeys of `identity` (not those of its MFA factors),
/// oldest first.
///
/// # Errors
/// The store's errors.
pub async fn list_passkeys(
    module: &AuthModule,
    identity: &AuthIdentity,
) -> Result<Vec<PasskeyCredential>> {
    match store(module) {
        Some(store) => {
            let mut passkeys = store.list_passkeys(&identity.id).await?;
            passkeys.retain(|p| !is_factor_credential(p));
            Ok(passkeys)
        }
        None => Ok(Vec::new()),
    }
}

/// Renames passkey `id` of `identity`. The name is trimmed, 1 to
/// [`MAX_PASSKEY_NAME`] characters, without control characters.
///
/// # Errors
/// [`crate::ErrorKind::InvalidData`] for a bad name, [`crate::ErrorKind::NotFound`] when
/// the identity has no such passkey.
pub async fn rename_passkey(
    module: &AuthModule,
    identity: &AuthIdentity,
    id: &str,
    name: &str,
) -> Result<PasskeyCredential> {
    let name = name.trim();
    if name.is_empty()
        || name.chars().count() > MAX_PASSKEY_NAME
        || name.chars().any(char::is_control)
    {
        return Err(Error::invalid_data(format!(
            "name must be 1 to {MAX_PASSKEY_NAME} characters, without control characters"
        )));
    }
    let Some(store) = store(module) else {
        return Err(not_found(id));
    };
    if !list_passkeys(module, identity)
        .await?
        .iter()
        .any(|p| p.id == id)
    {
        return Err(not_found(id));
    }
    store
        .rename_passkey(&identity.id, id, name)
        .await?
        .ok_or_else(|| not_found(id))
}

/// Removes passkey `id` of `identity`, unless it is its last way to sign
/// in (no other passkey and no provider identity of another kind than
/// passkeys): then [`crate::ErrorKind::NotAllowed`] [`LAST_WAY_TO_SIGN_IN`].
/// Emits [`PASSKEY_REMOVED_EVENT`].
///
/// # Errors
/// [`crate::ErrorKind::NotFound`] when the identity has no such passkey.
pub async fn remove_passkey(module: &AuthModule, identity: &AuthIdentity, id: &str) -> Result<()> {
    let Some(store) = store(module) else {
        return Err(not_found(id));
    };
    let mut passkeys = store.list_passkeys(&identity.id).await?;
    passkeys.retain(|p| !is_factor_credential(p));
    if !passkeys.iter().any(|p| p.id == id) {
        return Err(not_found(id));
    }
    let other_ways = identity.provider_identities.iter().any(|p| {
        module
            .provider_info(&p.provider)
            .is_some_and(|info| info.flow != ProviderFlow::Challenge)
    });
    if passkeys.len() == 1 && !other_ways {
        return Err(Error::not_allowed(LAST_WAY_TO_SIGN_IN));
    }
    if !store.delete_passkey(&identity.id, id).await? {
        return Err(not_found(id));
    }
    module.events().emit(Event::new(
        PASSKEY_REMOVED_EVENT,
        json!({ "auth_identity_id": identity.id, "passkey_id": id }),
    ));
    module
        .audit()
        .record(
            crate::NewAuditEntry::new("passkey.removed", "succeeded")
                .identity(&identity.id)
                .detail("passkey_id", id),
        )
        .await;
    Ok(())
}

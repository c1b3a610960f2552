//! From a verified external user to an auth identity: find, refresh, create
//! or attach with proof. Nothing is ever linked by matching emails.

use auth_module::{
    AuthOutcome, Error, ErrorKind, Metadata, NewProviderIdentity, ProviderIdentities,
    ProviderIdentityUpdate,
};

/// The auth identity for the external user `entity_id`, whose
/// `user_metadata` is replaced by this login's:
/// - with `link_to`, the provider identity is attached to it, or refused
///   with a `not_allowed` error if it already belongs to another auth
///   identity. Pass [`crate::Completed::link_to`]: the identity the login was
///   started with proof of **and** whose proof the callback carried again
///   ([`crate::OAuthClient::finish`] checks both). Never pass the callback's
///   own `AuthRequest::link_to` directly: a plain login must not turn into a
///   link because its callback came with a token;
/// - without, the returning user's auth identity, or a new one.
///
/// Identity-provider tokens are never stored: `provider_metadata` stays empty.
/// `display` names the provider in the refusal (`Google`).
pub async fn complete_login(
    ids: &ProviderIdentities,
    entity_id: &str,
    user_metadata: Metadata,
    link_to: Option<&str>,
    display: &str,
) -> auth_module::Result<AuthOutcome> {
    let refuse = || {
        Error::not_allowed(format!(
            "This {display} account is already linked to another auth identity"
        ))
    };
    // Two tries: a concurrent first login of the same user may create the
    // provider identity between the read and the write.
    for _ in 0..2 {
        match ids.find(entity_id).await? {
            Some(identity) => {
                if link_to.is_some_and(|target| target != identity.id) {
                    return Err(refuse());
                }
                let identity = ids
                    .update(
                        entity_id,
                        ProviderIdentityUpdate::new().user_metadata(user_metadata.clone()),
                    )
                    .await?;
                return Ok(match link_to {
                    Some(_) => AuthOutcome::linked(identity),
                    None => AuthOutcome::authenticated(identity),
                });
            }
            None => {
                let mut new = NewProviderIdentity::new(ids.provider(), entity_id);
                new.user_metadata = Some(user_metadata.clone());
                let created = match link_to {
                    Some(target) => ids.attach(target, new).await.map(AuthOutcome::linked),
                    None => ids.create(new).await.map(AuthOutcome::authenticated),
                };
                match created {
                    Err(e) if e.kind() == ErrorKind::DuplicateError => continue,
                    Err(e) if e.kind() == ErrorKind::NotFound && link_to.is_some() => {
                        // The proven identity was deleted since the login began.
                        return Ok(AuthOutcome::failed(crate::error::AUTHENTICATION_FAILED));
                    }
                    other => return other,
                }
            }
        }
    }
    Err(Error::duplicate(format!(
        "The {display} identity {entity_id} was created concurrently; try again"
    )))
}

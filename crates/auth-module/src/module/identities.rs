//! Identity CRUD on [`AuthModule`]: auth identities, their provider
//! identities, `app_metadata` and actor links.

use std::sync::Arc;

use serde_json::Value;

use super::{AuthModule, validate_actor_type};
use crate::error::{Error, ErrorKind, Result};
use crate::model::{
    AuthIdentity, Metadata, NewProviderIdentity, ProviderIdentity, ProviderIdentityUpdate,
};
use crate::store_traits::NewAuthIdentity;

impl AuthModule {
    /// The auth identity `id` (without secrets) and its credential version;
    /// `None` if it is gone or no longer has a provider identity at
    /// `provider`. Token and session checks use it to refuse credentials
    /// issued before a change.
    pub async fn identity_with_credential_version(
        &self,
        id: &str,
        provider: &str,
    ) -> Result<Option<(Arc<AuthIdentity>, u64)>> {
        let identity = match self.inner.identities.retrieve_redacted(id).await {
            Ok(i) => i,
            Err(e) if e.kind() == ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e),
        };
        if identity.provider_identity(provider).is_none() {
            return Ok(None);
        }
        let version = identity.credential_version;
        Ok(Some((identity, version)))
    }

    /// Creates an auth identity (and its provider identities).
    pub async fn create_auth_identity(&self, new: NewAuthIdentity) -> Result<AuthIdentity> {
        Ok(self
            .inner
            .identities
            .create_auth_identity(new)
            .await?
            .redacted())
    }

    /// The auth identity `id`.
    pub async fn retrieve_auth_identity(&self, id: &str) -> Result<AuthIdentity> {
        Ok(self
            .inner
            .identities
            .retrieve_auth_identity(id)
            .await?
            .redacted())
    }

    /// Signs identity `id` out everywhere: its credential version moves on,
    /// so every token and session issued before stops being accepted.
    /// (`flows::Sessions::end_all` also removes the sessions themselves.)
    pub async fn revoke(&self, id: &str) -> Result<AuthIdentity> {
        Ok(self
            .inner
            .identities
            .bump_credential_version(id)
            .await?
            .redacted())
    }

    /// Deletes auth identity `id` and its provider identities.
    pub async fn delete_auth_identity(&self, id: &str) -> Result<()> {
        self.inner.identities.delete_auth_identity(id).await
    }

    /// Replaces the `app_metadata` of auth identity `id`.
    pub async fn update_app_metadata(
        &self,
        id: &str,
        app_metadata: Option<Metadata>,
    ) -> Result<AuthIdentity> {
        Ok(self
            .inner
            .identities
            .update_app_metadata(id, app_metadata)
            .await?
            .redacted())
    }

    /// Merges `patch`'s top-level keys into the `app_metadata` of identity
    /// `id`, atomically in the store: a `null` value removes its key, any
    /// other replaces it. (Actor links have [`AuthModule::link_actor`].)
    pub async fn merge_app_metadata(&self, id: &str, patch: &Metadata) -> Result<AuthIdentity> {
        Ok(self
            .inner
            .identities
            .merge_app_metadata(id, patch)
            .await?
            .redacted())
    }

    /// Sets `app_metadata["{actor_type}_id"] = actor_id` on identity `id`.
    pub async fn link_actor(
        &self,
        id: &str,
        actor_type: &str,
        actor_id: &str,
    ) -> Result<AuthIdentity> {
        validate_actor_type(actor_type)?;
        if actor_id.is_empty() {
            return Err(Error::invalid_data("actor_id must not be empty"));
        }
        Ok(self
            .inner
            .identities
            .patch_app_metadata(
                id,
                &format!("{actor_type}_id"),
                Some(Value::String(actor_id.to_owned())),
            )
            .await?
            .redacted())
    }

    /// Removes `app_metadata["{actor_type}_id"]` from identity `id`.
    pub async fn unlink_actor(&self, id: &str, actor_type: &str) -> Result<AuthIdentity> {
        validate_actor_type(actor_type)?;
        Ok(self
            .inner
            .identities
            .patch_app_metadata(id, &format!("{actor_type}_id"), None)
            .await?
            .redacted())
    }

    /// The provider identity `provider` knows as `entity_id`, if any.
    pub async fn find_provider_identity(
        &self,
        provider: &str,
        entity_id: &str,
    ) -> Result<Option<ProviderIdentity>> {
        Ok(self
            .inner
            .identities
            .find_provider_identity(provider, entity_id)
            .await?
            .map(|mut p| {
                p.provider_metadata = None;
                p
            }))
    }

    /// The provider identities the configured providers know as `raw`, each
    /// provider reading it as it stores identifiers (an e-mail at emailpass,
    /// a subject at a social provider), in the providers' order.
    pub async fn find_everywhere(&self, raw: &str) -> Result<Vec<ProviderIdentity>> {
        let mut found = Vec::new();
        for p in self.providers() {
            let entity_id = self
                .normalize_entity_id(&p.id, raw)
                .unwrap_or_else(|| raw.to_owned());
            if let Some(identity) = self.find_provider_identity(&p.id, &entity_id).await? {
                found.push(identity);
            }
        }
        Ok(found)
    }

    /// The auth identity that `provider` knows as `entity_id`.
    pub async fn retrieve_by_provider(
        &self,
        provider: &str,
        entity_id: &str,
    ) -> Result<AuthIdentity> {
        let p = self
            .inner
            .identities
            .find_provider_identity(provider, entity_id)
            .await?
            .ok_or_else(|| {
                Error::not_found(format!(
                    "AuthIdentity with entity_id: {entity_id} and provider: {provider} was not found"
                ))
            })?;
        self.retrieve_auth_identity(&p.auth_identity_id).await
    }

    /// Links a new provider identity to auth identity `auth_identity_id`.
    pub async fn add_provider_identity(
        &self,
        auth_identity_id: &str,
        new: NewProviderIdentity,
    ) -> Result<ProviderIdentity> {
        let mut p = self
            .inner
            .identities
            .add_provider_identity(auth_identity_id, new)
            .await?;
        p.provider_metadata = None;
        Ok(p)
    }

    /// Updates provider identity `id` (`provid_…`).
    pub async fn update_provider_identity(
        &self,
        id: &str,
        update: ProviderIdentityUpdate,
    ) -> Result<ProviderIdentity> {
        let mut p = self
            .inner
            .identities
            .update_provider_identity(id, update)
            .await?;
        p.provider_metadata = None;
        Ok(p)
    }

    /// Deletes provider identity `id`.
    pub async fn delete_provider_identity(&self, id: &str) -> Result<()> {
        self.inner.identities.delete_provider_identity(id).await
    }
}

//! SSO create-or-link (`POST /auth/{provider}/user`): an admin's first login
//! through a social provider finds or creates the host's user record through
//! a [`UserDirectory`] and links it as `app_metadata.user_id`.
//!
//! A user is found by email only when the provider vouched for the address
//! (`user_metadata.email_verified == true`, which the google, github and oidc
//! providers set); otherwise a new user is created, so nobody takes over an
//! account with an address they merely typed.

use std::fmt;

use async_trait::async_trait;
use serde_json::{Value, json};

use crate::error::{Error, Result};
use crate::model::Metadata;
use crate::module::AuthModule;

/// What the SSO identity says about its user.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct SsoProfile {
    /// The address (`user_metadata.email`).
    pub email: String,
    /// `user_metadata.given_name`.
    pub first_name: Option<String>,
    /// `user_metadata.family_name`.
    pub last_name: Option<String>,
    /// Whether the provider vouched for the address.
    pub email_verified: bool,
    /// The auth identity asking.
    pub auth_identity_id: String,
    /// The provider instance it logged in with.
    pub provider: String,
}

/// A user record of the host application.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct SsoUser {
    /// Its id, linked as `app_metadata.user_id`.
    pub id: String,
    /// The record answered to the client (`{"user": record}`).
    pub record: Value,
}

impl SsoUser {
    /// A user `id` shown as `record`.
    pub fn new(id: impl Into<String>, record: Value) -> Self {
        SsoUser {
            id: id.into(),
            record,
        }
    }
}

/// The host's user records, as the SSO user route needs them.
#[async_trait]
pub trait UserDirectory: Send + Sync + fmt::Debug + 'static {
    /// The user whose email is exactly `email`, if any.
    async fn find_by_email(&self, email: &str) -> Result<Option<SsoUser>>;

    /// Creates a user from `profile`.
    async fn create(&self, profile: &SsoProfile) -> Result<SsoUser>;
}

/// The standalone server's [`UserDirectory`]: it keeps no user table. A
/// user is an id (`user_…`) linked to auth identities as
/// `app_metadata.user_id`; the user with an email is the one linked to an
/// identity that a configured provider knows by that address (as emailpass
/// knows its users), and a new user is a new id. Records are
/// `{id, email, first_name, last_name}`.
#[derive(Debug, Clone)]
pub struct LinkedIdentityUsers {
    module: AuthModule,
}

impl LinkedIdentityUsers {
    /// Users found through `module`'s identities.
    pub fn new(module: AuthModule) -> Self {
        LinkedIdentityUsers { module }
    }
}

#[async_trait]
impl UserDirectory for LinkedIdentityUsers {
    async fn find_by_email(&self, email: &str) -> Result<Option<SsoUser>> {
        for found in self.module.find_everywhere(email).await? {
            let identity = self
                .module
                .retrieve_auth_identity(&found.auth_identity_id)
                .await?;
            if let Some(user_id) = identity.actor_id("user") {
                return Ok(Some(SsoUser::new(
                    user_id,
                    json!({ "id": user_id, "email": email }),
                )));
            }
        }
        Ok(None)
    }

    async fn create(&self, profile: &SsoProfile) -> Result<SsoUser> {
        let id = crate::model::generate_id("user");
        Ok(SsoUser::new(
            id.clone(),
            json!({
                "id": id,
                "email": profile.email,
                "first_name": profile.first_name,
                "last_name": profile.last_name,
            }),
        ))
    }
}

/// The SSO profile in `user_metadata` of an identity from `provider`, or
/// the refusal Medusa answers without an email.
pub fn sso_profile(
    user_metadata: &Metadata,
    auth_identity_id: &str,
    provider: &str,
) -> Result<SsoProfile> {
    let text = |k: &str| {
        user_metadata
            .get(k)
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
    };
    let email = text("email")
        .ok_or_else(|| Error::invalid_data("Email is required to create a user account."))?;
    Ok(SsoProfile {
        email,
        first_name: text("given_name"),
        last_name: text("family_name"),
        email_verified: user_metadata.get("email_verified") == Some(&Value::Bool(true)),
        auth_identity_id: auth_identity_id.to_owned(),
        provider: provider.to_owned(),
    })
}

/// Finds (only by a vouched-for email) or creates the user of `profile`
/// and links it to the auth identity as `app_metadata.user_id`.
pub async fn link_sso_user(
    module: &AuthModule,
    directory: &dyn UserDirectory,
    profile: &SsoProfile,
) -> Result<SsoUser> {
    let existing = if profile.email_verified {
        directory.find_by_email(&profile.email).await?
    } else {
        None
    };
    let user = match existing {
        Some(user) => user,
        None => directory.create(profile).await?,
    };
    module
        .link_actor(&profile.auth_identity_id, "user", &user.id)
        .await?;
    Ok(user)
}

//! Building `auth_module`'s model values from rows.
//!
//! `AuthIdentity` and `ProviderIdentity` are `#[non_exhaustive]` and
//! `auth_module` offers no constructor for them, so another crate cannot write
//! a struct expression. Their fields are public, though, and both derive
//! `Deserialize` and `Clone`: one template of each is deserialized once, and
//! every value is a clone of it with all fields assigned. (If `auth_module`
//! adds constructors, use them instead.)

use std::sync::LazyLock;

use auth_module::{AuthIdentity, Error, Metadata, ProviderIdentity, Result};
use serde_json::json;
use time::OffsetDateTime;

static PROVIDER_TEMPLATE: LazyLock<Result<ProviderIdentity, String>> = LazyLock::new(|| {
    serde_json::from_value(json!({
        "id": "",
        "entity_id": "",
        "provider": "",
        "auth_identity_id": "",
        "user_metadata": null,
        "created_at": "1970-01-01T00:00:00Z",
        "updated_at": "1970-01-01T00:00:00Z",
    }))
    .map_err(|e| e.to_string())
});

static AUTH_TEMPLATE: LazyLock<Result<AuthIdentity, String>> = LazyLock::new(|| {
    serde_json::from_value(json!({
        "id": "",
        "app_metadata": null,
        "provider_identities": [],
        "created_at": "1970-01-01T00:00:00Z",
        "updated_at": "1970-01-01T00:00:00Z",
    }))
    .map_err(|e| e.to_string())
});

fn template<T: Clone>(t: &Result<T, String>, what: &str) -> Result<T> {
    t.clone().map_err(|e| {
        Error::unexpected(format!(
            "auth-store-sql cannot build a {what} with this auth-module: {e}"
        ))
    })
}

/// Every field of a provider identity.
#[derive(Debug)]
pub(crate) struct ProviderParts {
    pub(crate) id: String,
    pub(crate) entity_id: String,
    pub(crate) provider: String,
    pub(crate) auth_identity_id: String,
    pub(crate) user_metadata: Option<Metadata>,
    pub(crate) provider_metadata: Option<Metadata>,
    pub(crate) created_at: OffsetDateTime,
    pub(crate) updated_at: OffsetDateTime,
}

impl ProviderParts {
    pub(crate) fn build(self) -> Result<ProviderIdentity> {
        let mut p = template(&PROVIDER_TEMPLATE, "ProviderIdentity")?;
        p.id = self.id;
        p.entity_id = self.entity_id;
        p.provider = self.provider;
        p.auth_identity_id = self.auth_identity_id;
        p.user_metadata = self.user_metadata;
        p.provider_metadata = self.provider_metadata;
        p.created_at = self.created_at;
        p.updated_at = self.updated_at;
        Ok(p)
    }
}

/// Every field of an auth identity.
#[derive(Debug)]
pub(crate) struct AuthParts {
    pub(crate) id: String,
    pub(crate) app_metadata: Option<Metadata>,
    pub(crate) provider_identities: Vec<ProviderIdentity>,
    pub(crate) created_at: OffsetDateTime,
    pub(crate) updated_at: OffsetDateTime,
}

impl AuthParts {
    pub(crate) fn build(self) -> Result<AuthIdentity> {
        let mut a = template(&AUTH_TEMPLATE, "AuthIdentity")?;
        a.id = self.id;
        a.app_metadata = self.app_metadata;
        a.provider_identities = self.provider_identities;
        a.created_at = self.created_at;
        a.updated_at = self.updated_at;
        Ok(a)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn templates_build() {
        let t = OffsetDateTime::UNIX_EPOCH + time::Duration::seconds(5);
        let p = ProviderParts {
            id: "provid_1".into(),
            entity_id: "a@b.c".into(),
            provider: "emailpass".into(),
            auth_identity_id: "authid_1".into(),
            user_metadata: None,
            provider_metadata: Some(Metadata::new()),
            created_at: t,
            updated_at: t,
        }
        .build()
        .expect("provider identity");
        assert_eq!(p.provider_metadata, Some(Metadata::new()));
        assert_eq!(p.created_at, t);
        let a = AuthParts {
            id: "authid_1".into(),
            app_metadata: None,
            provider_identities: vec![p],
            created_at: t,
            updated_at: t,
        }
        .build()
        .expect("auth identity");
        assert_eq!(a.provider_identities.len(), 1);
        assert_eq!(a.id, "authid_1");
    }
}

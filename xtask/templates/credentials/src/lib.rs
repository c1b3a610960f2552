//! The `{{name}}` provider: a credentials-flow starting point. It lets in the
//! `identifier` of a login body when the options list it, creating the
//! identity on first use. Replace the check with the real one.

use auth_module::{
    AuthOutcome, AuthProvider, AuthRequest, NewProviderIdentity, OptionsError, ProviderFlow,
    ProviderIdentities, ProviderInit, ProviderKind, Result, ValidateOptions, async_trait,
};

/// The kind's identifier (what `resolve` names in the config).
pub const IDENTIFIER: &str = "{{name}}";

/// Options of the `{{name}}` provider.
#[derive(Debug, Clone, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct {{Type}}Options {
    /// Who may log in.
    pub users: Vec<String>,
}

impl ValidateOptions for {{Type}}Options {
    fn validate_options(&self) -> std::result::Result<(), OptionsError> {
        if self.users.is_empty() {
            return Err(OptionsError::new("users", "must list at least one user"));
        }
        Ok(())
    }
}

/// The `{{name}}` provider.
#[derive(Debug)]
pub struct {{Type}}Provider {
    users: Vec<String>,
}

impl ProviderKind for {{Type}}Provider {
    const IDENTIFIER: &'static str = IDENTIFIER;
    const DISPLAY_NAME: &'static str = "{{Type}}";
    const FLOW: ProviderFlow = ProviderFlow::Credentials;
    type Options = {{Type}}Options;

    fn new(init: ProviderInit<{{Type}}Options>) -> std::result::Result<Self, OptionsError> {
        Ok({{Type}}Provider {
            users: init.options.users,
        })
    }
}

#[async_trait]
impl AuthProvider for {{Type}}Provider {
    fn identifier(&self, req: &AuthRequest) -> Option<String> {
        req.body_str("identifier").map(str::to_owned)
    }

    async fn authenticate(
        &self,
        req: AuthRequest,
        ids: &ProviderIdentities,
    ) -> Result<AuthOutcome> {
        let Some(user) = req
            .body_str("identifier")
            .filter(|u| self.users.iter().any(|known| known == u))
        else {
            return Ok(AuthOutcome::wrong_credentials("Invalid credentials"));
        };
        let identity = match ids.find(user).await? {
            Some(identity) => identity,
            None => ids.create(NewProviderIdentity::new(ids.provider(), user)).await?,
        };
        Ok(AuthOutcome::authenticated(identity))
    }
}

auth_module::register_provider!({{Type}}Provider);

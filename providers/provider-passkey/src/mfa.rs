//! A passkey as a second factor (`POST /auth/mfa/factors {"provider": "passkey"}`).
//!
//! The factor's credential belongs to the factor: its record's user handle is
//! the factor id, which no provider identity has, so it never logs in on its
//! own, and it is not listed among the identity's passkeys. Disabling the
//! factor forgets it.

use auth_module::{
    ErrorKind, NewPasskeyCredential, ProviderIdentities, Result, SecondFactor, async_trait,
};
use base64::Engine as _;
use serde_json::Value;
use webauthn_rs_core::proto::{PublicKeyCredential, RegisterPublicKeyCredential};

use super::{
    B64, PasskeyProvider, PendingLogin, PendingRegistration, Read, challenge_of, credential_json,
    parse_credential, public_key_of, stored_credential, webauthn_failure,
};

/// The state key of factor `factor_id`'s enrolment.
fn enrolment_key(factor_id: &str) -> String {
    format!("mfa-enrol:{factor_id}")
}

/// The state key of MFA challenge `challenge_id`'s request options.
fn challenge_key(challenge_id: &str) -> String {
    format!("mfa-challenge:{challenge_id}")
}

#[async_trait]
impl SecondFactor for PasskeyProvider {
    async fn enrolment_options(
        &self,
        auth_identity_id: &str,
        factor_id: &str,
        ids: &ProviderIdentities,
    ) -> Result<Value> {
        let identity = ids.identity(auth_identity_id).await?;
        let name = identity
            .provider_identities
            .iter()
            .find_map(|p| p.user_metadata.as_ref()?.get("email")?.as_str())
            .unwrap_or(auth_identity_id)
            .to_owned();
        let builder = self
            .core
            .new_challenge_register_builder(factor_id.as_bytes(), &name, &name)
            .map_err(webauthn_failure)?
            .user_verification_policy(self.policy)
            .require_resident_key(false);
        let (answer, state) = self
            .core
            .generate_challenge_register(builder)
            .map_err(webauthn_failure)?;
        let pending = PendingRegistration {
            state,
            user_handle: factor_id.to_owned(),
            email: None,
            link_to: Some(auth_identity_id.to_owned()),
        };
        self.keep_pending(ids, &enrolment_key(factor_id), &pending)
            .await?;
        public_key_of(answer)
    }

    async fn enrol(
        &self,
        auth_identity_id: &str,
        factor_id: &str,
        answer: &Value,
        ids: &ProviderIdentities,
    ) -> Result<bool> {
        let store = self.store(ids)?;
        let credential: RegisterPublicKeyCredential = parse_credential(Some(answer))?;
        challenge_of(&credential.response.client_data_json)?;
        let Some(pending) =
            Self::pending::<PendingRegistration>(ids, &enrolment_key(factor_id), Read::Take)
                .await?
        else {
            return Ok(false);
        };
        if pending.link_to.as_deref() != Some(auth_identity_id) {
            return Ok(false);
        }
        let Some(verified) = self.verify_registration(&credential, &pending.state) else {
            return Ok(false);
        };
        let mut new = NewPasskeyCredential::new(
            auth_identity_id,
            ids.provider(),
            B64.encode(&verified.cred_id),
            factor_id,
            credential_json(&verified)?,
        );
        new.name = "MFA passkey".to_owned();
        new.sign_count = verified.counter;
        new.backed_up = verified.backup_state;
        match store.create_passkey(new).await {
            Ok(_) => Ok(true),
            Err(e) if e.kind() == ErrorKind::DuplicateError => Ok(false),
            Err(e) => Err(e),
        }
    }

    async fn challenge_options(
        &self,
        auth_identity_id: &str,
        challenge_id: &str,
        factor_ids: &[String],
        ids: &ProviderIdentities,
    ) -> Result<Value> {
        let store = self.store(ids)?;
        let credentials = store
            .list_passkeys(auth_identity_id)
            .await?
            .iter()
            .filter(|p| p.provider == ids.provider() && factor_ids.contains(&p.user_handle))
            .map(stored_credential)
            .collect::<Result<Vec<_>>>()?;
        let builder = self
            .core
            .new_challenge_authenticate_builder(credentials, Some(self.policy))
            .map_err(webauthn_failure)?;
        let (answer, state) = self
            .core
            .generate_challenge_authenticate(builder)
            .map_err(webauthn_failure)?;
        self.keep_pending(ids, &challenge_key(challenge_id), &PendingLogin { state })
            .await?;
        public_key_of(answer)
    }

    async fn verify(
        &self,
        auth_identity_id: &str,
        challenge_id: &str,
        factor_ids: &[String],
        answer: &Value,
        ids: &ProviderIdentities,
    ) -> Result<bool> {
        let store = self.store(ids)?;
        let credential: PublicKeyCredential = parse_credential(Some(answer))?;
        challenge_of(&credential.response.client_data_json)?;
        // Read, not taken: a wrong answer leaves the challenge answerable;
        // the MFA challenge itself is completed once (compare-and-swap).
        let Some(PendingLogin { state }) =
            Self::pending(ids, &challenge_key(challenge_id), Read::Keep).await?
        else {
            return Ok(false);
        };
        let credential_id = B64.encode(&credential.raw_id);
        let Some(record) = store.find_passkey(ids.provider(), &credential_id).await? else {
            return Ok(false);
        };
        if record.auth_identity_id != auth_identity_id || !factor_ids.contains(&record.user_handle)
        {
            return Ok(false);
        }
        self.check_assertion(&*store, ids, &record, &credential, state)
            .await
    }

    async fn forget(
        &self,
        auth_identity_id: &str,
        factor_id: &str,
        ids: &ProviderIdentities,
    ) -> Result<()> {
        let store = self.store(ids)?;
        for p in store.list_passkeys(auth_identity_id).await? {
            if p.provider == ids.provider() && p.user_handle == factor_id {
                store.delete_passkey(auth_identity_id, &p.id).await?;
            }
        }
        Ok(())
    }
}

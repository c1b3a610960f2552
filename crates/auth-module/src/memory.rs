//! In-memory stores: for tests, quick trials and single-process embedding.
//! Nothing survives the process.
//!
//! The state store removes expired entries as it writes: each writing call
//! first clears a bounded batch of them, soonest expiry first (see
//! [`MemoryStateStore`] for why no background sweep).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use serde_json::Value;
use time::OffsetDateTime;

use crate::error::Result;
use crate::model::{
    AUTH_IDENTITY_PREFIX, AuthIdentity, Metadata, NewProviderIdentity, ProviderIdentity,
    ProviderIdentityUpdate, generate_id,
};
use crate::records::{
    MfaFactor, MfaFactorUpdate, NewMfaFactor, NewPasskeyCredential, NewVerification,
    PASSKEY_PREFIX, PasskeyCredential, PasskeyUse, Verification,
};
use crate::records_security::{
    AUDIT_PREFIX, AuditChainStart, AuditEntry, AuditQuery, DEVICE_PREFIX, Device, NewAuditEntry,
    NewDevice,
};
use crate::store_traits::{
    AuditStore, DeviceStore, IdentityStore, MfaStore, NewAuthIdentity, PasskeyStore, StateStore,
    VerificationStore,
};

#[derive(Debug, Default)]
struct Identities {
    auth: HashMap<String, AuthRow>,
    providers: HashMap<String, ProviderIdentity>,
    /// (provider, entity_id) -> provider identity id
    by_entity: HashMap<(String, String), String>,
    /// MFA factors by id.
    factors: HashMap<String, MfaFactor>,
    /// auth identity id -> recovery-code hashes.
    recovery: HashMap<String, std::collections::HashSet<String>>,
    /// Verification rows by id.
    verifications: HashMap<String, Verification>,
    /// Passkey credentials by id.
    passkeys: HashMap<String, PasskeyCredential>,
    /// Devices by id.
    devices: HashMap<String, Device>,
    /// The audit log, oldest first.
    audit: Vec<AuditEntry>,
    /// Where the audit chain starts after a sweep.
    audit_start: Option<AuditChainStart>,
    /// The `seq` and hash of the newest audit entry ever appended.
    audit_head: Option<(u64, String)>,
}

#[derive(Debug, Clone)]
struct AuthRow {
    id: String,
    app_metadata: Option<Metadata>,
    created_at: OffsetDateTime,
    updated_at: OffsetDateTime,
    credential_version: u64,
}

impl Identities {
    fn assemble(&self, row: &AuthRow) -> AuthIdentity {
        let mut provider_identities: Vec<ProviderIdentity> = self
            .providers
            .values()
            .filter(|p| p.auth_identity_id == row.id)
            .cloned()
            .collect();
        provider_identities.sort_by(|a, b| (a.created_at, &a.id).cmp(&(b.created_at, &b.id)));
        let mut identity = AuthIdentity::new(row.id.clone(), row.created_at);
        identity.app_metadata = row.app_metadata.clone();
        identity.provider_identities = provider_identities;
        identity.updated_at = row.updated_at;
        identity.credential_version = row.credential_version;
        identity.mfa_enabled = Some(self.factors.values().any(|f| {
            f.auth_identity_id == row.id && f.status == crate::records::MfaFactorStatus::Enabled
        }));
        identity
    }

    /// A duplicate error if `new` collides with a stored provider identity or
    /// one of `earlier` (created in the same call).
    fn check_new_provider(
        &self,
        new: &NewProviderIdentity,
        earlier: &mut std::collections::HashSet<(String, String)>,
        earlier_ids: &mut std::collections::HashSet<String>,
    ) -> Result<()> {
        let key = (new.provider.clone(), new.entity_id.clone());
        if self.by_entity.contains_key(&key) || !earlier.insert(key) {
            return Err(duplicate(new));
        }
        if let Some(id) = &new.id
            && (self.providers.contains_key(id) || !earlier_ids.insert(id.clone()))
        {
            return Err(crate::Error::duplicate(format!(
                "ProviderIdentity with id: {id} already exists"
            )));
        }
        Ok(())
    }

    fn insert_provider(&mut self, p: ProviderIdentity) {
        self.by_entity
            .insert((p.provider.clone(), p.entity_id.clone()), p.id.clone());
        self.providers.insert(p.id.clone(), p);
    }
}

use crate::store_traits::{
    auth_identity_not_found as auth_not_found, duplicate_provider_identity as duplicate,
    invalid_app_metadata_key, provider_identity_not_found as provider_not_found,
    provider_metadata_changed, valid_app_metadata_key,
};

/// An [`IdentityStore`] in process memory, with both capabilities
/// ([`MfaStore`], [`VerificationStore`]).
#[derive(Default)]
pub struct MemoryIdentityStore {
    inner: Mutex<Identities>,
}

/// Counts only: the records hold password hashes and sealed secrets.
impl std::fmt::Debug for MemoryIdentityStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut d = f.debug_struct("MemoryIdentityStore");
        if let Ok(inner) = self.inner.try_lock() {
            d.field("auth_identities", &inner.auth.len())
                .field("provider_identities", &inner.providers.len());
        }
        d.finish_non_exhaustive()
    }
}

impl MemoryIdentityStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Identities> {
        // A panic while holding the lock cannot leave the maps half-updated:
        // every mutation below checks first and then inserts.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl MemoryIdentityStore {
    /// Creates an auth identity with its provider identities and `factors`,
    /// all or nothing (one lock).
    fn create(&self, new: NewAuthIdentity, factors: Vec<NewMfaFactor>) -> Result<AuthIdentity> {
        let mut g = self.lock();
        let (mut seen, mut seen_ids) = Default::default();
        for p in &new.provider_identities {
            g.check_new_provider(p, &mut seen, &mut seen_ids)?;
        }
        if let Some(id) = &new.id
            && g.auth.contains_key(id)
        {
            return Err(crate::Error::duplicate(format!(
                "AuthIdentity with id: {id} already exists"
            )));
        }
        let now = OffsetDateTime::now_utc();
        let created_at = new.created_at.unwrap_or(now);
        let row = AuthRow {
            id: new.id.unwrap_or_else(|| generate_id(AUTH_IDENTITY_PREFIX)),
            app_metadata: new.app_metadata,
            created_at,
            updated_at: new.updated_at.unwrap_or(created_at),
            credential_version: 0,
        };
        // Every factor is checked before anything is stored: all or nothing.
        let mut built_factors: Vec<MfaFactor> = Vec::with_capacity(factors.len());
        for mut f in factors {
            f.auth_identity_id = row.id.clone();
            let factor = f.into_factor(now);
            if factor.status.is_active()
                && built_factors
                    .iter()
                    .any(|o| o.provider == factor.provider && o.status.is_active())
            {
                return Err(crate::store::duplicate_mfa_factor(&factor.provider));
            }
            if g.factors.contains_key(&factor.id) || built_factors.iter().any(|o| o.id == factor.id)
            {
                return Err(crate::Error::duplicate(format!(
                    "MfaFactor with id: {} already exists",
                    factor.id
                )));
            }
            built_factors.push(factor);
        }
        for p in new.provider_identities {
            let built = p.into_provider_identity(&row.id, now);
            g.insert_provider(built);
        }
        for factor in built_factors {
            g.factors.insert(factor.id.clone(), factor);
        }
        g.auth.insert(row.id.clone(), row.clone());
        Ok(g.assemble(&row))
    }
}

#[async_trait]
impl IdentityStore for MemoryIdentityStore {
    async fn create_auth_identity(&self, new: NewAuthIdentity) -> Result<AuthIdentity> {
        self.create(new, Vec::new())
    }

    async fn retrieve_auth_identity(&self, id: &str) -> Result<AuthIdentity> {
        let g = self.lock();
        let row = g.auth.get(id).ok_or_else(|| auth_not_found(id))?;
        Ok(g.assemble(row))
    }

    async fn update_app_metadata(
        &self,
        id: &str,
        app_metadata: Option<Metadata>,
    ) -> Result<AuthIdentity> {
        let mut g = self.lock();
        let row = g.auth.get_mut(id).ok_or_else(|| auth_not_found(id))?;
        row.app_metadata = app_metadata;
        row.updated_at = OffsetDateTime::now_utc();
        let row = row.clone();
        Ok(g.assemble(&row))
    }

    async fn patch_app_metadata(
        &self,
        id: &str,
        key: &str,
        value: Option<Value>,
    ) -> Result<AuthIdentity> {
        if !valid_app_metadata_key(key) {
            return Err(invalid_app_metadata_key(key));
        }
        let mut g = self.lock();
        let row = g.auth.get_mut(id).ok_or_else(|| auth_not_found(id))?;
        match value {
            Some(v) => {
                row.app_metadata
                    .get_or_insert_with(Metadata::new)
                    .insert(key.to_owned(), v);
            }
            None => {
                if let Some(m) = row.app_metadata.as_mut() {
                    m.remove(key);
                }
            }
        }
        row.updated_at = OffsetDateTime::now_utc();
        let row = row.clone();
        Ok(g.assemble(&row))
    }

    async fn merge_app_metadata(&self, id: &str, patch: &Metadata) -> Result<AuthIdentity> {
        if let Some(bad) = patch.keys().find(|k| !valid_app_metadata_key(k)) {
            return Err(invalid_app_metadata_key(bad));
        }
        // Under the one lock: the merge is one atomic write.
        let mut g = self.lock();
        let row = g.auth.get_mut(id).ok_or_else(|| auth_not_found(id))?;
        for (key, value) in patch {
            if value.is_null() {
                if let Some(m) = row.app_metadata.as_mut() {
                    m.remove(key);
                }
            } else {
                row.app_metadata
                    .get_or_insert_with(Metadata::new)
                    .insert(key.clone(), value.clone());
            }
        }
        row.updated_at = OffsetDateTime::now_utc();
        let row = row.clone();
        Ok(g.assemble(&row))
    }

    async fn bump_credential_version(&self, id: &str) -> Result<AuthIdentity> {
        let mut g = self.lock();
        let row = g.auth.get_mut(id).ok_or_else(|| auth_not_found(id))?;
        row.credential_version += 1;
        row.updated_at = OffsetDateTime::now_utc();
        let row = row.clone();
        Ok(g.assemble(&row))
    }

    async fn delete_auth_identity(&self, id: &str) -> Result<()> {
        let mut g = self.lock();
        if g.auth.remove(id).is_none() {
            return Err(auth_not_found(id));
        }
        let doomed: Vec<ProviderIdentity> = g
            .providers
            .values()
            .filter(|p| p.auth_identity_id == id)
            .cloned()
            .collect();
        for p in doomed {
            g.providers.remove(&p.id);
            g.by_entity.remove(&(p.provider, p.entity_id));
        }
        g.factors.retain(|_, f| f.auth_identity_id != id);
        g.recovery.remove(id);
        g.verifications.retain(|_, v| v.auth_identity_id != id);
        g.passkeys.retain(|_, p| p.auth_identity_id != id);
        g.devices.retain(|_, d| d.auth_identity_id != id);
        Ok(())
    }

    async fn find_provider_identity(
        &self,
        provider: &str,
        entity_id: &str,
    ) -> Result<Option<ProviderIdentity>> {
        let g = self.lock();
        Ok(g.by_entity
            .get(&(provider.to_owned(), entity_id.to_owned()))
            .and_then(|id| g.providers.get(id))
            .cloned())
    }

    async fn add_provider_identity(
        &self,
        auth_identity_id: &str,
        new: NewProviderIdentity,
    ) -> Result<ProviderIdentity> {
        let mut g = self.lock();
        if !g.auth.contains_key(auth_identity_id) {
            return Err(auth_not_found(auth_identity_id));
        }
        g.check_new_provider(&new, &mut Default::default(), &mut Default::default())?;
        let built = new.into_provider_identity(auth_identity_id, OffsetDateTime::now_utc());
        g.insert_provider(built.clone());
        Ok(built)
    }

    async fn update_provider_identity(
        &self,
        id: &str,
        update: ProviderIdentityUpdate,
    ) -> Result<ProviderIdentity> {
        let mut g = self.lock();
        let p = g
            .providers
            .get_mut(id)
            .ok_or_else(|| provider_not_found(id))?;
        if let Some(expected) = &update.expected_provider_metadata
            && p.provider_metadata != *expected
        {
            return Err(provider_metadata_changed(id));
        }
        if let Some(m) = update.user_metadata {
            p.user_metadata = Some(m);
        }
        if let Some(m) = update.provider_metadata {
            p.provider_metadata = Some(m);
        }
        let now = OffsetDateTime::now_utc();
        p.updated_at = now;
        let p = p.clone();
        if update.bump_credential_version
            && let Some(row) = g.auth.get_mut(&p.auth_identity_id)
        {
            row.credential_version += 1;
            row.updated_at = now;
        }
        Ok(p)
    }

    async fn delete_provider_identity(&self, id: &str) -> Result<()> {
        let mut g = self.lock();
        let p = g
            .providers
            .remove(id)
            .ok_or_else(|| provider_not_found(id))?;
        g.by_entity.remove(&(p.provider, p.entity_id));
        Ok(())
    }

    async fn provider_identity_owner(&self, id: &str) -> Result<Option<String>> {
        Ok(self
            .lock()
            .providers
            .get(id)
            .map(|p| p.auth_identity_id.clone()))
    }

    fn mfa_store(self: Arc<Self>) -> Option<Arc<dyn MfaStore>> {
        Some(self)
    }

    fn passkey_store(self: Arc<Self>) -> Option<Arc<dyn PasskeyStore>> {
        Some(self)
    }

    fn device_store(self: Arc<Self>) -> Option<Arc<dyn DeviceStore>> {
        Some(self)
    }

    fn audit_store(self: Arc<Self>) -> Option<Arc<dyn AuditStore>> {
        Some(self)
    }

    fn verification_store(self: Arc<Self>) -> Option<Arc<dyn VerificationStore>> {
        Some(self)
    }
}

#[async_trait]
impl DeviceStore for MemoryIdentityStore {
    async fn create_device(&self, new: NewDevice) -> Result<Device> {
        let mut g = self.lock();
        if !g.auth.contains_key(&new.auth_identity_id) {
            return Err(auth_not_found(&new.auth_identity_id));
        }
        let now = crate::audit::whole_millis(OffsetDateTime::now_utc());
        let device = new.into_device(generate_id(DEVICE_PREFIX), now);
        g.devices.insert(device.id.clone(), device.clone());
        Ok(device)
    }

    async fn device(&self, auth_identity_id: &str, id: &str) -> Result<Option<Device>> {
        let g = self.lock();
        Ok(g.devices
            .get(id)
            .filter(|d| d.auth_identity_id == auth_identity_id)
            .cloned())
    }

    async fn list_devices(&self, auth_identity_id: &str) -> Result<Vec<Device>> {
        let g = self.lock();
        let mut found: Vec<Device> = g
            .devices
            .values()
            .filter(|d| d.auth_identity_id == auth_identity_id)
            .cloned()
            .collect();
        found.sort_by(|a, b| (a.created_at, &a.id).cmp(&(b.created_at, &b.id)));
        Ok(found)
    }

    async fn touch_device(
        &self,
        auth_identity_id: &str,
        id: &str,
        at: OffsetDateTime,
    ) -> Result<bool> {
        let mut g = self.lock();
        match g.devices.get_mut(id) {
            Some(d) if d.auth_identity_id == auth_identity_id => {
                let at = crate::audit::whole_millis(at);
                if at > d.last_seen_at {
                    d.last_seen_at = at;
                }
                Ok(true)
            }
            _ => Ok(false),
        }
    }

    async fn delete_devices(&self, auth_identity_id: &str, ids: &[String]) -> Result<Vec<String>> {
        let mut g = self.lock();
        let mut deleted = Vec::new();
        for id in ids {
            if g.devices
                .get(id)
                .is_some_and(|d| d.auth_identity_id == auth_identity_id)
            {
                g.devices.remove(id);
                deleted.push(id.clone());
            }
        }
        Ok(deleted)
    }

    async fn delete_idle_devices(
        &self,
        seen_before: OffsetDateTime,
        limit: usize,
    ) -> Result<Vec<(String, String)>> {
        let mut g = self.lock();
        let doomed: Vec<(String, String)> = g
            .devices
            .values()
            .filter(|d| d.last_seen_at < seen_before)
            .take(limit)
            .map(|d| (d.auth_identity_id.clone(), d.id.clone()))
            .collect();
        for (_, id) in &doomed {
            g.devices.remove(id);
        }
        Ok(doomed)
    }
}

#[async_trait]
impl AuditStore for MemoryIdentityStore {
    async fn append_audit(&self, entries: Vec<NewAuditEntry>) -> Result<Vec<AuditEntry>> {
        let mut g = self.lock();
        let now = OffsetDateTime::now_utc();
        let mut out = Vec::with_capacity(entries.len());
        for new in entries {
            let (seq, prev) = match &g.audit_head {
                Some((seq, hash)) => (seq + 1, hash.clone()),
                None => (1, crate::audit::GENESIS.to_owned()),
            };
            let entry = new.into_entry(generate_id(AUDIT_PREFIX), seq, now, prev);
            g.audit_head = Some((seq, entry.hash.clone()));
            g.audit.push(entry.clone());
            out.push(entry);
        }
        Ok(out)
    }

    async fn query_audit(&self, query: &AuditQuery) -> Result<Vec<AuditEntry>> {
        let g = self.lock();
        let limit = query.limit.min(1000);
        Ok(g.audit
            .iter()
            .rev()
            .filter(|e| {
                query.before_seq.is_none_or(|s| e.seq < s)
                    && query
                        .auth_identity_id
                        .as_deref()
                        .is_none_or(|id| e.auth_identity_id.as_deref() == Some(id))
                    && query.action.as_deref().is_none_or(|a| e.action == a)
                    && query.since.is_none_or(|t| e.at >= t)
                    && query.until.is_none_or(|t| e.at < t)
            })
            .take(limit)
            .cloned()
            .collect())
    }

    async fn audit_chain(&self, after_seq: u64, limit: usize) -> Result<Vec<AuditEntry>> {
        let g = self.lock();
        Ok(g.audit
            .iter()
            .filter(|e| e.seq > after_seq)
            .take(limit)
            .cloned()
            .collect())
    }

    async fn audit_chain_start(&self) -> Result<Option<AuditChainStart>> {
        Ok(self.lock().audit_start.clone())
    }

    async fn prune_audit(&self, before: OffsetDateTime) -> Result<u64> {
        let mut g = self.lock();
        let keep_from = g
            .audit
            .iter()
            .position(|e| e.at >= before)
            .unwrap_or(g.audit.len())
            .min(g.audit.len().saturating_sub(1));
        if keep_from == 0 {
            return Ok(0);
        }
        let first = &g.audit[keep_from];
        g.audit_start = Some(AuditChainStart::new(first.seq, first.prev_hash.clone()));
        g.audit.drain(..keep_from);
        Ok(keep_from as u64)
    }
}

/// Passkeys oldest first (by creation time, then id).
fn oldest_first(mut found: Vec<PasskeyCredential>) -> Vec<PasskeyCredential> {
    found.sort_by(|a, b| (a.created_at, &a.id).cmp(&(b.created_at, &b.id)));
    found
}

#[async_trait]
impl PasskeyStore for MemoryIdentityStore {
    async fn create_passkey(&self, new: NewPasskeyCredential) -> Result<PasskeyCredential> {
        let mut g = self.lock();
        if !g.auth.contains_key(&new.auth_identity_id) {
            return Err(auth_not_found(&new.auth_identity_id));
        }
        if g.passkeys
            .values()
            .any(|p| p.provider == new.provider && p.credential_id == new.credential_id)
        {
            return Err(crate::store::duplicate_passkey());
        }
        let record = new.into_credential(generate_id(PASSKEY_PREFIX), OffsetDateTime::now_utc());
        g.passkeys.insert(record.id.clone(), record.clone());
        Ok(record)
    }

    async fn find_passkey(
        &self,
        provider: &str,
        credential_id: &str,
    ) -> Result<Option<PasskeyCredential>> {
        let g = self.lock();
        Ok(g.passkeys
            .values()
            .find(|p| p.provider == provider && p.credential_id == credential_id)
            .cloned())
    }

    async fn list_passkeys(&self, auth_identity_id: &str) -> Result<Vec<PasskeyCredential>> {
        let g = self.lock();
        Ok(oldest_first(
            g.passkeys
                .values()
                .filter(|p| p.auth_identity_id == auth_identity_id)
                .cloned()
                .collect(),
        ))
    }

    async fn passkeys_for_email(
        &self,
        provider: &str,
        email: &str,
    ) -> Result<Vec<PasskeyCredential>> {
        let g = self.lock();
        Ok(oldest_first(
            g.passkeys
                .values()
                .filter(|p| p.provider == provider && p.email.as_deref() == Some(email))
                .cloned()
                .collect(),
        ))
    }

    async fn record_passkey_use(
        &self,
        id: &str,
        expected_sign_count: u32,
        used: PasskeyUse,
    ) -> Result<Option<PasskeyCredential>> {
        let mut g = self.lock();
        let Some(p) = g.passkeys.get_mut(id) else {
            return Ok(None);
        };
        if p.sign_count != expected_sign_count {
            return Ok(None);
        }
        p.sign_count = used.sign_count;
        p.credential = used.credential;
        p.backed_up = used.backed_up;
        p.last_used_at = Some(used.at);
        Ok(Some(p.clone()))
    }

    async fn rename_passkey(
        &self,
        auth_identity_id: &str,
        id: &str,
        name: &str,
    ) -> Result<Option<PasskeyCredential>> {
        let mut g = self.lock();
        match g.passkeys.get_mut(id) {
            Some(p) if p.auth_identity_id == auth_identity_id => {
                p.name = name.to_owned();
                Ok(Some(p.clone()))
            }
            _ => Ok(None),
        }
    }

    async fn delete_passkey(&self, auth_identity_id: &str, id: &str) -> Result<bool> {
        let mut g = self.lock();
        if g.passkeys
            .get(id)
            .is_some_and(|p| p.auth_identity_id == auth_identity_id)
        {
            g.passkeys.remove(id);
            return Ok(true);
        }
        Ok(false)
    }
}

#[async_trait]
impl MfaStore for MemoryIdentityStore {
    async fn create_auth_identity_with_mfa(
        &self,
        new: NewAuthIdentity,
        factors: Vec<NewMfaFactor>,
    ) -> Result<AuthIdentity> {
        self.create(new, factors)
    }

    async fn create_mfa_factor(&self, new: NewMfaFactor) -> Result<MfaFactor> {
        let mut g = self.lock();
        if !g.auth.contains_key(&new.auth_identity_id) {
            return Err(auth_not_found(&new.auth_identity_id));
        }
        let factor = new.into_factor(OffsetDateTime::now_utc());
        if g.factors.values().any(|f| {
            f.auth_identity_id == factor.auth_identity_id
                && f.provider == factor.provider
                && f.status.is_active()
                && factor.status.is_active()
        }) {
            return Err(crate::store::duplicate_mfa_factor(&factor.provider));
        }
        if g.factors.contains_key(&factor.id) {
            return Err(crate::Error::duplicate(format!(
                "MfaFactor with id: {} already exists",
                factor.id
            )));
        }
        g.factors.insert(factor.id.clone(), factor.clone());
        Ok(factor)
    }

    async fn list_mfa_factors(&self, auth_identity_id: &str) -> Result<Vec<MfaFactor>> {
        let g = self.lock();
        let mut out: Vec<MfaFactor> = g
            .factors
            .values()
            .filter(|f| f.auth_identity_id == auth_identity_id)
            .cloned()
            .collect();
        out.sort_by(|a, b| (a.created_at, &a.id).cmp(&(b.created_at, &b.id)));
        Ok(out)
    }

    async fn update_mfa_factor(
        &self,
        id: &str,
        update: MfaFactorUpdate,
    ) -> Result<Option<MfaFactor>> {
        let mut g = self.lock();
        if let (Some(f), Some(to)) = (g.factors.get(id), update.status)
            && to.is_active()
            && !f.status.is_active()
            && update.applies_to(f)
            && g.factors.values().any(|o| {
                o.id != f.id
                    && o.auth_identity_id == f.auth_identity_id
                    && o.provider == f.provider
                    && o.status.is_active()
            })
        {
            // One active factor per identity and provider, as on creation.
            return Err(crate::store::duplicate_mfa_factor(&f.provider));
        }
        match g.factors.get_mut(id) {
            Some(f) if update.applies_to(f) => {
                update.apply(f, OffsetDateTime::now_utc());
                Ok(Some(f.clone()))
            }
            _ => Ok(None),
        }
    }

    async fn replace_recovery_codes(
        &self,
        auth_identity_id: &str,
        hashes: Vec<String>,
    ) -> Result<()> {
        let mut g = self.lock();
        if !g.auth.contains_key(auth_identity_id) {
            return Err(auth_not_found(auth_identity_id));
        }
        if hashes.is_empty() {
            g.recovery.remove(auth_identity_id);
        } else {
            g.recovery
                .insert(auth_identity_id.to_owned(), hashes.into_iter().collect());
        }
        Ok(())
    }

    async fn consume_recovery_code(
        &self,
        auth_identity_id: &str,
        candidates: &[String],
    ) -> Result<bool> {
        let mut g = self.lock();
        let Some(codes) = g.recovery.get_mut(auth_identity_id) else {
            return Ok(false);
        };
        Ok(candidates.iter().any(|c| codes.remove(c)))
    }

    async fn count_recovery_codes(&self, auth_identity_id: &str) -> Result<u64> {
        Ok(self
            .lock()
            .recovery
            .get(auth_identity_id)
            .map_or(0, |c| c.len() as u64))
    }
}

#[async_trait]
impl VerificationStore for MemoryIdentityStore {
    async fn request_verification(&self, new: NewVerification) -> Result<Verification> {
        let mut g = self.lock();
        if !g.auth.contains_key(&new.auth_identity_id) {
            return Err(auth_not_found(&new.auth_identity_id));
        }
        let now = OffsetDateTime::now_utc();
        let existing = g.verifications.values_mut().find(|v| {
            v.auth_identity_id == new.auth_identity_id
                && v.entity_id == new.entity_id
                && v.entity_type == new.entity_type
        });
        if let Some(v) = existing {
            if v.verified_at.is_none() {
                v.code_provider = new.code_provider;
                v.code_hash = Some(new.code_hash);
                v.requested_at = Some(new.requested_at);
                v.expires_at = Some(new.expires_at);
                v.metadata = new.metadata;
                v.updated_at = now;
            }
            return Ok(v.clone());
        }
        let row = new.into_verification(now);
        g.verifications.insert(row.id.clone(), row.clone());
        Ok(row)
    }

    async fn find_verification(
        &self,
        auth_identity_id: &str,
        entity_id: &str,
        entity_type: &str,
    ) -> Result<Option<Verification>> {
        Ok(self
            .lock()
            .verifications
            .values()
            .find(|v| {
                v.auth_identity_id == auth_identity_id
                    && v.entity_id == entity_id
                    && v.entity_type == entity_type
            })
            .cloned())
    }

    async fn confirm_verification(
        &self,
        code_hash: &str,
        code_provider: &str,
        now: OffsetDateTime,
    ) -> Result<Option<Verification>> {
        let mut g = self.lock();
        let found = g.verifications.values_mut().find(|v| {
            v.code_hash.as_deref() == Some(code_hash)
                && v.verified_at.is_none()
                && v.code_provider == code_provider
                && v.expires_at.is_some_and(|e| e > now)
        });
        Ok(found.map(|v| {
            v.verified_at = Some(now);
            v.code_hash = None;
            v.updated_at = now;
            v.clone()
        }))
    }

    async fn verification_by_code(&self, code_hash: &str) -> Result<Option<Verification>> {
        Ok(self
            .lock()
            .verifications
            .values()
            .find(|v| v.code_hash.as_deref() == Some(code_hash))
            .cloned())
    }
}

/// A [`StateStore`] in process memory.
///
/// Expired entries are dropped when read, and every writing call (`set`,
/// `take`, `delete`, `increment`, `compare_and_swap`) first removes up to 64
/// expired entries, soonest expiry first, found through an index ordered by
/// expiry. A write adds at most one entry and clears up to 64 dead ones, so
/// whatever the mix of calls (a flood of counters, or of redirect-login
/// starts whose state is never read again) dead entries go as fast as they
/// come, and no call does more than a bounded amount of work. There is no
/// background task: the store needs no runtime and nothing to stop, and
/// without writes nothing grows.
#[derive(Default)]
pub struct MemoryStateStore {
    inner: Mutex<StateMap>,
}

/// Counts only: the values are sessions, reset tickets and OAuth state.
impl std::fmt::Debug for MemoryStateStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut d = f.debug_struct("MemoryStateStore");
        if let Ok(inner) = self.inner.try_lock() {
            d.field("entries", &inner.entries.len());
        }
        d.finish_non_exhaustive()
    }
}

/// The most expired entries one writing call removes.
const SWEEP_BATCH: usize = 64;

#[derive(Debug, Default)]
struct StateMap {
    entries: HashMap<String, (Value, Instant)>,
    /// `(expiry, key)` of every entry, soonest first.
    by_expiry: std::collections::BTreeSet<(Instant, String)>,
}

impl StateMap {
    /// The value under `key` and its expiry, if it has not expired.
    fn live(&self, key: &str, now: Instant) -> Option<&(Value, Instant)> {
        self.entries.get(key).filter(|(_, exp)| *exp > now)
    }

    /// Stores `value` under `key` until `expires`.
    fn put(&mut self, key: &str, value: Value, expires: Instant) {
        match self.entries.insert(key.to_owned(), (value, expires)) {
            Some((_, old)) if old == expires => {}
            Some((_, old)) => {
                self.by_expiry.remove(&(old, key.to_owned()));
                self.by_expiry.insert((expires, key.to_owned()));
            }
            None => {
                self.by_expiry.insert((expires, key.to_owned()));
            }
        }
    }

    /// Removes `key`, live or not.
    fn remove(&mut self, key: &str) -> Option<(Value, Instant)> {
        let (value, expires) = self.entries.remove(key)?;
        self.by_expiry.remove(&(expires, key.to_owned()));
        Some((value, expires))
    }

    /// Removes up to [`SWEEP_BATCH`] entries expired at `now`.
    fn sweep(&mut self, now: Instant) {
        for _ in 0..SWEEP_BATCH {
            if self.by_expiry.first().is_none_or(|(exp, _)| *exp > now) {
                break;
            }
            if let Some((_, key)) = self.by_expiry.pop_first() {
                self.entries.remove(&key);
            }
        }
    }
}

impl MemoryStateStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    /// How many entries the store holds, expired ones not yet removed
    /// included: for tests and monitoring.
    pub fn entry_count(&self) -> usize {
        self.lock().entries.len()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, StateMap> {
        // Each mutation keeps the map and its index in step before it can
        // panic (only on allocation), so a poisoned lock is still usable.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The lock, after removing some expired entries: every write starts here.
    fn lock_for_write(&self, now: Instant) -> std::sync::MutexGuard<'_, StateMap> {
        let mut g = self.lock();
        g.sweep(now);
        g
    }
}

#[async_trait]
impl StateStore for MemoryStateStore {
    async fn set(&self, key: &str, value: Value, ttl: Duration) -> Result<()> {
        let now = Instant::now();
        self.lock_for_write(now).put(key, value, expiry(now, ttl));
        Ok(())
    }

    async fn get(&self, key: &str) -> Result<Option<Value>> {
        let g = self.lock();
        Ok(g.live(key, Instant::now()).map(|(v, _)| v.clone()))
    }

    async fn take(&self, key: &str) -> Result<Option<Value>> {
        let now = Instant::now();
        Ok(self
            .lock_for_write(now)
            .remove(key)
            .filter(|(_, exp)| *exp > now)
            .map(|(v, _)| v))
    }

    async fn delete(&self, key: &str) -> Result<bool> {
        let now = Instant::now();
        Ok(self
            .lock_for_write(now)
            .remove(key)
            .is_some_and(|(_, exp)| exp > now))
    }

    async fn increment(&self, key: &str, by: u64, ttl: Duration) -> Result<u64> {
        let now = Instant::now();
        let mut g = self.lock_for_write(now);
        let live = g
            .live(key, now)
            .map(|(v, exp)| (v.as_u64().unwrap_or(0), *exp));
        let (value, expires) = match live {
            Some((current, exp)) => (current.saturating_add(by), exp),
            None => (by, expiry(now, ttl)),
        };
        g.put(key, Value::from(value), expires);
        Ok(value)
    }

    async fn compare_and_swap(
        &self,
        key: &str,
        expected: Option<&Value>,
        new: Option<Value>,
        ttl: Duration,
    ) -> Result<bool> {
        let now = Instant::now();
        let mut g = self.lock_for_write(now);
        if g.live(key, now).map(|(v, _)| v) != expected {
            return Ok(false);
        }
        match new {
            Some(v) => g.put(key, v, expiry(now, ttl)),
            None => {
                g.remove(key);
            }
        }
        Ok(true)
    }
}

/// `now + ttl`, or a year from now when that overflows.
fn expiry(now: Instant, ttl: Duration) -> Instant {
    now.checked_add(ttl)
        .unwrap_or(now + Duration::from_secs(86400 * 365))
}

#[cfg(test)]
mod state_tests {
    use super::*;

    /// `Debug` shows counts, never what the stores hold.
    #[tokio::test]
    async fn debug_shows_no_secrets() {
        let identities = MemoryIdentityStore::new();
        let mut first = NewProviderIdentity::new("jane@example.com", "emailpass");
        let mut secret = Metadata::new();
        secret.insert("password".into(), Value::from("$argon2id$SECRET-HASH"));
        first.provider_metadata = Some(secret);
        identities
            .create_auth_identity(NewAuthIdentity::with_provider_identity(first))
            .await
            .unwrap();
        let shown = format!("{identities:?}");
        assert!(
            !shown.contains("SECRET-HASH") && !shown.contains("jane"),
            "{shown}"
        );
        assert!(shown.contains("auth_identities: 1"), "{shown}");
        let state = MemoryStateStore::new();
        state
            .set(
                "session-h:x",
                Value::from("SESSION-CLAIMS"),
                Duration::from_secs(60),
            )
            .await
            .unwrap();
        let shown = format!("{state:?}");
        assert!(
            !shown.contains("SESSION-CLAIMS") && !shown.contains("session-h"),
            "{shown}"
        );
    }

    /// The index follows every write: replaced expiries leave no stale
    /// index entries, and a sweep removes expired entries from both.
    #[tokio::test]
    async fn the_expiry_index_follows_the_map() {
        let store = MemoryStateStore::new();
        let short = Duration::from_millis(30);
        store.set("a", Value::from(1), short).await.unwrap();
        store
            .set("a", Value::from(2), Duration::from_secs(60))
            .await
            .unwrap();
        store.increment("n", 1, short).await.unwrap();
        store.increment("n", 1, short).await.unwrap();
        {
            let g = store.lock();
            assert_eq!((g.entries.len(), g.by_expiry.len()), (2, 2));
        }
        tokio::time::sleep(Duration::from_millis(60)).await;
        assert!(!store.delete("missing").await.unwrap());
        let g = store.lock();
        assert_eq!((g.entries.len(), g.by_expiry.len()), (1, 1), "n was swept");
        assert!(g.entries.contains_key("a"));
    }

    /// One write removes at most a batch; a backlog drains over a few.
    #[tokio::test]
    async fn a_write_sweeps_a_bounded_batch() {
        let store = MemoryStateStore::new();
        for i in 0..(SWEEP_BATCH * 2 + 1) {
            store
                .increment(&format!("k{i}"), 1, Duration::from_millis(20))
                .await
                .unwrap();
        }
        tokio::time::sleep(Duration::from_millis(40)).await;
        assert!(store.take("missing").await.unwrap().is_none());
        assert_eq!(store.entry_count(), SWEEP_BATCH + 1);
        store
            .compare_and_swap("c", None, None, Duration::from_secs(1))
            .await
            .unwrap();
        store
            .compare_and_swap("c", None, None, Duration::from_secs(1))
            .await
            .unwrap();
        assert_eq!(store.entry_count(), 0);
    }
}

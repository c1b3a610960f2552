#![doc = include_str!("../README.md")]

pub mod accounts;
pub mod audit;
mod cache;
mod config;
mod digest;
mod error;
pub mod events;
pub mod flows;
pub mod gate;
mod jwt_keys;
mod memory;
pub mod mfa;
mod model;
mod module;
mod provider;
mod random;
mod records;
mod records_security;
mod registry;
mod shared_cache;
mod state_keys;
pub mod store;
mod store_traits;
mod token;

pub use async_trait::async_trait;

pub use cache::CachedIdentityStore;
pub use config::{
    AuditConfig, Config, ConfigDocument, Format, Limit, LimitsConfig, MfaConfig, MfaDisablePolicy,
    MfaProviders, ProviderConfig, Secret, StateConfig, StoreConfig, TotpConfig, VerificationRule,
    deserialize_duration, section_defaults,
};
pub use error::{ConfigError, Error, ErrorKind, OptionsError, Result};
pub use gate::{AuthMethod, AuthPolicy, Gate};
pub use jwt_keys::{JwtAlgorithm, KeyPairSigner, PublicKeyVerifier, VerifyUntil};
pub use memory::{MemoryIdentityStore, MemoryStateStore};
pub use model::{
    AUTH_IDENTITY_PREFIX, AuthIdentity, Metadata, NewProviderIdentity, PROVIDER_IDENTITY_PREFIX,
    ProviderIdentity, ProviderIdentityUpdate, generate_id,
};
pub use module::{AuthModule, AuthModuleBuilder, LoginOutcome, ProviderInfo};
pub use provider::{
    AuthOutcome, AuthProvider, AuthRequest, ProviderFlow, ProviderIdentities, ProviderInit,
    ProviderKind, SecondFactor, ValidateOptions,
};
pub use records::{
    MFA_FACTOR_PREFIX, MfaFactor, MfaFactorStatus, MfaFactorUpdate, NewMfaFactor,
    NewPasskeyCredential, NewVerification, PASSKEY_PREFIX, PasskeyCredential, PasskeyUse,
    VERIFICATION_PREFIX, Verification,
};
pub use records_security::{
    AUDIT_PREFIX, AuditChainStart, AuditEntry, AuditQuery, DEVICE_PREFIX, Device, DeviceTally,
    NewAuditEntry, NewDevice,
};
pub use registry::{ProviderRegistration, Registry, linked_providers};
pub use shared_cache::SharedIdentityCache;
pub use store_traits::{
    AuditStore, DeviceStore, IdentityStore, MfaStore, NewAuthIdentity, PasskeyStore, StateStore,
    VerificationStore,
};
pub use token::{AuthClaims, Hs256Signer, RESET_TOKEN_TTL, ResetClaims, Signer, Step, Tokens};

#[doc(hidden)]
pub mod __private {
    pub use inventory;
}

//! The `[auth]` section: who may call pgward over HTTP.

use serde::Deserialize;

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct AuthConfig {
    /// Clock skew tolerated on `exp` and `nbf`, in seconds.
    pub leeway_secs: u64,
    /// Trusted token issuers (several may be configured).
    pub issuers: Vec<IssuerConfig>,
    /// API keys for machine clients; only a hash of each key is stored.
    pub api_keys: Vec<ApiKeyConfig>,
    /// Client certificates (mutual TLS, `http.tls.client_ca_file`) that authenticate a caller,
    /// by the common name of the certificate's subject.
    pub client_certs: Vec<ClientCertConfig>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct ClientCertConfig {
    /// The subject's common name (CN), exactly; it becomes the principal's subject.
    pub common_name: String,
    pub scopes: Vec<String>,
    /// Claims this caller carries to the data, as a token would.
    #[serde(default)]
    pub claims: std::collections::BTreeMap<String, String>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct IssuerConfig {
    /// The exact `iss` claim.
    pub issuer: String,
    /// Accepted algorithms, pinned: `HS256`, `RS256`, `ES256`, `EdDSA` (no mixing HMAC with
    /// public-key algorithms in one issuer).
    pub algorithms: Vec<String>,
    /// HS256 secret; must be written as `${ENV_VAR}`.
    #[serde(default)]
    pub hs256_secret: Option<String>,
    /// PEM file with the issuer's public key (RS256, ES256, EdDSA).
    #[serde(default)]
    pub public_key_file: Option<String>,
    /// `https://` URL of the issuer's JSON Web Key Set (instead of `public_key_file`): fetched
    /// at start-up (pgward does not start without it), refreshed every `jwks_refresh_secs`, and
    /// fetched again early when a token names a `kid` the cached set lacks.
    #[serde(default)]
    pub jwks_url: Option<String>,
    /// PEM file of the CA certificate(s) to trust for `jwks_url`, instead of the system's trust
    /// store (for an identity provider behind a private CA).
    #[serde(default)]
    pub jwks_ca_file: Option<String>,
    /// Seconds between scheduled fetches of `jwks_url`. Default 300; 60 to 86400.
    #[serde(default)]
    pub jwks_refresh_secs: Option<u64>,
    /// Expected `aud`; defaults to `http.public_url` (RFC 8707 resource indicator).
    #[serde(default)]
    pub audience: Option<String>,
    /// Claim holding the scopes: a space-separated string or an array. Default `scope`.
    #[serde(default)]
    pub scope_claim: Option<String>,
    /// Required JWT `typ` header, e.g. `at+jwt` (RFC 9068 access tokens), compared without
    /// case and with or without the `application/` prefix. Default: not checked.
    #[serde(default)]
    pub require_typ: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct ApiKeyConfig {
    /// Who the key belongs to (recorded as the principal).
    pub subject: String,
    /// Hex SHA-256 of the key, as printed by `pgward hash-key`.
    pub key_sha256: String,
    pub scopes: Vec<String>,
    /// Claims this caller carries to the data (row filters, bound parameters, session
    /// settings), as a token would.
    #[serde(default)]
    pub claims: std::collections::BTreeMap<String, String>,
}

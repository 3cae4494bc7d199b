//! Credential verification (CORE): a credential, the configured keys and the caller's clock in;
//! a [`Principal`] or a stable [`AuthFailure`] reason out.
//!
//! Nothing here reads files, the environment or the network: the HTTP edge resolves secrets and
//! reads PEM files, hands the bytes to [`Authenticator::new`], and passes `now` to
//! [`Authenticator::authenticate`].
//!
//! INVARIANT (DESIGN §3.6): a JWT is accepted only if its header `alg` is one the issuer pinned,
//! its signature verifies under that issuer's key, `iss` matches exactly, `aud` contains this
//! server's audience, `exp` is present and not past, and `nbf` (when present) has arrived, the
//! last two measured against the caller's clock with the configured leeway. No part of a
//! credential is ever put in an error, a log line or a [`Debug`](std::fmt::Debug) output.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt;
use std::sync::{Arc, PoisonError, RwLock};

use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, Jwk, PublicKeyUse};
use jsonwebtoken::{Algorithm, AlgorithmFamily, DecodingKey, Validation};
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};
use subtle::{ConditionallySelectable, ConstantTimeEq};

use crate::auth::config::{AuthConfig, IssuerConfig};

/// Every pgward API key starts with this; anything else is treated as a JWT.
pub const API_KEY_PREFIX: &str = "pgw_";
/// Longer credentials are refused before any decoding work is done.
const MAX_CREDENTIAL_LEN: usize = 16 * 1024;
/// RFC 7518 §3.2: an HS256 key must be at least as long as the hash output.
const MIN_HS256_SECRET_LEN: usize = 32;
/// 2048-bit RSA moduli and up.
const MIN_RSA_MODULUS_BYTES: usize = 256;
/// More clock skew than this is a weakening, not a tolerance.
const MAX_LEEWAY_SECS: u64 = 300;
const DEFAULT_SCOPE_CLAIM: &str = "scope";
const SUPPORTED_ALGORITHMS: &str = "`HS256`, `RS256`, `ES256`, `EdDSA`";

/// How a caller proved who it is.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub enum AuthMethod {
    Jwt,
    ApiKey,
    /// A client certificate verified in the TLS handshake (mutual TLS).
    ClientCert,
    Stdio,
}

/// An authenticated caller.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Principal {
    pub subject: String,
    /// The token's `iss`; `None` for API keys and stdio.
    pub issuer: Option<String>,
    pub method: AuthMethod,
    pub scopes: BTreeSet<String>,
    /// Claims that can reach the data (bound parameters, session settings, row filters): a
    /// token's top-level string, integer and boolean claims, or the `claims` configured for an
    /// API key, a client certificate or the stdio principal.
    pub claims: BTreeMap<String, String>,
}

impl Principal {
    /// The identity of a local stdio session, taken from the environment by the caller.
    pub fn stdio(name: &str, scopes: impl IntoIterator<Item = String>) -> Self {
        Self {
            subject: name.to_owned(),
            issuer: None,
            method: AuthMethod::Stdio,
            scopes: scopes.into_iter().collect(),
            claims: BTreeMap::new(),
        }
    }
}

/// Registered claims, never bound to data (they describe the token, not the caller's data).
const REGISTERED_CLAIMS: [&str; 7] = ["iss", "sub", "aud", "exp", "nbf", "iat", "jti"];
/// At most this many claims are kept from a token, each value at most this long.
const MAX_CLAIMS: usize = 64;
const MAX_CLAIM_LEN: usize = 256;

/// The claims a principal carries to the data layer: top-level strings, integers and booleans
/// with plain names, bounded in number and size; registered claims and the scope claim are
/// left out.
fn data_claims(claims: &Map<String, Value>, scope_claim: &str) -> BTreeMap<String, String> {
    claims
        .iter()
        .filter(|(k, _)| !REGISTERED_CLAIMS.contains(&k.as_str()) && k.as_str() != scope_claim)
        .filter(|(k, _)| crate::config::validate::valid_claim_name(k))
        .filter_map(|(k, v)| {
            let text = match v {
                Value::String(s) => s.clone(),
                Value::Number(n) if n.is_i64() || n.is_u64() => n.to_string(),
                Value::Bool(b) => b.to_string(),
                _ => return None,
            };
            (text.len() <= MAX_CLAIM_LEN).then(|| (k.clone(), text))
        })
        .take(MAX_CLAIMS)
        .collect()
}

/// Why authentication failed: a stable reason code for the audit log. Clients only ever get a
/// generic 401; never put the token or any part of it in a reason.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum AuthFailure {
    #[error("no credential")]
    Missing,
    #[error("malformed credential")]
    Malformed,
    #[error("untrusted issuer")]
    UnknownIssuer,
    #[error("bad signature")]
    BadSignature,
    #[error("expired token")]
    Expired,
    #[error("token not yet valid")]
    NotYetValid,
    #[error("wrong audience")]
    WrongAudience,
    #[error("algorithm not allowed")]
    AlgorithmNotAllowed,
    #[error("unknown api key")]
    UnknownApiKey,
    #[error("missing required claim")]
    MissingClaim,
    #[error("wrong token type")]
    WrongTokenType,
    #[error("no key with that id")]
    UnknownKey,
    #[error("client certificate not mapped to a principal")]
    UnknownClientCert,
}

impl AuthFailure {
    /// Every variant, for exhaustive tests and documentation.
    pub const ALL: [AuthFailure; 13] = [
        AuthFailure::Missing,
        AuthFailure::Malformed,
        AuthFailure::UnknownIssuer,
        AuthFailure::BadSignature,
        AuthFailure::Expired,
        AuthFailure::NotYetValid,
        AuthFailure::WrongAudience,
        AuthFailure::AlgorithmNotAllowed,
        AuthFailure::UnknownApiKey,
        AuthFailure::MissingClaim,
        AuthFailure::WrongTokenType,
        AuthFailure::UnknownKey,
        AuthFailure::UnknownClientCert,
    ];

    /// Stable snake_case reason code for the audit log.
    pub fn code(self) -> &'static str {
        match self {
            AuthFailure::Missing => "missing_token",
            AuthFailure::Malformed => "malformed_token",
            AuthFailure::UnknownIssuer => "unknown_issuer",
            AuthFailure::BadSignature => "bad_signature",
            AuthFailure::Expired => "expired_token",
            AuthFailure::NotYetValid => "token_not_yet_valid",
            AuthFailure::WrongAudience => "wrong_audience",
            AuthFailure::AlgorithmNotAllowed => "algorithm_not_allowed",
            AuthFailure::UnknownApiKey => "unknown_api_key",
            AuthFailure::MissingClaim => "missing_claim",
            AuthFailure::WrongTokenType => "wrong_token_type",
            AuthFailure::UnknownKey => "unknown_key",
            AuthFailure::UnknownClientCert => "unknown_client_certificate",
        }
    }
}

/// Key material for one issuer, resolved by the caller (the EDGE reads files and env, then calls
/// [`Authenticator::new`]).
#[derive(Clone, Default)]
pub struct IssuerKeys {
    /// The resolved `hs256_secret`.
    pub hs256_secret: Option<Vec<u8>>,
    /// The contents of `public_key_file`.
    pub public_key_pem: Option<Vec<u8>>,
}

impl fmt::Debug for IssuerKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IssuerKeys")
            .field(
                "hs256_secret",
                &self.hs256_secret.as_ref().map(|_| "<redacted>"),
            )
            .field(
                "public_key_pem",
                &self.public_key_pem.as_ref().map(|p| p.len()),
            )
            .finish()
    }
}

/// An issuer's verification key: fixed at start-up, or the latest JSON Web Key Set.
enum IssuerKey {
    Static(DecodingKey),
    Jwks(JwksHandle),
}

/// One usable key of a JSON Web Key Set.
struct SetKey {
    kid: Option<String>,
    /// The JWK's `alg`, when it names one; a token must then use exactly that algorithm.
    alg: Option<Algorithm>,
    key: DecodingKey,
}

/// A JSON Web Key Set, filtered to the keys the issuer may sign with under its pinned
/// algorithms. Built by [`JwksHandle::install`] from the bytes the EDGE fetched.
#[derive(Default)]
struct KeySet {
    keys: Vec<SetKey>,
}

/// Allowed `jwks_refresh_secs`, and the default.
pub const JWKS_REFRESH_RANGE_SECS: std::ops::RangeInclusive<u64> = 60..=86_400;
pub const JWKS_REFRESH_DEFAULT_SECS: u64 = 300;

/// At most this many keys in one set (providers publish a handful, current and next).
const MAX_JWKS_KEYS: usize = 64;

/// The live key set of one `jwks_url` issuer, shared by the [`Authenticator`] (which reads it on
/// every token) and the EDGE fetcher (which installs each fresh set). A failed install leaves the
/// previous set in place.
#[derive(Clone)]
pub struct JwksHandle {
    /// Position in `auth.issuers`.
    pub index: usize,
    /// The issuer's `iss`.
    pub issuer: String,
    algorithms: Vec<Algorithm>,
    slot: Arc<RwLock<Arc<KeySet>>>,
}

impl fmt::Debug for JwksHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JwksHandle")
            .field("index", &self.index)
            .field("issuer", &self.issuer)
            .field("keys", &self.len())
            .finish()
    }
}

impl JwksHandle {
    /// Parses a JWKS document and, if it holds at least one usable key, makes it the issuer's
    /// key set. Returns how many keys are now in use; on error the old set stays.
    pub fn install(&self, json: &[u8]) -> Result<usize, String> {
        let set = parse_jwks(json, &self.algorithms)?;
        let n = set.keys.len();
        *self.slot.write().unwrap_or_else(PoisonError::into_inner) = Arc::new(set);
        Ok(n)
    }

    /// Keys in the current set (0 before the first successful install).
    pub fn len(&self) -> usize {
        self.current().keys.len()
    }

    /// True before the first successful install.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn current(&self) -> Arc<KeySet> {
        Arc::clone(&self.slot.read().unwrap_or_else(PoisonError::into_inner))
    }
}

/// Keeps the JWKs that fit the pinned algorithms: `use` absent or `sig`, `alg` absent or
/// pinned, the key type and curve of the pinned family, RSA at least 2048 bits. Other keys
/// (encryption keys, other algorithms, types pgward does not know) are skipped; a set with no
/// usable key, too many keys, or two usable keys with one `kid` is refused.
fn parse_jwks(json: &[u8], algorithms: &[Algorithm]) -> Result<KeySet, String> {
    let doc: Value =
        serde_json::from_slice(json).map_err(|_| "the key set is not JSON".to_string())?;
    let entries = doc
        .get("keys")
        .and_then(Value::as_array)
        .ok_or_else(|| "the key set has no `keys` array".to_string())?;
    if entries.len() > MAX_JWKS_KEYS {
        return Err(format!(
            "the key set holds {} keys, more than the maximum of {MAX_JWKS_KEYS}",
            entries.len()
        ));
    }
    let Some(family) = algorithms.first().map(|a| a.family()) else {
        return Err("no algorithm is pinned".to_string());
    };
    let mut keys: Vec<SetKey> = Vec::new();
    for entry in entries {
        // A key pgward cannot parse (another `kty`, a future field shape) is not an error:
        // providers publish keys for other consumers too.
        let Ok(jwk) = serde_json::from_value::<Jwk>(entry.clone()) else {
            continue;
        };
        if !matches!(
            jwk.common.public_key_use,
            None | Some(PublicKeyUse::Signature)
        ) {
            continue;
        }
        let alg = match &jwk.common.key_algorithm {
            None => None,
            Some(ka) => match parse_algorithm(&ka.to_string()) {
                Some(a) if algorithms.contains(&a) => Some(a),
                _ => continue,
            },
        };
        let fits = match (&jwk.algorithm, family) {
            (AlgorithmParameters::RSA(p), AlgorithmFamily::Rsa) => {
                // `n` is unpadded base64url of the big-endian modulus.
                p.n.len() * 6 / 8 >= MIN_RSA_MODULUS_BYTES
            }
            (AlgorithmParameters::EllipticCurve(p), AlgorithmFamily::Ec) => {
                p.curve == EllipticCurve::P256
            }
            (AlgorithmParameters::OctetKeyPair(p), AlgorithmFamily::Ed) => {
                p.curve == EllipticCurve::Ed25519
            }
            _ => false,
        };
        if !fits {
            continue;
        }
        let Ok(key) = DecodingKey::from_jwk(&jwk) else {
            continue;
        };
        let probe_alg = alg.or_else(|| algorithms.first().copied());
        if let Some(probe_alg) = probe_alg
            && family != AlgorithmFamily::Rsa
            && jsonwebtoken::crypto::verify("", b"pgward key probe", &key, probe_alg).is_err()
        {
            continue;
        }
        let kid = jwk.common.key_id.clone();
        if let Some(kid) = &kid
            && keys.iter().any(|k| k.kid.as_ref() == Some(kid))
        {
            // Which of the two would a token mean? Refuse rather than guess.
            return Err(format!(
                "the key set has two usable keys with `kid` `{kid}`"
            ));
        }
        keys.push(SetKey { kid, alg, key });
    }
    if keys.is_empty() {
        let names = algorithms
            .iter()
            .map(|a| format!("`{a:?}`"))
            .collect::<Vec<_>>()
            .join(", ");
        return Err(format!("the key set holds no key usable with {names}"));
    }
    Ok(KeySet { keys })
}

struct Issuer {
    iss: String,
    /// Pinned; the header `alg` must be one of these.
    algorithms: Vec<Algorithm>,
    key: IssuerKey,
    /// Signature, `iss`, `aud` and presence of `exp`/`iss`/`aud`/`sub`; time is checked by us.
    validation: Validation,
    audience: String,
    scope_claim: String,
    /// Required `typ` header (normalized: lower case, no `application/` prefix).
    require_typ: Option<String>,
}

/// RFC 8725 §3.11: `typ` values compare without case, with or without `application/`.
fn normalize_typ(typ: &str) -> String {
    let lower = typ.to_ascii_lowercase();
    lower
        .strip_prefix("application/")
        .map(str::to_string)
        .unwrap_or(lower)
}

struct ApiKey {
    sha256: [u8; 32],
    subject: String,
    scopes: BTreeSet<String>,
    claims: BTreeMap<String, String>,
}

/// Verifies bearer credentials (JWTs from configured issuers, pgward API keys).
pub struct Authenticator {
    issuers: Vec<Issuer>,
    api_keys: Vec<ApiKey>,
    /// Client certificate common name → scopes and claims.
    client_certs: HashMap<String, (BTreeSet<String>, BTreeMap<String, String>)>,
    leeway_secs: u64,
}

impl fmt::Debug for Authenticator {
    // By hand: keys, secrets and key hashes stay out of logs.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        struct Issuers<'a>(&'a [Issuer]);
        impl fmt::Debug for Issuers<'_> {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.debug_list()
                    .entries(self.0.iter().map(|i| {
                        format!(
                            "{} algorithms={:?} audience={} scope_claim={} key=<redacted>",
                            i.iss, i.algorithms, i.audience, i.scope_claim
                        )
                    }))
                    .finish()
            }
        }
        struct ApiKeys<'a>(&'a [ApiKey]);
        impl fmt::Debug for ApiKeys<'_> {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.debug_list()
                    .entries(
                        self.0.iter().map(|k| {
                            format!("{} scopes={:?} sha256=<redacted>", k.subject, k.scopes)
                        }),
                    )
                    .finish()
            }
        }
        f.debug_struct("Authenticator")
            .field("issuers", &Issuers(&self.issuers))
            .field("api_keys", &ApiKeys(&self.api_keys))
            .field("client_certs", &self.client_certs)
            .field("leeway_secs", &self.leeway_secs)
            .finish()
    }
}

impl Authenticator {
    /// Builds from config; `default_audience` is the server's canonical URL (`http.public_url`).
    /// `keys[i]` belongs to `cfg.issuers[i]`. Returns every problem at once, each naming its key.
    pub fn new(
        cfg: &AuthConfig,
        keys: &[IssuerKeys],
        default_audience: &str,
    ) -> Result<Self, Vec<String>> {
        let mut errors = Vec::new();

        if cfg.leeway_secs > MAX_LEEWAY_SECS {
            errors.push(format!(
                "auth.leeway_secs: {} is more than the maximum of {MAX_LEEWAY_SECS} seconds",
                cfg.leeway_secs
            ));
        }
        if keys.len() != cfg.issuers.len() {
            errors.push(format!(
                "auth.issuers: key material was resolved for {} issuers but {} are configured",
                keys.len(),
                cfg.issuers.len()
            ));
        }

        let no_keys = IssuerKeys::default();
        let mut issuers = Vec::with_capacity(cfg.issuers.len());
        let mut seen_iss: HashMap<&str, usize> = HashMap::new();
        for (i, ic) in cfg.issuers.iter().enumerate() {
            let at = format!("auth.issuers[{i}] (`{}`)", ic.issuer);
            if ic.issuer.trim().is_empty() {
                errors.push(format!("{at}.issuer: must not be empty"));
            } else if let Some(first) = seen_iss.insert(ic.issuer.as_str(), i) {
                errors.push(format!("{at}.issuer: duplicate of auth.issuers[{first}]"));
            }
            let k = keys.get(i).unwrap_or(&no_keys);
            match build_issuer(i, ic, k, default_audience, cfg.leeway_secs, &at) {
                Ok(issuer) => issuers.push(issuer),
                Err(mut e) => errors.append(&mut e),
            }
        }

        let mut api_keys = Vec::with_capacity(cfg.api_keys.len());
        let mut seen_hash: HashMap<[u8; 32], usize> = HashMap::new();
        for (i, ak) in cfg.api_keys.iter().enumerate() {
            let at = format!("auth.api_keys[{i}] (`{}`)", ak.subject);
            let mut ok = true;
            if ak.subject.trim().is_empty() {
                errors.push(format!("{at}.subject: must not be empty"));
                ok = false;
            }
            if ak.scopes.iter().any(|s| s.trim().is_empty()) {
                errors.push(format!("{at}.scopes: a scope must not be empty"));
                ok = false;
            }
            let hash = if ak.key_sha256.trim().starts_with(API_KEY_PREFIX) {
                // Never echo it: it is the secret itself.
                errors.push(format!(
                    "{at}.key_sha256: holds an API key rather than its hash; store the output of `pgward hash-key` and rotate the key"
                ));
                None
            } else {
                match parse_sha256_hex(&ak.key_sha256) {
                    Some(h) => Some(h),
                    None => {
                        errors.push(format!(
                            "{at}.key_sha256: expected 64 hex characters (the output of `pgward hash-key`)"
                        ));
                        None
                    }
                }
            };
            let Some(hash) = hash else { continue };
            if let Some(first) = seen_hash.insert(hash, i) {
                errors.push(format!(
                    "{at}.key_sha256: same key as auth.api_keys[{first}]"
                ));
                continue;
            }
            if ok {
                api_keys.push(ApiKey {
                    sha256: hash,
                    subject: ak.subject.clone(),
                    scopes: ak.scopes.iter().cloned().collect(),
                    claims: ak.claims.clone(),
                });
            }
        }

        let mut client_certs = HashMap::new();
        for (i, cc) in cfg.client_certs.iter().enumerate() {
            let at = format!("auth.client_certs[{i}] (`{}`)", cc.common_name);
            if cc.common_name.trim().is_empty() || cc.common_name.trim() != cc.common_name {
                errors.push(format!(
                    "{at}.common_name: must not be empty or start or end with spaces"
                ));
            } else if cc.scopes.iter().any(|s| s.trim().is_empty()) {
                errors.push(format!("{at}.scopes: a scope must not be empty"));
            } else if client_certs
                .insert(
                    cc.common_name.clone(),
                    (
                        cc.scopes.iter().cloned().collect::<BTreeSet<_>>(),
                        cc.claims.clone(),
                    ),
                )
                .is_some()
            {
                errors.push(format!("{at}.common_name: listed twice"));
            }
        }

        if errors.is_empty() {
            Ok(Self {
                issuers,
                api_keys,
                client_certs,
                leeway_secs: cfg.leeway_secs,
            })
        } else {
            Err(errors)
        }
    }

    /// The live key sets of the issuers configured with `jwks_url`, for the EDGE to fill.
    pub fn jwks_handles(&self) -> Vec<JwksHandle> {
        self.issuers
            .iter()
            .filter_map(|i| match &i.key {
                IssuerKey::Jwks(h) => Some(h.clone()),
                IssuerKey::Static(_) => None,
            })
            .collect()
    }

    /// The configured issuers' `iss` values, in config order.
    pub fn issuers(&self) -> Vec<String> {
        self.issuers.iter().map(|i| i.iss.clone()).collect()
    }

    /// `credential` is the value after `Bearer `. API keys are recognised by the prefix `pgw_`;
    /// everything else is a JWT. `now_unix` is the only clock the checks use.
    pub fn authenticate(&self, credential: &str, now_unix: u64) -> Result<Principal, AuthFailure> {
        let credential = credential.trim_matches(|c: char| c.is_ascii_whitespace());
        if credential.is_empty() {
            return Err(AuthFailure::Missing);
        }
        if credential.len() > MAX_CREDENTIAL_LEN {
            return Err(AuthFailure::Malformed);
        }
        if credential.starts_with(API_KEY_PREFIX) {
            self.authenticate_api_key(credential)
        } else {
            self.authenticate_jwt(credential, now_unix)
        }
    }

    /// A client certificate that the TLS handshake already verified against the client CA:
    /// `common_name` is its subject's CN (`None` when it has none, or more than one). Only a
    /// CN listed in `auth.client_certs` is a principal.
    pub fn authenticate_client_cert(
        &self,
        common_name: Option<&str>,
    ) -> Result<Principal, AuthFailure> {
        let (subject, (scopes, claims)) = common_name
            .and_then(|cn| self.client_certs.get_key_value(cn))
            .ok_or(AuthFailure::UnknownClientCert)?;
        Ok(Principal {
            subject: subject.clone(),
            issuer: None,
            method: AuthMethod::ClientCert,
            scopes: scopes.clone(),
            claims: claims.clone(),
        })
    }

    fn authenticate_api_key(&self, credential: &str) -> Result<Principal, AuthFailure> {
        let digest = sha256(credential.as_bytes());
        // INVARIANT: every configured hash is compared, in constant time, whether or not an
        // earlier one matched; `found` is the 1-based index of the match, 0 for none.
        let mut found: u64 = 0;
        for (i, key) in self.api_keys.iter().enumerate() {
            let candidate = u64::try_from(i).map_or(0, |i| i.saturating_add(1));
            found.conditional_assign(&candidate, key.sha256[..].ct_eq(&digest[..]));
        }
        let key = usize::try_from(found)
            .ok()
            .and_then(|f| f.checked_sub(1))
            .and_then(|i| self.api_keys.get(i))
            .ok_or(AuthFailure::UnknownApiKey)?;
        Ok(Principal {
            subject: key.subject.clone(),
            issuer: None,
            method: AuthMethod::ApiKey,
            scopes: key.scopes.clone(),
            claims: key.claims.clone(),
        })
    }

    fn authenticate_jwt(&self, token: &str, now_unix: u64) -> Result<Principal, AuthFailure> {
        let mut parts = token.split('.');
        let (Some(header), Some(payload), Some(_signature), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(AuthFailure::Malformed);
        };

        // The unverified header is read for one thing only: is its `alg` acceptable at all.
        let header = decode_json_object(header)?;
        let alg = header
            .get("alg")
            .and_then(Value::as_str)
            .ok_or(AuthFailure::Malformed)?;
        // RFC 7515 §4.1.11: extensions marked critical must be understood; pgward knows none.
        if header.contains_key("crit") {
            return Err(AuthFailure::Malformed);
        }
        // `none`, `HS384`, anything unsupported: refused before the payload is even looked at.
        let alg = parse_algorithm(alg).ok_or(AuthFailure::AlgorithmNotAllowed)?;

        // The unverified payload is read ONLY to route to an issuer; every claim is then
        // verified against that issuer's pinned key.
        let unverified = decode_json_object(payload)?;
        let iss = match unverified.get("iss") {
            None => return Err(AuthFailure::MissingClaim),
            Some(Value::String(iss)) => iss,
            Some(_) => return Err(AuthFailure::Malformed),
        };
        let issuer = self
            .issuers
            .iter()
            .find(|i| i.iss == *iss)
            .ok_or(AuthFailure::UnknownIssuer)?;
        // INVARIANT: the header may not choose the algorithm; it must be one the issuer pinned
        // (this is what stops HS256-signed-with-the-RSA-public-key confusion).
        if !issuer.algorithms.contains(&alg) {
            return Err(AuthFailure::AlgorithmNotAllowed);
        }
        if let Some(want) = &issuer.require_typ {
            let typ = header.get("typ").and_then(Value::as_str).map(normalize_typ);
            if typ.as_deref() != Some(want.as_str()) {
                return Err(AuthFailure::WrongTokenType);
            }
        }

        let set: Arc<KeySet>;
        let key = match &issuer.key {
            IssuerKey::Static(key) => key,
            IssuerKey::Jwks(handle) => {
                set = handle.current();
                let kid = match header.get("kid") {
                    None => None,
                    Some(Value::String(kid)) => Some(kid.as_str()),
                    Some(_) => return Err(AuthFailure::Malformed),
                };
                let found = match kid {
                    Some(kid) => set.keys.iter().find(|k| k.kid.as_deref() == Some(kid)),
                    // RFC 7515 lets `kid` be left out; only a one-key set is then unambiguous.
                    None if set.keys.len() == 1 => set.keys.first(),
                    None => None,
                }
                .ok_or(AuthFailure::UnknownKey)?;
                // A JWK that names its algorithm is used with that algorithm only.
                if found.alg.is_some_and(|a| a != alg) {
                    return Err(AuthFailure::AlgorithmNotAllowed);
                }
                &found.key
            }
        };
        if key.family() != alg.family() {
            return Err(AuthFailure::AlgorithmNotAllowed);
        }
        let claims = jsonwebtoken::decode::<Map<String, Value>>(token, key, &issuer.validation)
            .map_err(|e| map_jwt_error(e.kind()))?
            .claims;

        // Time, against the caller's clock (jsonwebtoken would read the system clock).
        let leeway = self.leeway_secs;
        let exp = numeric_date(claims.get("exp").ok_or(AuthFailure::MissingClaim)?, false)?;
        if now_unix >= exp.saturating_add(leeway) {
            return Err(AuthFailure::Expired);
        }
        if let Some(nbf) = claims.get("nbf")
            && numeric_date(nbf, true)? > now_unix.saturating_add(leeway)
        {
            return Err(AuthFailure::NotYetValid);
        }

        let subject = match claims.get("sub") {
            Some(Value::String(sub)) if !sub.is_empty() => sub.clone(),
            _ => return Err(AuthFailure::MissingClaim),
        };
        let scopes = read_scopes(claims.get(&issuer.scope_claim))?;

        Ok(Principal {
            subject,
            issuer: Some(issuer.iss.clone()),
            method: AuthMethod::Jwt,
            scopes,
            claims: data_claims(&claims, &issuer.scope_claim),
        })
    }
}

/// `pgw_` + 32 random bytes as lowercase hex.
pub fn generate_api_key() -> Result<String, getrandom::Error> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes)?;
    Ok(format!("{API_KEY_PREFIX}{}", to_hex(&bytes)))
}

/// Lowercase hex SHA-256 of the key, as stored in `auth.api_keys[].key_sha256`.
pub fn hash_api_key(key: &str) -> String {
    to_hex(&sha256(key.as_bytes()))
}

fn build_issuer(
    index: usize,
    ic: &IssuerConfig,
    keys: &IssuerKeys,
    default_audience: &str,
    leeway_secs: u64,
    at: &str,
) -> Result<Issuer, Vec<String>> {
    let mut errors = Vec::new();

    let mut algorithms: Vec<Algorithm> = Vec::new();
    if ic.algorithms.is_empty() {
        errors.push(format!(
            "{at}.algorithms: pin at least one algorithm ({SUPPORTED_ALGORITHMS})"
        ));
    }
    for name in &ic.algorithms {
        if name.trim().eq_ignore_ascii_case("none") {
            errors.push(format!("{at}.algorithms: `none` is never accepted"));
        } else if let Some(alg) = parse_algorithm(name) {
            if !algorithms.contains(&alg) {
                algorithms.push(alg);
            }
        } else {
            errors.push(format!(
                "{at}.algorithms: unknown algorithm `{name}` (supported: {SUPPORTED_ALGORITHMS})"
            ));
        }
    }

    let mut families: Vec<AlgorithmFamily> = Vec::new();
    for alg in &algorithms {
        if !families.contains(&alg.family()) {
            families.push(alg.family());
        }
    }
    if families.len() > 1 {
        let names = algorithms
            .iter()
            .map(|a| format!("`{a:?}`"))
            .collect::<Vec<_>>()
            .join(", ");
        if families.contains(&AlgorithmFamily::Hmac) {
            errors.push(format!(
                "{at}.algorithms: mixes HMAC with public-key algorithms ({names}); an issuer signs with one key"
            ));
        } else {
            errors.push(format!(
                "{at}.algorithms: mixes key types ({names}); an issuer signs with one key"
            ));
        }
    }

    let key = match (families.as_slice(), algorithms.first()) {
        ([AlgorithmFamily::Hmac], _) => {
            if keys.public_key_pem.is_some() {
                errors.push(format!(
                    "{at}.public_key_file: not used by `HS256`; remove it"
                ));
            }
            if ic.jwks_url.is_some() {
                errors.push(format!(
                    "{at}.jwks_url: `HS256` keys are secrets and never published; remove it"
                ));
            }
            match &keys.hs256_secret {
                None => {
                    errors.push(format!("{at}.hs256_secret: required for `HS256`"));
                    None
                }
                Some(secret) if secret.len() < MIN_HS256_SECRET_LEN => {
                    errors.push(format!(
                        "{at}.hs256_secret: shorter than {MIN_HS256_SECRET_LEN} bytes"
                    ));
                    None
                }
                Some(secret) => Some(IssuerKey::Static(DecodingKey::from_secret(secret))),
            }
        }
        ([_], Some(&alg)) => {
            if keys.hs256_secret.is_some() {
                errors.push(format!(
                    "{at}.hs256_secret: only used by `HS256`; remove it"
                ));
            }
            match (&keys.public_key_pem, &ic.jwks_url) {
                (Some(_), Some(_)) => {
                    errors.push(format!(
                        "{at}: set `public_key_file` or `jwks_url`, not both"
                    ));
                    None
                }
                (None, None) => {
                    errors.push(format!(
                        "{at}.public_key_file: `{alg:?}` needs `public_key_file` or `jwks_url`"
                    ));
                    None
                }
                (None, Some(url)) => {
                    if let Err(why) = check_jwks_url(url) {
                        errors.push(format!("{at}.jwks_url: {why}"));
                    }
                    Some(IssuerKey::Jwks(JwksHandle {
                        index,
                        issuer: ic.issuer.clone(),
                        algorithms: algorithms.clone(),
                        slot: Arc::default(),
                    }))
                }
                (Some(pem), None) => match load_public_key(alg, pem) {
                    Ok(key) => Some(IssuerKey::Static(key)),
                    Err(why) => {
                        errors.push(format!("{at}.public_key_file: {why}"));
                        None
                    }
                },
            }
        }
        // No usable algorithm, or mixed families: already reported.
        _ => None,
    };

    let audience = match ic.audience.as_deref() {
        Some(aud) if aud.trim().is_empty() => {
            errors.push(format!("{at}.audience: must not be empty"));
            None
        }
        Some(aud) => Some(aud.to_owned()),
        None if default_audience.trim().is_empty() => {
            errors.push(format!(
                "{at}.audience: not set, and `http.public_url` is empty"
            ));
            None
        }
        None => Some(default_audience.to_owned()),
    };

    if ic.jwks_url.is_none() {
        if ic.jwks_ca_file.is_some() {
            errors.push(format!("{at}.jwks_ca_file: only used with `jwks_url`"));
        }
        if ic.jwks_refresh_secs.is_some() {
            errors.push(format!("{at}.jwks_refresh_secs: only used with `jwks_url`"));
        }
    }
    if let Some(secs) = ic.jwks_refresh_secs
        && !JWKS_REFRESH_RANGE_SECS.contains(&secs)
    {
        errors.push(format!(
            "{at}.jwks_refresh_secs: {secs} is outside {} to {}",
            JWKS_REFRESH_RANGE_SECS.start(),
            JWKS_REFRESH_RANGE_SECS.end()
        ));
    }

    let scope_claim = ic.scope_claim.as_deref().unwrap_or(DEFAULT_SCOPE_CLAIM);
    if scope_claim.trim().is_empty() {
        errors.push(format!("{at}.scope_claim: must not be empty"));
    }

    match (key, audience, errors.is_empty()) {
        (Some(key), Some(audience), true) => {
            let mut validation = Validation::new(algorithms.first().copied().unwrap_or_default());
            validation.algorithms = algorithms.clone();
            validation.set_issuer(&[&ic.issuer]);
            validation.set_audience(&[&audience]);
            validation.validate_aud = true;
            validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
            validation.leeway = leeway_secs;
            // jsonwebtoken reads the system clock for these; `authenticate` checks them against
            // the `now_unix` it is given instead (pure, testable). Presence of `exp` is still
            // required above.
            validation.validate_exp = false;
            validation.validate_nbf = false;
            Ok(Issuer {
                iss: ic.issuer.clone(),
                algorithms,
                key,
                validation,
                audience,
                scope_claim: scope_claim.to_owned(),
                require_typ: ic.require_typ.as_deref().map(normalize_typ),
            })
        }
        _ => Err(errors),
    }
}

/// `jwks_url` must be an absolute `https://` URL with a host, no credentials and no fragment:
/// keys fetched over plain HTTP could be swapped by anyone on the path.
fn check_jwks_url(url: &str) -> Result<(), String> {
    let Some(rest) = url.strip_prefix("https://") else {
        return Err(format!("`{url}` must start with `https://`"));
    };
    let authority = rest.split(['/', '?']).next().unwrap_or_default();
    if authority.is_empty() {
        return Err(format!("`{url}` has no host"));
    }
    if authority.contains('@') {
        return Err("must not hold credentials".to_string());
    }
    if url.contains('#') || url.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(format!("`{url}` is not a plain URL"));
    }
    Ok(())
}

/// Parses a public-key PEM for `alg` and proves, now rather than at the first request, that the
/// key is usable for it.
fn load_public_key(alg: Algorithm, pem: &[u8]) -> Result<DecodingKey, String> {
    let (parsed, kind) = match alg.family() {
        AlgorithmFamily::Rsa => (DecodingKey::from_rsa_pem(pem), "an RSA public key"),
        AlgorithmFamily::Ec => (DecodingKey::from_ec_pem(pem), "an EC P-256 public key"),
        AlgorithmFamily::Ed => (DecodingKey::from_ed_pem(pem), "an Ed25519 public key"),
        AlgorithmFamily::Hmac => return Err(format!("`{alg:?}` takes no public key")),
    };
    let key = parsed.map_err(|_| format!("does not hold {kind} in PEM form"))?;
    // PEM parsing only extracts DER; building a verifier parses the key itself (EC and Ed; the
    // wrong curve fails here). The signature is irrelevant: only an error matters.
    if jsonwebtoken::crypto::verify("", b"pgward key probe", &key, alg).is_err() {
        return Err(format!("does not hold {kind} usable with `{alg:?}`"));
    }
    if alg.family() == AlgorithmFamily::Rsa {
        // RSA keys are parsed lazily at verification; parse now, and check the modulus size.
        let jwk = Jwk::from_decoding_key(&key, Some(alg))
            .map_err(|_| format!("does not hold {kind} in PEM form"))?;
        let AlgorithmParameters::RSA(params) = &jwk.algorithm else {
            return Err(format!("does not hold {kind} in PEM form"));
        };
        // `n` is unpadded base64url of the big-endian modulus without leading zeros.
        let modulus_bytes = params.n.len() * 6 / 8;
        if modulus_bytes < MIN_RSA_MODULUS_BYTES {
            return Err(format!(
                "RSA key is shorter than {} bits",
                MIN_RSA_MODULUS_BYTES * 8
            ));
        }
    }
    Ok(key)
}

/// Exactly the algorithm names pgward accepts in config and in token headers (case-sensitive,
/// as in RFC 7518).
fn parse_algorithm(name: &str) -> Option<Algorithm> {
    match name {
        "HS256" => Some(Algorithm::HS256),
        "RS256" => Some(Algorithm::RS256),
        "ES256" => Some(Algorithm::ES256),
        "EdDSA" => Some(Algorithm::EdDSA),
        _ => None,
    }
}

fn map_jwt_error(kind: &ErrorKind) -> AuthFailure {
    match kind {
        ErrorKind::InvalidSignature => AuthFailure::BadSignature,
        ErrorKind::InvalidAlgorithm
        | ErrorKind::MissingAlgorithm
        | ErrorKind::UnsupportedAlgorithm
        | ErrorKind::InvalidAlgorithmName => AuthFailure::AlgorithmNotAllowed,
        ErrorKind::MissingRequiredClaim(_) => AuthFailure::MissingClaim,
        ErrorKind::ExpiredSignature => AuthFailure::Expired,
        ErrorKind::ImmatureSignature => AuthFailure::NotYetValid,
        ErrorKind::InvalidIssuer => AuthFailure::UnknownIssuer,
        ErrorKind::InvalidAudience => AuthFailure::WrongAudience,
        // Shape errors (base64, JSON, claim formats) and anything jsonwebtoken adds later.
        _ => AuthFailure::Malformed,
    }
}

/// A JWT NumericDate as whole seconds; fractions round towards the stricter side.
fn numeric_date(value: &Value, round_up: bool) -> Result<u64, AuthFailure> {
    let Value::Number(n) = value else {
        return Err(AuthFailure::Malformed);
    };
    if let Some(secs) = n.as_u64() {
        return Ok(secs);
    }
    let secs = n
        .as_f64()
        .filter(|f| f.is_finite() && *f >= 0.0 && *f < 1.0e18)
        .ok_or(AuthFailure::Malformed)?;
    let secs = if round_up { secs.ceil() } else { secs.floor() };
    // Finite, non-negative and below 1e18 (checked above), so the cast is exact.
    Ok(secs as u64)
}

/// Scopes from a space-separated string or an array of strings; absent means none.
fn read_scopes(value: Option<&Value>) -> Result<BTreeSet<String>, AuthFailure> {
    match value {
        None => Ok(BTreeSet::new()),
        Some(Value::String(s)) => Ok(s.split_whitespace().map(str::to_owned).collect()),
        Some(Value::Array(items)) => items
            .iter()
            .filter(|item| item.as_str() != Some(""))
            .map(|item| {
                item.as_str()
                    .map(str::to_owned)
                    .ok_or(AuthFailure::Malformed)
            })
            .collect(),
        Some(_) => Err(AuthFailure::Malformed),
    }
}

fn decode_json_object(segment: &str) -> Result<Map<String, Value>, AuthFailure> {
    let bytes = b64url_decode(segment).ok_or(AuthFailure::Malformed)?;
    serde_json::from_slice(&bytes).map_err(|_| AuthFailure::Malformed)
}

/// Strict unpadded base64url (RFC 7515 §2): no padding, no whitespace, canonical trailing bits.
fn b64url_decode(input: &str) -> Option<Vec<u8>> {
    fn sextet(c: u8) -> Option<u32> {
        match c {
            b'A'..=b'Z' => Some(u32::from(c - b'A')),
            b'a'..=b'z' => Some(u32::from(c - b'a') + 26),
            b'0'..=b'9' => Some(u32::from(c - b'0') + 52),
            b'-' => Some(62),
            b'_' => Some(63),
            _ => None,
        }
    }
    let bytes = input.as_bytes();
    let mut out = Vec::with_capacity(bytes.len() / 4 * 3 + 2);
    for chunk in bytes.chunks(4) {
        let mut acc: u32 = 0;
        for &c in chunk {
            acc = (acc << 6) | sextet(c)?;
        }
        match chunk.len() {
            4 => {
                let [_, a, b, c] = acc.to_be_bytes();
                out.extend_from_slice(&[a, b, c]);
            }
            3 => {
                if acc & 0b11 != 0 {
                    return None;
                }
                let [_, _, a, b] = (acc >> 2).to_be_bytes();
                out.extend_from_slice(&[a, b]);
            }
            2 => {
                if acc & 0b1111 != 0 {
                    return None;
                }
                let [_, _, _, a] = (acc >> 4).to_be_bytes();
                out.push(a);
            }
            _ => return None,
        }
    }
    Some(out)
}

fn sha256(bytes: &[u8]) -> [u8; 32] {
    Sha256::digest(bytes).into()
}

fn parse_sha256_hex(hex: &str) -> Option<[u8; 32]> {
    fn nibble(c: u8) -> Option<u8> {
        match c {
            b'0'..=b'9' => Some(c - b'0'),
            b'a'..=b'f' => Some(c - b'a' + 10),
            b'A'..=b'F' => Some(c - b'A' + 10),
            _ => None,
        }
    }
    let hex = hex.trim().as_bytes();
    if hex.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (byte, pair) in out.iter_mut().zip(hex.chunks_exact(2)) {
        let [hi, lo] = pair else { return None };
        *byte = (nibble(*hi)? << 4) | nibble(*lo)?;
    }
    Some(out)
}

fn to_hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for &b in bytes {
        s.push(char::from(DIGITS[usize::from(b >> 4)]));
        s.push(char::from(DIGITS[usize::from(b & 0x0f)]));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::config::ApiKeyConfig;
    use jsonwebtoken::{EncodingKey, Header};
    use serde_json::json;

    const AUD: &str = "https://pgward.example/mcp";
    const NOW: u64 = 1_700_000_000;
    const HS_SECRET: &[u8] = b"0123456789abcdef0123456789abcdef-hs256-test-secret";
    const HS_ISS: &str = "https://hs.example";
    const RS_ISS: &str = "https://rs.example";
    const ES_ISS: &str = "https://es.example";
    const ED_ISS: &str = "https://ed.example";
    /// A fixed test key (not a secret): `pgw_` + 64 hex.
    const API_KEY: &str = "pgw_00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff";

    // Test keys generated once with `openssl genpkey` (RSA 2048, P-256, P-384, Ed25519, RSA 1024).
    const RSA1_PRIVATE: &str = "\
-----BEGIN PRIVATE KEY-----\n\
MIIEvQIBADANBgkqhkiG9w0BAQEFAASCBKcwggSjAgEAAoIBAQCKtWcrinMqU5f1\n\
53B94JbUPYFG7Oaxp0IaX/2ZAdNneDyNFx3V75ISEGqHCmw0Qrm36HB4I5Y6wlFX\n\
DPeVxqMB6czyRS6nBPWqramftzuXyKbAJKujskukBPDQ0kKBolbaL2itIY59qisE\n\
PyOfkCfOezBIvEK6DXj4ExF4Nx0zwNO1ckwruAcFP2l35+Ndoz9d19/Yma0rHs8O\n\
TaSUa4lhjAPYzKy7ygfLWR61NqXKaRODIoZ4sPu7oJm4zp5xDlhAVtdVpHC9Ixeq\n\
1fdvb74st6PswvEQarzw0j3rnU9TF1bHx2M+CXJCA5lQgHk0R00qc4a/krbtEL+L\n\
IdiMGVTJAgMBAAECgf9kgg2//xJ0GR6DkLByhcrE/8wtGHwRPqEne2bG+Au3behy\n\
U83Kt02gyURnlaXSOIdaO5NDeoXhDezipwLABK8ZM9DNvFORsoZQpoXCtYL4+Ovb\n\
TrcQZqFouCvHJJQMWxWUA8ZVrXsSk7uX2Ch39nzhoWHbUo8HQbvmBesisMz4MjAH\n\
Jcj83CoyttljCfR6B2plM4HweKraWEOk+iyG6eK1O0HPkbRsJ84azojy+rcbkd0Z\n\
4wNOZOh+88rNj1FqgsD9M5p7jC71z3f2hFhtUtxEsTO9udHlZSBk49LfkUUmtBP0\n\
Jms9M6pIiqJkHPbBLFIbwjCcY5v8x7pOgaQVZAECgYEAwWcjdrU2uCHD2IA2zljU\n\
BMMf2nbv5N56Sxx1JF5cYcSXhTv8iOmELGUEXR36plPj2bwMDsP5tWdZ1heyZB4K\n\
lPyE8Wahg2gsL+TgTWvTRUwO+5TIJixO2HWXKyqDQj2p3aOyyJGyXcvCLHg8sBaA\n\
0KxtoiiNnZOtajP1EdvNYckCgYEAt5pwNpHn6V/auYohxlWQlcrcCVPkSZOy2CST\n\
Dwp3eC2y/YTm46kQaS+qIHYX473jzIR/4mTND0dbweWgi8fdk6c+y3Vbth519/Tm\n\
v3txSzV1oupdYdazqs9kLJyuNX5ZJW5J6X1AcPIs1oMMyJvcdpVf3/CdSoLxLpRD\n\
nor92wECgYEAm1cbHfq5Y7YDFv8MhjrEuLp8+Dz1vE+RzIij8j00WHbN+P7QfKuL\n\
NRlCIwS0USoqZbVrveRcyf6kIpjP+ShD+ZzFrxtu+RwP+bwNCUJk5FEN67Z5+Gc4\n\
QRZaABraaLccm+Ai9oRHzpydbph4rjq05mbIfCm0bW+zJw1qdxij4zkCgYEAlMqk\n\
u6Scs+VJhWlrG6dGCA6hKTICZJo8qqthPiQ2U399ebTVxJPDR+snzSzHCXpe/OQ4\n\
G0mjYQlsVAN6iy0K5Vj5K7tM+pdO9QZUZcNtOgz163RQ/zQW4Is33GuRRqrBJfNu\n\
FLm7moy4R5NmrcCZ9sPxMbN2VOcu+5eOARMUzQECgYEApw04Jrro9CSGyAqM9irX\n\
GACfMeiG6mErVx70h4NfX/hA5U2yXbohCo5PifsKzRFdfcN+kqVR7N7z30jxEh0f\n\
uTN/644I8zITmlN02Z4zt9hnBAFJAv46WfXX7sdCcPIDAcoJAqjDZTNgo/mkpBTB\n\
LFlc/p9iqMflRD/QhbA7wCA=\n\
-----END PRIVATE KEY-----\n\
";
    const RSA1_PUBLIC: &str = "\
-----BEGIN PUBLIC KEY-----\n\
MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEAirVnK4pzKlOX9edwfeCW\n\
1D2BRuzmsadCGl/9mQHTZ3g8jRcd1e+SEhBqhwpsNEK5t+hweCOWOsJRVwz3lcaj\n\
AenM8kUupwT1qq2pn7c7l8imwCSro7JLpATw0NJCgaJW2i9orSGOfaorBD8jn5An\n\
znswSLxCug14+BMReDcdM8DTtXJMK7gHBT9pd+fjXaM/Xdff2JmtKx7PDk2klGuJ\n\
YYwD2Mysu8oHy1ketTalymkTgyKGeLD7u6CZuM6ecQ5YQFbXVaRwvSMXqtX3b2++\n\
LLej7MLxEGq88NI9651PUxdWx8djPglyQgOZUIB5NEdNKnOGv5K27RC/iyHYjBlU\n\
yQIDAQAB\n\
-----END PUBLIC KEY-----\n\
";
    const RSA2_PRIVATE: &str = "\
-----BEGIN PRIVATE KEY-----\n\
MIIEvgIBADANBgkqhkiG9w0BAQEFAASCBKgwggSkAgEAAoIBAQC2n7G41ZImIWg+\n\
RR6Bx+pw7148yONUVINX3Z0ridbtca04W62NuHUfUVXf6xqXsV1GA4FpunNF1ujN\n\
1WQ0YyjLVEiQ+MkAAXyG0MhQCDHA6d65rsbzp1JKXmYsyqm55f8SezxVMtY2+Q4l\n\
3l21ht8mqS3oHF6+PKL4KFTl2jR9LC1BUS6LkYK9oIgotO3IZE+/MBI+7Gpi4f9m\n\
XVxO4mwE5mkgE6svxewWuMO0oUShr5+3w9kBTJKPXoo59LdPwQ8UytSEIL1jUW/F\n\
vMSGtsYQejKFyDPhWQeLM0yXVZqZBVAsR1ZnpUIkH/VpahEevypCNcSrGx8FHRyv\n\
cBt/GYJLAgMBAAECggEABFCkpd3h/KWobWQ7ssxS9UUqoFwMxwbSLabOWmOA4Q5h\n\
DeZYpPMZTVqiIU7QS4pEzm0xxxpBNAK+cHKc0gIPyjIdHtPKCAaA9zyCpyVya4D7\n\
Ir8G82XeM2SknGVTelF9Y+XmiIrRde4PkAR/iVT8+9Behc/5yxvqq9tkGiQ8PkLd\n\
KsFnBJjHPr2cZMcKpv/QO4ZNvvGkSBAA4EpDdQTjulDVCyiZEXw2yUkrza3xPWlj\n\
P6/t6gTJB+vAwTZzOsLU96YMsncgcxTRXn9PfmrrRt7LymG3LmdJ1A6bnLBHk3/a\n\
RaO3FNY4sZOeP5IV+r0NY9aVVv1e2c3jJ7MlqPKV3QKBgQDzZMSJ3C9f0scpWdBr\n\
rp8IX1wgiPnQ82AjsG3xFJEubbsVYTi3pC0YbzMyb8L3NS5Ipqd4Vy6BizvE2NKQ\n\
SmiL9vg6l18+jnYKUv7tQniliu3br/RD4cC8MPc5XhTD/o+cWqKJLQEmU2mM7roz\n\
LjjuUjUcMl+pvHq1IB6xkLvHrwKBgQDAFSkTHq2htzXDQmFWXc5VScBkPMkmLEHO\n\
b7u3EES3z8goWae/NRZX6VOgLDHiu6xMD4LHAcmUP0Ye6BWY+ZkISTd5Bf8XeKVt\n\
VN8SafNJeTg/Kjkvtcix9brZOsJS4Psni4y1/iqCg1+Pi+hmBysJx9V61LLjRrGe\n\
7ZV3eMg6JQKBgQC5rzC5s/94bUd/5oM5A5lUO9v+/kEIBgRcdecKOxSfhRtrLial\n\
A11b/MnkOptVGX9b8bhl+K0EK4LHpFrPtdSYoyuxF3aUNP8c1UCjJUkBkkHwjgYe\n\
G4Z8jCav33ScKgLJ1+OUH393C7/EwwPOs/6+4nyeLFgLGD3NHNoNwUthBQKBgQC7\n\
BV9i0GH6rOnZ3g3sC5XUkOSUNGMdmcXQ/BVnXp2p4tNeBj0//K5uli3oLF++BUDz\n\
Jb8NiP3+K8VYXlx4/70yxicO3PnMnpljZFl2Elbg2Pgc+D2J6JMqQrnUvFNsYsXn\n\
cQZmRLybKtKmb3Cttpj/AuUmnWY3yCM1PNpk4uMBSQKBgFuHD80gATR2cLRcyugq\n\
hzZZjK5buj0e8EajUtyTVvFErR5uBOBDPIJyP/OVesb7CMnt6ibrfO+r8iraneGY\n\
SLJzupSttiuQ7uC/MyAw56ButuIZX2h2ryymUlS0dWb8OvIC4AUfc87m4JbhM4uW\n\
kOCufmgSSYMvl0p2rMdJpSZC\n\
-----END PRIVATE KEY-----\n\
";
    const EC1_PRIVATE: &str = "\
-----BEGIN PRIVATE KEY-----\n\
MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgxlFjLHyZphUZQ8Qb\n\
f3vxCQBfIJXOFt1jv+qOO66zrnShRANCAATZRcCE6qqtrqk1KMi0H3qBq65CjwCj\n\
lTj/8+q4UikNbzzhIR8wFikqw3/1q95p1755d70Ewj7rMCBdzdA6eChq\n\
-----END PRIVATE KEY-----\n\
";
    const EC1_PUBLIC: &str = "\
-----BEGIN PUBLIC KEY-----\n\
MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAE2UXAhOqqra6pNSjItB96gauuQo8A\n\
o5U4//PquFIpDW884SEfMBYpKsN/9aveade+eXe9BMI+6zAgXc3QOngoag==\n\
-----END PUBLIC KEY-----\n\
";
    const EC2_PRIVATE: &str = "\
-----BEGIN PRIVATE KEY-----\n\
MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQg6WtKY3/8v+O3j1Bq\n\
mwSUlDtttEks6ymhwEIgAoF0u56hRANCAAR9uUrRxASLwuX0FgSdeWkkEC9cXloJ\n\
viQ/UHVorBdjXldNfWH+/8P84LLfkJeLfPX17msDO/M1Q5F/hF5DoIub\n\
-----END PRIVATE KEY-----\n\
";
    const EC_P384_PUBLIC: &str = "\
-----BEGIN PUBLIC KEY-----\n\
MHYwEAYHKoZIzj0CAQYFK4EEACIDYgAE1FOBVZtCm1mHrCy77rOCqs5MWnZ64Hiq\n\
nSoZUum1228NNZ12x6xVvHzj0kl0SI7uXt8Z2wpW5HWhEYAnvHmDqeP77uvJHoB5\n\
7P0a7MyFIJwm5c550YDB5Tvz5rtIrCr7\n\
-----END PUBLIC KEY-----\n\
";
    const ED1_PRIVATE: &str = "\
-----BEGIN PRIVATE KEY-----\n\
MC4CAQAwBQYDK2VwBCIEIB/7CMGZ4NFO5n8Y5qHQbno0ivmkvqF4lfpAPritSyI2\n\
-----END PRIVATE KEY-----\n\
";
    const ED1_PUBLIC: &str = "\
-----BEGIN PUBLIC KEY-----\n\
MCowBQYDK2VwAyEAU824KUoX1KZKYtZ7p37+ZfaQhsxthN6duZIjLlF2tlc=\n\
-----END PUBLIC KEY-----\n\
";
    const RSA_1024_PUBLIC: &str = "\
-----BEGIN PUBLIC KEY-----\n\
MIGfMA0GCSqGSIb3DQEBAQUAA4GNADCBiQKBgQDTmzpOTCKNwPgbeqSOngLpbycX\n\
C1ELxXNXt9c0EKM4s+O1UjA9pjtOpuEZuPT0NYvAWnE7sm1zrpBYWGXeSimwgqG7\n\
rSw9S4lbJhi2uIKwp7Au8TVXAfMB89GAX3VQiIEqQSKORqkh4CFib1FepoI92nO5\n\
t/aForOa4+ugsW06JQIDAQAB\n\
-----END PUBLIC KEY-----\n\
";

    fn issuer(iss: &str, algs: &[&str]) -> IssuerConfig {
        IssuerConfig {
            issuer: iss.to_owned(),
            algorithms: algs.iter().map(|a| (*a).to_owned()).collect(),
            hs256_secret: None,
            public_key_file: None,
            jwks_url: None,
            jwks_ca_file: None,
            jwks_refresh_secs: None,
            audience: None,
            scope_claim: None,
            require_typ: None,
        }
    }

    fn secret(s: &[u8]) -> IssuerKeys {
        IssuerKeys {
            hs256_secret: Some(s.to_vec()),
            public_key_pem: None,
        }
    }

    fn pem(p: &str) -> IssuerKeys {
        IssuerKeys {
            hs256_secret: None,
            public_key_pem: Some(p.as_bytes().to_vec()),
        }
    }

    fn config() -> (AuthConfig, Vec<IssuerKeys>) {
        let mut ed = issuer(ED_ISS, &["EdDSA"]);
        ed.scope_claim = Some("scp".to_owned());
        let cfg = AuthConfig {
            client_certs: vec![],
            leeway_secs: 60,
            issuers: vec![
                issuer(HS_ISS, &["HS256"]),
                issuer(RS_ISS, &["RS256"]),
                issuer(ES_ISS, &["ES256"]),
                ed,
            ],
            api_keys: vec![
                ApiKeyConfig {
                    subject: "etl-bot".to_owned(),
                    key_sha256: hash_api_key(API_KEY),
                    scopes: vec!["read:sales".to_owned(), "tool:query".to_owned()],
                    claims: Default::default(),
                },
                ApiKeyConfig {
                    subject: "no-scopes".to_owned(),
                    key_sha256: hash_api_key("pgw_other"),
                    scopes: vec![],
                    claims: Default::default(),
                },
            ],
        };
        let keys = vec![
            secret(HS_SECRET),
            pem(RSA1_PUBLIC),
            pem(EC1_PUBLIC),
            pem(ED1_PUBLIC),
        ];
        (cfg, keys)
    }

    fn auth() -> Authenticator {
        let (cfg, keys) = config();
        Authenticator::new(&cfg, &keys, AUD).unwrap()
    }

    fn claims(iss: &str) -> Value {
        json!({
            "iss": iss,
            "sub": "alice",
            "aud": AUD,
            "exp": NOW + 300,
            "iat": NOW - 10,
            "scope": "read:sales tool:query",
        })
    }

    fn mint(alg: Algorithm, key: &EncodingKey, claims: &Value) -> String {
        jsonwebtoken::encode(&Header::new(alg), claims, key).unwrap()
    }

    fn hs(claims: &Value) -> String {
        mint(
            Algorithm::HS256,
            &EncodingKey::from_secret(HS_SECRET),
            claims,
        )
    }

    fn rs(claims: &Value) -> String {
        let key = EncodingKey::from_rsa_pem(RSA1_PRIVATE.as_bytes()).unwrap();
        mint(Algorithm::RS256, &key, claims)
    }

    fn es(claims: &Value) -> String {
        let key = EncodingKey::from_ec_pem(EC1_PRIVATE.as_bytes()).unwrap();
        mint(Algorithm::ES256, &key, claims)
    }

    fn ed(claims: &Value) -> String {
        let key = EncodingKey::from_ed_pem(ED1_PRIVATE.as_bytes()).unwrap();
        mint(Algorithm::EdDSA, &key, claims)
    }

    fn b64url(bytes: &[u8]) -> String {
        const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
        let mut out = String::new();
        for chunk in bytes.chunks(3) {
            let mut acc = 0u32;
            for (i, b) in chunk.iter().enumerate() {
                acc |= u32::from(*b) << (16 - 8 * i);
            }
            for i in 0..=chunk.len() {
                out.push(char::from(A[((acc >> (18 - 6 * i)) & 63) as usize]));
            }
        }
        out
    }

    fn hand_built(header: &Value, claims: &Value, signature: &str) -> String {
        format!(
            "{}.{}.{signature}",
            b64url(header.to_string().as_bytes()),
            b64url(claims.to_string().as_bytes())
        )
    }

    fn scopes(items: &[&str]) -> BTreeSet<String> {
        items.iter().map(|s| (*s).to_owned()).collect()
    }

    fn with(mut claims: Value, key: &str, value: Value) -> Value {
        claims[key] = value;
        claims
    }

    fn without(mut claims: Value, key: &str) -> Value {
        claims.as_object_mut().unwrap().remove(key);
        claims
    }

    // ---- accepted tokens ----

    #[test]
    fn hs256_token_yields_principal_with_string_scopes() {
        let p = auth().authenticate(&hs(&claims(HS_ISS)), NOW).unwrap();
        assert_eq!(
            p,
            Principal {
                subject: "alice".to_owned(),
                issuer: Some(HS_ISS.to_owned()),
                method: AuthMethod::Jwt,
                scopes: scopes(&["read:sales", "tool:query"]),
                claims: BTreeMap::new(),
            }
        );
    }

    #[test]
    fn rs256_token_with_array_scopes() {
        let c = with(claims(RS_ISS), "scope", json!(["read:a", "read:b", ""]));
        let p = auth().authenticate(&rs(&c), NOW).unwrap();
        assert_eq!(p.subject, "alice");
        assert_eq!(p.issuer.as_deref(), Some(RS_ISS));
        assert_eq!(p.method, AuthMethod::Jwt);
        assert_eq!(p.scopes, scopes(&["read:a", "read:b"]));
    }

    #[test]
    fn es256_token_is_accepted() {
        let p = auth().authenticate(&es(&claims(ES_ISS)), NOW).unwrap();
        assert_eq!(p.issuer.as_deref(), Some(ES_ISS));
        assert_eq!(p.scopes, scopes(&["read:sales", "tool:query"]));
    }

    #[test]
    fn eddsa_token_reads_the_configured_scope_claim() {
        // `ED_ISS` is configured with `scope_claim = "scp"`: `scope` is ignored there.
        let c = with(claims(ED_ISS), "scp", json!("a b  c"));
        let p = auth().authenticate(&ed(&c), NOW).unwrap();
        assert_eq!(p.scopes, scopes(&["a", "b", "c"]));
    }

    #[test]
    fn absent_scope_claim_is_an_empty_set() {
        let c = without(claims(HS_ISS), "scope");
        let p = auth().authenticate(&hs(&c), NOW).unwrap();
        assert!(p.scopes.is_empty());
    }

    #[test]
    fn scope_claim_of_wrong_type_is_malformed() {
        for bad in [json!(42), json!({"a": 1}), json!(["a", 1]), Value::Null] {
            let c = with(claims(HS_ISS), "scope", bad);
            assert_eq!(
                auth().authenticate(&hs(&c), NOW),
                Err(AuthFailure::Malformed)
            );
        }
    }

    #[test]
    fn surrounding_whitespace_is_ignored() {
        let token = format!("  {}\t", hs(&claims(HS_ISS)));
        assert!(auth().authenticate(&token, NOW).is_ok());
    }

    // ---- time ----

    #[test]
    fn expiry_uses_the_given_clock_and_leeway() {
        let a = auth();
        let exp = |e: u64| hs(&with(claims(HS_ISS), "exp", json!(e)));
        // leeway is 60s: 30s past exp is tolerated, 60s and more is not.
        assert!(a.authenticate(&exp(NOW - 30), NOW).is_ok());
        assert!(a.authenticate(&exp(NOW - 59), NOW).is_ok());
        assert_eq!(
            a.authenticate(&exp(NOW - 60), NOW),
            Err(AuthFailure::Expired)
        );
        assert_eq!(
            a.authenticate(&exp(NOW - 3600), NOW),
            Err(AuthFailure::Expired)
        );
        // The same token is fine earlier and expired later: only `now_unix` decides.
        let t = exp(NOW + 100);
        assert!(a.authenticate(&t, NOW).is_ok());
        assert_eq!(a.authenticate(&t, NOW + 161), Err(AuthFailure::Expired));
        // A token from 1970 is expired against a clock of today, whatever the system clock says.
        assert_eq!(a.authenticate(&exp(1), NOW), Err(AuthFailure::Expired));
    }

    #[test]
    fn zero_leeway_expires_exactly_at_exp() {
        let (mut cfg, keys) = config();
        cfg.leeway_secs = 0;
        let a = Authenticator::new(&cfg, &keys, AUD).unwrap();
        let t = hs(&with(claims(HS_ISS), "exp", json!(NOW)));
        assert!(a.authenticate(&t, NOW - 1).is_ok());
        assert_eq!(a.authenticate(&t, NOW), Err(AuthFailure::Expired));
    }

    #[test]
    fn fractional_exp_is_accepted() {
        let t = hs(&with(claims(HS_ISS), "exp", json!(NOW as f64 + 100.5)));
        assert!(auth().authenticate(&t, NOW).is_ok());
    }

    #[test]
    fn future_nbf_is_not_yet_valid() {
        let a = auth();
        let nbf = |n: u64| hs(&with(claims(HS_ISS), "nbf", json!(n)));
        assert_eq!(
            a.authenticate(&nbf(NOW + 61), NOW),
            Err(AuthFailure::NotYetValid)
        );
        assert_eq!(
            a.authenticate(&nbf(NOW + 3600), NOW),
            Err(AuthFailure::NotYetValid)
        );
        // Within leeway, now, and past are all fine.
        assert!(a.authenticate(&nbf(NOW + 60), NOW).is_ok());
        assert!(a.authenticate(&nbf(NOW), NOW).is_ok());
        assert!(a.authenticate(&nbf(NOW - 100), NOW).is_ok());
    }

    #[test]
    fn nbf_of_wrong_type_is_malformed() {
        let t = hs(&with(claims(HS_ISS), "nbf", json!("soon")));
        assert_eq!(auth().authenticate(&t, NOW), Err(AuthFailure::Malformed));
        let t = hs(&with(claims(HS_ISS), "nbf", json!(-5)));
        assert_eq!(auth().authenticate(&t, NOW), Err(AuthFailure::Malformed));
    }

    // ---- audience ----

    #[test]
    fn wrong_audience_is_refused() {
        let t = hs(&with(claims(HS_ISS), "aud", json!("https://other.example")));
        assert_eq!(
            auth().authenticate(&t, NOW),
            Err(AuthFailure::WrongAudience)
        );
        // A prefix or a trailing slash is a different audience.
        let t = hs(&with(claims(HS_ISS), "aud", json!(format!("{AUD}/"))));
        assert_eq!(
            auth().authenticate(&t, NOW),
            Err(AuthFailure::WrongAudience)
        );
    }

    #[test]
    fn audience_array_must_contain_ours() {
        let t = rs(&with(
            claims(RS_ISS),
            "aud",
            json!(["https://other.example", AUD]),
        ));
        assert!(auth().authenticate(&t, NOW).is_ok());
        let t = rs(&with(
            claims(RS_ISS),
            "aud",
            json!(["https://a.example", "https://b.example"]),
        ));
        assert_eq!(
            auth().authenticate(&t, NOW),
            Err(AuthFailure::WrongAudience)
        );
        let t = rs(&with(claims(RS_ISS), "aud", json!([])));
        assert_eq!(
            auth().authenticate(&t, NOW),
            Err(AuthFailure::WrongAudience)
        );
    }

    #[test]
    fn missing_audience_is_a_missing_claim() {
        let t = hs(&without(claims(HS_ISS), "aud"));
        assert_eq!(auth().authenticate(&t, NOW), Err(AuthFailure::MissingClaim));
    }

    #[test]
    fn per_issuer_audience_overrides_the_default() {
        let (mut cfg, keys) = config();
        cfg.issuers[0].audience = Some("api://pgward".to_owned());
        let a = Authenticator::new(&cfg, &keys, AUD).unwrap();
        let ours = hs(&with(claims(HS_ISS), "aud", json!("api://pgward")));
        assert!(a.authenticate(&ours, NOW).is_ok());
        assert_eq!(
            a.authenticate(&hs(&claims(HS_ISS)), NOW),
            Err(AuthFailure::WrongAudience)
        );
    }

    // ---- issuer and signature ----

    #[test]
    fn unknown_issuer_is_refused() {
        let t = hs(&claims("https://evil.example"));
        assert_eq!(
            auth().authenticate(&t, NOW),
            Err(AuthFailure::UnknownIssuer)
        );
        // Exact match only.
        let t = hs(&claims("https://hs.example/"));
        assert_eq!(
            auth().authenticate(&t, NOW),
            Err(AuthFailure::UnknownIssuer)
        );
    }

    #[test]
    fn missing_or_non_string_issuer() {
        let t = hs(&without(claims(HS_ISS), "iss"));
        assert_eq!(auth().authenticate(&t, NOW), Err(AuthFailure::MissingClaim));
        let t = hs(&with(claims(HS_ISS), "iss", json!([HS_ISS])));
        assert_eq!(auth().authenticate(&t, NOW), Err(AuthFailure::Malformed));
    }

    #[test]
    fn known_issuer_signed_with_another_key_is_a_bad_signature() {
        let a = auth();
        let other_hs = EncodingKey::from_secret(b"another-secret-of-at-least-32-bytes!!");
        let t = mint(Algorithm::HS256, &other_hs, &claims(HS_ISS));
        assert_eq!(a.authenticate(&t, NOW), Err(AuthFailure::BadSignature));

        let other_rs = EncodingKey::from_rsa_pem(RSA2_PRIVATE.as_bytes()).unwrap();
        let t = mint(Algorithm::RS256, &other_rs, &claims(RS_ISS));
        assert_eq!(a.authenticate(&t, NOW), Err(AuthFailure::BadSignature));

        let other_es = EncodingKey::from_ec_pem(EC2_PRIVATE.as_bytes()).unwrap();
        let t = mint(Algorithm::ES256, &other_es, &claims(ES_ISS));
        assert_eq!(a.authenticate(&t, NOW), Err(AuthFailure::BadSignature));
    }

    #[test]
    fn tampered_payload_is_a_bad_signature() {
        let genuine = rs(&claims(RS_ISS));
        let forged = rs(&with(claims(RS_ISS), "sub", json!("admin")));
        let g: Vec<&str> = genuine.split('.').collect();
        let f: Vec<&str> = forged.split('.').collect();
        let spliced = format!("{}.{}.{}", g[0], f[1], g[2]);
        assert_eq!(
            auth().authenticate(&spliced, NOW),
            Err(AuthFailure::BadSignature)
        );
        // Signature stripped.
        let stripped = format!("{}.{}.", g[0], g[1]);
        assert_eq!(
            auth().authenticate(&stripped, NOW),
            Err(AuthFailure::BadSignature)
        );
    }

    #[test]
    fn alg_none_is_not_allowed() {
        for alg in ["none", "None", "NONE"] {
            let t = hand_built(&json!({"alg": alg, "typ": "JWT"}), &claims(HS_ISS), "");
            assert_eq!(
                auth().authenticate(&t, NOW),
                Err(AuthFailure::AlgorithmNotAllowed),
                "{alg}"
            );
        }
        // Even with a signature part attached, and for an unknown issuer.
        let t = hand_built(&json!({"alg": "none"}), &claims("https://x"), "c2ln");
        assert_eq!(
            auth().authenticate(&t, NOW),
            Err(AuthFailure::AlgorithmNotAllowed)
        );
    }

    #[test]
    fn hs256_signed_with_the_rsa_public_key_is_not_allowed() {
        // Classic algorithm confusion: the verifier must not let the header pick HMAC and then
        // use the RSA public key bytes as the HMAC secret.
        let confused = EncodingKey::from_secret(RSA1_PUBLIC.as_bytes());
        let t = mint(Algorithm::HS256, &confused, &claims(RS_ISS));
        assert_eq!(
            auth().authenticate(&t, NOW),
            Err(AuthFailure::AlgorithmNotAllowed)
        );
    }

    #[test]
    fn algorithm_not_pinned_for_that_issuer_is_not_allowed() {
        // A perfectly valid ES256 token, but presented as from the RS256 issuer.
        let t = es(&claims(RS_ISS));
        assert_eq!(
            auth().authenticate(&t, NOW),
            Err(AuthFailure::AlgorithmNotAllowed)
        );
        // Algorithms pgward never accepts, even if jsonwebtoken knows them.
        let key = EncodingKey::from_secret(HS_SECRET);
        let t = mint(Algorithm::HS512, &key, &claims(HS_ISS));
        assert_eq!(
            auth().authenticate(&t, NOW),
            Err(AuthFailure::AlgorithmNotAllowed)
        );
    }

    // ---- required claims ----

    #[test]
    fn missing_exp_is_a_missing_claim() {
        let t = hs(&without(claims(HS_ISS), "exp"));
        assert_eq!(auth().authenticate(&t, NOW), Err(AuthFailure::MissingClaim));
        let t = rs(&without(claims(RS_ISS), "exp"));
        assert_eq!(auth().authenticate(&t, NOW), Err(AuthFailure::MissingClaim));
    }

    #[test]
    fn missing_or_empty_sub_is_a_missing_claim() {
        let t = hs(&without(claims(HS_ISS), "sub"));
        assert_eq!(auth().authenticate(&t, NOW), Err(AuthFailure::MissingClaim));
        let t = hs(&with(claims(HS_ISS), "sub", json!("")));
        assert_eq!(auth().authenticate(&t, NOW), Err(AuthFailure::MissingClaim));
        let t = hs(&with(claims(HS_ISS), "sub", json!(7)));
        assert_eq!(auth().authenticate(&t, NOW), Err(AuthFailure::MissingClaim));
    }

    // ---- malformed ----

    #[test]
    fn empty_credential_is_missing() {
        assert_eq!(auth().authenticate("", NOW), Err(AuthFailure::Missing));
        assert_eq!(auth().authenticate("  \t ", NOW), Err(AuthFailure::Missing));
    }

    #[test]
    fn garbage_is_malformed() {
        let a = auth();
        let valid = hs(&claims(HS_ISS));
        let parts: Vec<&str> = valid.split('.').collect();
        let cases = [
            "garbage".to_owned(),
            "a.b".to_owned(),
            "a.b.c".to_owned(),
            "...".to_owned(),
            format!("{valid}.extra"),
            format!("{}=.{}.{}", parts[0], parts[1], parts[2]),
            format!("{}.{}=.{}", parts[0], parts[1], parts[2]),
            format!("{}.!!.{}", parts[0], parts[2]),
            format!("{}.{}.{}", b64url(b"not json"), parts[1], parts[2]),
            format!("{}.{}.{}", parts[0], b64url(b"[1,2]"), parts[2]),
            format!("{}.{}.{}", b64url(br#"{"typ":"JWT"}"#), parts[1], parts[2]),
            format!("{}.{}.{}", b64url(br#"{"alg":5}"#), parts[1], parts[2]),
            "x".repeat(MAX_CREDENTIAL_LEN + 1),
        ];
        for case in &cases {
            assert_eq!(
                a.authenticate(case, NOW),
                Err(AuthFailure::Malformed),
                "{case:.80}"
            );
        }
    }

    #[test]
    fn critical_header_extensions_are_refused() {
        let mut header = Header::new(Algorithm::HS256);
        header.crit = Some(vec!["exp".to_owned()]);
        let t = jsonwebtoken::encode(
            &header,
            &claims(HS_ISS),
            &EncodingKey::from_secret(HS_SECRET),
        )
        .unwrap();
        assert_eq!(auth().authenticate(&t, NOW), Err(AuthFailure::Malformed));
    }

    #[test]
    fn a_required_typ_is_enforced_without_case_or_prefix() {
        let (mut cfg, keys) = config();
        cfg.issuers[0].require_typ = Some("at+jwt".to_owned());
        let a = Authenticator::new(&cfg, &keys, AUD).unwrap();
        let with_typ = |typ: Option<&str>| {
            let mut header = Header::new(Algorithm::HS256);
            header.typ = typ.map(str::to_owned);
            jsonwebtoken::encode(
                &header,
                &claims(HS_ISS),
                &EncodingKey::from_secret(HS_SECRET),
            )
            .unwrap()
        };
        for ok in ["at+jwt", "AT+JWT", "application/at+jwt"] {
            assert!(a.authenticate(&with_typ(Some(ok)), NOW).is_ok(), "{ok}");
        }
        for bad in [Some("JWT"), Some("id_token+jwt"), None] {
            assert_eq!(
                a.authenticate(&with_typ(bad), NOW),
                Err(AuthFailure::WrongTokenType),
                "{bad:?}"
            );
        }
        // Issuers without the setting do not look at `typ`.
        assert!(auth().authenticate(&with_typ(Some("JWT")), NOW).is_ok());
    }

    // ---- API keys ----

    #[test]
    fn valid_api_key_yields_principal() {
        let p = auth().authenticate(API_KEY, NOW).unwrap();
        assert_eq!(
            p,
            Principal {
                subject: "etl-bot".to_owned(),
                issuer: None,
                method: AuthMethod::ApiKey,
                scopes: scopes(&["read:sales", "tool:query"]),
                claims: BTreeMap::new(),
            }
        );
        let p = auth().authenticate("pgw_other", NOW).unwrap();
        assert_eq!(p.subject, "no-scopes");
        assert!(p.scopes.is_empty());
    }

    #[test]
    fn unknown_api_key_is_refused() {
        let a = auth();
        let mut wrong = API_KEY.to_owned();
        wrong.pop();
        wrong.push('0');
        assert_eq!(a.authenticate(&wrong, NOW), Err(AuthFailure::UnknownApiKey));
        assert_eq!(a.authenticate("pgw_", NOW), Err(AuthFailure::UnknownApiKey));
        // The hash itself is not a credential.
        let hash = hash_api_key(API_KEY);
        assert_eq!(
            a.authenticate(&format!("pgw_{hash}"), NOW),
            Err(AuthFailure::UnknownApiKey)
        );
        // Case matters: the key is hashed as given.
        assert_eq!(
            a.authenticate(&API_KEY.to_uppercase().replacen("PGW_", "pgw_", 1), NOW),
            Err(AuthFailure::UnknownApiKey)
        );
    }

    #[test]
    fn api_keys_with_no_keys_configured() {
        let (mut cfg, keys) = config();
        cfg.api_keys.clear();
        let a = Authenticator::new(&cfg, &keys, AUD).unwrap();
        assert_eq!(
            a.authenticate(API_KEY, NOW),
            Err(AuthFailure::UnknownApiKey)
        );
    }

    #[test]
    fn generated_keys_have_the_documented_shape_and_verify() {
        let k1 = generate_api_key().unwrap();
        let k2 = generate_api_key().unwrap();
        assert_ne!(k1, k2);
        for k in [&k1, &k2] {
            let hex = k.strip_prefix("pgw_").unwrap();
            assert_eq!(hex.len(), 64);
            assert!(
                hex.bytes()
                    .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
            );
        }
        let cfg = AuthConfig {
            client_certs: vec![],
            leeway_secs: 0,
            issuers: vec![],
            api_keys: vec![ApiKeyConfig {
                subject: "gen".to_owned(),
                key_sha256: hash_api_key(&k1).to_uppercase(),
                scopes: vec![],
                claims: Default::default(),
            }],
        };
        let a = Authenticator::new(&cfg, &[], AUD).unwrap();
        assert_eq!(a.authenticate(&k1, 0).unwrap().subject, "gen");
        assert_eq!(a.authenticate(&k2, 0), Err(AuthFailure::UnknownApiKey));
    }

    #[test]
    fn hash_api_key_is_lowercase_hex_sha256() {
        assert_eq!(
            hash_api_key("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert_eq!(
            hash_api_key(""),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
    }

    // ---- construction ----

    #[test]
    fn valid_config_builds_and_lists_issuers() {
        assert_eq!(auth().issuers(), vec![HS_ISS, RS_ISS, ES_ISS, ED_ISS]);
        let empty = Authenticator::new(&AuthConfig::default(), &[], AUD).unwrap();
        assert!(empty.issuers().is_empty());
        assert_eq!(
            empty.authenticate(&hs(&claims(HS_ISS)), NOW),
            Err(AuthFailure::UnknownIssuer)
        );
    }

    #[test]
    fn new_reports_every_problem_at_once() {
        let bad_hash = |subject: &str, hash: &str| ApiKeyConfig {
            subject: subject.to_owned(),
            key_sha256: hash.to_owned(),
            scopes: vec![],
            claims: Default::default(),
        };
        let cfg = AuthConfig {
            client_certs: vec![],
            leeway_secs: 3600,
            issuers: vec![
                issuer("https://a", &["HS257"]),
                issuer("https://b", &["none"]),
                issuer("https://c", &["HS256", "RS256"]),
                issuer("https://d", &["HS256"]),
                issuer("https://e", &["RS256"]),
                issuer("https://f", &["ES256"]),
                issuer("https://g", &["ES256"]),
                issuer("https://h", &["HS256"]),
                issuer("https://i", &["RS256"]),
                issuer("https://d", &["EdDSA"]),
                issuer("https://j", &[]),
                issuer("https://k", &["RS256", "ES256"]),
                issuer("https://l", &["RS256"]),
                issuer("https://m", &["EdDSA"]),
            ],
            api_keys: vec![
                bad_hash("bot-1", "abc"),
                bad_hash("", &hash_api_key("x")),
                bad_hash("bot-3", API_KEY),
                bad_hash("bot-4", &hash_api_key("x")),
                bad_hash("bot-5", &"g".repeat(64)),
            ],
        };
        let keys = vec![
            IssuerKeys::default(),
            IssuerKeys::default(),
            secret(HS_SECRET),
            IssuerKeys::default(),
            IssuerKeys::default(),
            pem("-----BEGIN PUBLIC KEY-----\nnot base64\n-----END PUBLIC KEY-----\n"),
            pem(EC_P384_PUBLIC),
            secret(b"too short"),
            pem(RSA_1024_PUBLIC),
            pem(ED1_PUBLIC),
            IssuerKeys::default(),
            pem(RSA1_PUBLIC),
            pem(RSA1_PRIVATE),
            pem(RSA1_PUBLIC),
        ];
        let errors = Authenticator::new(&cfg, &keys, AUD).unwrap_err();
        let expected = [
            "auth.leeway_secs: 3600 is more than the maximum of 300 seconds",
            "auth.issuers[0] (`https://a`).algorithms: unknown algorithm `HS257`",
            "auth.issuers[1] (`https://b`).algorithms: `none` is never accepted",
            "auth.issuers[2] (`https://c`).algorithms: mixes HMAC with public-key algorithms",
            "auth.issuers[3] (`https://d`).hs256_secret: required for `HS256`",
            "auth.issuers[4] (`https://e`).public_key_file: `RS256` needs `public_key_file` or `jwks_url`",
            "auth.issuers[5] (`https://f`).public_key_file: does not hold an EC P-256 public key",
            "auth.issuers[6] (`https://g`).public_key_file: does not hold an EC P-256 public key usable with `ES256`",
            "auth.issuers[7] (`https://h`).hs256_secret: shorter than 32 bytes",
            "auth.issuers[8] (`https://i`).public_key_file: RSA key is shorter than 2048 bits",
            "auth.issuers[9] (`https://d`).issuer: duplicate of auth.issuers[3]",
            "auth.issuers[10] (`https://j`).algorithms: pin at least one algorithm",
            "auth.issuers[11] (`https://k`).algorithms: mixes key types (`RS256`, `ES256`)",
            "auth.issuers[12] (`https://l`).public_key_file: does not hold an RSA public key",
            "auth.issuers[13] (`https://m`).public_key_file: does not hold an Ed25519 public key",
            "auth.api_keys[0] (`bot-1`).key_sha256: expected 64 hex characters",
            "auth.api_keys[1] (``).subject: must not be empty",
            "auth.api_keys[2] (`bot-3`).key_sha256: holds an API key rather than its hash",
            "auth.api_keys[3] (`bot-4`).key_sha256: same key as auth.api_keys[1]",
            "auth.api_keys[4] (`bot-5`).key_sha256: expected 64 hex characters",
        ];
        for want in expected {
            assert!(
                errors.iter().any(|e| e.starts_with(want)),
                "missing {want:?} in {errors:#?}"
            );
        }
        assert_eq!(errors.len(), expected.len(), "{errors:#?}");
        for e in &errors {
            // The raw API key and secrets never appear in a config error.
            assert!(!e.contains(API_KEY) && !e.contains("too short"), "{e}");
            assert!(!e.ends_with('.'), "{e}");
        }
    }

    #[test]
    fn misplaced_key_material_and_mismatched_lengths_are_reported() {
        let cfg = AuthConfig {
            client_certs: vec![],
            leeway_secs: 0,
            issuers: vec![
                issuer("https://a", &["HS256"]),
                issuer("https://b", &["RS256"]),
            ],
            api_keys: vec![],
        };
        let keys = vec![
            IssuerKeys {
                hs256_secret: Some(HS_SECRET.to_vec()),
                public_key_pem: Some(RSA1_PUBLIC.as_bytes().to_vec()),
            },
            IssuerKeys {
                hs256_secret: Some(HS_SECRET.to_vec()),
                public_key_pem: Some(RSA1_PUBLIC.as_bytes().to_vec()),
            },
        ];
        let errors = Authenticator::new(&cfg, &keys, AUD).unwrap_err();
        assert_eq!(
            errors,
            vec![
                "auth.issuers[0] (`https://a`).public_key_file: not used by `HS256`; remove it",
                "auth.issuers[1] (`https://b`).hs256_secret: only used by `HS256`; remove it",
            ]
        );
        let errors = Authenticator::new(&cfg, &keys[..1], AUD).unwrap_err();
        assert!(
            errors[0].starts_with("auth.issuers: key material was resolved for 1 issuers but 2")
        );
    }

    #[test]
    fn audience_and_scope_claim_must_not_be_empty() {
        let mut a = issuer("https://a", &["HS256"]);
        a.audience = Some(String::new());
        let mut b = issuer("https://b", &["HS256"]);
        b.scope_claim = Some(" ".to_owned());
        let c = issuer("https://c", &["HS256"]);
        let cfg = AuthConfig {
            client_certs: vec![],
            leeway_secs: 0,
            issuers: vec![a, b, c],
            api_keys: vec![],
        };
        let keys = vec![secret(HS_SECRET), secret(HS_SECRET), secret(HS_SECRET)];
        let errors = Authenticator::new(&cfg, &keys, "").unwrap_err();
        assert_eq!(
            errors,
            vec![
                "auth.issuers[0] (`https://a`).audience: must not be empty",
                "auth.issuers[1] (`https://b`).audience: not set, and `http.public_url` is empty",
                "auth.issuers[1] (`https://b`).scope_claim: must not be empty",
                "auth.issuers[2] (`https://c`).audience: not set, and `http.public_url` is empty",
            ]
        );
    }

    #[test]
    fn api_key_with_empty_scopes_list_is_allowed() {
        let cfg = AuthConfig {
            client_certs: vec![],
            leeway_secs: 0,
            issuers: vec![],
            api_keys: vec![ApiKeyConfig {
                subject: "s".to_owned(),
                key_sha256: hash_api_key(API_KEY),
                scopes: vec![],
                claims: Default::default(),
            }],
        };
        assert!(Authenticator::new(&cfg, &[], AUD).is_ok());
    }

    // ---- no secrets in Debug or reasons ----

    #[test]
    fn debug_output_holds_no_secret() {
        let a = auth();
        let dbg = format!("{a:?} {a:#?}");
        let hs_secret = String::from_utf8_lossy(HS_SECRET);
        assert!(!dbg.contains(hs_secret.as_ref()), "{dbg}");
        assert!(!dbg.contains(&hash_api_key(API_KEY)), "{dbg}");
        assert!(!dbg.contains("MIIBIjAN"), "{dbg}");
        assert!(dbg.contains(HS_ISS) && dbg.contains("etl-bot"), "{dbg}");
        let keys = format!("{:?}", secret(HS_SECRET));
        assert!(!keys.contains(hs_secret.as_ref()), "{keys}");
        let keys = format!("{:?}", pem(RSA1_PUBLIC));
        assert!(!keys.contains("MIIBIjAN"), "{keys}");
    }

    #[test]
    fn failure_codes_are_stable_unique_snake_case_and_messages_lowercase() {
        let codes: BTreeSet<&str> = AuthFailure::ALL.iter().map(|f| f.code()).collect();
        assert_eq!(codes.len(), AuthFailure::ALL.len());
        for f in AuthFailure::ALL {
            let code = f.code();
            assert!(
                code.bytes().all(|b| b.is_ascii_lowercase() || b == b'_'),
                "{code}"
            );
            let msg = f.to_string();
            assert_eq!(msg, msg.to_lowercase());
            assert!(!msg.ends_with('.'));
        }
        assert_eq!(AuthFailure::Missing.code(), "missing_token");
        assert_eq!(AuthFailure::Malformed.code(), "malformed_token");
    }

    #[test]
    fn stdio_principal() {
        let p = Principal::stdio("local", ["a".to_owned(), "b".to_owned()]);
        assert_eq!(p.method, AuthMethod::Stdio);
        assert_eq!(p.issuer, None);
        assert_eq!(p.subject, "local");
        assert_eq!(p.scopes, scopes(&["a", "b"]));
        let json = serde_json::to_value(&p).unwrap();
        assert_eq!(json["method"], "Stdio");
    }

    // ---- internals ----

    #[test]
    fn b64url_decoder_is_strict_and_round_trips() {
        for len in 0..20u8 {
            let data: Vec<u8> = (0..len)
                .map(|i| i.wrapping_mul(37).wrapping_add(200))
                .collect();
            assert_eq!(b64url_decode(&b64url(&data)).unwrap(), data);
        }
        assert_eq!(b64url_decode("e30").unwrap(), b"{}");
        for bad in ["e30=", "e3 0", "e3+0", "e3/0", "a", "abcde", "e31"] {
            assert!(b64url_decode(bad).is_none(), "{bad}");
        }
    }

    #[test]
    fn sha256_hex_parsing() {
        let h = hash_api_key("k");
        assert_eq!(parse_sha256_hex(&h), parse_sha256_hex(&h.to_uppercase()));
        assert_eq!(to_hex(&parse_sha256_hex(&h).unwrap()), h);
        assert!(parse_sha256_hex(&h[..63]).is_none());
        assert!(parse_sha256_hex(&format!("{h}0")).is_none());
        assert!(parse_sha256_hex(&format!("{}z", &h[..63])).is_none());
    }

    // --- JWKS issuers ---

    const JW_ISS: &str = "https://idp.example";

    /// The public JWK of a private key, with `kid` and optionally without `alg`.
    fn jwk_of(key: &EncodingKey, alg: Algorithm, kid: &str, with_alg: bool) -> Value {
        let mut jwk = serde_json::to_value(Jwk::from_encoding_key(key, alg).unwrap()).unwrap();
        jwk["kid"] = json!(kid);
        jwk["use"] = json!("sig");
        if !with_alg {
            jwk.as_object_mut().unwrap().remove("alg");
        }
        jwk
    }

    fn rsa1() -> EncodingKey {
        EncodingKey::from_rsa_pem(RSA1_PRIVATE.as_bytes()).unwrap()
    }

    fn rsa2() -> EncodingKey {
        EncodingKey::from_rsa_pem(RSA2_PRIVATE.as_bytes()).unwrap()
    }

    fn with_kid(alg: Algorithm, key: &EncodingKey, kid: Option<&str>, claims: &Value) -> String {
        let mut header = Header::new(alg);
        header.kid = kid.map(str::to_owned);
        jsonwebtoken::encode(&header, claims, key).unwrap()
    }

    /// An authenticator whose only issuer takes its keys from a JWKS, and that issuer's handle.
    fn jwks_auth(algs: &[&str]) -> (Authenticator, JwksHandle) {
        let mut ic = issuer(JW_ISS, algs);
        ic.jwks_url = Some("https://idp.example/.well-known/jwks.json".into());
        let cfg = AuthConfig {
            client_certs: vec![],
            leeway_secs: 0,
            issuers: vec![ic],
            api_keys: vec![],
        };
        let auth = Authenticator::new(&cfg, &[IssuerKeys::default()], AUD).unwrap();
        let handles = auth.jwks_handles();
        assert_eq!(handles.len(), 1);
        let handle = handles[0].clone();
        assert_eq!((handle.index, handle.issuer.as_str()), (0, JW_ISS));
        (auth, handle)
    }

    #[test]
    fn jwks_issuer_picks_the_key_by_kid_and_refuses_unknown_kids() {
        let (auth, handle) = jwks_auth(&["RS256"]);
        let c = claims(JW_ISS);
        let k1 = with_kid(Algorithm::RS256, &rsa1(), Some("k1"), &c);
        // Before the first fetch nothing verifies.
        assert!(handle.is_empty());
        assert_eq!(auth.authenticate(&k1, NOW), Err(AuthFailure::UnknownKey));

        let set = json!({"keys": [jwk_of(&rsa1(), Algorithm::RS256, "k1", true)]});
        assert_eq!(handle.install(set.to_string().as_bytes()), Ok(1));
        let p = auth.authenticate(&k1, NOW).unwrap();
        assert_eq!((p.subject.as_str(), p.method), ("alice", AuthMethod::Jwt));
        assert_eq!(p.issuer.as_deref(), Some(JW_ISS));

        // Signed by a key the set lacks: unknown kid (the EDGE refetches), and a known kid with
        // the wrong key is a bad signature.
        let k2 = with_kid(Algorithm::RS256, &rsa2(), Some("k2"), &c);
        assert_eq!(auth.authenticate(&k2, NOW), Err(AuthFailure::UnknownKey));
        let forged = with_kid(Algorithm::RS256, &rsa2(), Some("k1"), &c);
        assert_eq!(
            auth.authenticate(&forged, NOW),
            Err(AuthFailure::BadSignature)
        );

        // Rotation: the new set holds both keys; then the old one is retired.
        let both = json!({"keys": [
            jwk_of(&rsa1(), Algorithm::RS256, "k1", true),
            jwk_of(&rsa2(), Algorithm::RS256, "k2", false),
        ]});
        assert_eq!(handle.install(both.to_string().as_bytes()), Ok(2));
        assert!(auth.authenticate(&k1, NOW).is_ok());
        assert!(auth.authenticate(&k2, NOW).is_ok());
        let only2 = json!({"keys": [jwk_of(&rsa2(), Algorithm::RS256, "k2", true)]});
        assert_eq!(handle.install(only2.to_string().as_bytes()), Ok(1));
        assert_eq!(auth.authenticate(&k1, NOW), Err(AuthFailure::UnknownKey));
        assert!(auth.authenticate(&k2, NOW).is_ok());
    }

    #[test]
    fn jwks_token_without_kid_needs_a_one_key_set() {
        let (auth, handle) = jwks_auth(&["RS256"]);
        let c = claims(JW_ISS);
        let no_kid = with_kid(Algorithm::RS256, &rsa1(), None, &c);
        let one = json!({"keys": [jwk_of(&rsa1(), Algorithm::RS256, "k1", true)]});
        handle.install(one.to_string().as_bytes()).unwrap();
        assert!(auth.authenticate(&no_kid, NOW).is_ok());
        let two = json!({"keys": [
            jwk_of(&rsa1(), Algorithm::RS256, "k1", true),
            jwk_of(&rsa2(), Algorithm::RS256, "k2", true),
        ]});
        handle.install(two.to_string().as_bytes()).unwrap();
        assert_eq!(
            auth.authenticate(&no_kid, NOW),
            Err(AuthFailure::UnknownKey)
        );
        // A `kid` that is not a string is malformed.
        let header = json!({"alg": "RS256", "kid": 7});
        let token = hand_built(&header, &c, "c2ln");
        assert_eq!(auth.authenticate(&token, NOW), Err(AuthFailure::Malformed));
    }

    #[test]
    fn jwks_keys_outside_the_pinned_algorithms_are_skipped() {
        let (auth, handle) = jwks_auth(&["ES256"]);
        let ec = EncodingKey::from_ec_pem(EC1_PRIVATE.as_bytes()).unwrap();
        let set = json!({"keys": [
            // Wrong family for ES256, an encryption key, a symmetric key, garbage: all skipped.
            jwk_of(&rsa1(), Algorithm::RS256, "rsa", true),
            {"kty": "EC", "use": "enc", "crv": "P-256", "kid": "enc",
             "x": "2UXAhOqqra6pNSjItB96gauuQo8Ao5U4__PquFIpDW8",
             "y": "POEhHzAWKSrDf_Wr3mnXvnl3vQTCPuswIF3N0Dp4KGo"},
            {"kty": "oct", "k": "c2VjcmV0", "kid": "oct"},
            {"kty": "nonsense", "kid": "x"},
            jwk_of(&ec, Algorithm::ES256, "ec", true),
        ]});
        assert_eq!(handle.install(set.to_string().as_bytes()), Ok(1));
        let c = claims(JW_ISS);
        assert!(
            auth.authenticate(&with_kid(Algorithm::ES256, &ec, Some("ec"), &c), NOW)
                .is_ok()
        );
        // The RSA key was skipped, and RS256 is not pinned anyway.
        assert_eq!(
            auth.authenticate(&with_kid(Algorithm::RS256, &rsa1(), Some("rsa"), &c), NOW),
            Err(AuthFailure::AlgorithmNotAllowed)
        );
    }

    #[test]
    fn jwks_key_with_alg_is_used_with_that_alg_only() {
        // EdDSA and ... only one family per issuer, so use RS256 key declared as RS256 while the
        // issuer pins RS256: a token claiming another pinned alg of the same key is refused.
        let (auth, handle) = jwks_auth(&["RS256"]);
        let set = json!({"keys": [jwk_of(&rsa1(), Algorithm::RS256, "k1", true)]});
        handle.install(set.to_string().as_bytes()).unwrap();
        // HS256 signed with the RSA modulus as a secret: refused before any key is touched.
        let header = json!({"alg": "HS256", "kid": "k1"});
        let token = hand_built(&header, &claims(JW_ISS), "c2ln");
        assert_eq!(
            auth.authenticate(&token, NOW),
            Err(AuthFailure::AlgorithmNotAllowed)
        );
    }

    #[test]
    fn bad_key_sets_are_refused_and_the_old_set_stays() {
        let (auth, handle) = jwks_auth(&["RS256"]);
        let good = json!({"keys": [jwk_of(&rsa1(), Algorithm::RS256, "k1", true)]});
        handle.install(good.to_string().as_bytes()).unwrap();
        let dup = json!({"keys": [
            jwk_of(&rsa1(), Algorithm::RS256, "k1", true),
            jwk_of(&rsa2(), Algorithm::RS256, "k1", true),
        ]});
        let too_many = json!({"keys": vec![jwk_of(&rsa1(), Algorithm::RS256, "k", true); 65]});
        let short =
            json!({"keys": [{"kty": "RSA", "kid": "short", "n": "qwertyuiop", "e": "AQAB"}]});
        let cases: [(Vec<u8>, &str); 6] = [
            (b"not json".to_vec(), "the key set is not JSON"),
            (b"{}".to_vec(), "the key set has no `keys` array"),
            (
                br#"{"keys": []}"#.to_vec(),
                "the key set holds no key usable with `RS256`",
            ),
            (
                short.to_string().into_bytes(),
                "the key set holds no key usable with `RS256`",
            ),
            (
                dup.to_string().into_bytes(),
                "the key set has two usable keys with `kid` `k1`",
            ),
            (
                too_many.to_string().into_bytes(),
                "the key set holds 65 keys, more than the maximum of 64",
            ),
        ];
        for (body, why) in cases {
            assert_eq!(handle.install(&body), Err(why.to_string()));
        }
        assert_eq!(handle.len(), 1);
        let k1 = with_kid(Algorithm::RS256, &rsa1(), Some("k1"), &claims(JW_ISS));
        assert!(auth.authenticate(&k1, NOW).is_ok());
    }

    #[test]
    fn jwks_config_problems_are_reported() {
        let mut plain = issuer("https://a.example", &["RS256"]);
        plain.jwks_url = Some("http://a.example/jwks".into());
        let mut both = issuer("https://b.example", &["RS256"]);
        both.jwks_url = Some("https://b.example/jwks".into());
        let mut hs = issuer("https://c.example", &["HS256"]);
        hs.jwks_url = Some("https://c.example/jwks".into());
        let mut stray = issuer("https://d.example", &["ES256"]);
        stray.jwks_ca_file = Some("ca.pem".into());
        stray.jwks_refresh_secs = Some(600);
        let mut fast = issuer("https://e.example", &["EdDSA"]);
        fast.jwks_url = Some("https://user:pw@e.example/jwks".into());
        fast.jwks_refresh_secs = Some(5);
        let cfg = AuthConfig {
            client_certs: vec![],
            leeway_secs: 0,
            issuers: vec![plain, both, hs, stray, fast],
            api_keys: vec![],
        };
        let keys = vec![
            IssuerKeys::default(),
            pem(RSA1_PUBLIC),
            secret(HS_SECRET),
            pem(EC1_PUBLIC),
            IssuerKeys::default(),
        ];
        let errors = Authenticator::new(&cfg, &keys, AUD).unwrap_err();
        assert_eq!(
            errors,
            vec![
                "auth.issuers[0] (`https://a.example`).jwks_url: `http://a.example/jwks` must start with `https://`",
                "auth.issuers[1] (`https://b.example`): set `public_key_file` or `jwks_url`, not both",
                "auth.issuers[2] (`https://c.example`).jwks_url: `HS256` keys are secrets and never published; remove it",
                "auth.issuers[3] (`https://d.example`).jwks_ca_file: only used with `jwks_url`",
                "auth.issuers[3] (`https://d.example`).jwks_refresh_secs: only used with `jwks_url`",
                "auth.issuers[4] (`https://e.example`).jwks_url: must not hold credentials",
                "auth.issuers[4] (`https://e.example`).jwks_refresh_secs: 5 is outside 60 to 86400",
            ]
        );
    }

    #[test]
    fn client_certificates_map_by_common_name() {
        use crate::auth::config::ClientCertConfig;
        let cert = |cn: &str, scopes: &[&str]| ClientCertConfig {
            common_name: cn.to_owned(),
            scopes: scopes.iter().map(|s| (*s).to_owned()).collect(),
            claims: Default::default(),
        };
        let cfg = AuthConfig {
            client_certs: vec![cert("reporting-bot", &["db:read"]), cert("ops", &[])],
            ..AuthConfig::default()
        };
        let auth = Authenticator::new(&cfg, &[], AUD).unwrap();
        let p = auth
            .authenticate_client_cert(Some("reporting-bot"))
            .unwrap();
        assert_eq!(
            p,
            Principal {
                subject: "reporting-bot".into(),
                issuer: None,
                method: AuthMethod::ClientCert,
                scopes: scopes(&["db:read"]),
                claims: BTreeMap::new(),
            }
        );
        assert_eq!(
            auth.authenticate_client_cert(Some("ops")).unwrap().scopes,
            scopes(&[])
        );
        // Exact match only: no case folding, no prefix, no missing CN.
        for cn in [
            Some("Reporting-Bot"),
            Some("reporting-bot "),
            Some("reporting"),
            Some(""),
            None,
        ] {
            assert_eq!(
                auth.authenticate_client_cert(cn),
                Err(AuthFailure::UnknownClientCert),
                "{cn:?}"
            );
        }
        let bad = AuthConfig {
            client_certs: vec![
                cert("a", &["x"]),
                cert("a", &["y"]),
                cert(" b", &[]),
                cert("c", &[""]),
            ],
            ..AuthConfig::default()
        };
        assert_eq!(
            Authenticator::new(&bad, &[], AUD).unwrap_err(),
            vec![
                "auth.client_certs[1] (`a`).common_name: listed twice",
                "auth.client_certs[2] (` b`).common_name: must not be empty or start or end with spaces",
                "auth.client_certs[3] (`c`).scopes: a scope must not be empty",
            ]
        );
    }
}

//! EDGE: mutual TLS. Builds the client-certificate verifier from `http.tls.client_ca_file`
//! (and CRLs), and reads the common name of a certificate the handshake verified.
//!
//! INVARIANT: the handshake (rustls' WebPKI verifier) checks the chain to the configured CA,
//! validity dates, the `clientAuth` key usage and revocation; only then does pgward read the
//! subject, and only a common name listed in `auth.client_certs` becomes a principal
//! ([`Authenticator::authenticate_client_cert`](crate::auth::Authenticator::authenticate_client_cert)).

use std::sync::Arc;

use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, CertificateRevocationListDer};
use tokio_rustls::rustls;
use tokio_rustls::rustls::server::danger::ClientCertVerifier;
use x509_cert::der::Decode;
use x509_cert::der::asn1::{ObjectIdentifier, PrintableStringRef, Utf8StringRef};

use crate::config::types::{ClientAuth, TlsConfig};

/// id-at-commonName (RFC 4519).
const COMMON_NAME: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.5.4.3");

/// The verified client certificate of a connection, attached to each of its requests.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerCertificate {
    /// The subject's common name; `None` when it has none or more than one.
    pub common_name: Option<String>,
}

impl PeerCertificate {
    /// From the leaf certificate (DER) of a verified chain.
    pub fn from_der(der: &[u8]) -> Self {
        Self {
            common_name: common_name(der),
        }
    }
}

/// The one common name in the certificate's subject. A certificate with several (which one
/// would the CA have vouched for?) or with none has no name here.
pub fn common_name(der: &[u8]) -> Option<String> {
    let cert = x509_cert::Certificate::from_der(der).ok()?;
    let mut names = cert
        .tbs_certificate
        .subject
        .0
        .iter()
        .flat_map(|rdn| rdn.0.iter())
        .filter(|atv| atv.oid == COMMON_NAME);
    let first = names.next()?;
    if names.next().is_some() {
        return None;
    }
    // RFC 5280 DirectoryString: UTF8String or PrintableString in practice; the legacy
    // Teletex and BMP forms are not read.
    if let Ok(s) = first.value.decode_as::<Utf8StringRef<'_>>() {
        return Some(s.as_str().to_owned());
    }
    first
        .value
        .decode_as::<PrintableStringRef<'_>>()
        .ok()
        .map(|s| s.as_str().to_owned())
}

/// The verifier for `http.tls.client_ca_file`, or `None` when mutual TLS is off.
pub fn client_verifier(
    tls: &TlsConfig,
    provider: Arc<rustls::crypto::CryptoProvider>,
) -> Result<Option<Arc<dyn ClientCertVerifier>>, String> {
    let Some(ca_file) = &tls.client_ca_file else {
        return Ok(None);
    };
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(ca_file)
        .and_then(|it| it.collect::<Result<Vec<_>, _>>())
        .map_err(|e| format!("http.tls.client_ca_file `{ca_file}`: {e}"))?;
    let mut roots = rustls::RootCertStore::empty();
    for cert in certs {
        roots.add(cert).map_err(|e| {
            format!("http.tls.client_ca_file `{ca_file}`: unusable CA certificate: {e}")
        })?;
    }
    if roots.is_empty() {
        return Err(format!(
            "http.tls.client_ca_file `{ca_file}`: no certificate found"
        ));
    }
    let mut crls: Vec<CertificateRevocationListDer<'static>> = Vec::new();
    for file in &tls.client_crl_files {
        let found = CertificateRevocationListDer::pem_file_iter(file)
            .and_then(|it| it.collect::<Result<Vec<_>, _>>())
            .map_err(|e| format!("http.tls.client_crl_files `{file}`: {e}"))?;
        if found.is_empty() {
            return Err(format!(
                "http.tls.client_crl_files `{file}`: no revocation list found"
            ));
        }
        crls.extend(found);
    }
    let mut builder =
        rustls::server::WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
            .with_crls(crls);
    if tls.client_auth == Some(ClientAuth::Optional) {
        builder = builder.allow_unauthenticated();
    }
    builder
        .build()
        .map(Some)
        .map_err(|e| format!("http.tls.client_ca_file `{ca_file}`: {e}"))
}

//! Outbound TLS: the client configuration pgward uses wherever it connects to a server (JWKS
//! and OAuth metadata over HTTPS, PostgreSQL). ring, TLS 1.2 and 1.3 only, and the server's
//! certificate always verified, with its name: against the system trust store, or only
//! against the CA certificates of a PEM file.

use std::sync::Arc;

use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject;
use rustls_platform_verifier::BuilderVerifierExt;
use tokio_rustls::rustls;

/// A client configuration trusting the system CA store, or only the certificates in
/// `ca_file`. The error names the file and what is wrong with it, never its contents.
pub fn client_config(ca_file: Option<&str>) -> Result<rustls::ClientConfig, String> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("tls: {e}"))?;
    Ok(match ca_file {
        Some(path) => {
            let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(path)
                .and_then(|it| it.collect::<Result<Vec<_>, _>>())
                .map_err(|e| format!("`{path}`: {e}"))?;
            let mut roots = rustls::RootCertStore::empty();
            for cert in certs {
                roots
                    .add(cert)
                    .map_err(|e| format!("`{path}`: unusable CA certificate: {e}"))?;
            }
            if roots.is_empty() {
                return Err(format!("`{path}`: no certificate found"));
            }
            builder.with_root_certificates(roots).with_no_client_auth()
        }
        None => builder
            .with_platform_verifier()
            .map_err(|e| format!("system trust store: {e}"))?
            .with_no_client_auth(),
    })
}

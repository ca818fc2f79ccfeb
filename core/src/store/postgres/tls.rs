//! TLS to PostgreSQL, with rustls: the database URL's `sslmode` and `sslrootcert`, as libpq reads them.
//!
//! - `disable`: plaintext. `prefer` (the default, as libpq's): TLS when the server offers it,
//!   unverified. `require`: TLS or no connection, unverified (verified as `verify-full` when
//!   `sslrootcert` is given, as libpq does).
//! - `verify-ca`: TLS with a certificate chain to a trusted root; `verify-full`: that, and the
//!   certificate names the host.
//! - `sslrootcert`: a PEM file of the roots to trust; `system` (or none given) trusts the public roots
//!   of the Mozilla program (webpki-roots).
//!
//! tokio-postgres parses only `disable`, `prefer` and `require`, so the rest is read here and taken
//! out of the URL before it does.

use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{CertificateError, ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};
use tokio_postgres::config::SslMode;
use tokio_postgres_rustls::MakeRustlsConnect;

use crate::error::{Error, Result};

/// How a connection is secured, from the URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct TlsSettings {
    mode: Mode,
    /// `sslrootcert`: a PEM file; `None` for the public roots.
    root_cert: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Disable,
    Prefer,
    Require,
    VerifyCa,
    VerifyFull,
}

/// `url` without the parameters tokio-postgres does not read, and the TLS settings they gave.
pub(super) fn split_url(url: &str) -> Result<(String, TlsSettings)> {
    let bad = |why: String| Error::storage(format!("the database URL is not valid: {why}"));
    let Some((base, query)) = url.split_once('?') else {
        return Ok((url.to_owned(), TlsSettings { mode: Mode::Prefer, root_cert: None }));
    };
    let mut settings = TlsSettings { mode: Mode::Prefer, root_cert: None };
    let mut kept = form_urlencoded::Serializer::new(String::new());
    for (key, value) in form_urlencoded::parse(query.as_bytes()) {
        match key.as_ref() {
            "sslmode" => {
                settings.mode = match value.as_ref() {
                    "disable" => Mode::Disable,
                    "allow" | "prefer" => Mode::Prefer,
                    "require" => Mode::Require,
                    "verify-ca" => Mode::VerifyCa,
                    "verify-full" => Mode::VerifyFull,
                    other => return Err(bad(format!("unknown sslmode `{other}`"))),
                }
            }
            "sslrootcert" => settings.root_cert = Some(value.into_owned()).filter(|v| v != "system"),
            _ => {
                kept.append_pair(&key, &value);
            }
        }
    }
    // libpq: `require` with a root certificate given verifies as `verify-ca` would; we verify fully.
    if settings.mode == Mode::Require && settings.root_cert.is_some() {
        settings.mode = Mode::VerifyFull;
    }
    let kept = kept.finish();
    Ok((if kept.is_empty() { base.to_owned() } else { format!("{base}?{kept}") }, settings))
}

impl TlsSettings {
    /// What tokio-postgres is told: whether to ask the server for TLS, and whether to insist.
    pub(super) fn ssl_mode(&self) -> SslMode {
        match self.mode {
            Mode::Disable => SslMode::Disable,
            Mode::Prefer => SslMode::Prefer,
            Mode::Require | Mode::VerifyCa | Mode::VerifyFull => SslMode::Require,
        }
    }

    /// The connector: rustls with the roots and checks the mode asks for.
    pub(super) fn connector(&self) -> Result<MakeRustlsConnect> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = ClientConfig::builder_with_provider(Arc::clone(&provider))
            .with_safe_default_protocol_versions()
            .map_err(Error::storage)?;
        let config = match self.mode {
            Mode::Disable | Mode::Prefer | Mode::Require => builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(Unverified(provider)))
                .with_no_client_auth(),
            Mode::VerifyCa | Mode::VerifyFull => {
                let roots = Arc::new(self.roots()?);
                let verifier = rustls::client::WebPkiServerVerifier::builder_with_provider(roots, provider)
                    .build()
                    .map_err(Error::storage)?;
                let verifier: Arc<dyn ServerCertVerifier> =
                    if self.mode == Mode::VerifyCa { Arc::new(AnyName(verifier)) } else { verifier };
                builder.dangerous().with_custom_certificate_verifier(verifier).with_no_client_auth()
            }
        };
        Ok(MakeRustlsConnect::new(config))
    }

    fn roots(&self) -> Result<RootCertStore> {
        let mut roots = RootCertStore::empty();
        match &self.root_cert {
            None => roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned()),
            Some(path) => {
                let cannot = |why: String| Error::storage(format!("cannot read sslrootcert {path}: {why}"));
                let certs = CertificateDer::pem_file_iter(path).map_err(|err| cannot(err.to_string()))?;
                for cert in certs {
                    roots.add(cert.map_err(|err| cannot(err.to_string()))?).map_err(|err| cannot(err.to_string()))?;
                }
                if roots.is_empty() {
                    return Err(cannot("it holds no certificate".into()));
                }
            }
        }
        Ok(roots)
    }
}

/// `prefer` and `require` without a root: the connection is encrypted, the server not verified (as
/// libpq does; say `verify-full` to verify it). Handshake signatures are still checked.
#[derive(Debug)]
struct Unverified(Arc<CryptoProvider>);

impl ServerCertVerifier for Unverified {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> std::result::Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// `verify-ca`: the chain must reach a trusted root; the name in the certificate is not checked.
#[derive(Debug)]
struct AnyName(Arc<rustls::client::WebPkiServerVerifier>);

impl ServerCertVerifier for AnyName {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> std::result::Result<ServerCertVerified, rustls::Error> {
        match self.0.verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now) {
            Err(rustls::Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            )) => Ok(ServerCertVerified::assertion()),
            verified => verified,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.supported_verify_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_tls_parameters_are_read_and_taken_out_of_the_url() {
        let (url, tls) =
            split_url("postgres://u@h/db?sslmode=verify-full&sslrootcert=/ca.pem&application_name=x").unwrap();
        assert_eq!(url, "postgres://u@h/db?application_name=x");
        assert_eq!(tls, TlsSettings { mode: Mode::VerifyFull, root_cert: Some("/ca.pem".into()) });
        let (url, tls) = split_url("postgres://u@h/db").unwrap();
        assert_eq!((url.as_str(), tls.mode), ("postgres://u@h/db", Mode::Prefer));
        assert_eq!(split_url("postgres://h/db?sslmode=require").unwrap().1.mode, Mode::Require);
        assert_eq!(split_url("postgres://h/db?sslmode=require&sslrootcert=/ca").unwrap().1.mode, Mode::VerifyFull);
        assert_eq!(split_url("postgres://h/db?sslmode=verify-ca&sslrootcert=system").unwrap().1.root_cert, None);
        assert!(split_url("postgres://h/db?sslmode=sometimes").is_err());
    }
}

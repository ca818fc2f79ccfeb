//! TLS on both faces, with rustls: one certificate (`--tls-cert`, `--tls-key`, PEM) for REST (ALPN h2
//! and http/1.1) and gRPC (h2), re-read without a restart when its files change or on SIGHUP, so that
//! a renewed certificate is served to every new connection while the open ones go on; and, with
//! `--tls-client-ca`, mutual TLS on gRPC: a caller without a certificate signed by that CA is refused
//! at the handshake. A handshake is held to the header timeout, and counts against the connection
//! limits like any connection: a client that opens TLS and stalls is cut off as one that stalls in
//! plaintext.

use std::io;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::{Arc, Mutex, RwLock};
use std::task::{Context, Poll};
use std::time::{Duration, SystemTime};

use anyhow::Context as _;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert, WebPkiClientVerifier};
use rustls::sign::CertifiedKey;
use rustls::{RootCertStore, ServerConfig};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio_rustls::TlsAcceptor;

/// How often the certificate's files are looked at for a change.
const RELOAD_CHECK: Duration = Duration::from_secs(2);

/// The TLS flags.
#[derive(Debug, Clone)]
pub struct TlsFiles {
    /// The certificate chain, PEM, the server's own first.
    pub cert: PathBuf,
    /// Its private key, PEM (PKCS#8, PKCS#1 or SEC1).
    pub key: PathBuf,
    /// The CA that gRPC callers' certificates must be signed by (mutual TLS), PEM.
    pub client_ca: Option<PathBuf>,
}

/// Both faces' acceptors, sharing one reloading certificate.
#[derive(Clone)]
pub struct Tls {
    /// REST: h2 and http/1.1, no client certificate.
    pub rest: TlsAcceptor,
    /// gRPC: h2, with a client certificate when a client CA is given.
    pub grpc: TlsAcceptor,
}

impl Tls {
    /// Loads the certificate and the client CA, and starts re-reading the certificate when its files
    /// change or on SIGHUP. Fails at once on files that cannot be read or do not match.
    pub fn load(files: &TlsFiles) -> anyhow::Result<Tls> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let certificate = Arc::new(ReloadingCert::load(files, Arc::clone(&provider))?);
        let builder = || {
            ServerConfig::builder_with_provider(Arc::clone(&provider))
                .with_safe_default_protocol_versions()
                .context("TLS protocol versions")
        };
        let mut rest = builder()?.with_no_client_auth().with_cert_resolver(certificate.clone());
        rest.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        let grpc = match &files.client_ca {
            None => builder()?.with_no_client_auth(),
            Some(ca) => {
                let mut roots = RootCertStore::empty();
                for cert in certificates(ca)? {
                    roots.add(cert).with_context(|| format!("{}: not a CA certificate", ca.display()))?;
                }
                let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), Arc::clone(&provider))
                    .build()
                    .with_context(|| format!("{}: cannot verify clients with it", ca.display()))?;
                builder()?.with_client_cert_verifier(verifier)
            }
        };
        let mut grpc = grpc.with_cert_resolver(certificate.clone());
        grpc.alpn_protocols = vec![b"h2".to_vec()];
        tokio::spawn(keep_reloading(certificate));
        Ok(Tls { rest: TlsAcceptor::from(Arc::new(rest)), grpc: TlsAcceptor::from(Arc::new(grpc)) })
    }
}

/// Re-reads the certificate whenever its files' modification times change, and on every SIGHUP.
async fn keep_reloading(certificate: Arc<ReloadingCert>) {
    use tokio::signal::unix::{SignalKind, signal};
    let mut hangup = signal(SignalKind::hangup()).ok();
    let mut every = tokio::time::interval(RELOAD_CHECK);
    loop {
        let asked = tokio::select! {
            _ = every.tick() => false,
            Some(()) = async { hangup.as_mut()?.recv().await } => true,
        };
        if asked || certificate.files_changed() {
            certificate.reload();
        }
    }
}

/// The certificate every handshake is given: the one last read from its files.
#[derive(Debug)]
struct ReloadingCert {
    cert: PathBuf,
    key: PathBuf,
    provider: Arc<CryptoProvider>,
    current: RwLock<Arc<CertifiedKey>>,
    /// The files' modification times when last read.
    read_at: Mutex<(Option<SystemTime>, Option<SystemTime>)>,
}

impl ReloadingCert {
    fn load(files: &TlsFiles, provider: Arc<CryptoProvider>) -> anyhow::Result<ReloadingCert> {
        let read_at = (modified(&files.cert), modified(&files.key));
        let current = certified_key(&files.cert, &files.key, &provider)?;
        Ok(ReloadingCert {
            cert: files.cert.clone(),
            key: files.key.clone(),
            provider,
            current: RwLock::new(current),
            read_at: Mutex::new(read_at),
        })
    }

    fn files_changed(&self) -> bool {
        let now = (modified(&self.cert), modified(&self.key));
        let read_at = self.read_at.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        now != *read_at
    }

    /// Reads the files again; on a failure (a half-written file, a key that does not match) keeps
    /// serving the certificate it has, and says why.
    fn reload(&self) {
        let stamps = (modified(&self.cert), modified(&self.key));
        match certified_key(&self.cert, &self.key, &self.provider) {
            Ok(fresh) => {
                *self.current.write().unwrap_or_else(std::sync::PoisonError::into_inner) = fresh;
                *self.read_at.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = stamps;
                tracing::info!(cert = %self.cert.display(), "TLS certificate reloaded");
            }
            Err(err) => {
                tracing::warn!(error = %format!("{err:#}"), "cannot reload the TLS certificate; still serving the one before");
            }
        }
    }
}

impl ResolvesServerCert for ReloadingCert {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(Arc::clone(&self.current.read().unwrap_or_else(std::sync::PoisonError::into_inner)))
    }
}

fn modified(path: &Path) -> Option<SystemTime> {
    std::fs::metadata(path).and_then(|meta| meta.modified()).ok()
}

fn certificates(path: &Path) -> anyhow::Result<Vec<CertificateDer<'static>>> {
    let certs = CertificateDer::pem_file_iter(path)
        .with_context(|| format!("cannot read {}", path.display()))?
        .collect::<Result<Vec<_>, _>>()
        .with_context(|| format!("{}: not PEM certificates", path.display()))?;
    anyhow::ensure!(!certs.is_empty(), "{}: holds no certificate", path.display());
    Ok(certs)
}

fn certified_key(cert: &Path, key: &Path, provider: &CryptoProvider) -> anyhow::Result<Arc<CertifiedKey>> {
    let chain = certificates(cert)?;
    let key = PrivateKeyDer::from_pem_file(key).with_context(|| format!("{}: no PEM private key", key.display()))?;
    let certified = CertifiedKey::from_der(chain, key, provider)
        .with_context(|| format!("{} and its key do not go together", cert.display()))?;
    Ok(Arc::new(certified))
}

/// A connection in plaintext or over TLS.
pub enum MaybeTls<IO> {
    /// Plaintext.
    Plain(IO),
    /// TLS, its handshake done.
    Tls(Box<tokio_rustls::server::TlsStream<IO>>),
}

impl<IO: AsyncRead + AsyncWrite + Unpin> AsyncRead for MaybeTls<IO> {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            MaybeTls::Plain(io) => Pin::new(io).poll_read(cx, buf),
            MaybeTls::Tls(io) => Pin::new(io.as_mut()).poll_read(cx, buf),
        }
    }
}

impl<IO: AsyncRead + AsyncWrite + Unpin> AsyncWrite for MaybeTls<IO> {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            MaybeTls::Plain(io) => Pin::new(io).poll_write(cx, buf),
            MaybeTls::Tls(io) => Pin::new(io.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            MaybeTls::Plain(io) => Pin::new(io).poll_write_vectored(cx, bufs),
            MaybeTls::Tls(io) => Pin::new(io.as_mut()).poll_write_vectored(cx, bufs),
        }
    }

    fn is_write_vectored(&self) -> bool {
        match self {
            MaybeTls::Plain(io) => io.is_write_vectored(),
            MaybeTls::Tls(io) => io.is_write_vectored(),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            MaybeTls::Plain(io) => Pin::new(io).poll_flush(cx),
            MaybeTls::Tls(io) => Pin::new(io.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            MaybeTls::Plain(io) => Pin::new(io).poll_shutdown(cx),
            MaybeTls::Tls(io) => Pin::new(io.as_mut()).poll_shutdown(cx),
        }
    }
}

impl<IO: tonic::transport::server::Connected + AsyncRead + AsyncWrite + Unpin> tonic::transport::server::Connected
    for MaybeTls<IO>
{
    type ConnectInfo = IO::ConnectInfo;

    fn connect_info(&self) -> Self::ConnectInfo {
        match self {
            MaybeTls::Plain(io) => io.connect_info(),
            MaybeTls::Tls(io) => io.get_ref().0.connect_info(),
        }
    }
}

/// `io` over TLS with `acceptor` (its handshake held to `timeout`), or as it is without one. `None` when
/// the handshake fails or takes too long: the connection is dropped, which closes it.
pub async fn accept<IO: AsyncRead + AsyncWrite + Unpin>(
    io: IO,
    acceptor: Option<&TlsAcceptor>,
    timeout: Duration,
) -> Option<MaybeTls<IO>> {
    let Some(acceptor) = acceptor else { return Some(MaybeTls::Plain(io)) };
    match tokio::time::timeout(timeout, acceptor.accept(io)).await {
        Ok(Ok(tls)) => Some(MaybeTls::Tls(Box::new(tls))),
        Ok(Err(err)) => {
            tracing::debug!(error = %err, "a TLS handshake failed");
            None
        }
        Err(_) => {
            tracing::debug!("a TLS handshake took longer than the header timeout");
            None
        }
    }
}

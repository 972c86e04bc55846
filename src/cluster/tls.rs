//! TLS between nodes and drivers (rustls through ractor_cluster's encrypted sessions).
//!
//! Mutual TLS, as Ray's `RAY_USE_TLS`: every node and driver holds a certificate and key
//! signed by the cluster's CA; a listener asks for the peer's certificate and checks it
//! against the CA, a connecting side checks the listener's certificate against the CA and the
//! address it dialled (the certificate must name that IP or host). The cluster secret is
//! still checked on top, inside the encrypted session.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio_rustls::rustls;
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};

use crate::RayError;

/// The environment variables a process reads its TLS files from (as Ray's
/// `RAY_TLS_SERVER_CERT`, `RAY_TLS_SERVER_KEY`, `RAY_TLS_CA_CERT`).
pub const CERT_ENV: &str = "RLLIB_TLS_CERT";
/// See [`CERT_ENV`].
pub const KEY_ENV: &str = "RLLIB_TLS_KEY";
/// See [`CERT_ENV`].
pub const CA_ENV: &str = "RLLIB_TLS_CA";

/// A node's or driver's TLS files (PEM).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TlsFiles {
    /// This process's certificate chain.
    pub cert: PathBuf,
    /// Its private key.
    pub key: PathBuf,
    /// The CA that signs every node's certificate (default: `cert` itself, for one
    /// self-signed certificate shared by all nodes).
    pub ca: Option<PathBuf>,
}

impl TlsFiles {
    /// From `$RLLIB_TLS_CERT`, `$RLLIB_TLS_KEY` and `$RLLIB_TLS_CA`, when the first two are set.
    pub fn from_env() -> Result<Option<Self>, String> {
        let get = |k: &str| {
            std::env::var_os(k)
                .filter(|v| !v.is_empty())
                .map(PathBuf::from)
        };
        match (get(CERT_ENV), get(KEY_ENV)) {
            (None, None) => Ok(None),
            (Some(cert), Some(key)) => Ok(Some(TlsFiles {
                cert,
                key,
                ca: get(CA_ENV),
            })),
            _ => Err(format!(
                "TLS needs both {CERT_ENV} and {KEY_ENV} (and optionally {CA_ENV}); only one is set"
            )),
        }
    }

    /// The same files as absolute paths (a background node runs from another folder).
    pub fn absolute(&self) -> Result<Self, String> {
        let abs = |p: &Path| {
            std::fs::canonicalize(p).map_err(|e| format!("TLS file {}: {e}", p.display()))
        };
        Ok(TlsFiles {
            cert: abs(&self.cert)?,
            key: abs(&self.key)?,
            ca: self.ca.as_deref().map(abs).transpose()?,
        })
    }

    /// Reads the files and builds both sides' configurations: an error names the file.
    pub fn check(&self) -> Result<(), String> {
        acceptor(self).map_err(|e| e.to_string())?;
        connector(self).map_err(|e| e.to_string())?;
        Ok(())
    }

    fn ca_path(&self) -> &Path {
        self.ca.as_deref().unwrap_or(&self.cert)
    }
}

fn certs(path: &Path, what: &str) -> Result<Vec<CertificateDer<'static>>, RayError> {
    let bad = |e: String| RayError::Cluster(format!("TLS {what} {}: {e}", path.display()));
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(|e| bad(e.to_string()))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| bad(e.to_string()))?;
    if certs.is_empty() {
        return Err(bad("no PEM certificate in it".into()));
    }
    Ok(certs)
}

fn key(path: &Path) -> Result<PrivateKeyDer<'static>, RayError> {
    PrivateKeyDer::from_pem_file(path).map_err(|e| {
        RayError::Cluster(format!(
            "TLS key {}: {e} (expected a PEM private key)",
            path.display()
        ))
    })
}

fn roots(t: &TlsFiles) -> Result<Arc<rustls::RootCertStore>, RayError> {
    let mut roots = rustls::RootCertStore::empty();
    for c in certs(t.ca_path(), "CA")? {
        roots
            .add(c)
            .map_err(|e| RayError::Cluster(format!("TLS CA {}: {e}", t.ca_path().display())))?;
    }
    Ok(Arc::new(roots))
}

fn config_err(t: &TlsFiles) -> impl Fn(rustls::Error) -> RayError + '_ {
    move |e| {
        RayError::Cluster(format!(
            "TLS certificate {} and key {} do not make a configuration: {e}",
            t.cert.display(),
            t.key.display()
        ))
    }
}

/// What a listener (a node's server) accepts with: the peer must show a certificate the CA
/// signed.
pub(crate) fn acceptor(t: &TlsFiles) -> Result<tokio_rustls::TlsAcceptor, RayError> {
    let verifier = rustls::server::WebPkiClientVerifier::builder(roots(t)?)
        .build()
        .map_err(|e| RayError::Cluster(format!("TLS CA {}: {e}", t.ca_path().display())))?;
    let cfg = rustls::ServerConfig::builder()
        .with_client_cert_verifier(verifier)
        .with_single_cert(certs(&t.cert, "certificate")?, key(&t.key)?)
        .map_err(config_err(t))?;
    Ok(tokio_rustls::TlsAcceptor::from(Arc::new(cfg)))
}

/// What a connecting side uses: it checks the listener's certificate and shows its own.
pub(crate) fn connector(t: &TlsFiles) -> Result<tokio_rustls::TlsConnector, RayError> {
    let cfg = rustls::ClientConfig::builder()
        .with_root_certificates(roots(t)?)
        .with_client_auth_cert(certs(&t.cert, "certificate")?, key(&t.key)?)
        .map_err(config_err(t))?;
    Ok(tokio_rustls::TlsConnector::from(Arc::new(cfg)))
}

/// How a process connects to other nodes: in the clear, or with TLS.
#[derive(Clone)]
pub(crate) enum Dialer {
    Plain,
    Tls(tokio_rustls::TlsConnector),
}

impl Dialer {
    pub(crate) fn new(t: Option<&TlsFiles>) -> Result<Self, RayError> {
        Ok(match t {
            None => Dialer::Plain,
            Some(t) => Dialer::Tls(connector(t)?),
        })
    }

    /// Opens a session from `server` to the node at `address` (`host:port`).
    pub(crate) async fn connect(
        &self,
        server: &ractor::ActorRef<ractor_cluster::NodeServerMessage>,
        address: &str,
    ) -> Result<(), String> {
        match self {
            Dialer::Plain => ractor_cluster::client_connect(server, address.to_string())
                .await
                .map_err(|e| e.to_string()),
            Dialer::Tls(c) => {
                let host = host_of(address);
                let name = server_name(address)?;
                let connect = ractor_cluster::client_connect_enc(
                    server,
                    address.to_string(),
                    c.clone(),
                    name,
                );
                tokio::time::timeout(HANDSHAKE, connect)
                    .await
                    .map_err(|_| format!("no TLS handshake with {address} within {HANDSHAKE:?}"))?
                    .map_err(|e| {
                        format!(
                            "TLS handshake failed: {e} (the node must speak TLS, with a \
                             certificate signed by the CA that names {host})"
                        )
                    })
            }
        }
    }
}

/// How long a peer may take to finish its TLS handshake.
const HANDSHAKE: Duration = Duration::from_secs(10);

/// Accepts TLS connections on `listener` and hands each to `server` once its handshake is
/// done, one task per connection with a deadline, so that a peer that connects and stays
/// silent holds up nobody (ractor_cluster's own TLS listener handshakes inline).
pub(crate) async fn serve(
    listener: tokio::net::TcpListener,
    acceptor: tokio_rustls::TlsAcceptor,
    server: ractor::ActorRef<ractor_cluster::NodeServerMessage>,
) {
    loop {
        let Ok((stream, peer_addr)) = listener.accept().await else {
            tokio::time::sleep(Duration::from_millis(10)).await;
            continue;
        };
        let (acceptor, server) = (acceptor.clone(), server.clone());
        tokio::spawn(async move {
            let _ = stream.set_nodelay(true);
            let Ok(local_addr) = stream.local_addr() else {
                return;
            };
            // A failed or stalled handshake: the connection is dropped.
            if let Ok(Ok(stream)) = tokio::time::timeout(HANDSHAKE, acceptor.accept(stream)).await {
                let _ = server.cast(ractor_cluster::NodeServerMessage::ConnectionOpened {
                    stream: Box::new(ractor_cluster::NetworkStream::TlsServer {
                        peer_addr,
                        local_addr,
                        stream,
                    }),
                    is_server: true,
                });
            }
        });
    }
}

/// The name a node's certificate must carry to be reached at `address` (`host:port`).
pub(crate) fn server_name(address: &str) -> Result<ServerName<'static>, String> {
    let host = host_of(address);
    ServerName::try_from(host.to_string())
        .map_err(|e| format!("{host:?} is not a name TLS can check: {e}"))
}

/// `10.0.0.1` of `10.0.0.1:6379`, `::1` of `[::1]:6379`.
fn host_of(address: &str) -> &str {
    let h = address.rsplit_once(':').map_or(address, |(h, _)| h);
    h.trim_start_matches('[').trim_end_matches(']')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_of_strips_port_and_brackets() {
        assert_eq!(host_of("10.0.0.1:6379"), "10.0.0.1");
        assert_eq!(host_of("[::1]:6379"), "::1");
        assert_eq!(host_of("head.example:1"), "head.example");
    }

    #[test]
    fn missing_or_bad_files_are_errors_naming_them() {
        let d = std::env::temp_dir().join(format!("ray-tls-unit-{}", std::process::id()));
        std::fs::create_dir_all(&d).unwrap();
        let junk = d.join("junk.pem");
        std::fs::write(&junk, "not a certificate\n").unwrap();
        let t = TlsFiles {
            cert: junk.clone(),
            key: junk.clone(),
            ca: Some(d.join("absent.pem")),
        };
        let e = acceptor(&t).err().unwrap().to_string();
        assert!(e.contains("absent.pem"), "{e}");
        let t = TlsFiles { ca: None, ..t };
        let e = connector(&t).err().unwrap().to_string();
        assert!(
            e.contains("junk.pem") && e.contains("no PEM certificate"),
            "{e}"
        );
        std::fs::remove_dir_all(&d).unwrap();
    }
}

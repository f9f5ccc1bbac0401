//! Test support for the protocol tests: a tiny hyper server on 127.0.0.1 (plain or TLS
//! with a server certificate from a [`TestCa`], optionally asking for client
//! certificates) that records requests and answers with scripted replies. Not a
//! connector simulator.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use base64::Engine as _;
use bytes::Bytes;
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper::header::HeaderMap;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use rcgen::ExtendedKeyUsagePurpose;
use rustls::server::WebPkiClientVerifier;
use rustls::{RootCertStore, ServerConfig};
use rustls_pki_types::pem::PemObject as _;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_rustls::TlsAcceptor;
use url::Url;

use super::ca::TestCa;

pub fn b64(text: &str) -> String {
    base64::engine::general_purpose::STANDARD.encode(text)
}

/// How the test server speaks TLS.
pub struct TlsSetup {
    pub server_ca: TestCa,
    pub client_ca: TestCa,
    config: Arc<ServerConfig>,
}

#[derive(Clone, Copy, PartialEq, Eq)]
pub enum ClientAuth {
    /// No client certificate requested.
    None,
    /// Requested, verified when sent, but not required (token and mTLS on one port).
    Optional,
    /// Required and verified against the client CA.
    Required,
}

#[derive(Clone, Copy, PartialEq, Eq)]
pub enum TlsVersion {
    Tls12,
    Tls13,
}

impl TlsSetup {
    /// A server certificate for `names` from a fresh server CA, and a fresh client CA.
    pub fn new(names: &[&str], client_auth: ClientAuth, version: TlsVersion) -> Self {
        let server_ca = TestCa::new("test server ca");
        let client_ca = TestCa::new("test client ca");
        let (cert_pem, key_pem) =
            server_ca.leaf("server", names, ExtendedKeyUsagePurpose::ServerAuth);
        let chain: Vec<CertificateDer<'static>> =
            CertificateDer::pem_slice_iter(cert_pem.as_bytes())
                .collect::<Result<_, _>>()
                .unwrap();
        let key =
            PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from_pem_slice(key_pem.as_bytes()).unwrap());
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let versions: &[&'static rustls::SupportedProtocolVersion] = match version {
            TlsVersion::Tls12 => &[&rustls::version::TLS12],
            TlsVersion::Tls13 => &[&rustls::version::TLS13],
        };
        let builder = ServerConfig::builder_with_provider(provider.clone())
            .with_protocol_versions(versions)
            .unwrap();
        let builder = match client_auth {
            ClientAuth::None => builder.with_no_client_auth(),
            ClientAuth::Optional | ClientAuth::Required => {
                let mut roots = RootCertStore::empty();
                roots.add(client_ca.der()).unwrap();
                let verifier =
                    WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider);
                let verifier = if client_auth == ClientAuth::Optional {
                    verifier.allow_unauthenticated()
                } else {
                    verifier
                };
                builder.with_client_cert_verifier(verifier.build().unwrap())
            }
        };
        let config = builder.with_single_cert(chain, key).unwrap();
        TlsSetup {
            server_ca,
            client_ca,
            config: Arc::new(config),
        }
    }
}

/// One request as the server saw it.
#[derive(Clone, Debug)]
pub struct Seen {
    pub method: String,
    pub path_and_query: String,
    pub headers: HeaderMap,
    pub body: Bytes,
    /// A verified client certificate was presented on the connection.
    pub client_certificate: bool,
}

impl Seen {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or(serde_json::Value::Null)
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

/// What the server answers.
pub enum Reply {
    Json(u16, serde_json::Value),
    Text(u16, String),
    /// Headers, then body chunks forever.
    Endless,
    /// Headers announcing a 100 MiB body, then that body.
    HugeContentLength,
    /// Headers, then nothing, forever.
    StallAfterHeaders,
    /// Nothing at all, forever.
    StallBeforeHeaders,
}

pub type Handler = Arc<dyn Fn(&Seen) -> Reply + Send + Sync>;

type Body = UnsyncBoxBody<Bytes, Infallible>;

static CHUNK: [u8; 64 * 1024] = [b'x'; 64 * 1024];

fn full(status: u16, content_type: &str, body: impl Into<Bytes>) -> hyper::Response<Body> {
    hyper::Response::builder()
        .status(status)
        .header("content-type", content_type)
        .body(Full::new(body.into()).boxed_unsync())
        .unwrap()
}

async fn answer(reply: Reply) -> hyper::Response<Body> {
    match reply {
        Reply::Json(status, value) => full(status, "application/json", value.to_string()),
        Reply::Text(status, text) => full(status, "text/plain", text),
        Reply::Endless => {
            let chunks = futures::stream::repeat_with(|| {
                Ok::<_, Infallible>(Frame::data(Bytes::from_static(&CHUNK)))
            });
            hyper::Response::new(StreamBody::new(chunks).boxed_unsync())
        }
        Reply::HugeContentLength => {
            let chunks = futures::stream::repeat_with(|| {
                Ok::<_, Infallible>(Frame::data(Bytes::from_static(&CHUNK)))
            });
            hyper::Response::builder()
                .header("content-length", (100u64 << 20).to_string())
                .body(StreamBody::new(chunks).boxed_unsync())
                .unwrap()
        }
        Reply::StallAfterHeaders => {
            let nothing = futures::stream::pending::<Result<Frame<Bytes>, Infallible>>();
            hyper::Response::new(StreamBody::new(nothing).boxed_unsync())
        }
        Reply::StallBeforeHeaders => std::future::pending().await,
    }
}

/// A server on 127.0.0.1 for the duration of a test.
pub struct TestServer {
    pub addr: SocketAddr,
    tls: bool,
    seen: Arc<Mutex<Vec<Seen>>>,
    task: JoinHandle<()>,
}

impl TestServer {
    pub async fn plain(handler: Handler) -> Self {
        Self::start(None, handler).await
    }

    pub async fn tls(setup: &TlsSetup, handler: Handler) -> Self {
        Self::start(Some(TlsAcceptor::from(setup.config.clone())), handler).await
    }

    async fn start(tls: Option<TlsAcceptor>, handler: Handler) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let is_tls = tls.is_some();
        let task = tokio::spawn({
            let seen = seen.clone();
            async move {
                loop {
                    let Ok((stream, _)) = listener.accept().await else {
                        continue;
                    };
                    let handler = handler.clone();
                    let seen = seen.clone();
                    let tls = tls.clone();
                    tokio::spawn(async move {
                        match tls {
                            None => serve(TokioIo::new(stream), false, handler, seen).await,
                            Some(acceptor) => {
                                // A refused handshake is part of several tests: nothing to serve.
                                let Ok(stream) = acceptor.accept(stream).await else {
                                    return;
                                };
                                let client_certificate =
                                    stream.get_ref().1.peer_certificates().is_some();
                                serve(TokioIo::new(stream), client_certificate, handler, seen).await
                            }
                        }
                    });
                }
            }
        });
        TestServer {
            addr,
            tls: is_tls,
            seen,
            task,
        }
    }

    /// `path` (with any query) on this server, by IP address.
    pub fn url(&self, path: &str) -> Url {
        let scheme = if self.tls { "https" } else { "http" };
        Url::parse(&format!("{scheme}://{}{path}", self.addr)).unwrap()
    }

    /// `path` on this server by the name `localhost`.
    pub fn url_by_name(&self, path: &str) -> Url {
        let scheme = if self.tls { "https" } else { "http" };
        Url::parse(&format!("{scheme}://localhost:{}{path}", self.addr.port())).unwrap()
    }

    pub fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn serve<I>(
    io: TokioIo<I>,
    client_certificate: bool,
    handler: Handler,
    seen: Arc<Mutex<Vec<Seen>>>,
) where
    I: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let service = service_fn(move |request: hyper::Request<Incoming>| {
        let handler = handler.clone();
        let seen = seen.clone();
        async move {
            let (parts, body) = request.into_parts();
            let body = body
                .collect()
                .await
                .map(|b| b.to_bytes())
                .unwrap_or_default();
            let request = Seen {
                method: parts.method.to_string(),
                path_and_query: parts
                    .uri
                    .path_and_query()
                    .map(|p| p.to_string())
                    .unwrap_or_default(),
                headers: parts.headers,
                body,
                client_certificate,
            };
            let reply = handler(&request);
            seen.lock().unwrap().push(request);
            Ok::<_, Infallible>(answer(reply).await)
        }
    });
    let _ = hyper::server::conn::http1::Builder::new()
        .serve_connection(io, service)
        .await;
}

/// A handler that always gives the same reply.
pub fn always(make: impl Fn() -> Reply + Send + Sync + 'static) -> Handler {
    Arc::new(move |_| make())
}

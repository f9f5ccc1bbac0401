//! The listeners: TLS set-up (token-secured without client certificates, mTLS verified against
//! the client CA), accept loops, the connection and gateway faults, and routing each request to the
//! protocol that owns its path. Does not implement any protocol.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use http::{Request, Response, StatusCode};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use rustls::RootCertStore;
use rustls::server::WebPkiClientVerifier;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinSet;
use tokio_rustls::TlsAcceptor;

use crate::error::SimError;
use crate::fault::{AlertName, Fault, Stage};
use crate::peer::{Peer, Role};
use crate::registry::Endpoint;
use crate::respond::{self, Body};
use crate::shared::{ErrorStyle, Shared};
use crate::{admin, compass, rest};

/// How long a client may take to complete the TLS handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// The rustls configuration of the token-secured or the mTLS listener.
pub(crate) fn tls_acceptor(shared: &Shared, role: Role) -> Result<TlsAcceptor, SimError> {
    let tls_error = |source: Box<dyn std::error::Error + Send + Sync>| SimError::Tls {
        role: role.as_str(),
        source,
    };
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| tls_error(e.into()))?;
    let builder = if role == Role::Mtls {
        let mut roots = RootCertStore::empty();
        roots
            .add(shared.authority.client_ca_der().clone())
            .map_err(|e| tls_error(e.into()))?;
        let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
            .build()
            .map_err(|e| tls_error(e.into()))?;
        builder.with_client_cert_verifier(verifier)
    } else {
        builder.with_no_client_auth()
    };
    let mut config = builder
        .with_single_cert(
            shared.authority.server_chain(),
            shared.authority.server_key(),
        )
        .map_err(|e| tls_error(e.into()))?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(TlsAcceptor::from(Arc::new(config)))
}

/// Accepts connections until the task is dropped; connection tasks end with it.
pub(crate) async fn serve(
    listener: TcpListener,
    tls: Option<TlsAcceptor>,
    role: Role,
    shared: Arc<Shared>,
) {
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => {
                    if role != Role::Admin && shared.faults.take(Stage::Connection).is_some() {
                        shared.registry.count(Endpoint::DroppedHandshake);
                        tracing::debug!(listener = role.as_str(), "dropped a connection (fault)");
                        drop(stream);
                        continue;
                    }
                    if role == Role::Mtls
                        && let Some(Fault::TlsAlert { alert }) =
                            shared.faults.take(Stage::MtlsConnection)
                    {
                        shared.registry.count(Endpoint::RefusedHandshake);
                        tracing::debug!(?alert, "refusing a handshake with an alert (fault)");
                        connections.spawn(refuse_handshake(stream, alert));
                        continue;
                    }
                    connections.spawn(connection(stream, tls.clone(), role, shared.clone()));
                }
                Err(error) => {
                    tracing::warn!(listener = role.as_str(), %error, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            },
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
}

/// Reads the client's first TLS record (its hello) and answers with a fatal alert in a
/// plaintext alert record, then closes: what the client sees when a gateway refuses it.
async fn refuse_handshake(mut stream: TcpStream, alert: AlertName) {
    let read_hello = async {
        let mut header = [0u8; 5];
        stream.read_exact(&mut header).await?;
        let length = usize::from(u16::from_be_bytes([header[3], header[4]]));
        let mut hello = vec![0u8; length.min(MAX_HELLO_BYTES)];
        stream.read_exact(&mut hello).await?;
        Ok::<_, std::io::Error>(())
    };
    if !matches!(
        tokio::time::timeout(HANDSHAKE_TIMEOUT, read_hello).await,
        Ok(Ok(()))
    ) {
        return;
    }
    // Content type 21 (alert), legacy version TLS 1.2, length 2, level 2 (fatal), code.
    let record = [21, 3, 3, 0, 2, 2, alert.code()];
    let _ = stream.write_all(&record).await;
    let _ = stream.shutdown().await;
}

/// A TLS record is at most 2^14 bytes of plaintext plus some overhead.
const MAX_HELLO_BYTES: usize = 16 * 1024 + 256;

async fn connection(stream: TcpStream, tls: Option<TlsAcceptor>, role: Role, shared: Arc<Shared>) {
    let _ = stream.set_nodelay(true);
    let Some(acceptor) = tls else {
        let service = service_fn(move |request| {
            let shared = shared.clone();
            async move { Ok::<_, Infallible>(admin::route(&shared, request).await) }
        });
        let _ = http1::Builder::new()
            .serve_connection(TokioIo::new(stream), service)
            .await;
        return;
    };
    let tls_stream = match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
        Ok(Ok(tls_stream)) => tls_stream,
        Ok(Err(error)) => {
            tracing::info!(listener = role.as_str(), %error, "tls handshake failed");
            return;
        }
        Err(_) => {
            tracing::info!(listener = role.as_str(), "tls handshake timed out");
            return;
        }
    };
    let peer = tls_stream
        .get_ref()
        .1
        .peer_certificates()
        .and_then(|chain| chain.first())
        .map(|leaf| Peer::from_der(leaf.as_ref()));
    let service = service_fn(move |request| {
        let shared = shared.clone();
        let peer = peer.clone();
        async move { Ok::<_, Infallible>(route(&shared, role, peer.as_ref(), request).await) }
    });
    if let Err(error) = http1::Builder::new()
        .serve_connection(TokioIo::new(tls_stream), service)
        .await
    {
        tracing::debug!(listener = role.as_str(), %error, "connection ended with an error");
    }
}

async fn route(
    shared: &Arc<Shared>,
    role: Role,
    peer: Option<&Peer>,
    request: Request<Incoming>,
) -> Response<Body> {
    let (parts, body) = request.into_parts();
    // The path only: the query may carry a token.
    tracing::debug!(listener = role.as_str(), method = %parts.method, path = parts.uri.path(), "request");
    if role == Role::Mtls
        && let Some(Fault::GatewayRefusal { status, body }) = shared.faults.take(Stage::MtlsRequest)
    {
        shared.registry.count(Endpoint::GatewayRefusal);
        let status = StatusCode::from_u16(status).unwrap_or(StatusCode::FORBIDDEN);
        return respond::with_body(status, "text/plain", respond::full(body));
    }
    let is_compass = parts.uri.path() == compass::PATH;
    let body = match respond::read_body(body).await {
        Ok(body) => body,
        Err(error) => {
            let (endpoint, style) = if is_compass {
                (Endpoint::CompassInvalid, ErrorStyle::GraphQl)
            } else {
                (Endpoint::Unknown, ErrorStyle::Rest)
            };
            shared.registry.count(endpoint);
            let status = match error {
                respond::BodyError::TooLarge => StatusCode::PAYLOAD_TOO_LARGE,
                respond::BodyError::Read => StatusCode::BAD_REQUEST,
            };
            return style.response(status, &error.to_string());
        }
    };
    if is_compass {
        compass::handle(shared, role, peer, &parts, body).await
    } else {
        rest::handle(shared, role, peer, &parts, body).await
    }
}

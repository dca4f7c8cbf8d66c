//! TLS termination: an accepted socket's TLS handshake, bounded by the same handshake deadline
//! as the HTTP upgrade that follows it (a client that stalls in the ClientHello is dropped like
//! one that stalls in its request, §1), then the HTTP path of [`super::http`] over the TLS stream.

use std::sync::Arc;

use rustls::HandshakeKind;
use tokio::net::TcpStream;
use tokio::time::Instant;
use tracing::debug;

use super::Shared;
use super::http;
use super::metrics::ServerMetrics;
use crate::tls::ServerTls;

/// Serves one accepted socket over TLS.
pub async fn serve_connection(stream: TcpStream, tls: ServerTls, shared: Arc<Shared>) {
    let deadline = Instant::now() + shared.config.handshake_timeout;
    let handshake = tokio::time::timeout_at(deadline, tls.acceptor().accept(stream));
    let accepted = tokio::select! {
        accepted = handshake => accepted,
        _ = shared.shutdown.cancelled() => return,
    };
    let metrics = &shared.metrics;
    match accepted {
        Ok(Ok(stream)) => {
            ServerMetrics::inc(&metrics.tls_handshakes);
            if stream.get_ref().1.handshake_kind() == Some(HandshakeKind::Resumed) {
                ServerMetrics::inc(&metrics.tls_resumed);
            }
            http::serve_connection_until(stream, Arc::clone(&shared), deadline).await;
        }
        Ok(Err(error)) => {
            ServerMetrics::inc(&metrics.tls_handshake_failures);
            debug!(%error, "TLS handshake failed");
        }
        Err(_) => {
            ServerMetrics::inc(&metrics.tls_handshake_failures);
            debug!("TLS handshake missed the handshake deadline");
        }
    }
}

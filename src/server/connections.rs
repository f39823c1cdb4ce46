//! Accepting connections: HTTP/1.1 with a bound on how long a client may take to send a
//! request's headers (which also closes connections left idle between requests), a cap on
//! open connections (past it a small reserve answers the operator's probes only, and past that
//! a new connection is closed at once, counted and logged, so the process never runs out of
//! descriptors), and a shutdown that stops accepting, lets requests
//! in flight finish and gives up after a grace period.

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::sync::{watch, Semaphore};

use super::metrics::HttpMetrics;

/// How connections are accepted and bounded.
#[derive(Debug, Clone, Copy)]
pub struct ConnectionLimits {
    /// Open connections at most; past it a connection gets one of the reserve's.
    pub max_connections: usize,
    /// Connections past the cap served for `/healthz`, `/readyz` and `/metrics` only (one
    /// request each); past those, closed as soon as accepted.
    pub ops_reserve: usize,
    /// Time a client has to send a request's headers, counted from the connection's start or
    /// from the end of its previous response (an idle keep-alive connection is closed then).
    pub header_timeout: Duration,
    /// After a shutdown signal, how long requests in flight may take before the server exits.
    pub shutdown_grace: Duration,
}

/// Serve `router` on `listener` until `shutdown` resolves, then drain.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    ops: Router,
    limits: ConnectionLimits,
    metrics: HttpMetrics,
    shutdown: impl std::future::Future<Output = ()>,
) {
    let slots = Arc::new(Semaphore::new(limits.max_connections));
    let reserve = Arc::new(Semaphore::new(limits.ops_reserve));
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut at_cap = false;
    tokio::pin!(shutdown);
    loop {
        let accepted = tokio::select! {
            () = &mut shutdown => break,
            accepted = listener.accept() => accepted,
        };
        let stream = match accepted {
            Ok((stream, _)) => stream,
            Err(error) => {
                // Out of descriptors or another transient failure: say so, pause, go on.
                metrics.accept_error();
                tracing::error!(%error, "accepting a connection failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        // `true`: a full connection; `false`: one of the reserve, answering the operator's
        // probes only.
        let taken = match slots.clone().try_acquire_owned() {
            Ok(permit) => Some((permit, router.clone(), true)),
            Err(_) => reserve
                .clone()
                .try_acquire_owned()
                .ok()
                .map(|permit| (permit, ops.clone(), false)),
        };
        let full = taken.as_ref().is_some_and(|(_, _, full)| *full);
        if !full {
            metrics.connection_refused();
            if !at_cap {
                at_cap = true;
                tracing::warn!(
                    max_connections = limits.max_connections,
                    "the connection cap is reached: new connections get /healthz, /readyz and /metrics only, or are closed, until some end"
                );
            }
        } else if at_cap {
            at_cap = false;
            tracing::info!("below the connection cap again");
        }
        let Some((permit, router, keep_alive)) = taken else {
            drop(stream);
            continue;
        };
        metrics.connection_opened();
        let service = TowerToHyperService::new(router);
        let mut stop = stop_rx.clone();
        let metrics = metrics.clone();
        tokio::spawn(async move {
            let _ = stream.set_nodelay(true);
            let mut builder = hyper::server::conn::http1::Builder::new();
            builder
                .timer(TokioTimer::new())
                .header_read_timeout(limits.header_timeout)
                .keep_alive(keep_alive);
            let connection = builder.serve_connection(TokioIo::new(stream), service);
            tokio::pin!(connection);
            tokio::select! {
                _ = connection.as_mut() => {}
                () = async { let _ = stop.wait_for(|stopping| *stopping).await; } => {
                    connection.as_mut().graceful_shutdown();
                    let _ = connection.as_mut().await;
                }
            }
            metrics.connection_closed();
            drop(permit);
        });
    }
    tracing::info!("shutting down: no new connections; finishing requests in flight");
    let _ = stop_tx.send(true);
    let everyone = u32::try_from(limits.max_connections).unwrap_or(u32::MAX);
    if tokio::time::timeout(limits.shutdown_grace, slots.acquire_many(everyone))
        .await
        .is_err()
    {
        tracing::warn!(
            grace_seconds = limits.shutdown_grace.as_secs_f64(),
            "requests still in flight after the shutdown grace period are abandoned"
        );
    }
}

//! The HTTP endpoint of both daemons (port 7472 by default): `/metrics`
//! (the daemon's Prometheus registry, OpenMetrics text), `/healthz` (the
//! process is alive) and `/readyz` (200 once the daemon says it is ready,
//! 503 before). Which metrics there are, and when a daemon is ready, is the
//! daemon's business.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

/// The content type of `/metrics`.
pub const OPENMETRICS: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// What the endpoint serves: a daemon's registry and its readiness.
#[derive(Debug)]
pub struct Exporter {
    registry: Registry,
    ready: AtomicBool,
    /// The body of `/readyz` while not ready, saying what is awaited.
    not_ready: &'static str,
}

impl Exporter {
    /// Serves `registry`; not ready until [`Exporter::set_ready`], and
    /// meanwhile `/readyz` answers `not_ready`.
    pub fn new(registry: Registry, not_ready: &'static str) -> Self {
        Self {
            registry,
            ready: AtomicBool::new(false),
            not_ready,
        }
    }

    /// Marks the daemon ready (or not) for `/readyz`.
    pub fn set_ready(&self, ready: bool) {
        self.ready.store(ready, Ordering::Relaxed);
    }

    /// Whether `/readyz` answers 200.
    pub fn is_ready(&self) -> bool {
        self.ready.load(Ordering::Relaxed)
    }

    /// The OpenMetrics text of every metric.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}

/// The config gauges both daemons export, under MetalLB's names.
#[derive(Debug, Clone, Default)]
pub struct ConfigGauges {
    /// `metallb_k8s_client_config_loaded_bool`: 1 once a valid config has been loaded.
    pub loaded: Gauge,
    /// `metallb_k8s_client_config_stale_bool`: 1 while the config in force
    /// is older than the cluster's (the newest one was refused).
    pub stale: Gauge,
}

impl ConfigGauges {
    /// Registers both gauges in `registry` and returns handles to them.
    pub fn register(registry: &mut Registry) -> Self {
        let gauges = Self::default();
        registry.register(
            "metallb_k8s_client_config_loaded_bool",
            "1 if a valid config has been loaded",
            gauges.loaded.clone(),
        );
        registry.register(
            "metallb_k8s_client_config_stale_bool",
            "1 if the config in force is stale (the newest one was refused)",
            gauges.stale.clone(),
        );
        gauges
    }
}

/// The routes `/metrics`, `/healthz` and `/readyz` over `exporter`.
pub fn router(exporter: Arc<Exporter>) -> Router {
    Router::new()
        .route("/metrics", get(metrics))
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(ready))
        .with_state(exporter)
}

/// Serves [`router`] on `addr` until the task is dropped; an error is a
/// failed bind (or accept loop).
pub async fn serve(addr: SocketAddr, exporter: Arc<Exporter>) -> std::io::Result<()> {
    // Said at once, either way: a daemon whose endpoint never answers is
    // otherwise only explained when it exits, after its hand-over.
    let listener = match tokio::net::TcpListener::bind(addr).await {
        Ok(l) => {
            tracing::info!(%addr, "serving /metrics, /healthz and /readyz");
            l
        }
        Err(e) => {
            tracing::error!(%addr, error = %e, "cannot listen for /metrics, /healthz and /readyz");
            return Err(e);
        }
    };
    axum::serve(listener, router(exporter)).await
}

async fn metrics(State(e): State<Arc<Exporter>>) -> impl IntoResponse {
    ([(header::CONTENT_TYPE, OPENMETRICS)], e.encode())
}

async fn ready(State(e): State<Arc<Exporter>>) -> impl IntoResponse {
    if e.is_ready() {
        (StatusCode::OK, "ok")
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, e.not_ready)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;
    use axum::body::Body;
    use axum::http::Request;
    use tower::ServiceExt;

    /// GET `path`: status, content type, body.
    async fn get(router: Router, path: &str) -> (StatusCode, Option<String>, String) {
        let request = Request::get(path).body(Body::empty()).unwrap();
        let response = router.oneshot(request).await.unwrap();
        let status = response.status();
        let content_type = response
            .headers()
            .get(header::CONTENT_TYPE)
            .map(|v| v.to_str().unwrap().to_owned());
        let body = axum::body::to_bytes(response.into_body(), usize::MAX)
            .await
            .unwrap();
        (
            status,
            content_type,
            String::from_utf8(body.to_vec()).unwrap(),
        )
    }

    fn exporter() -> Arc<Exporter> {
        let mut registry = Registry::default();
        let gauge: Gauge = Gauge::default();
        gauge.set(1);
        registry.register("ferrolb_test", "A test gauge", gauge);
        Arc::new(Exporter::new(registry, "not synced yet"))
    }

    #[tokio::test]
    async fn endpoint_rules() {
        // (rule, ready, path, status, body)
        let cases = [
            (
                "healthz_answers_while_not_ready",
                false,
                "/healthz",
                200,
                "ok",
            ),
            ("healthz_answers_when_ready", true, "/healthz", 200, "ok"),
            (
                "readyz_is_503_with_the_reason_before_ready",
                false,
                "/readyz",
                503,
                "not synced yet",
            ),
            ("readyz_is_200_once_ready", true, "/readyz", 200, "ok"),
            ("other_paths_are_not_found", true, "/", 404, ""),
        ];
        for (rule, ready, path, status, body) in cases {
            let exporter = exporter();
            exporter.set_ready(ready);
            let (got_status, _, got_body) = get(router(exporter), path).await;
            assert_eq!(got_status.as_u16(), status, "{rule}");
            assert_eq!(got_body, body, "{rule}");
        }
    }

    #[tokio::test]
    async fn readyz_follows_set_ready_both_ways() {
        let exporter = exporter();
        let app = router(exporter.clone());
        let mut seen = Vec::new();
        for ready in [false, true, false] {
            exporter.set_ready(ready);
            seen.push(get(app.clone(), "/readyz").await.0.as_u16());
        }
        assert_eq!(seen, [503, 200, 503]);
    }

    #[tokio::test]
    async fn metrics_are_openmetrics_text_of_the_registry() {
        let (status, content_type, body) = get(router(exporter()), "/metrics").await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(content_type.as_deref(), Some(OPENMETRICS));
        assert!(body.lines().any(|l| l == "ferrolb_test 1"), "{body}");
        assert!(body.ends_with("# EOF\n"), "{body}");
    }

    #[test]
    fn config_gauges_keep_metallb_names() {
        let mut registry = Registry::default();
        let gauges = ConfigGauges::register(&mut registry);
        gauges.loaded.set(1);
        let text = Exporter::new(registry, "").encode();
        for line in [
            "metallb_k8s_client_config_loaded_bool 1",
            "metallb_k8s_client_config_stale_bool 0",
        ] {
            assert!(text.lines().any(|l| l == line), "no {line:?} in:\n{text}");
        }
    }

    #[tokio::test]
    async fn serve_reports_a_failed_bind() {
        let taken = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = taken.local_addr().unwrap();
        assert!(serve(addr, exporter()).await.is_err());
    }
}

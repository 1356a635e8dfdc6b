//! One TLS client configuration per process, shared by every HTTP client the services build
//! (queue, blobs, ARM, Slack, OTLP): [`http_client`].
//!
//! Each `reqwest` client otherwise builds its own certificate verifier, and on Linux that reads
//! the system's CA store again (about 20 ms in the dev profile, several times before a runner
//! is ready; see docs/benchmarks.md, start-up). The configuration here is what `reqwest` builds
//! with its `rustls` feature (aws-lc-rs, the platform verifier, TLS 1.2 and 1.3), made once.
//! Every client here speaks HTTP/1.1 only (no `http2` feature), announced by ALPN as `reqwest`
//! does.

use std::sync::{Arc, OnceLock};

/// A client builder that uses the process's one TLS configuration (or `reqwest`'s own, built
/// per client, if the shared one could not be made).
pub fn http_client() -> reqwest::ClientBuilder {
    let builder = reqwest::Client::builder();
    match config() {
        Some(config) => builder.tls_backend_preconfigured(config.clone()),
        None => builder,
    }
}

fn config() -> Option<&'static rustls::ClientConfig> {
    static CONFIG: OnceLock<Option<rustls::ClientConfig>> = OnceLock::new();
    CONFIG
        .get_or_init(|| match build() {
            Ok(config) => Some(config),
            Err(error) => {
                tracing::warn!(%error, "no shared TLS configuration; each HTTP client builds its own");
                None
            }
        })
        .as_ref()
}

fn build() -> Result<rustls::ClientConfig, rustls::Error> {
    use rustls_platform_verifier::BuilderVerifierExt;
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_platform_verifier()?
        .with_no_client_auth();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(config)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_shared_configuration_is_made_and_clients_are_built_with_it() {
        // Built with the platform's roots; a failure here would leave every client building
        // its own (slower start-up, same behaviour).
        assert!(
            build().is_ok(),
            "the shared TLS configuration could not be made"
        );
        assert!(config().is_some());
        assert!(http_client().build().is_ok());
    }
}

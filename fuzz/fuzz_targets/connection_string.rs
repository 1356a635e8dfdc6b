//! The storage connection-string parser (`crates/shared/src/queue/connection.rs`).
//!
//! Any string must parse or be refused without a panic, and what parses keeps the promises the
//! queue client builds on: an http(s) endpoint without query, fragment or trailing slash, an
//! account key that is base64, a SAS that has a signature.

#![no_main]

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use chatops_shared::queue::connection::{ConnectionString, StorageAuth};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // It comes from an environment variable, read as a `String`.
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(parsed) = text.parse::<ConnectionString>() else {
        return;
    };
    for endpoint in std::iter::once(&parsed.queue_endpoint).chain(parsed.blob_endpoint.as_ref()) {
        assert!(matches!(endpoint.scheme(), "http" | "https"), "{endpoint}");
        assert!(endpoint.query().is_none(), "{endpoint}");
        assert!(endpoint.fragment().is_none(), "{endpoint}");
        assert!(
            endpoint.path() == "/" || !endpoint.path().ends_with('/'),
            "{endpoint}"
        );
    }
    match &parsed.auth {
        StorageAuth::SharedKey {
            account_name,
            account_key,
        } => {
            assert!(!account_name.is_empty());
            assert!(BASE64.decode(account_key.expose()).is_ok());
        }
        StorageAuth::Sas(sas) => {
            assert!(!sas.expose().starts_with('?'));
            assert!(sas.expose().contains("sig="));
        }
    }
});

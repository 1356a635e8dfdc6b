//! `AzureBlobStore` against a real Azurite: the conditional writes job records rely on, listing
//! with metadata and paging, append blobs for the audit log, both connection-string forms, and
//! bounded, redacted failures when storage is down.

// Test code: the helpers below are not `#[test]` functions, so the workspace lint reaches them.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use chatops_e2e::azurite::{Azurite, blob_store_with, unique_queue_name};
use chatops_shared::blob::azure::AzureBlobStore;
use chatops_shared::blob::{BlobError, BlobStore, ETag, Metadata};
use chatops_shared::queue::retry::RetryBudget;
use std::time::{Duration, Instant};

fn meta(pairs: &[(&str, &str)]) -> Metadata {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

/// A created container with a unique name on `connection`.
async fn store(connection: &str, budget: RetryBudget) -> AzureBlobStore {
    let container = unique_queue_name("blob").await;
    let store = blob_store_with(connection, &container, budget);
    store.ensure_container().await.unwrap();
    store
}

/// What each form must do: conditional create/replace, read, list, append.
async fn exercise(store: &AzureBlobStore) {
    // create twice: the second is refused.
    let m1 = meta(&[("state", "running"), ("runbook", "echo")]);
    let first = store
        .create("jobs/2026-01-01/a.json", b"{\"v\":1}".to_vec(), &m1)
        .await
        .unwrap();
    assert!(!first.0.contains('"'), "normalised: {first:?}");
    assert_eq!(
        store
            .create("jobs/2026-01-01/a.json", b"other".to_vec(), &m1)
            .await,
        Err(BlobError::AlreadyExists)
    );
    // ensure_container again is fine.
    store.ensure_container().await.unwrap();

    // replace with the current ETag gives a new one; with the stale one it is refused.
    let m2 = meta(&[("state", "succeeded"), ("runbook", "echo")]);
    let second = store
        .replace("jobs/2026-01-01/a.json", b"{\"v\":2}".to_vec(), &m2, &first)
        .await
        .unwrap();
    assert_ne!(second, first);
    assert_eq!(
        store
            .replace("jobs/2026-01-01/a.json", b"{\"v\":3}".to_vec(), &m2, &first)
            .await,
        Err(BlobError::ConditionNotMet)
    );
    // replace of a missing blob is refused too.
    assert_eq!(
        store
            .replace("jobs/2026-01-01/none.json", b"x".to_vec(), &m2, &first)
            .await,
        Err(BlobError::ConditionNotMet)
    );

    let blob = store.read("jobs/2026-01-01/a.json").await.unwrap().unwrap();
    assert_eq!(blob.body, b"{\"v\":2}");
    assert_eq!(blob.etag, second);
    assert_eq!(blob.metadata, m2);
    assert_eq!(store.read("jobs/2026-01-01/missing.json").await, Ok(None));

    // append at the wrong position is refused, at the right one it works.
    assert!(store.create_append("audit/w1.jsonl").await.unwrap());
    assert!(!store.create_append("audit/w1.jsonl").await.unwrap());
    store
        .append("audit/w1.jsonl", b"line 1\n".to_vec(), 0)
        .await
        .unwrap();
    assert_eq!(
        store
            .append("audit/w1.jsonl", b"line x\n".to_vec(), 0)
            .await,
        Err(BlobError::ConditionNotMet)
    );
    store
        .append("audit/w1.jsonl", b"line 2\n".to_vec(), 7)
        .await
        .unwrap();
    let log = store.read("audit/w1.jsonl").await.unwrap().unwrap();
    assert_eq!(log.body, b"line 1\nline 2\n");
}

#[tokio::test]
async fn shared_key_connection_string() {
    let azurite = Azurite::start().await;
    let store = store(&azurite.connection_string(), RetryBudget::background()).await;
    exercise(&store).await;
}

#[tokio::test]
async fn sas_connection_string_signed_with_the_account_sas_helper() {
    let azurite = Azurite::start().await;
    let connection = azurite.sas_connection_string();
    assert!(connection.contains("BlobEndpoint=") && connection.contains("ss=bq"));
    let store = store(&connection, RetryBudget::background()).await;
    exercise(&store).await;
    // Listing needs `l`.
    assert_eq!(store.list("jobs/", None).await.unwrap().blobs.len(), 1);
}

#[tokio::test]
async fn list_by_prefix_returns_metadata_and_pages_through_next_marker() {
    let azurite = Azurite::start().await;
    let store = store(&azurite.connection_string(), RetryBudget::background())
        .await
        .with_page_size(2);
    let mut etags = Vec::new();
    for i in 0..5 {
        let etag = store
            .create(
                &format!("jobs/2026-01-02/{i}.json"),
                b"{}".to_vec(),
                &meta(&[("n", &i.to_string())]),
            )
            .await
            .unwrap();
        etags.push(etag);
    }
    store
        .create(
            "jobs/2026-01-03/other.json",
            b"{}".to_vec(),
            &Metadata::new(),
        )
        .await
        .unwrap();

    let mut seen = Vec::new();
    let mut marker: Option<String> = None;
    let mut pages = 0;
    loop {
        let page = store
            .list("jobs/2026-01-02/", marker.as_deref())
            .await
            .unwrap();
        pages += 1;
        assert!(page.blobs.len() <= 2, "{page:?}");
        seen.extend(page.blobs);
        match page.next_marker {
            Some(m) => marker = Some(m),
            None => break,
        }
        assert!(pages < 10, "the listing does not end");
    }
    assert_eq!(pages, 3);
    let names: Vec<&str> = seen.iter().map(|b| b.name.as_str()).collect();
    assert_eq!(
        names,
        (0..5)
            .map(|i| format!("jobs/2026-01-02/{i}.json"))
            .collect::<Vec<_>>()
    );
    for (i, listed) in seen.iter().enumerate() {
        assert_eq!(listed.metadata, meta(&[("n", &i.to_string())]));
        assert_eq!(listed.etag, etags[i], "listing and header ETags agree");
    }
    // A listed ETag is good for a conditional replace.
    store
        .replace(
            &seen[0].name,
            b"{}".to_vec(),
            &Metadata::new(),
            &ETag::new(&seen[0].etag.0),
        )
        .await
        .unwrap();
    assert_eq!(
        store.list("nothing/", None).await.unwrap(),
        Default::default()
    );
}

#[tokio::test]
async fn stopped_azurite_is_unavailable_within_the_budget_and_the_error_has_no_signature() {
    let mut azurite = Azurite::start().await;
    let connection = azurite.sas_connection_string();
    let sig = connection
        .split(['&', ';', '?'])
        .find_map(|p| p.strip_prefix("sig="))
        .unwrap()
        .to_owned();
    let decoded: String = url::form_urlencoded::parse(format!("s={sig}").as_bytes())
        .next()
        .unwrap()
        .1
        .into_owned();
    let budget = RetryBudget::interactive();
    let store = store(&connection, budget).await;
    azurite.stop().await;

    let started = Instant::now();
    let e = store.read("jobs/x.json").await.unwrap_err();
    let took = started.elapsed();
    let text = e.to_string();
    assert!(matches!(e, BlobError::Unavailable(_)), "{text}");
    assert!(
        took <= budget.worst_case() + Duration::from_millis(500),
        "{took:?}"
    );
    assert!(
        text.contains("sig=REDACTED"),
        "the error quotes the URL: {text}"
    );
    for secret in [&sig, &decoded] {
        assert!(!text.contains(secret.as_str()), "{text}");
    }
    let e = store
        .create("jobs/y.json", b"x".to_vec(), &Metadata::new())
        .await
        .unwrap_err();
    assert!(e.is_transient(), "{e}");
}

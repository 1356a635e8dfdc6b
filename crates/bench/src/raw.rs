//! The baseline: Put Message straight to Azurite with a tuned HTTP client (keep-alive pool,
//! `TCP_NODELAY`, an account SAS signed once), messages the size of a job message. The same
//! messages also go through the service's own queue code (`chatops_shared::queue`, over the
//! Azure SDK) to tell its cost from the ingress's.

use anyhow::Context as _;
use chatops_e2e::app::TestApp;
use chatops_shared::queue::connection::{DEVSTORE_ACCOUNT, DEVSTORE_KEY};
use chatops_shared::queue::sas::{SasProtocol, account_sas_with_delete};
use chatops_shared::secret::Secret;
use std::time::Duration;

/// A queue of its own on the app's Azurite, and how to put a message on it.
#[derive(Clone)]
pub struct RawQueue {
    client: reqwest::Client,
    /// `…/<queue>/messages?<sas>`.
    messages_url: String,
    /// `…/<queue>?comp=metadata&<sas>`.
    metadata_url: String,
}

/// About the size of a signed job message (base64 of ~700 bytes of JSON).
const MESSAGE_LEN: usize = 960;

/// Message `n`: distinct per `n`, the size of a job message.
pub fn message(n: usize) -> String {
    format!("{n:020}{}", "A".repeat(MESSAGE_LEN - 20))
}

impl RawQueue {
    /// Creates queue `name` on the app's Azurite.
    pub async fn create(
        app: &TestApp,
        name: &str,
        client: reqwest::Client,
    ) -> anyhow::Result<Self> {
        Self::create_at(&app.azurite.queue_endpoint(), name, client).await
    }

    /// Creates queue `name` at `endpoint`: the app's Azurite, or a hop in front of it.
    pub async fn create_at(
        endpoint: &str,
        name: &str,
        client: reqwest::Client,
    ) -> anyhow::Result<Self> {
        let expiry = time::OffsetDateTime::now_utc() + Duration::from_secs(24 * 3600);
        // With delete: the bench empties its queues between runs.
        let sas = account_sas_with_delete(
            DEVSTORE_ACCOUNT,
            &Secret::new(DEVSTORE_KEY),
            expiry,
            SasProtocol::HttpsAndHttp,
        )
        .context("sign an account SAS")?;
        let base = format!("{endpoint}/{name}");
        let sas = sas.expose();
        let created = client.put(format!("{base}?{sas}")).send().await?;
        anyhow::ensure!(
            created.status().is_success(),
            "create queue {name}: {}",
            created.status()
        );
        Ok(RawQueue {
            client,
            messages_url: format!("{base}/messages?{sas}"),
            metadata_url: format!("{base}?comp=metadata&{sas}"),
        })
    }

    /// Puts message `n` (distinct per `n`); true when Azurite answered 201.
    pub async fn put(&self, n: usize) -> bool {
        let text = message(n);
        let body = format!("<QueueMessage><MessageText>{text}</MessageText></QueueMessage>");
        match self
            .client
            .post(&self.messages_url)
            .header("content-type", "application/xml")
            .body(body)
            .send()
            .await
        {
            Ok(response) => {
                let ok = response.status() == reqwest::StatusCode::CREATED;
                // Read the answer so that the connection goes back to the pool.
                ok && response.bytes().await.is_ok()
            }
            Err(_) => false,
        }
    }

    /// Empties the queue (Clear Messages), so that the next run starts on an empty queue as
    /// every other run does: Azurite slows down as its store grows.
    pub async fn clear(&self) -> anyhow::Result<()> {
        let response = self.client.delete(&self.messages_url).send().await?;
        anyhow::ensure!(
            response.status() == reqwest::StatusCode::NO_CONTENT,
            "clear messages: {}",
            response.status()
        );
        Ok(())
    }

    /// The queue's message count.
    pub async fn len(&self) -> anyhow::Result<u64> {
        let response = self.client.get(&self.metadata_url).send().await?;
        response
            .headers()
            .get("x-ms-approximate-messages-count")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse().ok())
            .context("no x-ms-approximate-messages-count")
    }
}

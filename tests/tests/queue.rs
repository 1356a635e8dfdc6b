//! `AzureJobQueue` against a real Azurite: the queue semantics the runner relies on, both
//! connection-string forms, and bounded, redacted failures when the queue is down or hangs.

// Test code: the helpers below are not `#[test]` functions, so the workspace lint reaches them.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use chatops_e2e::azurite::{Azurite, unique_queue_name};
use chatops_shared::queue::azure::{AzureJobQueue, QueueSettings, QueueTarget, RetryBudget};
use chatops_shared::queue::connection::{DEVSTORE_ACCOUNT, DEVSTORE_KEY};
use chatops_shared::queue::{JobQueue, QueueError, Received};
use chatops_shared::secret::Secret;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// What the ingress promises Slack.
const SLACK_DEADLINE: Duration = Duration::from_secs(3);

fn queue(connection: &str, name: &str, budget: RetryBudget) -> AzureJobQueue {
    let settings = QueueSettings {
        target: QueueTarget::ConnectionString(connection.parse().unwrap()),
        name: name.to_owned(),
        budget,
    };
    AzureJobQueue::new(settings, None).unwrap()
}

/// A running Azurite and a created queue (with its poison queue) on it.
struct Fixture {
    azurite: Azurite,
    name: String,
    queue: AzureJobQueue,
}

async fn fixture(prefix: &str) -> Fixture {
    let azurite = Azurite::start().await;
    let name = unique_queue_name(prefix).await;
    let queue = queue(
        &azurite.connection_string(),
        &name,
        RetryBudget::background(),
    );
    queue.ensure_exists().await.unwrap();
    Fixture {
        azurite,
        name,
        queue,
    }
}

impl Fixture {
    /// A second handle whose main queue is this fixture's poison queue.
    fn poison_reader(&self) -> AzureJobQueue {
        queue(
            &self.azurite.connection_string(),
            &format!("{}-poison", self.name),
            RetryBudget::background(),
        )
    }

    async fn receive_one(&self, visibility: Duration) -> Received {
        let mut got = self.queue.receive(1, visibility).await.unwrap();
        assert_eq!(got.len(), 1, "{got:?}");
        got.remove(0)
    }
}

#[tokio::test]
async fn send_receive_extend_delete_round_trip() {
    let f = fixture("round-trip").await;
    f.queue.send("aGVsbG8=").await.unwrap();

    let m = f.receive_one(Duration::from_secs(30)).await;
    assert_eq!(m.text, "aGVsbG8=");
    assert_eq!(m.dequeue_count, 1);

    let receipt = f.queue.extend(&m, Duration::from_secs(60)).await.unwrap();
    assert!(!receipt.is_empty());
    let m = Received {
        pop_receipt: receipt,
        ..m
    };
    f.queue.delete(&m).await.unwrap();
    assert_eq!(
        f.queue.receive(32, Duration::from_secs(30)).await.unwrap(),
        vec![]
    );
}

#[tokio::test]
async fn messages_and_poison_records_never_expire() {
    let f = fixture("ttl").await;
    f.queue.send("job").await.unwrap();
    f.queue.send_poison("poisoned").await.unwrap();
    let sas = chatops_shared::queue::sas::account_sas(
        DEVSTORE_ACCOUNT,
        &Secret::new(DEVSTORE_KEY),
        time::OffsetDateTime::now_utc() + Duration::from_secs(600),
        chatops_shared::queue::sas::SasProtocol::HttpsAndHttp,
    )
    .unwrap();
    for name in [f.name.clone(), format!("{}-poison", f.name)] {
        let peek = format!(
            "{}/{name}/messages?peekonly=true&{}",
            f.azurite.queue_endpoint(),
            sas.expose()
        );
        let answer = reqwest::get(&peek).await.unwrap().text().await.unwrap();
        // Put Message with `messagettl=-1`: the service sets the largest expiry there is.
        assert!(
            answer.contains("<ExpirationTime>Fri, 31 Dec 9999 23:59:59 GMT</ExpirationTime>"),
            "{name}: {answer}"
        );
    }
}

#[tokio::test]
async fn receive_takes_up_to_max_messages() {
    let f = fixture("batch").await;
    for text in ["MQ==", "Mg==", "Mw=="] {
        f.queue.send(text).await.unwrap();
    }
    let got = f.queue.receive(2, Duration::from_secs(30)).await.unwrap();
    assert_eq!(got.len(), 2);
    let rest = f.queue.receive(32, Duration::from_secs(30)).await.unwrap();
    assert_eq!(rest.len(), 1);
}

#[tokio::test]
async fn visibility_hides_a_message_then_it_comes_back_with_dequeue_count_2() {
    let f = fixture("visibility").await;
    f.queue.send("dmlz").await.unwrap();
    let first = f.receive_one(Duration::from_secs(1)).await;
    assert_eq!(
        f.queue.receive(1, Duration::from_secs(30)).await.unwrap(),
        vec![],
        "hidden while invisible"
    );

    // Poll (bounded) rather than sleep a fixed time: it reappears once its second is over.
    let deadline = Instant::now() + Duration::from_secs(10);
    let again = loop {
        let mut got = f.queue.receive(1, Duration::from_secs(30)).await.unwrap();
        if let Some(m) = got.pop() {
            break m;
        }
        assert!(
            Instant::now() < deadline,
            "message did not become visible again"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(again.message_id, first.message_id);
    assert_eq!(again.dequeue_count, 2);
    assert_ne!(again.pop_receipt, first.pop_receipt);
    f.queue.delete(&again).await.unwrap();
}

#[tokio::test]
async fn ensure_exists_is_idempotent_and_creates_the_poison_queue() {
    let azurite = Azurite::start().await;
    let name = unique_queue_name("ensure").await;
    let q = queue(
        &azurite.connection_string(),
        &name,
        RetryBudget::background(),
    );
    let poison = queue(
        &azurite.connection_string(),
        &format!("{name}-poison"),
        RetryBudget::background(),
    );

    let missing = q.ping().await.unwrap_err();
    assert!(
        matches!(&missing, QueueError::Other(m) if m.contains("does not exist")),
        "{missing}"
    );
    assert!(poison.ping().await.is_err());

    q.ensure_exists().await.unwrap();
    q.ensure_exists().await.unwrap();
    q.ping().await.unwrap();
    poison.ping().await.unwrap();
}

#[tokio::test]
async fn send_poison_lands_in_the_poison_queue() {
    let f = fixture("poison").await;
    f.queue.send_poison("cG9pc29u").await.unwrap();

    assert_eq!(
        f.queue.receive(32, Duration::from_secs(30)).await.unwrap(),
        vec![]
    );
    let got = f
        .poison_reader()
        .receive(32, Duration::from_secs(30))
        .await
        .unwrap();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].text, "cG9pc29u");
}

#[tokio::test]
async fn the_pop_receipt_from_extend_replaces_the_old_one() {
    let f = fixture("receipt").await;
    f.queue.send("cmVjZWlwdA==").await.unwrap();
    let old = f.receive_one(Duration::from_secs(30)).await;
    let new = Received {
        pop_receipt: f.queue.extend(&old, Duration::from_secs(30)).await.unwrap(),
        ..old.clone()
    };
    assert_ne!(new.pop_receipt, old.pop_receipt);

    assert_eq!(f.queue.delete(&old).await, Err(QueueError::MessageGone));
    assert_eq!(
        f.queue.extend(&old, Duration::from_secs(30)).await,
        Err(QueueError::MessageGone)
    );
    f.queue.delete(&new).await.unwrap();
    assert_eq!(f.queue.delete(&new).await, Err(QueueError::MessageGone));
}

#[tokio::test]
async fn sas_connection_string_works() {
    let azurite = Azurite::start().await;
    let name = unique_queue_name("sas").await;
    let q = queue(
        &azurite.sas_connection_string(),
        &name,
        RetryBudget::background(),
    );
    q.ensure_exists().await.unwrap();
    q.ping().await.unwrap();
    q.send("c2Fz").await.unwrap();
    let m = q
        .receive(1, Duration::from_secs(30))
        .await
        .unwrap()
        .remove(0);
    let m = Received {
        pop_receipt: q.extend(&m, Duration::from_secs(30)).await.unwrap(),
        ..m
    };
    q.delete(&m).await.unwrap();
    q.send_poison("c2Fz").await.unwrap();
}

#[tokio::test]
async fn a_wrong_account_key_is_forbidden() {
    let azurite = Azurite::start().await;
    let wrong = azurite.connection_string().replace(
        "AccountKey=Eby8",
        "AccountKey=AAAA", // still base64, different key
    );
    let q = queue(
        &wrong,
        &unique_queue_name("forbidden").await,
        RetryBudget::background(),
    );
    assert!(matches!(q.ping().await, Err(QueueError::Forbidden(_))));
    // Unlike "may not create queues", a bad key is reported at start.
    assert!(matches!(
        q.ensure_exists().await,
        Err(QueueError::Forbidden(_))
    ));
}

#[tokio::test]
async fn queue_down_is_unavailable_within_the_interactive_budget() {
    let mut f = fixture("down").await;
    let q = queue(
        &f.azurite.connection_string(),
        &f.name,
        RetryBudget::interactive(),
    );
    q.send("dXA=").await.unwrap();
    f.azurite.stop().await;

    let started = Instant::now();
    let e = q.send("ZG93bg==").await.unwrap_err();
    let took = started.elapsed();
    eprintln!("queue down: answered in {took:?}");
    assert!(matches!(e, QueueError::Unavailable(_)), "{e}");
    assert!(took < SLACK_DEADLINE, "{took:?}");
}

/// A server that accepts connections and never answers: only the per-try timeout ends a try.
/// The interactive budget gives the first try a whole second (a slow queue is usually still
/// working on it), a second try what is left, and no third try without time for it.
#[tokio::test]
async fn hanging_queue_is_unavailable_within_the_interactive_budget() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let accepted = Arc::new(AtomicUsize::new(0));
    let counter = accepted.clone();
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            counter.fetch_add(1, Ordering::SeqCst);
            held.push(socket);
        }
    });
    let connection = format!(
        "DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;AccountKey={};QueueEndpoint=http://127.0.0.1:{port}/devstoreaccount1",
        chatops_shared::queue::connection::DEVSTORE_KEY
    );
    let q = queue(&connection, "hanging", RetryBudget::interactive());

    let started = Instant::now();
    let e = q.send("aGFuZw==").await.unwrap_err();
    let took = started.elapsed();
    eprintln!("queue hanging: answered in {took:?}");
    assert!(matches!(e, QueueError::Unavailable(_)), "{e}");
    assert!(
        took >= Duration::from_millis(2000),
        "two tries of 1 s and a wait: {took:?}"
    );
    assert!(took < SLACK_DEADLINE, "{took:?}");
    assert_eq!(accepted.load(Ordering::SeqCst), 2, "tries made");
}

#[tokio::test]
async fn errors_never_contain_the_sas_signature() {
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
    let q = queue(
        &connection,
        &unique_queue_name("redact").await,
        RetryBudget::interactive(),
    );
    q.ensure_exists().await.unwrap();
    azurite.stop().await;

    let e = q.send("eA==").await.unwrap_err();
    let text = e.to_string();
    assert!(matches!(e, QueueError::Unavailable(_)), "{text}");
    assert!(
        text.contains("sig=REDACTED"),
        "the error quotes the URL: {text}"
    );
    for secret in [&sig, &decoded] {
        assert!(!text.contains(secret.as_str()), "{text}");
    }
}

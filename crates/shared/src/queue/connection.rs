//! Parsing `AZURE_STORAGE_CONNECTION_STRING`.
//!
//! Three forms are understood (keys are case-insensitive, unknown keys such as `TableEndpoint`
//! are ignored, a trailing `;` is fine, values may contain `=`):
//!
//! - `UseDevelopmentStorage=true`: Azurite's well-known account on `127.0.0.1:10001` (queue)
//!   and `127.0.0.1:10000` (blob).
//! - Shared key: `DefaultEndpointsProtocol=https;AccountName=…;AccountKey=…;` with an optional
//!   `EndpointSuffix=` (default `core.windows.net`) or explicit `QueueEndpoint=…`/`BlobEndpoint=…`.
//! - SAS: `QueueEndpoint=…;BlobEndpoint=…;SharedAccessSignature=…` (or `AccountName=…` instead
//!   of the endpoints).
//!
//! The queue endpoint is required; the blob endpoint is optional here (a queue-only SAS string
//! stays valid) and required by the blob settings ([`ConnectionString::blob_endpoint`]).
//!
//! The account key and the SAS are [`Secret`]s, and no error quotes a value of the string.

use crate::secret::Secret;
use base64::Engine as _;
use std::collections::HashMap;
use std::str::FromStr;
use url::Url;

/// Azurite's well-known account name.
pub const DEVSTORE_ACCOUNT: &str = "devstoreaccount1";
/// Azurite's well-known account key (public, documented by Microsoft).
pub const DEVSTORE_KEY: &str =
    "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==";
/// Azurite's default queue endpoint.
pub const DEVSTORE_QUEUE_ENDPOINT: &str = "http://127.0.0.1:10001/devstoreaccount1";
/// Azurite's default blob endpoint.
pub const DEVSTORE_BLOB_ENDPOINT: &str = "http://127.0.0.1:10000/devstoreaccount1";

/// A parsed storage connection string: where the queue service is and how to authenticate.
/// `Debug` prints no secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectionString {
    /// The queue service endpoint without a trailing slash (except a bare host's root `/`), e.g.
    /// `https://acct.queue.core.windows.net/` or `http://127.0.0.1:10001/devstoreaccount1`.
    pub queue_endpoint: Url,
    /// The blob service endpoint, same form: from `BlobEndpoint=`, or derived from the account
    /// name; `None` for a string with endpoints but no `BlobEndpoint` (a queue-only SAS).
    pub blob_endpoint: Option<Url>,
    pub auth: StorageAuth,
}

/// How requests are authorized.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StorageAuth {
    /// The account key: we sign our own account SAS with it (see [`super::sas`]).
    SharedKey {
        account_name: String,
        /// Base64, as shown in the portal; checked to decode.
        account_key: Secret,
    },
    /// A ready-made SAS token (query string without the leading `?`).
    Sas(Secret),
}

/// Why a connection string was rejected. Names keys, never quotes values.
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
pub enum ConnectionStringError {
    #[error("is empty")]
    Empty,
    #[error("part {0} is not of the form Key=Value")]
    NotKeyValue(usize),
    #[error("has `{0}` more than once")]
    Duplicate(String),
    #[error(
        "has neither AccountKey nor SharedAccessSignature (expected `AccountName=…;AccountKey=…` \
         or `QueueEndpoint=…;SharedAccessSignature=…`, or `UseDevelopmentStorage=true` for Azurite)"
    )]
    NoCredential,
    #[error("has both AccountKey and SharedAccessSignature; keep one")]
    BothCredentials,
    #[error("needs `{0}`")]
    Missing(&'static str),
    #[error("has an invalid `{key}`: {reason}")]
    Invalid { key: &'static str, reason: String },
}

impl FromStr for ConnectionString {
    type Err = ConnectionStringError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let pairs = split_pairs(s)?;
        let get = |k: &str| pairs.get(k).map(String::as_str).filter(|v| !v.is_empty());

        if let Some(v) = get("usedevelopmentstorage") {
            if !v.eq_ignore_ascii_case("true") {
                return Err(ConnectionStringError::Invalid {
                    key: "UseDevelopmentStorage",
                    reason: "only `true` is supported".into(),
                });
            }
            return Ok(Self::development_storage());
        }

        let account_name = get("accountname").map(str::to_owned);
        let derive = |service: &str| {
            account_name.as_deref().map(|account| {
                derived_endpoint(
                    account,
                    service,
                    get("defaultendpointsprotocol").unwrap_or("https"),
                    get("endpointsuffix").unwrap_or("core.windows.net"),
                )
            })
        };
        let endpoint = match get("queueendpoint") {
            Some(v) => parse_endpoint("QueueEndpoint", v)?,
            None => derive("queue").ok_or(ConnectionStringError::Missing(
                "QueueEndpoint or AccountName",
            ))??,
        };
        let blob_endpoint = match get("blobendpoint") {
            Some(v) => Some(parse_endpoint("BlobEndpoint", v)?),
            None => derive("blob").transpose()?,
        };

        let auth = match (get("accountkey"), get("sharedaccesssignature")) {
            (Some(_), Some(_)) => return Err(ConnectionStringError::BothCredentials),
            (None, None) => return Err(ConnectionStringError::NoCredential),
            (Some(key), None) => {
                let Some(account_name) = account_name else {
                    return Err(ConnectionStringError::Missing("AccountName"));
                };
                if base64::engine::general_purpose::STANDARD
                    .decode(key)
                    .is_err()
                {
                    return Err(ConnectionStringError::Invalid {
                        key: "AccountKey",
                        reason: "not base64".into(),
                    });
                }
                StorageAuth::SharedKey {
                    account_name,
                    account_key: Secret::new(key),
                }
            }
            (None, Some(sas)) => {
                let sas = sas.trim_start_matches('?');
                if !sas.contains("sig=") {
                    return Err(ConnectionStringError::Invalid {
                        key: "SharedAccessSignature",
                        reason: "has no `sig=` parameter".into(),
                    });
                }
                StorageAuth::Sas(Secret::new(sas))
            }
        };

        Ok(ConnectionString {
            queue_endpoint: endpoint,
            blob_endpoint,
            auth,
        })
    }
}

impl ConnectionString {
    /// Azurite's well-known account (`UseDevelopmentStorage=true`).
    pub fn development_storage() -> Self {
        ConnectionString {
            queue_endpoint: Url::parse(DEVSTORE_QUEUE_ENDPOINT)
                .unwrap_or_else(|_| unreachable!("constant URL parses")),
            blob_endpoint: Some(
                Url::parse(DEVSTORE_BLOB_ENDPOINT)
                    .unwrap_or_else(|_| unreachable!("constant URL parses")),
            ),
            auth: StorageAuth::SharedKey {
                account_name: DEVSTORE_ACCOUNT.to_owned(),
                account_key: Secret::new(DEVSTORE_KEY),
            },
        }
    }

    /// The blob endpoint, or an error naming `BlobEndpoint` (a string made for the queue only,
    /// such as a queue SAS with `QueueEndpoint=` alone).
    pub fn blob_endpoint(&self) -> Result<&Url, ConnectionStringError> {
        self.blob_endpoint
            .as_ref()
            .ok_or(ConnectionStringError::Missing("BlobEndpoint"))
    }
}

/// Splits `K=V;K=V;` into lowercase keys and raw values (split at the first `=` only).
fn split_pairs(s: &str) -> Result<HashMap<String, String>, ConnectionStringError> {
    let mut pairs = HashMap::new();
    for (i, part) in s.split(';').map(str::trim).enumerate() {
        if part.is_empty() {
            continue;
        }
        let Some((k, v)) = part.split_once('=') else {
            return Err(ConnectionStringError::NotKeyValue(i + 1));
        };
        let key = k.trim().to_ascii_lowercase();
        if key.is_empty() {
            return Err(ConnectionStringError::NotKeyValue(i + 1));
        }
        if pairs.insert(key, v.trim().to_owned()).is_some() {
            return Err(ConnectionStringError::Duplicate(k.trim().to_owned()));
        }
    }
    if pairs.is_empty() {
        return Err(ConnectionStringError::Empty);
    }
    Ok(pairs)
}

fn parse_endpoint(key: &'static str, v: &str) -> Result<Url, ConnectionStringError> {
    let invalid = |reason: &str| ConnectionStringError::Invalid {
        key,
        reason: reason.to_owned(),
    };
    let mut url = Url::parse(v).map_err(|e| invalid(&format!("not a URL ({e})")))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(invalid("must be an http or https URL"));
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(invalid(
            "must not carry a query string (put a SAS in SharedAccessSignature)",
        ));
    }
    let trimmed = url.path().trim_end_matches('/').to_owned();
    url.set_path(&trimmed);
    Ok(url)
}

fn derived_endpoint(
    account: &str,
    service: &str,
    protocol: &str,
    suffix: &str,
) -> Result<Url, ConnectionStringError> {
    if !account
        .chars()
        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
    {
        return Err(ConnectionStringError::Invalid {
            key: "AccountName",
            reason: "must be lowercase letters and digits".into(),
        });
    }
    let protocol = protocol.to_ascii_lowercase();
    if !matches!(protocol.as_str(), "http" | "https") {
        return Err(ConnectionStringError::Invalid {
            key: "DefaultEndpointsProtocol",
            reason: "must be http or https".into(),
        });
    }
    let suffix = suffix.trim_matches('.');
    // A host name (and port): anything else would put a path, query or user into the endpoint.
    if suffix.is_empty()
        || !suffix
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | ':'))
    {
        return Err(ConnectionStringError::Invalid {
            key: "EndpointSuffix",
            reason: "must be a host name such as core.windows.net".into(),
        });
    }
    Url::parse(&format!("{protocol}://{account}.{service}.{suffix}")).map_err(|e| {
        ConnectionStringError::Invalid {
            key: "EndpointSuffix",
            reason: format!("does not make a valid URL ({e})"),
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    // A made-up key: base64 that contains `=` and `/`, like real ones.
    const KEY: &str = "c2VjcmV0LWtleS1ieXRlcy1mb3ItdGVzdHMtb25seS8/Pz8=";

    fn parse(s: &str) -> Result<ConnectionString, ConnectionStringError> {
        s.parse()
    }

    fn key_of(c: &ConnectionString) -> (&str, &str) {
        match &c.auth {
            StorageAuth::SharedKey {
                account_name,
                account_key,
            } => (account_name, account_key.expose()),
            StorageAuth::Sas(_) => panic!("expected a shared key"),
        }
    }

    #[test]
    fn development_storage_is_azurite() {
        let c = parse("UseDevelopmentStorage=true").unwrap();
        assert_eq!(c.queue_endpoint.as_str(), DEVSTORE_QUEUE_ENDPOINT);
        assert_eq!(c.blob_endpoint().unwrap().as_str(), DEVSTORE_BLOB_ENDPOINT);
        assert_eq!(key_of(&c), (DEVSTORE_ACCOUNT, DEVSTORE_KEY));
        assert_eq!(parse("usedevelopmentstorage=TRUE;").unwrap(), c);
        assert!(parse("UseDevelopmentStorage=false").is_err());
    }

    #[test]
    fn account_key_form_derives_the_queue_endpoint() {
        let c = parse(&format!(
            "DefaultEndpointsProtocol=https;AccountName=acct;AccountKey={KEY};EndpointSuffix=core.windows.net;BlobEndpoint=https://x/"
        ))
        .unwrap();
        assert_eq!(
            c.queue_endpoint.as_str(),
            "https://acct.queue.core.windows.net/"
        );
        assert_eq!(key_of(&c), ("acct", KEY), "values keep their `=`");
        assert_eq!(c.blob_endpoint().unwrap().as_str(), "https://x/");

        let c = parse(&format!(
            "accountname=acct;accountkey={KEY};endpointsuffix=core.chinacloudapi.cn;"
        ))
        .unwrap();
        assert_eq!(
            c.queue_endpoint.as_str(),
            "https://acct.queue.core.chinacloudapi.cn/"
        );
        assert_eq!(
            c.blob_endpoint().unwrap().as_str(),
            "https://acct.blob.core.chinacloudapi.cn/"
        );
    }

    #[test]
    fn blob_endpoint_is_explicit_derived_or_missing() {
        let c = parse(&format!(
            "DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;AccountKey={KEY};\
             QueueEndpoint=http://127.0.0.1:10001/devstoreaccount1;BlobEndpoint=http://127.0.0.1:10000/devstoreaccount1/"
        ))
        .unwrap();
        assert_eq!(c.blob_endpoint().unwrap().as_str(), DEVSTORE_BLOB_ENDPOINT);

        // A SAS with an account name derives both.
        let c = parse("AccountName=acct;SharedAccessSignature=sv=1&sig=x").unwrap();
        assert_eq!(
            c.blob_endpoint().unwrap().as_str(),
            "https://acct.blob.core.windows.net/"
        );

        // A queue-only SAS string still serves the queue; asking for blobs names the key.
        let c =
            parse("QueueEndpoint=https://acct.queue.core.windows.net;SharedAccessSignature=sig=x")
                .unwrap();
        assert_eq!(c.blob_endpoint, None);
        let e = c.blob_endpoint().unwrap_err();
        assert_eq!(e, ConnectionStringError::Missing("BlobEndpoint"));
        assert!(e.to_string().contains("BlobEndpoint"), "{e}");

        for bad in ["ftp://x/", "https://x/?sig=hunter2", "not a url"] {
            let input =
                format!("QueueEndpoint=https://q/;BlobEndpoint={bad};SharedAccessSignature=sig=x");
            assert!(
                matches!(
                    parse(&input),
                    Err(ConnectionStringError::Invalid {
                        key: "BlobEndpoint",
                        ..
                    })
                ),
                "{bad}"
            );
            assert!(!parse(&input).unwrap_err().to_string().contains("hunter2"));
        }
    }

    #[test]
    fn endpoint_suffix_must_be_a_host_name() {
        // The first two were found by the `connection_string` fuzz target.
        for suffix in [
            "core.chinaclo?dapi.cn",
            "core.windows.net7BlobEndpoint=https://acct.blob.core.windows.net/",
            "core.windows.net/path/",
            "x#y",
            "evil.example@core.windows.net",
            "..",
        ] {
            let input = format!("AccountName=acct;AccountKey={KEY};EndpointSuffix={suffix}");
            assert!(
                matches!(
                    parse(&input),
                    Err(ConnectionStringError::Invalid {
                        key: "EndpointSuffix",
                        ..
                    })
                ),
                "{suffix}"
            );
        }
        let c = parse(&format!(
            "AccountName=acct;AccountKey={KEY};EndpointSuffix=localhost:10001"
        ))
        .unwrap();
        assert_eq!(
            c.queue_endpoint.as_str(),
            "https://acct.queue.localhost:10001/"
        );
    }

    #[test]
    fn explicit_queue_endpoint_wins_and_loses_its_trailing_slash() {
        let c = parse(&format!(
            "DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;AccountKey={KEY};QueueEndpoint=http://127.0.0.1:10001/devstoreaccount1/;"
        ))
        .unwrap();
        assert_eq!(
            c.queue_endpoint.as_str(),
            "http://127.0.0.1:10001/devstoreaccount1"
        );
    }

    #[test]
    fn sas_form() {
        let c = parse("QueueEndpoint=https://acct.queue.core.windows.net/;SharedAccessSignature=?sv=2022-11-02&ss=q&sig=abc%3D").unwrap();
        assert_eq!(
            c.queue_endpoint.as_str(),
            "https://acct.queue.core.windows.net/"
        );
        match &c.auth {
            StorageAuth::Sas(s) => assert_eq!(s.expose(), "sv=2022-11-02&ss=q&sig=abc%3D"),
            StorageAuth::SharedKey { .. } => panic!("expected a SAS"),
        }
    }

    #[test]
    fn errors_name_the_problem_and_never_quote_secrets() {
        let cases = [
            ("", ConnectionStringError::Empty),
            (";;", ConnectionStringError::Empty),
            (
                "AccountName=acct;hunter2",
                ConnectionStringError::NotKeyValue(2),
            ),
            ("AccountName=acct", ConnectionStringError::NoCredential),
            (
                "AccountKey=hunter2",
                ConnectionStringError::Missing("QueueEndpoint or AccountName"),
            ),
            (
                "QueueEndpoint=https://a/;AccountKey=aHVudGVyMg==",
                ConnectionStringError::Missing("AccountName"),
            ),
            (
                "AccountName=acct;AccountKey=aHVudGVyMg==;SharedAccessSignature=sig=hunter2",
                ConnectionStringError::BothCredentials,
            ),
            (
                "AccountName=a;accountname=b;AccountKey=aHVudGVyMg==",
                ConnectionStringError::Duplicate("accountname".into()),
            ),
        ];
        for (input, expected) in cases {
            assert_eq!(parse(input), Err(expected), "{input}");
        }
        for input in [
            "AccountName=acct;AccountKey=hunter2!!",
            "QueueEndpoint=https://a/;SharedAccessSignature=hunter2",
            "QueueEndpoint=https://a/?sig=hunter2;SharedAccessSignature=sig=x",
        ] {
            let e = parse(input).unwrap_err().to_string();
            assert!(!e.contains("hunter2"), "{e}");
        }
    }

    #[test]
    fn debug_prints_no_key() {
        let c = parse(&format!("AccountName=acct;AccountKey={KEY}")).unwrap();
        let d = format!("{c:?}");
        assert!(!d.contains(KEY) && d.contains("[redacted]"), "{d}");
    }
}

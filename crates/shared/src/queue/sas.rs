//! Account SAS tokens signed with a storage account key.
//!
//! Why this is hand-written: the GA `azure_storage_queue` 1.x crate authenticates only with an
//! Entra ID token or a SAS already in the URL; it has no shared-key or connection-string support
//! (azure-sdk-for-rust issue #2975), and no maintained crate signs account SAS tokens for the 1.x
//! SDK (the old `azure_storage` 0.21 can, but is frozen on `azure_core` 0.21). Connection strings
//! with an `AccountKey` (Azurite, local development, some deployments) therefore go through a SAS
//! we sign ourselves, following "Create an account SAS" in the Storage REST docs, version
//! 2020-12-06 and later. The algorithm is small and fully specified:
//!
//! - string to sign: `accountname`, `sp`, `ss`, `srt`, `st`, `se`, `sip`, `spr`, `sv`, `ses`,
//!   each followed by `\n` (empty optional fields stay empty lines);
//! - signature: base64 of HMAC-SHA256 over it, keyed with the base64-decoded account key.
//!
//! The permissions are the least these services need, per the docs' tables of Queue and Blob
//! service operations (as mirrored by Azurite's `OperationAccountSASPermission`):
//!
//! - queue: Create Queue needs `c` (or `w`) at container level, Get Queue Metadata `r` at
//!   container level, Put Message `a`, Get Messages and Delete Message `p`, Update Message `u`;
//! - blob (job records, audit log): Create Container `c`, Put Blob `c` (new) or `w` (replace),
//!   Get Blob `r`, List Blobs `l`, Append Block `a`.
//!
//! Hence `ss=bq`, `srt=sco` (`s` is not needed today; it keeps Get Service Properties open for
//! diagnostics), `sp=rwlacup` (in the order the docs require); no `d` (delete), `t`/`f` (tags).

use crate::secret::Secret;
use base64::Engine as _;
use hmac::{Hmac, Mac};
use sha2::Sha256;
use time::OffsetDateTime;
use time::macros::format_description;

/// The service version the token is signed for (`sv`).
pub const SAS_VERSION: &str = "2022-11-02";
/// Blob and queue services.
const SERVICES: &str = "bq";
/// Service, container (queue) and object (message) level operations.
const RESOURCE_TYPES: &str = "sco";
/// Read, write, list, add, create, update, process.
const PERMISSIONS: &str = "rwlacup";

/// Which protocols the token allows (`spr`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SasProtocol {
    HttpsOnly,
    /// Needed for Azurite, which listens on plain http.
    HttpsAndHttp,
}

impl SasProtocol {
    /// `HttpsAndHttp` for an `http://` endpoint, `HttpsOnly` otherwise.
    pub fn for_endpoint(endpoint: &url::Url) -> Self {
        if endpoint.scheme() == "http" {
            SasProtocol::HttpsAndHttp
        } else {
            SasProtocol::HttpsOnly
        }
    }

    fn as_str(self) -> &'static str {
        match self {
            SasProtocol::HttpsOnly => "https",
            SasProtocol::HttpsAndHttp => "https,http",
        }
    }
}

/// Signing failed. The message never contains the key.
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
pub enum SasError {
    #[error("the account key is not valid base64")]
    KeyNotBase64,
    #[error("the expiry time cannot be formatted")]
    BadExpiry,
}

/// An account SAS query string (`sv=…&ss=…&srt=…&sp=…&se=…&spr=…&sig=…`, no leading `?`)
/// for the blob and queue services, valid until `expiry` (truncated to the second).
pub fn account_sas(
    account_name: &str,
    account_key: &Secret,
    expiry: OffsetDateTime,
    protocol: SasProtocol,
) -> Result<Secret, SasError> {
    sign(account_name, account_key, expiry, protocol, PERMISSIONS)
}

/// [`account_sas`] that may also delete (`sp=rwdlacup`): for tools that clean up after
/// themselves, such as the benchmark emptying its queues between runs. The services never
/// sign it.
pub fn account_sas_with_delete(
    account_name: &str,
    account_key: &Secret,
    expiry: OffsetDateTime,
    protocol: SasProtocol,
) -> Result<Secret, SasError> {
    sign(account_name, account_key, expiry, protocol, "rwdlacup")
}

fn sign(
    account_name: &str,
    account_key: &Secret,
    expiry: OffsetDateTime,
    protocol: SasProtocol,
    permissions: &str,
) -> Result<Secret, SasError> {
    let key = base64::engine::general_purpose::STANDARD
        .decode(account_key.expose())
        .map_err(|_| SasError::KeyNotBase64)?;
    let se = expiry
        .to_offset(time::UtcOffset::UTC)
        .format(format_description!(
            "[year]-[month]-[day]T[hour]:[minute]:[second]Z"
        ))
        .map_err(|_| SasError::BadExpiry)?;
    let spr = protocol.as_str();
    // accountname, sp, ss, srt, st, se, sip, spr, sv, ses: each followed by a newline.
    let string_to_sign = format!(
        "{account_name}\n{permissions}\n{SERVICES}\n{RESOURCE_TYPES}\n\n{se}\n\n{spr}\n{SAS_VERSION}\n\n"
    );
    let mut mac = Hmac::<Sha256>::new_from_slice(&key).map_err(|_| SasError::KeyNotBase64)?;
    mac.update(string_to_sign.as_bytes());
    let sig = base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes());

    let enc = |v: &str| url::form_urlencoded::byte_serialize(v.as_bytes()).collect::<String>();
    Ok(Secret::new(format!(
        "sv={SAS_VERSION}&ss={SERVICES}&srt={RESOURCE_TYPES}&sp={permissions}&se={}&spr={}&sig={}",
        enc(&se),
        enc(spr),
        enc(&sig)
    )))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::queue::connection::DEVSTORE_KEY;
    use time::macros::datetime;

    // Expected signatures computed independently, outside this code, with Python's standard
    // library:
    //
    //   key = base64.b64decode(DEVSTORE_KEY)
    //   sts = "\n".join([account, "rwlacup", "bq", "sco", "", "2030-01-01T00:00:00Z", "", spr,
    //                    "2022-11-02", "", ""])
    //   base64.b64encode(hmac.new(key, sts.encode(), hashlib.sha256).digest())
    //
    // Azurite accepting tokens we sign is tested end to end (tests/tests/queue.rs, blob.rs).
    #[test]
    fn matches_independently_computed_signatures() {
        let key = Secret::new(DEVSTORE_KEY);
        let expiry = datetime!(2030-01-01 00:00:00 UTC);

        let sas = account_sas("devstoreaccount1", &key, expiry, SasProtocol::HttpsAndHttp).unwrap();
        assert_eq!(
            sas.expose(),
            "sv=2022-11-02&ss=bq&srt=sco&sp=rwlacup&se=2030-01-01T00%3A00%3A00Z&spr=https%2Chttp\
             &sig=lQOfRXlK952DAPnBokNyLIFicB8W5OEir8ndauCPk%2FA%3D"
        );

        let sas = account_sas("myaccount", &key, expiry, SasProtocol::HttpsOnly).unwrap();
        assert!(
            sas.expose()
                .ends_with("&spr=https&sig=b0Zth8iBI6QyhSZGjKtXswA16g%2F4YW6ytd4ATWLjTFc%3D"),
            "{}",
            sas.expose()
        );
    }

    // As above, with "rwdlacup" for the permissions.
    #[test]
    fn the_delete_token_adds_d_in_the_documented_order_and_signs_it() {
        let key = Secret::new(DEVSTORE_KEY);
        let expiry = datetime!(2030-01-01 00:00:00 UTC);
        let sas =
            account_sas_with_delete("devstoreaccount1", &key, expiry, SasProtocol::HttpsAndHttp)
                .unwrap();
        assert_eq!(
            sas.expose(),
            "sv=2022-11-02&ss=bq&srt=sco&sp=rwdlacup&se=2030-01-01T00%3A00%3A00Z&spr=https%2Chttp\
             &sig=ujHgWOmdum%2FRhM8uR3NBBw9dR2OLgoOnW0N3jmBOAsY%3D"
        );
    }

    #[test]
    fn expiry_in_another_offset_is_converted_to_utc_and_truncated() {
        let key = Secret::new(DEVSTORE_KEY);
        let utc = account_sas(
            "devstoreaccount1",
            &key,
            datetime!(2030-01-01 00:00:00 UTC),
            SasProtocol::HttpsAndHttp,
        )
        .unwrap();
        let other = account_sas(
            "devstoreaccount1",
            &key,
            datetime!(2030-01-01 02:00:00.75 +02:00),
            SasProtocol::HttpsAndHttp,
        )
        .unwrap();
        assert_eq!(utc, other);
    }

    #[test]
    fn bad_key_is_an_error_without_the_key() {
        let e = account_sas(
            "a",
            &Secret::new("hunter2!"),
            OffsetDateTime::now_utc(),
            SasProtocol::HttpsOnly,
        )
        .unwrap_err();
        assert!(!e.to_string().contains("hunter2"));
    }

    #[test]
    fn protocol_follows_the_endpoint_scheme() {
        let http = url::Url::parse("http://127.0.0.1:10001/devstoreaccount1").unwrap();
        let https = url::Url::parse("https://a.queue.core.windows.net").unwrap();
        assert_eq!(SasProtocol::for_endpoint(&http), SasProtocol::HttpsAndHttp);
        assert_eq!(SasProtocol::for_endpoint(&https), SasProtocol::HttpsOnly);
    }
}

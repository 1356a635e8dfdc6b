//! The job message decoder with its `mac` check (`crates/shared/src/job/`), what the runner
//! applies to every queue message.
//!
//! Any queue text must decode or be refused without a panic, and a job that decodes survives
//! encode → decode unchanged. The input is tried twice: as the queue text itself (base64 and
//! all), and as the JSON inside it, which mutated base64 seldom reaches. The seeds are signed
//! with [`KEY`], so mutations of fields the MAC does not cover (`started_at`) and of the `mac`
//! itself reach the decoder's later steps.

#![no_main]

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use chatops_shared::job::{DecodeError, JobKey, JobKeys, JobMessage};
use libfuzzer_sys::fuzz_target;
use std::sync::LazyLock;

/// The key the seeds in `fuzz/corpus/job_message` are signed with: 32 bytes of 7.
const KEY: &str = "BwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwc=";

static KEYS: LazyLock<JobKeys> = LazyLock::new(|| match JobKey::from_base64(KEY) {
    Ok(key) => JobKeys::new(key, None),
    Err(e) => panic!("the fuzz key is valid: {e}"),
});

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        round_trip(text);
    }
    round_trip(&BASE64.encode(data));
});

/// The decoder under test: the one call to change when the runner reads messages differently.
fn decode(text: &str) -> Result<JobMessage, DecodeError> {
    JobMessage::decode(text, &KEYS)
}

/// How a job is written to the queue, to check what `decode` accepts against.
fn encode(job: &JobMessage) -> String {
    job.encode(KEYS.current())
}

fn round_trip(text: &str) {
    let Ok(job) = decode(text) else {
        return;
    };
    let written = encode(&job);
    assert_eq!(decode(&written), Ok(job), "written as {written:?}");
}

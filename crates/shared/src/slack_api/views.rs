//! `views.open`: opens a modal for the user who just acted (needs the action's `trigger_id`,
//! single-use and valid for 3 s).

use super::{SlackApi, SlackApiError};
use serde_json::{Value, json};
use tokio::time::Instant;

impl SlackApi {
    /// Opens `view` (a modal's JSON) with `trigger_id`.
    pub async fn open_view(
        &self,
        trigger_id: &str,
        view: &Value,
        deadline: Instant,
    ) -> Result<(), SlackApiError> {
        let body = json!({ "trigger_id": trigger_id, "view": view });
        self.call("views.open", &body, deadline).await.map(drop)
    }
}

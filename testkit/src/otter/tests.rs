//! The double answers as otter-api.md describes: Basic or form credentials, Bearer and
//! `X-Store-Id` required, 429 past the limit with `Retry-After`, jobs PENDING then their end.

use std::time::Duration;

use serde_json::json;

use super::{JobEnd, OtterDouble};

#[tokio::test]
async fn the_double_checks_what_otter_checks() {
    let otter = OtterDouble::start("id", "secret").await;
    let client = crate::http::bare();
    let url = |path: &str| format!("{}{path}", otter.url());
    // Basic auth works as well as the form; wrong credentials do not.
    let token: serde_json::Value = client
        .post(url("/v1/auth/token"))
        .basic_auth("id", Some("secret"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body("grant_type=client_credentials&scope=manager.orders")
        .send()
        .await
        .expect("token")
        .json()
        .await
        .expect("json");
    assert_eq!(
        (&token["access_token"], &token["expires_in"]),
        (&json!("token-1"), &json!(3600))
    );
    let refused = client
        .post(url("/v1/auth/token"))
        .body("grant_type=client_credentials&scope=x&client_id=id&client_secret=nope")
        .send()
        .await
        .expect("answers");
    assert_eq!(refused.status(), 401);
    assert_eq!(otter.token_requests(), 2);
    let confirm = url("/manager/order/v1/sources/ubereats/orders/o1/confirm");
    let status = |request: reqwest::RequestBuilder| async move {
        request.send().await.expect("answers").status().as_u16()
    };
    assert_eq!(
        status(client.post(&confirm).header("X-Store-Id", "s")).await,
        401
    );
    let authed = |request: reqwest::RequestBuilder| request.bearer_auth("token-1");
    assert_eq!(
        status(authed(client.post(&confirm))).await,
        400,
        "no X-Store-Id"
    );
    otter.set_rate_limit(1, Duration::from_secs(60));
    for endpoint in ["suspend", "job_status", "order_created"] {
        otter.set_endpoint_limit(endpoint, 8);
    }
    otter.set_retry_after(Some(7));
    assert_eq!(
        status(authed(client.post(&confirm)).header("X-Store-Id", "s")).await,
        202
    );
    let limited = authed(client.post(&confirm))
        .header("X-Store-Id", "s")
        .send()
        .await
        .expect("answers");
    assert_eq!(limited.status(), 429);
    assert_eq!(limited.headers()["retry-after"], "7");
    assert_eq!(
        status(authed(client.post(&confirm)).header("X-Store-Id", "other")).await,
        202,
        "per store"
    );
    // A suspend makes a job: PENDING once, then FAILED.
    otter.set_job(1, JobEnd::Failed);
    let job: serde_json::Value =
        authed(client.post(url("/manager/menu/v1/menus/entities/availability/suspend")))
            .header("X-Store-Id", "s")
            .json(&json!({"entityIds": ["e"], "note": "n", "status": {"isIndefinite": true}}))
            .send()
            .await
            .expect("suspend")
            .json()
            .await
            .expect("json");
    let id = job["jobReference"]["id"]
        .as_str()
        .expect("job id")
        .to_owned();
    let poll = || async {
        let answer: serde_json::Value = authed(client.get(url(&format!("/v1/menus/jobs/{id}"))))
            .header("X-Store-Id", "s")
            .send()
            .await
            .expect("poll")
            .json()
            .await
            .expect("json");
        answer["jobReference"]["status"].clone()
    };
    assert_eq!(poll().await, json!("PENDING"));
    assert_eq!(poll().await, json!("FAILED"));
    let created = url("/manager/order/v1/orders/order-created");
    assert_eq!(
        status(authed(client.post(&created)).header("X-Store-Id", "s")).await,
        400
    );
    assert_eq!(
        status(
            authed(client.post(&created))
                .header("X-Store-Id", "s")
                .header("X-Event-Id", "e1")
        )
        .await,
        200
    );
    let statuses: Vec<u16> = otter.resource_calls().iter().map(|c| c.status).collect();
    assert_eq!(statuses, [401, 400, 202, 429, 202, 202, 200, 200, 400, 200]);
}

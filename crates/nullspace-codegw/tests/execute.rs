//! The execute stream against a real python kernel: stdout, results, errors, envs, timeouts,
//! interrupts, charts and artifacts, output bounds, and bad input answered with the error envelope.

mod common;

use common::{assert_error, start};
use reqwest::Method;
use serde_json::json;

#[tokio::test]
async fn stdout_results_and_the_execution_count_stream_in_order() {
    let gateway = start(&[]).await;
    let execution = gateway.run("", "print(2 + 2)\n3 * 3").await;
    assert_eq!(execution.stdout(), "4\n");
    assert!(execution.of_type("stdout")[0]["timestamp"].as_i64().unwrap() > 0);
    let results = execution.of_type("result");
    assert_eq!(results.len(), 1);
    assert_eq!((results[0]["text"].as_str(), results[0]["is_main_result"].as_bool()), (Some("9"), Some(true)));
    let kinds: Vec<&str> = execution.events.iter().map(|event| event["type"].as_str().unwrap()).collect();
    assert_eq!(kinds, ["stdout", "result", "number_of_executions"]);
    let first = execution.count().unwrap();
    assert_eq!(gateway.run("", "x = 1").await.count(), Some(first + 1), "one context: the counter goes on");

    let rich =
        gateway.run("", "from IPython.display import HTML, Markdown\ndisplay(HTML('<b>h</b>'))\nMarkdown('# m')").await;
    let results = rich.of_type("result");
    assert_eq!(results[0]["html"], "<b>h</b>");
    assert_eq!(results[0]["is_main_result"], false);
    assert_eq!(results[1]["markdown"], "# m");
    assert_eq!(results[1]["is_main_result"], true);
    assert!(rich.error().is_none());
}

#[tokio::test]
async fn an_exception_is_an_error_event_and_the_context_goes_on() {
    let gateway = start(&[]).await;
    let failing = gateway.run("", "raise ValueError('boom')").await;
    let error = failing.error().expect("an error event");
    assert_eq!(error["name"], "ValueError");
    assert!(error["value"].as_str().unwrap().contains("boom"));
    let traceback = error["traceback"].as_str().unwrap();
    assert!(traceback.contains("ValueError") && !traceback.contains('\u{1b}'), "plain text: {traceback:?}");
    let after = gateway.run("", "print('after error')").await;
    assert!(after.error().is_none());
    assert_eq!(after.stdout(), "after error\n");
}

#[tokio::test]
async fn envs_are_visible_to_their_execution_only() {
    let gateway = start(&[]).await;
    let context = gateway.context(json!({"language": "python"})).await;
    let code = "import os; print(os.getcwd()); print(os.environ['SDK_CODE_ENV'])";
    let with_env =
        gateway.execute(json!({"code": code, "context_id": context, "envs": {"SDK_CODE_ENV": "present"}})).await;
    assert!(with_env.error().is_none(), "{:?}", with_env.error());
    assert_eq!(with_env.stdout(), format!("{}\npresent\n", gateway.workspace.path().display()));
    let later = gateway.run(&context, "import os; print(os.environ.get('SDK_CODE_ENV'))").await;
    assert_eq!(later.stdout(), "None\n");

    std::env::var("HOME").expect("the gateway inherits HOME");
    let shadowed =
        gateway.execute(json!({"code": "import os; print(os.environ['HOME'])", "envs": {"HOME": "/shadow"}})).await;
    assert_eq!(shadowed.stdout(), "/shadow\n");
    let restored = gateway.run("", "import os; print(os.environ['HOME'])").await;
    assert_ne!(restored.stdout(), "/shadow\n", "an overridden variable gets its old value back");

    let bad = gateway.call(Method::POST, "/execute", Some(json!({"code": "1", "envs": {"A B": "x"}}))).await;
    assert_error(&bad, 400, "invalid_request", "invalid env name");
}

#[tokio::test]
async fn a_timeout_interrupts_with_timeout_error_and_keeps_the_context() {
    let gateway = start(&[]).await;
    let context = gateway.context(json!({})).await;
    gateway.run(&context, "kept = 41").await;
    let timed_out =
        gateway.execute(json!({"code": "import time; time.sleep(30)", "context_id": context, "timeout": 1})).await;
    let error = timed_out.error().expect("a timeout error");
    assert_eq!(error["name"], "TimeoutError", "{error}");
    assert_eq!(timed_out.of_type("error").len(), 1, "the kernel's KeyboardInterrupt is not reported as well");
    let after = gateway.run(&context, "print(kept + 1)").await;
    assert!(after.error().is_none());
    assert_eq!(after.stdout(), "42\n", "state survives the timeout");
}

#[tokio::test]
async fn interrupt_ends_a_running_stream_and_keeps_the_context() {
    let gateway = start(&[]).await;
    let context = gateway.context(json!({})).await;
    let body = json!({"code": "import time\nprint('started', flush=True)\nfor _ in range(60): time.sleep(1)", "context_id": context, "timeout": 90});
    let mut response = gateway.http.post(gateway.url("/execute")).json(&body).send().await.unwrap();
    let mut seen = String::new();
    while !seen.contains("started") {
        let chunk = response.chunk().await.unwrap().expect("the stream goes on until the code prints");
        seen.push_str(&String::from_utf8_lossy(&chunk));
    }
    let (status, answer) = gateway.call(Method::POST, &format!("/contexts/{context}/interrupt"), None).await;
    assert_eq!(status, 200, "{answer}");
    while let Some(chunk) = response.chunk().await.unwrap() {
        seen.push_str(&String::from_utf8_lossy(&chunk));
    }
    let execution = common::parse_sse(&seen);
    assert_eq!(execution.error().unwrap()["name"], "KeyboardInterrupt");
    assert_eq!(gateway.run(&context, "print('after interrupt')").await.stdout(), "after interrupt\n");
}

#[tokio::test]
async fn a_bar_chart_gives_its_chart_its_png_and_exactly_one_artifact() {
    let gateway = start(&[]).await;
    let context = gateway.context(json!({"cwd": "/tmp", "language": "python"})).await;
    let code =
        "import matplotlib.pyplot as plt\nprint('streaming-line')\nplt.bar(['A', 'B'], [10, 20], label='Revenue')\n\
                plt.xlabel('Quarter')\nplt.ylabel('USD')\nplt.title('Streaming Revenue')\nplt.show()";
    let execution = gateway.run(&context, code).await;
    assert!(execution.error().is_none(), "{:?}", execution.error());
    assert!(execution.stdout().contains("streaming-line"));
    let chart_result = execution.of_type("result").into_iter().find(|r| r.get("chart").is_some()).expect("a chart");
    assert!(chart_result["png"].as_str().unwrap().starts_with("iVBOR"), "the chart's result carries the png");
    let chart = &chart_result["chart"];
    assert_eq!(chart["type"], "bar");
    assert_eq!(
        (chart["title"].as_str(), chart["x_label"].as_str(), chart["y_label"].as_str()),
        (Some("Streaming Revenue"), Some("Quarter"), Some("USD"))
    );
    assert_eq!(
        chart["elements"],
        json!([{"label": "A", "value": 10, "group": "Revenue"}, {"label": "B", "value": 20, "group": "Revenue"}])
    );
    let artifacts = execution.artifacts();
    assert_eq!(artifacts.len(), 1, "exactly one artifact per figure");
    let artifact = artifacts[0];
    assert_eq!((artifact["kind"].as_str(), artifact["mime_type"].as_str()), (Some("image"), Some("image/png")));
    assert_eq!(artifact["context_id"].as_str(), Some(context.as_str()));
    assert_eq!(artifact["execution_count"].as_i64(), execution.count());
    let id = artifact["id"].as_str().unwrap();

    let (status, got) = gateway.call(Method::GET, &format!("/artifacts/{id}"), None).await;
    assert_eq!((status, &got), (200, artifact));
    let download = gateway.http.get(gateway.url(&format!("/artifacts/{id}/download"))).send().await.unwrap();
    assert_eq!(download.headers()["content-type"], "image/png");
    let bytes = download.bytes().await.unwrap();
    assert!(bytes.starts_with(b"\x89PNG"));
    assert_eq!(bytes.len() as u64, artifact["size_bytes"].as_u64().unwrap());
    let digest = sha256_hex(&bytes);
    assert_eq!(artifact["sha256"].as_str(), Some(digest.as_str()));
    let preview = gateway.http.get(gateway.url(&format!("/artifacts/{id}/preview"))).send().await.unwrap();
    assert_eq!(preview.bytes().await.unwrap(), bytes);

    let (_, images) = gateway.call(Method::GET, "/artifacts?kind=image&limit=20", None).await;
    assert!(images["items"].as_array().unwrap().iter().any(|item| item["id"] == id));
    let (status, _) = gateway.call(Method::DELETE, &format!("/artifacts/{id}"), None).await;
    assert_eq!(status, 200);
    let (_, listed) = gateway.call(Method::GET, &format!("/artifacts?context_id={context}"), None).await;
    assert!(listed["items"].as_array().unwrap().is_empty());
    assert_error(
        &gateway.call(Method::GET, &format!("/artifacts/{id}/download"), None).await,
        404,
        "artifact_not_found",
        id,
    );
}

#[tokio::test]
async fn svg_displays_become_artifacts_listed_by_context_count_and_cursor() {
    let gateway = start(&[]).await;
    let context = gateway.context(json!({})).await;
    let mut ids = Vec::new();
    for label in ["one", "two", "three"] {
        let svg = format!("<svg xmlns='http://www.w3.org/2000/svg' width='120' height='40'><text>{label}</text></svg>");
        let execution = gateway
            .run(&context, &format!("from IPython.display import SVG, display\ndisplay(SVG(data={svg:?}))"))
            .await;
        assert!(execution.error().is_none(), "{:?}", execution.error());
        assert!(execution.of_type("result")[0]["svg"].as_str().unwrap().contains(label));
        let artifacts = execution.artifacts();
        assert_eq!(artifacts.len(), 1);
        assert_eq!(artifacts[0]["mime_type"], "image/svg+xml");
        ids.push((artifacts[0]["id"].as_str().unwrap().to_owned(), execution.count().unwrap()));
    }
    let (_, page) = gateway.call(Method::GET, &format!("/artifacts?context_id={context}&limit=2"), None).await;
    assert_eq!(page["items"].as_array().unwrap().len(), 2);
    let cursor = page["next_cursor"].as_str().expect("a next cursor");
    let (_, rest) =
        gateway.call(Method::GET, &format!("/artifacts?context_id={context}&limit=2&cursor={cursor}"), None).await;
    assert_eq!(rest["items"][0]["id"], ids[0].0.as_str(), "newest first, the oldest on the last page");
    assert!(rest.get("next_cursor").is_none());
    let (_, by_count) = gateway.call(Method::GET, &format!("/artifacts?execution_count={}", ids[1].1), None).await;
    assert_eq!(by_count["items"][0]["id"], ids[1].0.as_str());
    assert_error(&gateway.call(Method::GET, "/artifacts?cursor=bogus", None).await, 400, "invalid_request", "cursor");
}

#[tokio::test]
async fn output_floods_are_cut_at_the_bound_and_say_so() {
    let gateway = start(&["--max-output-bytes", "10000"]).await;
    let execution = gateway.run("", "for i in range(2000): print('x' * 100)\nprint('done')").await;
    assert!(execution.stdout().len() <= 10000, "{} bytes passed", execution.stdout().len());
    assert!(execution.stderr().contains("output truncated"), "{}", execution.stderr());
    assert!(execution.count().is_some(), "the execution still ends normally");
    assert_eq!(gateway.run("", "print('small')").await.stdout(), "small\n", "the bound is per execution");
}

#[tokio::test]
async fn quiet_streams_get_ping_comments_that_the_client_skips() {
    let gateway = start(&["--keepalive-secs", "1"]).await;
    let body = json!({"code": "import time; time.sleep(2.5); print('done')"});
    let response = gateway.http.post(gateway.url("/execute")).json(&body).send().await.unwrap();
    let text = response.text().await.unwrap();
    assert!(text.lines().any(|line| line == ": ping"), "{text}");
    assert_eq!(common::parse_sse(&text).stdout(), "done\n");
}

#[tokio::test]
async fn bad_input_gets_the_error_envelope() {
    let gateway = start(&[]).await;
    assert_error(
        &gateway.call(Method::POST, "/execute", Some(json!({"code": "1", "language": "cobol"}))).await,
        400,
        "unknown_language",
        "python",
    );
    assert_error(
        &gateway.call(Method::POST, "/execute", Some(json!({"code": "1", "context_id": "ctx_nope"}))).await,
        404,
        "context_not_found",
        "ctx_nope",
    );
    let malformed = gateway
        .http
        .post(gateway.url("/execute"))
        .header("content-type", "application/json")
        .body("{")
        .send()
        .await
        .unwrap();
    assert_eq!(malformed.status(), 400);
    assert_eq!(malformed.json::<serde_json::Value>().await.unwrap()["code"], "invalid_request");
    for cwd in ["/workspace/.nullspace", "/workspace/.nullspace/runtime"] {
        assert_error(
            &gateway.call(Method::POST, "/contexts", Some(json!({"cwd": cwd}))).await,
            400,
            "invalid_request",
            "cwd is reserved",
        );
    }
    assert_error(&gateway.call(Method::GET, "/artifacts/art_nope", None).await, 404, "artifact_not_found", "art_nope");
    assert_error(&gateway.call(Method::GET, "/runs/run_nope", None).await, 404, "run_not_found", "run_nope");
    assert_error(
        &gateway.call(Method::POST, "/contexts/ctx_nope/restart", None).await,
        404,
        "context_not_found",
        "ctx_nope",
    );
    assert_error(&gateway.call(Method::GET, "/nowhere", None).await, 404, "not_found", "/nowhere");
}

fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(bytes))
}

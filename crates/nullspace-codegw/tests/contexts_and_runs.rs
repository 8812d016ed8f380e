//! Contexts and runs against real python kernels: isolation, restart, removal, a kernel that kills
//! itself, and the run lifecycle (queued → succeeded, cancel, list filters).

mod common;

use std::time::{Duration, Instant};

use common::{assert_error, start, start_in, Gateway};
use reqwest::Method;
use serde_json::{json, Value};

#[tokio::test]
async fn contexts_keep_their_own_state_and_restart_clears_it() {
    let gateway = start(&[]).await;
    let primary = gateway.context(json!({"language": "python"})).await;
    let isolated = gateway.context(json!({"cwd": "/tmp"})).await;
    gateway.run(&primary, "x = 41").await;
    assert_eq!(gateway.run(&primary, "print(x + 1)").await.stdout(), "42\n");
    assert_eq!(gateway.run(&isolated, "print('x' in globals())").await.stdout(), "False\n");
    assert_eq!(gateway.run(&isolated, "import os; print(os.getcwd())").await.stdout(), "/tmp\n");
    assert_eq!(gateway.run("", "print('x' in globals())").await.stdout(), "False\n", "nor the default context");

    let (_, listed) = gateway.call(Method::GET, "/contexts", None).await;
    let listed: Vec<&str> = listed.as_array().unwrap().iter().map(|c| c["id"].as_str().unwrap()).collect();
    assert!(listed.contains(&primary.as_str()) && listed.contains(&isolated.as_str()));

    let (status, restarted) = gateway.call(Method::POST, &format!("/contexts/{primary}/restart"), None).await;
    assert_eq!((status, restarted["id"].as_str()), (200, Some(primary.as_str())));
    assert_eq!(gateway.run(&primary, "print('x' in globals())").await.stdout(), "False\n");

    let (status, _) = gateway.call(Method::DELETE, &format!("/contexts/{isolated}"), None).await;
    assert_eq!(status, 200);
    assert_error(
        &gateway.call(Method::POST, "/execute", Some(json!({"code": "1", "context_id": isolated}))).await,
        404,
        "context_not_found",
        &isolated,
    );
    assert_error(
        &gateway.call(Method::DELETE, &format!("/contexts/{isolated}"), None).await,
        404,
        "context_not_found",
        &isolated,
    );
}

#[tokio::test]
async fn a_kernel_that_kills_itself_is_reported_and_replaced_while_others_keep_working() {
    let gateway = start(&[]).await;
    let doomed = gateway.context(json!({})).await;
    let bystander = gateway.context(json!({})).await;
    gateway.run(&bystander, "alive = 'yes'").await;
    gateway.run(&doomed, "lost = 1").await;
    let crash = gateway.run(&doomed, "import os; os._exit(3)").await;
    let error = crash.error().expect("an error event");
    assert_eq!(error["name"], "DeadKernelError");
    assert!(error["value"].as_str().unwrap().contains("exited with code 3"), "{error}");
    let after = gateway.run(&doomed, "print('lost' in globals())").await;
    assert!(after.error().is_none(), "the context has a new kernel: {:?}", after.error());
    assert_eq!(after.stdout(), "False\n");
    assert_eq!(gateway.run(&bystander, "print(alive)").await.stdout(), "yes\n");
    let (status, _) = gateway.call(Method::GET, "/health", None).await;
    assert_eq!(status, 200);
}

#[tokio::test]
async fn a_restart_during_an_execution_ends_it_with_an_error() {
    let gateway = start(&[]).await;
    let context = gateway.context(json!({})).await;
    let body = json!({"code": "import time\nprint('started', flush=True)\ntime.sleep(60)", "context_id": context});
    let mut response = gateway.http.post(gateway.url("/execute")).json(&body).send().await.unwrap();
    let mut seen = String::new();
    while !seen.contains("started") {
        seen.push_str(&String::from_utf8_lossy(&response.chunk().await.unwrap().expect("output before the end")));
    }
    let (status, _) = gateway.call(Method::POST, &format!("/contexts/{context}/restart"), None).await;
    assert_eq!(status, 200);
    while let Some(chunk) = response.chunk().await.unwrap() {
        seen.push_str(&String::from_utf8_lossy(&chunk));
    }
    let error = common::parse_sse(&seen).error().cloned().expect("an error event");
    assert!(error["value"].as_str().unwrap().contains("restarted"), "{error}");
    assert_eq!(gateway.run(&context, "print('fresh')").await.stdout(), "fresh\n");
}

#[tokio::test]
async fn runs_are_queued_executed_in_order_kept_and_cancellable() {
    let gateway = start(&[]).await;
    let context = gateway.context(json!({})).await;
    let (status, first) = gateway
        .call(
            Method::POST,
            "/runs",
            Some(json!({"code": "import time; time.sleep(1); n = 1", "context_id": context, "timeout": 60})),
        )
        .await;
    assert_eq!(status, 200, "{first}");
    assert_eq!(first["status"], "queued");
    assert_eq!(first["timeout_secs"], 60);
    assert!(first["created_at"].is_string() && first["expires_at"].is_string());
    let (_, second) = gateway
        .call(
            Method::POST,
            "/runs",
            Some(json!({"code": "print('queued-run-ok', n + 1)", "context_id": context, "envs": {"RUN_ENV": "x"}})),
        )
        .await;
    let second = wait_for(&gateway, second["id"].as_str().unwrap(), &["succeeded", "failed", "cancelled"]).await;
    assert_eq!(second["status"], "succeeded", "{second}");
    let stdout: String =
        second["execution"]["logs"]["stdout"].as_array().unwrap().iter().map(|s| s.as_str().unwrap()).collect();
    assert_eq!(stdout, "queued-run-ok 2\n", "the second run ran after the first, in the same context");
    assert!(second["execution"]["execution_count"].is_i64());
    assert_eq!(wait_for(&gateway, first["id"].as_str().unwrap(), &["succeeded"]).await["status"], "succeeded");

    let (_, failing) = gateway.call(Method::POST, "/runs", Some(json!({"code": "1/0", "context_id": context}))).await;
    let failing = wait_for(&gateway, failing["id"].as_str().unwrap(), &["succeeded", "failed"]).await;
    assert_eq!(failing["status"], "failed");
    assert_eq!(failing["execution"]["error"]["name"], "ZeroDivisionError");
    assert!(failing["failure_reason"].as_str().unwrap().starts_with("ZeroDivisionError"));

    let (_, sleeper) = gateway
        .call(
            Method::POST,
            "/runs",
            Some(json!({"code": "import time\ntime.sleep(30)", "context_id": context, "timeout": 60})),
        )
        .await;
    let (_, queued) =
        gateway.call(Method::POST, "/runs", Some(json!({"code": "print('never')", "context_id": context}))).await;
    let sleeper_id = sleeper["id"].as_str().unwrap();
    wait_for(&gateway, sleeper_id, &["running"]).await;
    let (status, cancelled_queued) =
        gateway.call(Method::POST, &format!("/runs/{}/cancel", queued["id"].as_str().unwrap()), None).await;
    assert_eq!((status, cancelled_queued["status"].as_str()), (200, Some("cancelled")));
    let (status, cancelling) = gateway.call(Method::POST, &format!("/runs/{sleeper_id}/cancel"), None).await;
    assert_eq!((status, cancelling["id"].as_str()), (200, Some(sleeper_id)));
    assert!(cancelling["cancel_requested_at"].is_string());
    let cancelled = wait_for(&gateway, sleeper_id, &["cancelled", "failed"]).await;
    assert_eq!(cancelled["status"], "cancelled");
    let follow_up = gateway.run(&context, "print('after cancel')").await;
    assert_eq!(follow_up.stdout(), "after cancel\n");
    let never = wait_for(&gateway, queued["id"].as_str().unwrap(), &["cancelled"]).await;
    assert!(never.get("execution").is_none(), "a run cancelled while queued never ran");

    let (_, by_status) = gateway.call(Method::GET, &format!("/runs?status=cancelled&context_id={context}"), None).await;
    assert_eq!(by_status["items"].as_array().unwrap().len(), 2);
    let (_, page) = gateway.call(Method::GET, "/runs?limit=2", None).await;
    assert_eq!(page["items"].as_array().unwrap().len(), 2);
    let cursor = page["next_cursor"].as_str().unwrap();
    let (_, rest) = gateway.call(Method::GET, &format!("/runs?limit=10&cursor={cursor}"), None).await;
    assert_eq!(rest["items"].as_array().unwrap().len(), 3);
    assert_error(
        &gateway.call(Method::POST, "/runs", Some(json!({"code": "1", "context_id": "ctx_nope"}))).await,
        404,
        "context_not_found",
        "ctx_nope",
    );
    assert_error(&gateway.call(Method::GET, "/runs?status=done", None).await, 400, "invalid_request", "status");
}

/// Polls run `id` until its status is one of `statuses`.
async fn wait_for(gateway: &Gateway, id: &str, statuses: &[&str]) -> Value {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let (status, run) = gateway.call(Method::GET, &format!("/runs/{id}"), None).await;
        assert_eq!(status, 200, "{run}");
        if statuses.contains(&run["status"].as_str().unwrap_or_default()) {
            return run;
        }
        assert!(Instant::now() < deadline, "run {id} stuck in {}", run["status"]);
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn kernels_die_with_the_gateway_even_when_it_is_killed() {
    let mut gateway = start(&[]).await;
    gateway.context(json!({})).await;
    let needle = gateway.state.path().display().to_string();
    let gateway_pid = gateway.pid();
    let kernels = || -> Vec<u32> {
        std::fs::read_dir("/proc")
            .unwrap()
            .flatten()
            .filter_map(|entry| entry.file_name().to_str()?.parse::<u32>().ok())
            .filter(|pid| *pid != gateway_pid)
            .filter(|pid| {
                std::fs::read(format!("/proc/{pid}/cmdline"))
                    .is_ok_and(|cmdline| String::from_utf8_lossy(&cmdline).contains(&needle))
            })
            .collect()
    };
    assert_eq!(kernels().len(), 2, "the default context's kernel and the new one");
    gateway.kill();
    let deadline = Instant::now() + Duration::from_secs(30);
    while !kernels().is_empty() {
        assert!(Instant::now() < deadline, "kernels outlived the gateway: {:?}", kernels());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn contexts_and_artifacts_outlive_a_gateway_restart_with_fresh_kernels() {
    let gateway = start(&[]).await;
    let context = gateway.context(json!({"cwd": "/tmp"})).await;
    gateway.run(&context, "x = 1").await;
    let svg =
        "from IPython.display import SVG\nSVG(data=\"<svg xmlns='http://www.w3.org/2000/svg' width='4' height='4'/>\")";
    let artifact = gateway.run(&context, svg).await.artifacts()[0]["id"].as_str().unwrap().to_owned();
    let (state, workspace) = gateway.kill_keeping_dirs();

    let gateway = start_in(state, workspace, &[]).await;
    let (_, contexts) = gateway.call(Method::GET, "/contexts", None).await;
    let restored =
        contexts.as_array().unwrap().iter().find(|c| c["id"] == context.as_str()).expect("the context is back");
    assert_eq!((restored["language"].as_str(), restored["cwd"].as_str()), (Some("python"), Some("/tmp")));
    assert_eq!(contexts.as_array().unwrap().len(), 2, "the context and the default python one, not a second default");
    assert_eq!(gateway.run(&context, "print('x' in globals())").await.stdout(), "False\n", "a fresh kernel");
    let (status, _) = gateway.call(Method::GET, &format!("/artifacts/{artifact}"), None).await;
    assert_eq!(status, 200);
}

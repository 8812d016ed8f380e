//! The lifecycle fields of create and timeout requests (`timeout_action`, `lifecycle.on_timeout`,
//! `auto_resume`) and the fields a create from a snapshot cannot honour. The rule: a field whose value
//! asks for something the server does not do is refused with `invalid_request` naming the field, never
//! ignored. The values the official client always sends (`auto_resume: false`, empty `envs` and
//! `metadata`, `network: null`, an absent `lifecycle`) are defaults and pass. Keys this server does not
//! know are ignored, so newer clients keep working (the official client sends every key it knows).

use nullspace_types::sandbox::{CreateSandboxRequest, LifecycleRequest, TimeoutAction};

use super::validate::invalid;
use super::ControlError;
use crate::store::SnapshotConfig;

/// The deadline behaviour a request asks for: `timeout_action`, `lifecycle.on_timeout` (`pause` is
/// `hibernate`), or both when they agree; `None` when neither is given. Disagreeing values are refused.
pub fn timeout_action(
    timeout_action: Option<TimeoutAction>,
    lifecycle: Option<&LifecycleRequest>,
) -> Result<Option<TimeoutAction>, ControlError> {
    let on_timeout = lifecycle.and_then(|lifecycle| lifecycle.on_timeout);
    match (timeout_action, on_timeout) {
        (Some(action), Some(on_timeout)) if action != on_timeout.timeout_action() => Err(invalid(format!(
            "timeout_action {:?} and lifecycle.on_timeout {:?} disagree; give one of them (on_timeout \"pause\" is \
             timeout_action \"hibernate\")",
            action.as_str(),
            on_timeout.as_str(),
        ))),
        (Some(action), _) => Ok(Some(action)),
        (None, on_timeout) => Ok(on_timeout.map(|on_timeout| on_timeout.timeout_action())),
    }
}

/// Folds `lifecycle.on_timeout` into `timeout_action`, so every create path (template, warm-pool claim,
/// snapshot) reads one field.
pub fn normalize_create(request: &mut CreateSandboxRequest) -> Result<(), ControlError> {
    request.timeout_action = timeout_action(request.timeout_action, request.lifecycle.as_ref())?;
    Ok(())
}

/// Refuses the fields of a create from a snapshot that ask for something other than the snapshot's
/// configuration, which such a sandbox always gets (template, size, envs, cwd, network, volumes), and a
/// `warm_pool` (a create from a snapshot never uses one). `timeout_ms`, `timeout_action`/`lifecycle`,
/// `metadata` and `auto_resume` are the caller's to set and are honoured.
pub fn snapshot_create(request: &CreateSandboxRequest, config: &SnapshotConfig) -> Result<(), ControlError> {
    let keeps = |field: &str, what: &str| {
        invalid(format!(
            "{field}: a sandbox created from a snapshot keeps the snapshot's {what}; leave out {field} (or start \
             from a template)"
        ))
    };
    if request.template.as_deref().is_some_and(|template| !template.is_empty()) {
        return Err(keeps("template", "template"));
    }
    if request.vcpus.is_some_and(|vcpus| vcpus != config.vcpus) {
        return Err(keeps("vcpus", &format!("size ({} vCPUs)", config.vcpus)));
    }
    if request.memory_mb.is_some_and(|memory| memory != config.memory_mb) {
        return Err(keeps("memory_mb", &format!("size ({} MiB)", config.memory_mb)));
    }
    if request.envs.as_ref().is_some_and(|envs| !envs.is_empty()) {
        return Err(keeps("envs", "environment"));
    }
    if request.cwd.as_deref().is_some_and(|cwd| !cwd.is_empty() && cwd != config.cwd) {
        return Err(keeps("cwd", &format!("working directory ({})", config.cwd)));
    }
    if request.internet_access.is_some_and(|access| access != config.network.internet_access) {
        return Err(keeps("internet_access", "network policy"));
    }
    let network = request.network.as_ref();
    if network.and_then(|n| n.allow_out.as_ref()).is_some_and(|list| !list.is_empty()) {
        return Err(keeps("network.allow_out", "network policy"));
    }
    if network.and_then(|n| n.deny_out.as_ref()).is_some_and(|list| !list.is_empty()) {
        return Err(keeps("network.deny_out", "network policy"));
    }
    if request.volumes.as_ref().is_some_and(|volumes| !volumes.is_empty()) {
        return Err(keeps("volumes", "volume mounts"));
    }
    if request.warm_pool.is_some() {
        return Err(invalid(
            "warm_pool: a create from a snapshot never takes a warm-pool sandbox; leave out warm_pool",
        ));
    }
    Ok(())
}

/// Refuses a non-empty body on a route that takes none (fork, resume): its keys would be ignored.
pub fn no_body(route: &str, body: Option<&serde_json::Map<String, serde_json::Value>>) -> Result<(), ControlError> {
    match body {
        Some(map) if !map.is_empty() => {
            let keys: Vec<&str> = map.keys().map(String::as_str).collect();
            Err(invalid(format!(
                "{route} takes no body, so {} would be ignored; a {route} keeps its source's configuration",
                keys.join(", ")
            )))
        }
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use nullspace_types::sandbox::{NetworkRequest, OnTimeout, WarmPoolCheckoutRequest};

    use super::*;

    fn lifecycle(on_timeout: OnTimeout) -> LifecycleRequest {
        LifecycleRequest { on_timeout: Some(on_timeout) }
    }

    #[test]
    fn on_timeout_is_timeout_action_in_the_clients_words() {
        assert_eq!(timeout_action(None, None).unwrap(), None);
        assert_eq!(timeout_action(None, Some(&lifecycle(OnTimeout::Pause))).unwrap(), Some(TimeoutAction::Hibernate));
        assert_eq!(timeout_action(None, Some(&lifecycle(OnTimeout::Destroy))).unwrap(), Some(TimeoutAction::Destroy));
        assert_eq!(timeout_action(None, Some(&LifecycleRequest::default())).unwrap(), None);
        let agree = timeout_action(Some(TimeoutAction::Hibernate), Some(&lifecycle(OnTimeout::Pause)));
        assert_eq!(agree.unwrap(), Some(TimeoutAction::Hibernate));
        let message =
            timeout_action(Some(TimeoutAction::Destroy), Some(&lifecycle(OnTimeout::Pause))).unwrap_err().to_string();
        assert!(message.contains("timeout_action") && message.contains("lifecycle.on_timeout"), "{message}");
        assert!(message.contains("\"pause\"") && message.contains("\"destroy\""), "{message}");
    }

    #[test]
    fn normalizing_a_create_folds_on_timeout_into_timeout_action() {
        let mut request =
            CreateSandboxRequest { lifecycle: Some(lifecycle(OnTimeout::Pause)), ..CreateSandboxRequest::default() };
        normalize_create(&mut request).unwrap();
        assert_eq!(request.timeout_action, Some(TimeoutAction::Hibernate));
    }

    fn config() -> SnapshotConfig {
        serde_json::from_value(serde_json::json!({
            "vcpus": 2, "memory_mb": 512, "envs": {}, "cwd": "/workspace", "timeout_ms": 1000,
            "timeout_action": "destroy"
        }))
        .unwrap()
    }

    #[test]
    fn a_create_from_a_snapshot_refuses_what_it_would_ignore_naming_the_field() {
        // What the official client sends on this path passes.
        let client = serde_json::json!({"snapshot_id": "snap_1", "timeout_ms": 60000, "metadata": {},
            "network": null, "volumes": null, "auto_resume": false});
        let request: CreateSandboxRequest = serde_json::from_value(client).unwrap();
        assert!(snapshot_create(&request, &config()).is_ok());
        let same = CreateSandboxRequest {
            vcpus: Some(2),
            cwd: Some("/workspace".into()),
            internet_access: Some(true),
            network: Some(NetworkRequest::default()),
            ..request.clone()
        };
        assert!(snapshot_create(&same, &config()).is_ok());
        let refused = [
            ("template", CreateSandboxRequest { template: Some("base".into()), ..request.clone() }),
            ("vcpus", CreateSandboxRequest { vcpus: Some(4), ..request.clone() }),
            ("memory_mb", CreateSandboxRequest { memory_mb: Some(1024), ..request.clone() }),
            ("envs", CreateSandboxRequest { envs: Some([("A".into(), "1".into())].into()), ..request.clone() }),
            ("cwd", CreateSandboxRequest { cwd: Some("/tmp".into()), ..request.clone() }),
            ("internet_access", CreateSandboxRequest { internet_access: Some(false), ..request.clone() }),
            (
                "network.deny_out",
                CreateSandboxRequest {
                    network: Some(NetworkRequest { allow_out: None, deny_out: Some(vec!["10.0.0.0/8".into()]) }),
                    ..request.clone()
                },
            ),
            (
                "warm_pool",
                CreateSandboxRequest { warm_pool: Some(WarmPoolCheckoutRequest::default()), ..request.clone() },
            ),
        ];
        for (field, bad) in refused {
            let message = snapshot_create(&bad, &config()).unwrap_err().to_string();
            assert!(message.starts_with(&format!("{field}:")), "{field}: {message}");
        }
    }

    #[test]
    fn bodies_of_routes_without_one_are_refused_when_they_say_something() {
        assert!(no_body("fork", None).is_ok());
        assert!(no_body("fork", Some(&serde_json::Map::new())).is_ok());
        let body = serde_json::json!({"timeout_ms": 5}).as_object().cloned().unwrap();
        assert!(no_body("fork", Some(&body)).unwrap_err().to_string().contains("timeout_ms"));
    }
}

//! Which running sandboxes lost their init (the guest daemon): one runtime listing for all of them,
//! for the control plane's periodic check. A sandbox whose init exited has a `stopped` container (or
//! none at all); its processes are gone with it (init of a PID namespace takes them along).

use std::collections::BTreeSet;

use crate::{Node, NodeError, NodeResult};

impl Node {
    /// The sandboxes among `ids` whose container has stopped or is gone.
    pub async fn stopped_sandboxes(&self, ids: &BTreeSet<String>) -> NodeResult<BTreeSet<String>> {
        let containers = self
            .runtime()
            .containers()
            .await
            .map_err(|source| NodeError::Runtime { sandbox_id: "(all)".to_owned(), source })?;
        Ok(stopped(ids, containers.iter().map(|container| (container.id.as_str(), container.status.as_str()))))
    }
}

/// The ids among `ids` that are not listed with a live status (`created`, `running`, `paused`).
fn stopped<'a>(ids: &BTreeSet<String>, listed: impl Iterator<Item = (&'a str, &'a str)>) -> BTreeSet<String> {
    let live: BTreeSet<&str> =
        listed.filter(|(_, status)| matches!(*status, "created" | "running" | "paused")).map(|(id, _)| id).collect();
    ids.iter().filter(|id| !live.contains(id.as_str())).cloned().collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stopped_and_missing_containers_are_reported() {
        let ids: BTreeSet<String> = ["sb_a", "sb_b", "sb_c", "sb_d"].map(String::from).into();
        let listed = [("sb_a", "running"), ("sb_b", "stopped"), ("sb_d", "paused"), ("sb_x", "stopped")];
        let gone = stopped(&ids, listed.into_iter());
        assert_eq!(gone, ["sb_b", "sb_c"].map(String::from).into());
    }
}

//! The process table of the sandbox from `/proc`, merged with the processes guestd started (whose exit
//! stays visible as `running: false` after they are gone from `/proc`).

use std::collections::BTreeMap;

use nullspace_types::exec_api::ProcessInfo;

use super::registry::Registry;

/// A process seen in /proc.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProcEntry {
    /// Pid.
    pub pid: u32,
    /// Command line joined with spaces (`[comm]` when it has none).
    pub command: String,
    /// Whether it is not a zombie.
    pub running: bool,
}

/// Every process in `/proc`.
pub fn scan(proc_root: &str) -> Vec<ProcEntry> {
    let Ok(dir) = std::fs::read_dir(proc_root) else {
        return Vec::new();
    };
    dir.filter_map(Result::ok)
        .filter_map(|entry| entry.file_name().to_str()?.parse::<u32>().ok())
        .filter_map(|pid| {
            let base = format!("{proc_root}/{pid}");
            let stat = std::fs::read_to_string(format!("{base}/stat")).ok()?;
            let (comm, state) = parse_stat(&stat)?;
            let cmdline = std::fs::read(format!("{base}/cmdline")).unwrap_or_default();
            let command = cmdline_text(&cmdline).unwrap_or_else(|| format!("[{comm}]"));
            Some(ProcEntry { pid, command, running: state != 'Z' && state != 'X' })
        })
        .collect()
}

/// `comm` and state letter of a `/proc/<pid>/stat` line (comm may contain spaces and parentheses).
pub fn parse_stat(stat: &str) -> Option<(String, char)> {
    let open = stat.find('(')?;
    let close = stat.rfind(')')?;
    let comm = stat.get(open + 1..close)?.to_owned();
    let state = stat.get(close + 1..)?.trim_start().chars().next()?;
    Some((comm, state))
}

/// NUL-separated argv as one space-joined line (`None` when empty).
pub fn cmdline_text(raw: &[u8]) -> Option<String> {
    let args: Vec<String> = raw
        .split(|byte| *byte == 0)
        .filter(|arg| !arg.is_empty())
        .map(|arg| String::from_utf8_lossy(arg).into_owned())
        .collect();
    (!args.is_empty()).then(|| args.join(" "))
}

/// All processes: /proc, with guestd's own ones (running or exited) taking precedence for their pids.
pub fn list(registry: &Registry, proc_root: &str) -> Vec<ProcessInfo> {
    let mut table: BTreeMap<u32, ProcessInfo> = scan(proc_root)
        .into_iter()
        .map(|entry| (entry.pid, ProcessInfo { pid: entry.pid, command: entry.command, running: entry.running }))
        .collect();
    for process in registry.all() {
        let running = process.exit_code().is_none() && table.get(&process.pid).is_none_or(|entry| entry.running);
        let command = table.get(&process.pid).filter(|_| running).map(|entry| entry.command.clone());
        let command = command.unwrap_or_else(|| process.command.clone());
        table.insert(process.pid, ProcessInfo { pid: process.pid, command, running });
    }
    table.into_values().collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_stat_with_odd_comm() {
        assert_eq!(parse_stat("42 (my (odd) cmd) S 1 2 3"), Some(("my (odd) cmd".to_owned(), 'S')));
        assert_eq!(parse_stat("7 (sleep) Z 1"), Some(("sleep".to_owned(), 'Z')));
        assert_eq!(parse_stat("garbage"), None);
    }

    #[test]
    fn joins_cmdline() {
        assert_eq!(cmdline_text(b"sleep\0infinity\0").as_deref(), Some("sleep infinity"));
        assert_eq!(cmdline_text(b""), None);
    }

    #[test]
    fn scan_sees_this_process() {
        let me = std::process::id();
        let entries = scan("/proc");
        assert!(entries.iter().any(|entry| entry.pid == me && entry.running));
    }
}

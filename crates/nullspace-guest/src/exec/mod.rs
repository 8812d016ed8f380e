//! Processes: building commands, the registry of started processes, their bounded logs, the
//! sandbox-wide process table, and running commands.

pub mod logs;
pub mod procfs;
pub mod registry;
pub mod service;
pub mod spawn;

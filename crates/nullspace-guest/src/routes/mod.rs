//! HTTP translation only: extract requests, call the exec/files modules, shape the answers.

pub mod config;
pub mod exec;
pub mod extract;
pub mod file_raw;
pub mod files;
pub mod health;
pub mod processes;
pub mod pty;
pub mod router;
pub mod uploads;

//! `nullspace-guestd`: the daemon inside every sandbox; everything is in the library (`lib.rs`).

fn main() {
    nullspace_guest::run_daemon();
}

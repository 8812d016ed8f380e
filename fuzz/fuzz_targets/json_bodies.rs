//! JSON bodies of the main routes, parsed and validated as their handlers do before anything is acted
//! on: the server's sandbox create, timeout, volume create, template build and metadata filter, and
//! guestd's exec, files, upload and config bodies (the server relays those to guestd unchanged).
//!
//! The first byte picks the route, the rest is the body. Invariants: no panic, and every refusal is a
//! 4xx (bad input is the client's error, never a 500).
#![no_main]

use libfuzzer_sys::fuzz_target;
use nullspace_guest::fuzzing::{request_body, Body};
use nullspace_server::fuzzing as server;

const GUEST: [Body; 10] = [
    Body::Exec,
    Body::Read,
    Body::Write,
    Body::Path,
    Body::Rename,
    Body::Permissions,
    Body::Pattern,
    Body::Replace,
    Body::CreateUpload,
    Body::Config,
];

fuzz_target!(|data: &[u8]| {
    let Some((&route, body)) = data.split_first() else { return };
    let status = match route % 15 {
        0 => server::sandbox_create(body).err(),
        1 => server::set_timeout(body).err(),
        2 => server::volume_create(body).err(),
        3 => server::template_build(body).err(),
        4 => match std::str::from_utf8(body) {
            Ok(text) => server::metadata_filter(text).err(),
            Err(_) => None,
        },
        n => request_body(GUEST[usize::from(n) - 5], body).err().map(|refusal| refusal.status),
    };
    if let Some(status) = status {
        assert!(
            (400..500).contains(&status),
            "route {} refused {:?} with {status}",
            route % 15,
            String::from_utf8_lossy(body)
        );
    }
});

//! The server's preview and signed-URL parsers: preview host names (`api/proxy.rs`), the edge token in
//! the query, the edge cookie and the proxy header (and their removal before forwarding), preview token
//! syntax (`control/preview_grants.rs`) and signed file tokens (`signing.rs`).
//!
//! Invariants: a preview host names a port 1–65535 and a well-formed sandbox id, and every host the server
//! hands out parses back to its sandbox and port; what is forwarded to the sandbox never carries the edge
//! token or cookie; a token splits into exactly its grant id and secret; a signed claim verifies to itself
//! until it expires, and no other string (a mutated token included) verifies to anything else.
#![no_main]

use libfuzzer_sys::fuzz_target;
use nullspace_server::fuzzing::{
    cookie_has_edge_token, preview_host, preview_host_name, query_has_edge_token, sign_file_claim, split_preview_token,
    verify_file_token, Claim, PreviewCredential, PreviewRequest, TokenRefusal,
};

/// The input is lines: host, domain, sandbox id, port, API port, request URI, preview token, signed
/// path, signed user (empty for none), expiry and now (Unix seconds), then request headers
/// (`name: value`). A mutation of the signed token is picked from the input's bytes.
struct Input<'a> {
    host: &'a str,
    domain: &'a str,
    sandbox_id: &'a str,
    port: u16,
    api_port: u16,
    uri: &'a str,
    token: &'a str,
    claim_path: &'a str,
    claim_user: Option<&'a str>,
    expires_at: i64,
    now: i64,
    headers: Vec<(&'a [u8], &'a [u8])>,
    flip: (usize, u8),
}

impl<'a> Input<'a> {
    fn parse(text: &'a str) -> Self {
        let mut lines = text.split('\n');
        let mut next = || lines.next().unwrap_or("");
        let (host, domain, sandbox_id) = (next(), next(), next());
        let port = next().trim().parse().unwrap_or(0);
        let api_port = next().trim().parse().unwrap_or(0);
        let (uri, token, claim_path) = (next(), next(), next());
        let claim_user = Some(next()).filter(|user| !user.is_empty());
        let expires_at = next().trim().parse().unwrap_or(0);
        let now = next().trim().parse().unwrap_or(0);
        let headers = lines
            .filter_map(|line| line.split_once(": "))
            .map(|(name, value)| (name.as_bytes(), value.as_bytes()))
            .collect();
        let sum = text.bytes().fold(0usize, |acc, b| acc.wrapping_mul(31).wrapping_add(usize::from(b)));
        Self {
            host,
            domain,
            sandbox_id,
            port,
            api_port,
            uri,
            token,
            claim_path,
            claim_user,
            expires_at,
            now,
            headers,
            flip: (sum, (sum >> 8) as u8),
        }
    }
}

fn valid_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 64
        && id.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-')
}

fn valid_domain(domain: &str) -> bool {
    !domain.is_empty()
        && domain.split('.').all(|label| {
            !label.is_empty() && label.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        })
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let input = Input::parse(text);
    // Host names.
    if let Some((port, id)) = preview_host(input.host, input.domain) {
        assert!(port > 0);
        assert!(valid_id(&id), "{:?} gave the sandbox id {id:?}", input.host);
    }
    if valid_domain(input.domain) && valid_id(input.sandbox_id) && input.port > 0 {
        let host = preview_host_name(input.domain, input.api_port, input.sandbox_id, input.port);
        assert_eq!(
            preview_host(&host, input.domain),
            Some((input.port, input.sandbox_id.to_owned())),
            "the server's own preview host {host:?} does not parse back"
        );
        assert_eq!(
            preview_host(&host.to_ascii_uppercase(), input.domain),
            Some((input.port, input.sandbox_id.to_owned()))
        );
    }

    // Credentials and what is forwarded.
    if let Some(request) = PreviewRequest::new(&input.headers, input.uri) {
        let credential = request.credential();
        if let Some(cookie) = request.edge_cookie() {
            assert!(credential.is_some(), "an edge cookie {cookie:?} but no credential");
        }
        if let Some(PreviewCredential::Cookie(token)) = &credential {
            assert_eq!(request.edge_cookie().as_ref(), Some(token));
        }
        if let Some(forwarded) = request.forwarded_cookie() {
            assert!(!cookie_has_edge_token(&forwarded), "the forwarded cookie {forwarded:?} keeps the edge token");
        }
        if let Some(query) = request.forwarded_query() {
            assert!(!query_has_edge_token(&query), "the forwarded query {query:?} keeps the edge token");
        }
    }

    // Preview token syntax.
    if let Some((id, secret)) = split_preview_token(input.token) {
        assert_eq!(format!("{id}.{secret}"), input.token);
        assert!(id.starts_with("pvg_") && !secret.is_empty());
    }

    // Signed file URLs.
    let claim = Claim {
        sandbox_id: input.sandbox_id.to_owned(),
        path: input.claim_path.to_owned(),
        upload: input.flip.1 & 1 == 1,
        user: input.claim_user.map(str::to_owned),
        expires_at: input.expires_at,
    };
    let token = sign_file_claim(&claim);
    let expected = if input.now < input.expires_at { Ok(claim.clone()) } else { Err(TokenRefusal::Expired) };
    assert_eq!(verify_file_token(&token, input.now), expected);
    let mut mutated = token.clone().into_bytes();
    let at = input.flip.0 % mutated.len();
    mutated[at] ^= input.flip.1.max(1);
    if let Ok(mutated) = String::from_utf8(mutated) {
        if let Ok(other) = verify_file_token(&mutated, input.now) {
            assert_eq!(other, claim, "a mutated token {mutated:?} verified to another claim");
        }
    }
    if input.token != token {
        assert!(verify_file_token(input.token, i64::MIN).is_err(), "{:?} was accepted", input.token);
    }
});

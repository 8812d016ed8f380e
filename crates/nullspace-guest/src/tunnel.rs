//! `GET /tcp/{port}` with `Upgrade: tcp`: after the 101 answer, bytes flow both ways between the
//! caller and 127.0.0.1:{port} inside the sandbox (the preview proxy's way in).

use std::net::SocketAddr;

use axum::body::Body;
use axum::extract::Request;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

use crate::error::{GuestError, GuestResult};
use crate::routes::extract::PathParams;

/// `GET /tcp/{port}`.
pub async fn tunnel(PathParams(port): PathParams<String>, request: Request) -> GuestResult<Response> {
    let port: u16 = port
        .parse()
        .ok()
        .filter(|port| *port != 0)
        .ok_or_else(|| GuestError::invalid(format!("invalid port {port:?}; send a number from 1 to 65535")))?;
    if !wants_tcp_upgrade(request.headers()) {
        return Err(GuestError::invalid("send Connection: Upgrade and Upgrade: tcp to open a tunnel"));
    }
    let mut upstream = TcpStream::connect(SocketAddr::from(([127, 0, 0, 1], port)))
        .await
        .map_err(|source| GuestError::PortUnreachable { port, source })?;
    let _ = upstream.set_nodelay(true);
    let on_upgrade = hyper::upgrade::on(request);
    tokio::spawn(async move {
        match on_upgrade.await {
            Ok(upgraded) => {
                let mut client = TokioIo::new(upgraded);
                if let Err(error) = tokio::io::copy_bidirectional(&mut client, &mut upstream).await {
                    tracing::debug!(port, %error, "tunnel closed with an error");
                }
            }
            Err(error) => tracing::debug!(port, %error, "tunnel upgrade failed"),
        }
    });
    let mut response = Body::empty().into_response();
    *response.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    response.headers_mut().insert(header::CONNECTION, header::HeaderValue::from_static("upgrade"));
    response.headers_mut().insert(header::UPGRADE, header::HeaderValue::from_static("tcp"));
    Ok(response)
}

fn wants_tcp_upgrade(headers: &HeaderMap) -> bool {
    let has = |name: header::HeaderName, token: &str| {
        headers
            .get_all(name)
            .iter()
            .filter_map(|value| value.to_str().ok())
            .any(|value| value.split(',').any(|part| part.trim().eq_ignore_ascii_case(token)))
    };
    has(header::CONNECTION, "upgrade") && has(header::UPGRADE, "tcp")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requires_both_upgrade_headers() {
        let mut headers = HeaderMap::new();
        assert!(!wants_tcp_upgrade(&headers));
        headers.insert(header::CONNECTION, "keep-alive, Upgrade".parse().unwrap());
        headers.insert(header::UPGRADE, "TCP".parse().unwrap());
        assert!(wants_tcp_upgrade(&headers));
        headers.insert(header::UPGRADE, "websocket".parse().unwrap());
        assert!(!wants_tcp_upgrade(&headers));
    }
}

//! Idle HTTP/1.1 connections to guest daemons, kept for reuse: a request to a guest (an exec, a file
//! read) then costs no socket open, peer check, accept or handshake, only the request itself. Each
//! connection was checked against its sandbox when it was opened (see [`crate::guest_socket`]) and stays
//! with the same listening process for its life; a guest that stops, restarts or quiesces for a checkpoint
//! closes its connections, which are then dropped here instead of reused.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::combinators::UnsyncBoxBody;
use hyper::client::conn::http1::SendRequest;

/// Body of every request sent to a guest.
pub(crate) type GuestBody = UnsyncBoxBody<Bytes, Box<dyn std::error::Error + Send + Sync>>;

/// Idle connections kept per guest (parallel requests open more; the extra ones close after use).
const MAX_IDLE_PER_GUEST: usize = 4;
/// Idle connections kept altogether (a host runs up to a thousand sandboxes: bounded descriptors).
const MAX_IDLE: usize = 512;
/// An idle connection older than this is closed instead of reused.
const IDLE_TIMEOUT: Duration = Duration::from_secs(30);

/// What a connection is for: the guest's id and its socket.
pub(crate) type GuestKey = (String, PathBuf);

type Idle = HashMap<GuestKey, Vec<(Instant, SendRequest<GuestBody>)>>;

/// Idle connections by guest.
#[derive(Default)]
pub struct GuestPool {
    idle: Mutex<Idle>,
}

impl std::fmt::Debug for GuestPool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GuestPool").field("idle", &self.idle_count()).finish()
    }
}

impl GuestPool {
    fn lock(&self) -> MutexGuard<'_, Idle> {
        self.idle.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Idle connections held now.
    pub fn idle_count(&self) -> usize {
        self.lock().values().map(Vec::len).sum()
    }

    /// The most recently idle connection to `key` that can take a request now, if any.
    pub(crate) fn take(&self, key: &GuestKey) -> Option<SendRequest<GuestBody>> {
        let mut idle = self.lock();
        let senders = idle.get_mut(key)?;
        let mut found = None;
        while let Some((since, sender)) = senders.pop() {
            if since.elapsed() < IDLE_TIMEOUT && !sender.is_closed() && sender.is_ready() {
                found = Some(sender);
                break;
            }
        }
        if senders.is_empty() {
            idle.remove(key);
        }
        found
    }

    /// Keeps `sender` for reuse (or drops it, closing the connection, when the pool is full).
    fn put(&self, key: GuestKey, sender: SendRequest<GuestBody>) {
        let mut idle = self.lock();
        let total: usize = idle.values().map(Vec::len).sum();
        if total >= MAX_IDLE {
            idle.retain(|_, senders| {
                senders.retain(|(since, sender)| since.elapsed() < IDLE_TIMEOUT && !sender.is_closed());
                !senders.is_empty()
            });
            if idle.values().map(Vec::len).sum::<usize>() >= MAX_IDLE {
                return;
            }
        }
        let senders = idle.entry(key).or_default();
        senders.retain(|(_, sender)| !sender.is_closed());
        if senders.len() < MAX_IDLE_PER_GUEST {
            senders.push((Instant::now(), sender));
        }
    }

    /// Drops every idle connection to guest `id` (its sandbox is going away).
    pub fn forget(&self, id: &str) {
        self.lock().retain(|(guest, _), _| guest != id);
    }

    /// Returns `sender` to the pool once its connection can take another request (its response body
    /// was read to the end); a connection whose response switched protocols belongs to the caller.
    pub(crate) fn recycle(self: &Arc<Self>, key: GuestKey, mut sender: SendRequest<GuestBody>, upgraded: bool) {
        if upgraded {
            return;
        }
        let pool = Arc::clone(self);
        tokio::spawn(async move {
            // Resolves when the exchange is done, or fails when the connection closed; bounded so a
            // response body nobody reads does not hold a task forever.
            if let Ok(Ok(())) = tokio::time::timeout(IDLE_TIMEOUT, sender.ready()).await {
                pool.put(key, sender);
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use std::convert::Infallible;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use http_body_util::{BodyExt, Full};
    use hyper::service::service_fn;
    use hyper_util::rt::TokioIo;
    use tokio::net::UnixListener;

    use super::*;
    use crate::{GuestLink, GuestPeer};

    /// A guest stand-in on `socket` answering every request with its path; counts connections.
    fn serve(socket: &std::path::Path) -> Arc<AtomicUsize> {
        let listener = UnixListener::bind(socket).unwrap();
        let accepted = Arc::new(AtomicUsize::new(0));
        let counter = accepted.clone();
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                counter.fetch_add(1, Ordering::SeqCst);
                tokio::spawn(async move {
                    let service = service_fn(|request: hyper::Request<hyper::body::Incoming>| async move {
                        let path = request.uri().path().to_owned();
                        Ok::<_, Infallible>(hyper::Response::new(Full::new(Bytes::from(path))))
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        accepted
    }

    async fn get(link: &GuestLink, path: &str) -> String {
        let request = hyper::Request::get(path).body(http_body_util::Empty::<Bytes>::new()).unwrap();
        let body = link.send(request).await.unwrap().into_body().collect().await.unwrap().to_bytes();
        String::from_utf8(body.to_vec()).unwrap()
    }

    /// Waits until the pool holds `count` idle connections (the recycle task runs after the response).
    async fn idle(pool: &GuestPool, count: usize) {
        while pool.idle_count() != count {
            tokio::task::yield_now().await;
        }
    }

    #[tokio::test]
    async fn requests_reuse_one_connection_until_the_guest_is_forgotten() {
        let dir = tempfile::tempdir().unwrap();
        let socket = dir.path().join("guest.sock");
        let accepted = serve(&socket);
        let pool = Arc::new(GuestPool::default());
        let me = GuestPeer::ProcessTree(std::process::id());
        let link = GuestLink::new("sb_pool", socket.clone(), me.clone()).pooled(pool.clone());
        for path in ["/a", "/b", "/c"] {
            assert_eq!(get(&link, path).await, path);
            idle(&pool, 1).await;
        }
        assert_eq!(accepted.load(Ordering::SeqCst), 1, "three requests, one connection");

        // The sandbox goes away: its idle connections are dropped; the next request opens a new one.
        pool.forget("sb_pool");
        assert_eq!(pool.idle_count(), 0);
        assert_eq!(get(&link, "/d").await, "/d");
        assert_eq!(accepted.load(Ordering::SeqCst), 2);

        // A link without a pool opens a connection per request and keeps none.
        let unpooled = GuestLink::new("sb_pool", socket, me);
        idle(&pool, 1).await;
        assert_eq!(get(&unpooled, "/e").await, "/e");
        assert_eq!(accepted.load(Ordering::SeqCst), 3);
        assert_eq!(pool.idle_count(), 1);
    }

    #[tokio::test]
    async fn connections_are_kept_per_guest() {
        let dir = tempfile::tempdir().unwrap();
        let (one, two) = (dir.path().join("one.sock"), dir.path().join("two.sock"));
        let (accepted_one, accepted_two) = (serve(&one), serve(&two));
        let pool = Arc::new(GuestPool::default());
        let me = GuestPeer::ProcessTree(std::process::id());
        let link_one = GuestLink::new("sb_one", one, me.clone()).pooled(pool.clone());
        let link_two = GuestLink::new("sb_two", two, me).pooled(pool.clone());
        get(&link_one, "/x").await;
        idle(&pool, 1).await;
        get(&link_two, "/y").await;
        idle(&pool, 2).await;
        get(&link_one, "/z").await;
        idle(&pool, 2).await;
        assert_eq!((accepted_one.load(Ordering::SeqCst), accepted_two.load(Ordering::SeqCst)), (1, 1));
    }
}

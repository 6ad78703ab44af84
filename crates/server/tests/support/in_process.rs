//! A server run in the test's own process: bound before `start` returns,
//! served on a thread of its own with its own runtime, stopped (and its
//! thread joined) when dropped.
//!
//! The one copy for every test target that wants one: the server's
//! integration tests include it from `tests/it/main.rs` and the command's
//! load test from `crates/cli/tests/load.rs`, both with `#[path]`. It uses
//! only what both packages depend on (ferroftp-server, tokio).

#![allow(dead_code)] // each test target uses a different part

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use ferroftp_server::events::Observer;
use ferroftp_server::storage::{self, Storage};
use ferroftp_server::{Config, Server};

/// How long the server may take to bind.
const START_TIMEOUT: Duration = Duration::from_secs(20);

/// A running server; stops when dropped.
pub struct InProcessServer {
    /// The control listener's address.
    pub addr: SocketAddr,
    /// The anonymous root's storage, as the server opened it (`None` with
    /// anonymous login off).
    pub anonymous: Option<Arc<dyn Storage>>,
    /// The server's storage backend: opens users' homes and other roots.
    pub backend: Arc<storage::Backend>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl InProcessServer {
    /// Binds a server with `config` and `observers` registered and serves
    /// it on a runtime of two worker threads.
    pub fn start(config: Config, observers: Vec<Arc<dyn Observer>>) -> InProcessServer {
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
            rt.block_on(async move {
                let mut server = Server::bind(config).await.unwrap();
                for observer in observers {
                    server = server.with_observer(observer);
                }
                let ready = (server.local_addr().unwrap(), server.anonymous_storage(), server.backend());
                ready_tx.send(ready).unwrap();
                server
                    .run(async move {
                        let _ = stop_rx.await;
                    })
                    .await;
            });
        });
        let (addr, anonymous, backend) = ready_rx.recv_timeout(START_TIMEOUT).expect("the test server did not start");
        InProcessServer { addr, anonymous, backend, stop: Some(stop_tx), thread: Some(thread) }
    }
}

impl Drop for InProcessServer {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

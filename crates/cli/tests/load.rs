//! A bounded load test: 500 concurrent sessions against one server, each
//! uploading and downloading its own file, every byte SHA-256-verified.
//! It stops by itself: the whole run has a time limit and a fixed count.

use std::sync::Arc;
use std::time::Duration;

use ferroftp_client::{Client, DataMode, FtpUrl};
use ferroftp_server::{Config, FileConfig};
use sha2::{Digest, Sha256};

// The in-process server the server's own integration tests run.
#[path = "../../server/tests/support/in_process.rs"]
mod in_process;

use in_process::InProcessServer;

const SESSIONS: usize = 500;
const FILE_SIZE: usize = 64 * 1024;

fn body(i: usize) -> Vec<u8> {
    let mut x = (i as u64 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    (0..FILE_SIZE)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

async fn one_session(url: FtpUrl, i: usize) -> Result<(), String> {
    let mode = if i.is_multiple_of(2) { DataMode::Epsv } else { DataMode::Eprt };
    let mut client = Client::open(&url, mode, Duration::from_secs(60)).await.map_err(|e| format!("{i} open: {e}"))?;
    let original = body(i);
    let name = format!("/load/file-{i}.bin");
    let mut source: &[u8] = &original;
    client.store(&name, 0, &mut source, &mut |_| {}).await.map_err(|e| format!("{i} store: {e}"))?;
    let mut back = Vec::with_capacity(FILE_SIZE);
    client.retrieve(&name, 0, &mut back, &mut |_| {}).await.map_err(|e| format!("{i} retrieve: {e}"))?;
    client.quit().await;
    if Sha256::digest(&back) != Sha256::digest(&original) {
        return Err(format!("{i}: downloaded bytes differ"));
    }
    Ok(())
}

#[test]
fn five_hundred_concurrent_sessions_upload_and_download_without_error() {
    // Clients and server share this process (each on a runtime of its
    // own): about 4 descriptors a session.
    let _ = rlimit::increase_nofile_limit(8 * SESSIONS as u64 + 256);
    let root = tempfile::tempdir().unwrap();
    std::fs::create_dir(root.path().join("load")).unwrap();
    let config = Config::from_file(FileConfig {
        listen: Some("127.0.0.1:0".into()),
        root: Some(root.path().to_path_buf()),
        anonymous_write: Some(true),
        max_clients: Some(SESSIONS + 10),
        max_clients_per_ip: Some(SESSIONS + 10),
        ..Default::default()
    })
    .unwrap();
    let server = InProcessServer::start(config, Vec::new());
    let url = FtpUrl::parse(&format!("ftp://{}/", server.addr)).unwrap();
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let errors: Vec<String> = runtime.block_on(async move {
        // Every session is under way at once.
        let start = Arc::new(tokio::sync::Barrier::new(SESSIONS));
        let tasks: Vec<_> = (0..SESSIONS)
            .map(|i| {
                let url = url.clone();
                let start = Arc::clone(&start);
                tokio::spawn(async move {
                    start.wait().await;
                    one_session(url, i).await
                })
            })
            .collect();
        let run = async {
            let mut errors = Vec::new();
            for t in tasks {
                match t.await {
                    Ok(Ok(())) => {}
                    Ok(Err(e)) => errors.push(e),
                    Err(e) => errors.push(e.to_string()),
                }
            }
            errors
        };
        tokio::time::timeout(Duration::from_secs(300), run).await.expect("the load test ran out of time")
    });
    drop(server);
    assert!(errors.is_empty(), "{} of {SESSIONS} sessions failed, first: {:?}", errors.len(), errors.first());
    // And every file landed whole on disk.
    for i in 0..SESSIONS {
        let on_disk = std::fs::read(root.path().join(format!("load/file-{i}.bin"))).unwrap();
        assert!(Sha256::digest(&on_disk) == Sha256::digest(body(i)), "file {i} on disk differs");
    }
}

//! A TCP proxy the test owns, between a worker process and Redis, to cut, stall and refuse
//! connections on demand (toxiproxy is not available here; this is the part of it we need).

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

/// A proxy to one Redis, listening on a port of 127.0.0.1.
pub struct FaultProxy {
    address: SocketAddr,
    blackhole: Arc<AtomicBool>,
    resets: watch::Sender<u64>,
    task: tokio::task::JoinHandle<()>,
}

impl FaultProxy {
    /// Starts proxying to `127.0.0.1:<upstream>`.
    pub async fn start(upstream: u16) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind the proxy");
        let address = listener.local_addr().expect("the proxy's address");
        let blackhole = Arc::new(AtomicBool::new(false));
        let (resets, watching) = watch::channel(0_u64);
        let hole = Arc::clone(&blackhole);
        let task = tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let hole = Arc::clone(&hole);
                // Only resets from now on concern this connection.
                let mut reset = watching.clone();
                reset.borrow_and_update();
                tokio::spawn(async move {
                    let Ok(server) = TcpStream::connect(("127.0.0.1", upstream)).await else {
                        return;
                    };
                    let (client_read, client_write) = client.into_split();
                    let (server_read, server_write) = server.into_split();
                    tokio::select! {
                        _ = async {
                            tokio::join!(
                                pump(client_read, server_write, Arc::clone(&hole)),
                                pump(server_read, client_write, hole),
                            )
                        } => {}
                        // Dropping both halves closes both sockets.
                        _ = reset.changed() => {}
                    }
                });
            }
        });
        Self {
            address,
            blackhole,
            resets,
            task,
        }
    }

    /// `redis://127.0.0.1:<proxy port>/0`.
    pub fn url(&self) -> String {
        format!("redis://{}/0", self.address)
    }

    /// Closes every open connection.
    pub fn reset_all(&self) {
        self.resets.send_modify(|count| *count += 1);
    }

    /// Swallows every byte in both directions while on: a network partition.
    pub fn set_blackhole(&self, on: bool) {
        self.blackhole.store(on, Ordering::SeqCst);
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.reset_all();
        self.task.abort();
    }
}

async fn pump(
    mut from: impl AsyncRead + Unpin,
    mut to: impl AsyncWrite + Unpin,
    blackhole: Arc<AtomicBool>,
) {
    let mut buffer = vec![0_u8; 16 * 1024];
    loop {
        let read = match from.read(&mut buffer).await {
            Ok(0) | Err(_) => return,
            Ok(read) => read,
        };
        if blackhole.load(Ordering::SeqCst) {
            continue;
        }
        if to.write_all(&buffer[..read]).await.is_err() {
            return;
        }
    }
}

//! A TCP proxy the test can cut and restore, to make PostgreSQL or RabbitMQ "unreachable".

use std::{
    net::SocketAddr,
    sync::{Arc, Mutex},
};

use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;

/// Forwards connections to `upstream` while up; `cut` drops every open connection and refuses
/// new ones (they are accepted and closed at once) until `restore`.
pub struct Proxy {
    pub addr: SocketAddr,
    generation: Arc<Mutex<Option<CancellationToken>>>,
    stop: CancellationToken,
}

impl Proxy {
    pub async fn start(upstream: SocketAddr) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("proxy binds");
        let addr = listener.local_addr().expect("proxy addr");
        let generation = Arc::new(Mutex::new(Some(CancellationToken::new())));
        let stop = CancellationToken::new();
        let accept_generation = generation.clone();
        let accept_stop = stop.clone();
        tokio::spawn(async move {
            loop {
                let (mut client, _) = tokio::select! {
                    accepted = listener.accept() => match accepted {
                        Ok(accepted) => accepted,
                        Err(_) => continue,
                    },
                    () = accept_stop.cancelled() => return,
                };
                let token = accept_generation.lock().expect("lock").clone();
                let Some(token) = token else {
                    drop(client);
                    continue;
                };
                tokio::spawn(async move {
                    let Ok(mut server) = TcpStream::connect(upstream).await else {
                        return;
                    };
                    tokio::select! {
                        _ = tokio::io::copy_bidirectional(&mut client, &mut server) => {}
                        () = token.cancelled() => {}
                    }
                });
            }
        });
        Self {
            addr,
            generation,
            stop,
        }
    }

    pub fn cut(&self) {
        if let Some(token) = self.generation.lock().expect("lock").take() {
            token.cancel();
        }
    }

    pub fn restore(&self) {
        let mut generation = self.generation.lock().expect("lock");
        if generation.is_none() {
            *generation = Some(CancellationToken::new());
        }
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.cut();
        self.stop.cancel();
    }
}

//! A TCP proxy the test can cut and restore, to make PostgreSQL or RabbitMQ "unreachable", and
//! the URL helpers that point a client at it.

use std::{
    net::SocketAddr,
    sync::{Arc, Mutex},
};

use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;

/// `host:port` of a URL like `scheme://user@host:port/...`, for pointing a proxy at it.
pub fn socket_addr_of(url: &str) -> SocketAddr {
    let after_scheme = url.split("://").nth(1).expect("url has a scheme");
    let host_port = after_scheme.rsplit('@').next().expect("host");
    let host_port = host_port.split('/').next().expect("host:port");
    host_port.parse().expect("url host is an ip:port")
}

/// `url` with its `host:port` replaced by `proxy`'s address.
pub fn through(url: &str, proxy: SocketAddr) -> String {
    url.replace(&socket_addr_of(url).to_string(), &proxy.to_string())
}

/// Forwards connections to `upstream` while up; `cut` drops every open connection and refuses
/// new ones (they are accepted and closed at once) until `restore`.
#[derive(Debug)]
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

#[cfg(test)]
mod tests {
    use super::{socket_addr_of, through};

    #[test]
    fn urls_are_pointed_at_the_proxy() {
        let url = "amqp://guest:guest@127.0.0.1:5672/%2f";
        assert_eq!(socket_addr_of(url).to_string(), "127.0.0.1:5672");
        let proxy = "127.0.0.1:40000".parse().expect("addr");
        assert_eq!(
            through(url, proxy),
            "amqp://guest:guest@127.0.0.1:40000/%2f"
        );
        assert_eq!(
            socket_addr_of("postgres://postgres@127.0.0.1:5432/postgres").to_string(),
            "127.0.0.1:5432"
        );
    }
}

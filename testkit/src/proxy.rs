//! A TCP proxy the test can cut and restore, to make PostgreSQL or RabbitMQ "unreachable", or
//! impair for a while (latency with jitter, and loss as TCP shows it: stalls and resets), and
//! the URL helpers that point a client at it.

use std::{
    net::SocketAddr,
    sync::{Arc, Mutex},
    time::Duration,
};

use rand::{Rng, SeedableRng, rngs::StdRng};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::{
        TcpListener, TcpStream,
        tcp::{OwnedReadHalf, OwnedWriteHalf},
    },
    sync::mpsc,
    time::Instant,
};
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

/// What an impaired link does to the bytes it carries, each way, on every connection (open
/// ones too) until [`Proxy::unimpair`]. There is no packet below the proxy to drop: loss is
/// emulated as what TCP makes of it for the application — a chunk held back as if its segment
/// waited for a retransmission (and everything behind it, in order), and now and then a
/// connection reset.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Impairment {
    /// Added to every chunk's delivery.
    pub latency: Duration,
    /// Up to this much more, drawn per chunk (the order of the bytes is kept).
    pub jitter: Duration,
    /// Chance per chunk of a stall of 200 ms (TCP's minimum retransmission timeout) up to
    /// `stall_max`.
    pub stall_chance: f64,
    pub stall_max: Duration,
    /// Chance per chunk that the connection is dropped at once (both ends see it close).
    pub reset_chance: f64,
}

type Shared<T> = Arc<Mutex<T>>;

/// Forwards connections to `upstream` while up; `cut` drops every open connection and refuses
/// new ones (they are accepted and closed at once) until `restore`; `impair` slows and breaks
/// them until `unimpair`.
#[derive(Debug)]
pub struct Proxy {
    pub addr: SocketAddr,
    generation: Shared<Option<CancellationToken>>,
    impairment: Shared<Option<Impairment>>,
    stop: CancellationToken,
}

impl Proxy {
    pub async fn start(upstream: SocketAddr) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("proxy binds");
        let addr = listener.local_addr().expect("proxy addr");
        let generation = Arc::new(Mutex::new(Some(CancellationToken::new())));
        let impairment = Arc::new(Mutex::new(None));
        let stop = CancellationToken::new();
        let accept_generation = generation.clone();
        let accept_impairment = impairment.clone();
        let accept_stop = stop.clone();
        tokio::spawn(async move {
            loop {
                let (client, _) = tokio::select! {
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
                let impairment = accept_impairment.clone();
                tokio::spawn(async move {
                    let Ok(server) = TcpStream::connect(upstream).await else {
                        return;
                    };
                    let _ = client.set_nodelay(true);
                    let _ = server.set_nodelay(true);
                    let (client_read, client_write) = client.into_split();
                    let (server_read, server_write) = server.into_split();
                    let reset = CancellationToken::new();
                    let up = pump(client_read, server_write, impairment.clone(), reset.clone());
                    let down = pump(server_read, client_write, impairment, reset.clone());
                    tokio::select! {
                        _ = async { tokio::join!(up, down) } => {}
                        () = token.cancelled() => {}
                        () = reset.cancelled() => {}
                    }
                });
            }
        });
        Self {
            addr,
            generation,
            impairment,
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

    /// Impairs every connection, open and new, until [`Proxy::unimpair`].
    pub fn impair(&self, impairment: Impairment) {
        *self.impairment.lock().expect("lock") = Some(impairment);
    }

    /// Back to plain forwarding (chunks already held back are still delivered in order).
    pub fn unimpair(&self) {
        *self.impairment.lock().expect("lock") = None;
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.cut();
        self.stop.cancel();
    }
}

/// Copies one direction: a reader that stamps each chunk with when it may be delivered (now,
/// or later under an impairment, never before the chunk ahead of it), and a writer that
/// delivers at that time. An impairment's reset cancels `reset`, which drops the connection
/// (both halves).
async fn pump(
    mut from: OwnedReadHalf,
    mut to: OwnedWriteHalf,
    impairment: Shared<Option<Impairment>>,
    reset: CancellationToken,
) {
    let (sender, mut receiver) = mpsc::channel::<(Instant, Vec<u8>)>(256);
    let reader = async move {
        let mut rng = StdRng::from_entropy();
        let mut last = Instant::now();
        let mut buffer = vec![0u8; 16 * 1024];
        loop {
            let n = match from.read(&mut buffer).await {
                Ok(0) | Err(_) => return,
                Ok(n) => n,
            };
            let now = Instant::now();
            let mut at = now;
            let impaired = *impairment.lock().expect("lock");
            if let Some(i) = impaired {
                if rng.gen_bool(i.reset_chance.clamp(0.0, 1.0)) {
                    reset.cancel();
                    return;
                }
                at += i.latency + i.jitter.mul_f64(rng.gen_range(0.0..1.0));
                if rng.gen_bool(i.stall_chance.clamp(0.0, 1.0)) {
                    let floor = Duration::from_millis(200).min(i.stall_max);
                    at += floor + (i.stall_max - floor).mul_f64(rng.gen_range(0.0..1.0));
                }
            }
            last = last.max(at);
            if sender.send((last, buffer[..n].to_vec())).await.is_err() {
                return;
            }
        }
    };
    let writer = async move {
        while let Some((at, bytes)) = receiver.recv().await {
            tokio::time::sleep_until(at).await;
            if to.write_all(&bytes).await.is_err() {
                return;
            }
        }
        let _ = to.shutdown().await;
    };
    tokio::join!(reader, writer);
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    use tokio::{
        io::{AsyncReadExt, AsyncWriteExt},
        net::{TcpListener, TcpStream},
    };

    use super::{Impairment, Proxy, socket_addr_of, through};

    /// An echo server; its address.
    async fn echo() -> std::net::SocketAddr {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("binds");
        let addr = listener.local_addr().expect("addr");
        tokio::spawn(async move {
            while let Ok((mut socket, _)) = listener.accept().await {
                tokio::spawn(async move {
                    let (mut read, mut write) = socket.split();
                    let _ = tokio::io::copy(&mut read, &mut write).await;
                });
            }
        });
        addr
    }

    /// One byte there and back; the time it took, or `None` if the connection closed.
    async fn round_trip(stream: &mut TcpStream) -> Option<Duration> {
        let start = Instant::now();
        stream.write_all(b"x").await.ok()?;
        let mut byte = [0u8; 1];
        match stream.read(&mut byte).await {
            Ok(1) => Some(start.elapsed()),
            _ => None,
        }
    }

    #[tokio::test]
    async fn an_impairment_delays_open_connections_each_way_until_lifted() {
        let proxy = Proxy::start(echo().await).await;
        let mut stream = TcpStream::connect(proxy.addr).await.expect("connects");
        let plain = round_trip(&mut stream).await.expect("echoed");
        assert!(plain < Duration::from_millis(100), "{plain:?}");
        proxy.impair(Impairment {
            latency: Duration::from_millis(150),
            ..Impairment::default()
        });
        // The connection was open before: it is slowed too, 150 ms each way.
        let slowed = round_trip(&mut stream).await.expect("echoed");
        assert!(
            slowed >= Duration::from_millis(300) && slowed < Duration::from_millis(1000),
            "{slowed:?}"
        );
        proxy.unimpair();
        let again = round_trip(&mut stream).await.expect("echoed");
        assert!(again < Duration::from_millis(100), "{again:?}");
    }

    #[tokio::test]
    async fn loss_stalls_a_chunk_and_can_reset_the_connection() {
        let proxy = Proxy::start(echo().await).await;
        let mut stream = TcpStream::connect(proxy.addr).await.expect("connects");
        proxy.impair(Impairment {
            stall_chance: 1.0,
            stall_max: Duration::from_millis(200),
            ..Impairment::default()
        });
        // A stall of exactly 200 ms each way (the floor equals the maximum).
        let stalled = round_trip(&mut stream).await.expect("echoed");
        assert!(
            stalled >= Duration::from_millis(400) && stalled < Duration::from_millis(1200),
            "{stalled:?}"
        );
        proxy.impair(Impairment {
            reset_chance: 1.0,
            ..Impairment::default()
        });
        assert_eq!(
            round_trip(&mut stream).await,
            None,
            "reset on the first chunk"
        );
        // New connections are accepted (and reset too while the impairment lasts).
        proxy.unimpair();
        let mut fresh = TcpStream::connect(proxy.addr).await.expect("connects");
        assert!(round_trip(&mut fresh).await.is_some());
    }

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

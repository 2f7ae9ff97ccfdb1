//! Receipt printers standing in for the agent's ticket printers: a TCP listener (a network
//! printer on port 9100) and a pseudo-terminal (a USB or serial printer), each recording the
//! bytes it receives and answering the real-time status queries (`DLE EOT n`) with the status the
//! test sets. What the bytes mean is the test's to decode.

use std::{
    io::{Read, Write},
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};

/// Real-time status replies (`DLE EOT 1`..`4`), from Epson's ESC/POS reference: a ready
/// printer, and one stopped at the end of its roll (off-line; paper-end stop; roll end).
pub const READY: [u8; 4] = [0x12, 0x12, 0x12, 0x12];
pub const PAPER_OUT: [u8; 4] = [0x1A, 0x32, 0x12, 0x72];

/// Splits what a printer receives into data and real-time status queries (`DLE EOT n`).
#[derive(Default)]
pub struct Recorder {
    /// 0: data; 1: after DLE; 2: after DLE EOT.
    state: u8,
}

impl Recorder {
    /// Takes one byte; data goes to `data`; a complete query returns its `n`.
    pub fn push(&mut self, byte: u8, data: &mut Vec<u8>) -> Option<u8> {
        match (self.state, byte) {
            (0, 0x10) => self.state = 1,
            (1, 0x04) => self.state = 2,
            (1, other) => {
                data.push(0x10);
                self.state = 0;
                return self.push(other, data);
            }
            (2, n) => {
                self.state = 0;
                return Some(n);
            }
            (_, other) => data.push(other),
        }
        None
    }
}

/// What a stand-in printer shares with the test.
#[derive(Clone)]
pub struct Paper {
    pub received: Arc<Mutex<Vec<u8>>>,
    pub status: Arc<Mutex<[u8; 4]>>,
}

/// A ready printer with nothing printed yet.
impl Default for Paper {
    fn default() -> Self {
        Self {
            received: Arc::default(),
            status: Arc::new(Mutex::new(READY)),
        }
    }
}

impl Paper {
    pub fn bytes(&self) -> Vec<u8> {
        self.received.lock().expect("lock").clone()
    }

    pub fn set_status(&self, status: [u8; 4]) {
        *self.status.lock().expect("lock") = status;
    }

    /// Tickets received so far: each ends with a cut (`GS V 66 n`).
    pub fn tickets(&self) -> Vec<Vec<u8>> {
        let bytes = self.bytes();
        let mut tickets = Vec::new();
        let mut start = 0;
        let mut at = 0;
        while at + 4 <= bytes.len() {
            if bytes[at..at + 3] == [0x1D, b'V', 66] {
                tickets.push(bytes[start..at + 4].to_vec());
                start = at + 4;
                at = start;
            } else {
                at += 1;
            }
        }
        tickets
    }

    /// Feeds received bytes through `recorder`; the replies to send back.
    pub fn take(&self, recorder: &mut Recorder, bytes: &[u8]) -> Vec<u8> {
        let mut replies = Vec::new();
        let mut received = self.received.lock().expect("lock");
        for &byte in bytes {
            if let Some(n) = recorder.push(byte, &mut received) {
                let status = *self.status.lock().expect("lock");
                replies.push(
                    status
                        .get(usize::from(n).wrapping_sub(1))
                        .copied()
                        .unwrap_or(0),
                );
            }
        }
        replies
    }
}

/// A network printer: a TCP listener on 127.0.0.1.
pub struct NetworkPrinter {
    pub port: u16,
    pub paper: Paper,
    task: tokio::task::JoinHandle<()>,
}

impl NetworkPrinter {
    pub async fn start() -> Self {
        Self::start_on(0).await
    }

    pub async fn start_on(port: u16) -> Self {
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
            .await
            .expect("printer port");
        let port = listener.local_addr().expect("addr").port();
        let paper = Paper::default();
        let shared = paper.clone();
        let task = tokio::spawn(async move {
            use tokio::io::{AsyncReadExt, AsyncWriteExt};
            while let Ok((mut stream, _)) = listener.accept().await {
                let paper = shared.clone();
                tokio::spawn(async move {
                    let mut recorder = Recorder::default();
                    let mut buffer = [0u8; 4096];
                    while let Ok(n @ 1..) = stream.read(&mut buffer).await {
                        let replies = paper.take(&mut recorder, &buffer[..n]);
                        if stream.write_all(&replies).await.is_err() {
                            return;
                        }
                    }
                });
            }
        });
        Self { port, paper, task }
    }
}

impl Drop for NetworkPrinter {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// A USB (or serial) printer: a pty whose slave the agent opens through a symlink.
pub struct DevicePrinter {
    pub link: std::path::PathBuf,
    pub paper: Paper,
    stop: Arc<AtomicBool>,
    _pty: crate::pty::Pty,
}

impl DevicePrinter {
    pub fn start() -> Self {
        let pty = crate::pty::Pty::open();
        let link = std::env::temp_dir().join(crate::names::unique("test-lp"));
        crate::pty::point(&link, &pty.slave);
        let paper = Paper::default();
        let stop = Arc::new(AtomicBool::new(false));
        let (master, shared, stopped) = (pty.master(), paper.clone(), stop.clone());
        std::thread::spawn(move || {
            let mut recorder = Recorder::default();
            let mut buffer = [0u8; 4096];
            while !stopped.load(Ordering::Relaxed) {
                match (&*master).read(&mut buffer) {
                    Ok(n @ 1..) => {
                        let replies = shared.take(&mut recorder, &buffer[..n]);
                        let _ = (&*master).write_all(&replies);
                    }
                    // EIO while nobody has the slave open: wait for the agent to open it.
                    _ => std::thread::sleep(Duration::from_millis(20)),
                }
            }
        });
        Self {
            link,
            paper,
            stop,
            _pty: pty,
        }
    }
}

impl Drop for DevicePrinter {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        let _ = std::fs::remove_file(&self.link);
    }
}

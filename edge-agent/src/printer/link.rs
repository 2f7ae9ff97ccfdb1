//! The byte link to one printer: raw TCP (port 9100) or a character device (a USB printer
//! `/dev/usb/lp*`, or a serial port set raw at its baud rate), opened non-blocking and driven
//! by tokio; and the `DLE EOT` status exchange over it. Every wait is bounded.

use std::{
    io::{Read, Write},
    os::unix::fs::OpenOptionsExt,
    path::Path,
    pin::Pin,
    task::{Context, Poll, ready},
    time::Duration,
};

use tokio::{
    io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf, unix::AsyncFd},
    net::TcpStream,
};

use crate::{
    config::PrinterTarget,
    receipt::{BadReply, PrinterStatus, status::QUERIES},
};

/// Why talking to a printer failed.
#[derive(Debug, thiserror::Error)]
pub enum LinkError {
    #[error("cannot reach {target}: {reason}")]
    Unreachable { target: String, reason: String },
    #[error("the printer did not answer the status query (DLE EOT {0}) in time")]
    NoReply(u8),
    #[error(transparent)]
    BadReply(#[from] BadReply),
    #[error("the link to the printer broke: {0}")]
    Io(String),
}

impl LinkError {
    /// The printer state `/api/status` shows for it.
    pub fn state(&self) -> &'static str {
        match self {
            LinkError::Unreachable { .. } => "unreachable",
            LinkError::NoReply(_) => "no_reply",
            LinkError::BadReply(_) => "bad_reply",
            LinkError::Io(_) => "error",
        }
    }
}

trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

/// An open link.
pub struct Link {
    io: Box<dyn Io>,
    timeout: Duration,
}

impl Link {
    /// Connects (TCP, `TCP_NODELAY`: a status query is three bytes that must go at once) or
    /// opens the device.
    pub async fn open(target: &PrinterTarget, timeout: Duration) -> Result<Self, LinkError> {
        let unreachable = |reason: String| LinkError::Unreachable {
            target: target.to_string(),
            reason,
        };
        let io: Box<dyn Io> = match target {
            PrinterTarget::Network(address) => {
                let stream = tokio::time::timeout(timeout, TcpStream::connect(address))
                    .await
                    .map_err(|_| unreachable("connect timed out".into()))?
                    .map_err(|e| unreachable(e.to_string()))?;
                stream
                    .set_nodelay(true)
                    .map_err(|e| unreachable(e.to_string()))?;
                Box::new(stream)
            }
            PrinterTarget::Device { path, baud } => {
                Box::new(Device::open(path, *baud).map_err(|e| unreachable(e.to_string()))?)
            }
        };
        Ok(Self { io, timeout })
    }

    /// Writes all of `bytes` and flushes them.
    pub async fn send(&mut self, bytes: &[u8]) -> Result<(), LinkError> {
        let write = async {
            self.io.write_all(bytes).await?;
            self.io.flush().await
        };
        match tokio::time::timeout(self.timeout, write).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(error)) => Err(LinkError::Io(error.to_string())),
            Err(_) => Err(LinkError::Io(
                "the printer took no more data in time".into(),
            )),
        }
    }

    /// Asks `DLE EOT 1` … `4`, one at a time, and reads each one-byte reply.
    pub async fn status(&mut self) -> Result<PrinterStatus, LinkError> {
        let mut replies = [0u8; 4];
        for (reply, query) in replies.iter_mut().zip(QUERIES) {
            self.send(&query).await?;
            let mut byte = [0u8; 1];
            match tokio::time::timeout(self.timeout, self.io.read(&mut byte)).await {
                Ok(Ok(1)) => *reply = byte[0],
                Ok(Ok(_)) => return Err(LinkError::Io("the printer closed the link".into())),
                Ok(Err(error)) => return Err(LinkError::Io(error.to_string())),
                Err(_) => return Err(LinkError::NoReply(query[2])),
            }
        }
        Ok(PrinterStatus::decode(replies)?)
    }
}

/// A character device opened non-blocking, read and written through tokio's reactor.
struct Device(AsyncFd<std::fs::File>);

impl Device {
    fn open(path: &Path, baud: Option<u32>) -> std::io::Result<Self> {
        use nix::fcntl::OFlag;
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .custom_flags((OFlag::O_NONBLOCK | OFlag::O_NOCTTY).bits())
            .open(path)?;
        if let Some(baud) = baud {
            serial_raw(&file, baud)?;
        }
        // `AsyncFd::new` is deprecated for wrappers that could swap their descriptor; a `File`
        // owns its descriptor until dropped with the `AsyncFd`, which is exactly what the safe
        // constructor needs (and `register`, its replacement, is `unsafe`, forbidden here).
        #[allow(deprecated)]
        let fd = AsyncFd::new(file)?;
        Ok(Self(fd))
    }
}

/// A serial port: raw (no echo, no line editing, no CR/LF translation), 8N1, at `baud`.
fn serial_raw(file: &std::fs::File, baud: u32) -> std::io::Result<()> {
    use nix::sys::termios::{self, BaudRate, SetArg};
    let rate = match baud {
        9600 => BaudRate::B9600,
        19_200 => BaudRate::B19200,
        38_400 => BaudRate::B38400,
        57_600 => BaudRate::B57600,
        115_200 => BaudRate::B115200,
        other => {
            return Err(std::io::Error::other(format!(
                "unsupported baud rate {other}"
            )));
        }
    };
    let not_serial = |e: nix::Error| std::io::Error::other(format!("not a serial port: {e}"));
    let mut settings = termios::tcgetattr(file).map_err(not_serial)?;
    termios::cfmakeraw(&mut settings);
    termios::cfsetspeed(&mut settings, rate).map_err(not_serial)?;
    termios::tcsetattr(file, SetArg::TCSANOW, &settings).map_err(not_serial)?;
    Ok(())
}

impl AsyncRead for Device {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        loop {
            let mut guard = ready!(self.0.poll_read_ready(cx))?;
            let unfilled = buf.initialize_unfilled();
            match guard.try_io(|file| file.get_ref().read(unfilled)) {
                Ok(Ok(len)) => {
                    buf.advance(len);
                    return Poll::Ready(Ok(()));
                }
                Ok(Err(error)) => return Poll::Ready(Err(error)),
                Err(_would_block) => continue,
            }
        }
    }
}

impl AsyncWrite for Device {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        loop {
            let mut guard = ready!(self.0.poll_write_ready(cx))?;
            match guard.try_io(|file| file.get_ref().write(buf)) {
                Ok(result) => return Poll::Ready(result),
                Err(_would_block) => continue,
            }
        }
    }

    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

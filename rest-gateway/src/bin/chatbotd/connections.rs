//! Fair shares of connections, for both faces: a cap per client address and one for the face, and at
//! the face's cap room made by closing the connection that has sent nothing for longest, else the one
//! idle for longest (as nginx and envoy's overload manager do), rather than refusing everyone new. Each
//! connection is closed after a silence: the header timeout until it has sent its first byte, the idle
//! timeout after; and a write that the client does not take for the write timeout closes it too.

use std::collections::HashMap;
use std::io;
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, ready};
use std::time::Duration;

use futures_util::task::AtomicWaker;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::{Instant, Sleep};

/// A connection must have been quiet this long before it is closed to make room for a new one, so
/// that a request being answered is never cut for room.
const EVICTABLE_AFTER: Duration = Duration::from_millis(500);

/// Why a new connection was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// Its client address already holds its share.
    PerClient,
    /// The face is full of connections that are all busy.
    Full,
}

impl Refusal {
    fn label(self) -> &'static str {
        match self {
            Refusal::PerClient => "per_client",
            Refusal::Full => "full",
        }
    }
}

/// One open connection, as the table sees it.
#[derive(Debug)]
struct Entry {
    client: IpAddr,
    opened: Instant,
    /// Milliseconds from the table's epoch to the last byte read or written.
    last_active_ms: AtomicU64,
    /// Whether the client has sent a byte yet.
    spoke: AtomicBool,
    /// Set when the table closes the connection to make room.
    evicted: AtomicBool,
    waker: AtomicWaker,
}

#[derive(Debug, Default)]
struct Open {
    per_client: HashMap<IpAddr, usize>,
    entries: HashMap<u64, Arc<Entry>>,
    next_id: u64,
}

/// The connections open on one face; see the module documentation.
#[derive(Debug)]
pub struct ConnectionTable {
    max_total: usize,
    max_per_client: usize,
    epoch: Instant,
    open: Mutex<Open>,
    gauge: metrics::Gauge,
    refused_per_client: metrics::Counter,
    refused_full: metrics::Counter,
    evicted: metrics::Counter,
}

impl ConnectionTable {
    /// A table for `face` holding at most `max_total` connections, `max_per_client` per address.
    pub fn new(face: &'static str, max_total: usize, max_per_client: usize) -> Arc<Self> {
        let refused = |refusal: Refusal| metrics::counter!(chatbot_core::metric::CONNECTIONS_REFUSED, "face" => face, "reason" => refusal.label());
        Arc::new(ConnectionTable {
            max_total: max_total.max(1),
            max_per_client: max_per_client.max(1),
            epoch: Instant::now(),
            open: Mutex::default(),
            gauge: metrics::gauge!(chatbot_core::metric::OPEN_CONNECTIONS, "face" => face),
            refused_per_client: refused(Refusal::PerClient),
            refused_full: refused(Refusal::Full),
            evicted: metrics::counter!(chatbot_core::metric::CONNECTIONS_EVICTED, "face" => face),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Open> {
        self.open.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn now_ms(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    /// The instant `ms` milliseconds after the table's epoch.
    fn instant_at(&self, ms: u64) -> Instant {
        self.epoch + Duration::from_millis(ms)
    }

    /// Takes a place for a new connection from `client`, closing an idle one when the face is full.
    pub fn admit(self: &Arc<Self>, client: IpAddr) -> Result<Place, Refusal> {
        let mut open = self.lock();
        if open.per_client.get(&client).copied().unwrap_or(0) >= self.max_per_client {
            self.refused_per_client.increment(1);
            return Err(Refusal::PerClient);
        }
        if open.entries.len() >= self.max_total {
            let Some(victim) = self.victim(&open) else {
                self.refused_full.increment(1);
                return Err(Refusal::Full);
            };
            if let Some(entry) = Self::forget(&mut open, victim) {
                entry.evicted.store(true, Ordering::Release);
                entry.waker.wake();
                self.evicted.increment(1);
                self.gauge.decrement(1);
            }
        }
        let id = open.next_id;
        open.next_id += 1;
        let entry = Arc::new(Entry {
            client,
            opened: Instant::now(),
            last_active_ms: AtomicU64::new(self.now_ms()),
            spoke: AtomicBool::new(false),
            evicted: AtomicBool::new(false),
            waker: AtomicWaker::new(),
        });
        open.entries.insert(id, Arc::clone(&entry));
        *open.per_client.entry(client).or_default() += 1;
        self.gauge.increment(1);
        Ok(Place { table: Arc::clone(self), id, entry })
    }

    /// The connection to close for room: the one that has sent nothing for longest, else the one
    /// quiet for longest, if it has been quiet for at least [`EVICTABLE_AFTER`].
    fn victim(&self, open: &Open) -> Option<u64> {
        let mute = open
            .entries
            .iter()
            .filter(|(_, e)| !e.spoke.load(Ordering::Relaxed))
            .min_by_key(|(_, e)| e.opened)
            .map(|(id, _)| *id);
        let quiet_since = self.now_ms().checked_sub(u64::try_from(EVICTABLE_AFTER.as_millis()).unwrap_or(0));
        mute.or_else(|| {
            let quiet_since = quiet_since?;
            open.entries
                .iter()
                .map(|(id, e)| (*id, e.last_active_ms.load(Ordering::Relaxed)))
                .filter(|(_, last)| *last <= quiet_since)
                .min_by_key(|(_, last)| *last)
                .map(|(id, _)| id)
        })
    }

    fn forget(open: &mut Open, id: u64) -> Option<Arc<Entry>> {
        let entry = open.entries.remove(&id)?;
        if let Some(count) = open.per_client.get_mut(&entry.client) {
            *count -= 1;
            if *count == 0 {
                open.per_client.remove(&entry.client);
            }
        }
        Some(entry)
    }
}

/// A connection's place in its table, given back when dropped.
#[derive(Debug)]
pub struct Place {
    table: Arc<ConnectionTable>,
    id: u64,
    entry: Arc<Entry>,
}

impl Drop for Place {
    fn drop(&mut self) {
        let mut open = self.table.lock();
        if ConnectionTable::forget(&mut open, self.id).is_some() {
            self.table.gauge.decrement(1);
        }
    }
}

/// The limits every connection of a face is held to (each has a flag; see `chatbotd help serve`).
#[derive(Debug, Clone)]
pub struct ConnectionLimits {
    /// Most connections open at once; past it the one quiet for longest is closed to make room, and if
    /// none is quiet, new ones are answered 503 and closed.
    pub max_connections: usize,
    /// Most connections open at once from one client address; past it new ones are refused.
    pub max_connections_per_client: usize,
    /// How long a client may take to send a request's head, and (HTTP/1) how long an idle keep-alive
    /// connection waits for the next one.
    pub header_timeout: Duration,
    /// How long a connection may stay silent (nothing read or written) before it is closed.
    pub idle_timeout: Duration,
    /// How long a write may wait for a client that does not read before the connection is closed.
    pub write_timeout: Duration,
    /// Most header lines in a request.
    pub max_headers: usize,
    /// Most concurrent streams on one HTTP/2 connection.
    pub max_streams: u32,
}

impl ConnectionLimits {
    pub(crate) fn silences(&self) -> Silences {
        Silences { first_byte: self.header_timeout, idle: self.idle_timeout, write: self.write_timeout }
    }
}

/// How long a connection may stay silent, and how long a write may wait for the client.
#[derive(Debug, Clone, Copy)]
pub struct Silences {
    /// Until the client's first byte.
    pub first_byte: Duration,
    /// Between bytes afterwards.
    pub idle: Duration,
    /// For a write the client does not take (its buffers are full: it stopped reading).
    pub write: Duration,
}

/// A connection held to its [`Place`] and its [`Silences`]: reads and writes fail once the table closed
/// it for room, after a silence, or after a write that waited too long.
pub struct Tracked<IO> {
    inner: IO,
    place: Place,
    silences: Silences,
    /// A timer that fires no later than the silence's end. Activity does not move it (a timer reset on
    /// every read and write costs more than the reads); when it fires early, it is set again to the
    /// silence's true end.
    deadline: Pin<Box<Sleep>>,
    /// When a write that waits is given up, while one waits.
    stalled: Option<Pin<Box<Sleep>>>,
}

impl<IO> Tracked<IO> {
    /// `inner`, in `place`, held to `silences`.
    pub fn new(inner: IO, place: Place, silences: Silences) -> Self {
        let deadline = Box::pin(tokio::time::sleep(silences.first_byte));
        Tracked { inner, place, silences, deadline, stalled: None }
    }

    fn active(&mut self, read: usize) {
        let entry = &self.place.entry;
        entry.last_active_ms.store(self.place.table.now_ms(), Ordering::Relaxed);
        if read > 0 && !entry.spoke.load(Ordering::Relaxed) {
            entry.spoke.store(true, Ordering::Relaxed);
        }
    }

    /// An error if the connection was closed for room or has been silent too long.
    fn closed(&mut self, cx: &mut Context<'_>) -> Option<io::Error> {
        self.place.entry.waker.register(cx.waker());
        if self.place.entry.evicted.load(Ordering::Acquire) {
            return Some(io::Error::new(io::ErrorKind::ConnectionAborted, "closed to make room"));
        }
        while self.deadline.as_mut().poll(cx).is_ready() {
            let spoke = self.place.entry.spoke.load(Ordering::Relaxed);
            let silence = if spoke { self.silences.idle } else { self.silences.first_byte };
            let last_active = self.place.table.instant_at(self.place.entry.last_active_ms.load(Ordering::Relaxed));
            let end = last_active + silence;
            if end <= Instant::now() {
                return Some(io::ErrorKind::TimedOut.into());
            }
            // Active since the timer was set: wait for the silence's true end.
            self.deadline.as_mut().reset(end);
        }
        None
    }
}

impl<IO: AsyncRead + Unpin> AsyncRead for Tracked<IO> {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        match Pin::new(&mut self.inner).poll_read(cx, buf) {
            Poll::Ready(result) => {
                let read = buf.filled().len() - before;
                self.active(read);
                Poll::Ready(result)
            }
            Poll::Pending => match self.closed(cx) {
                Some(err) => Poll::Ready(Err(err)),
                None => Poll::Pending,
            },
        }
    }
}

impl<IO: AsyncWrite + Unpin> Tracked<IO> {
    /// `written` if it is ready; else pending until the write timeout, then an error.
    fn waited<T>(&mut self, cx: &mut Context<'_>, written: Poll<io::Result<T>>) -> Poll<io::Result<T>> {
        if self.place.entry.evicted.load(Ordering::Acquire) {
            return Poll::Ready(Err(io::Error::new(io::ErrorKind::ConnectionAborted, "closed to make room")));
        }
        match written {
            Poll::Ready(result) => {
                self.stalled = None;
                self.active(0);
                Poll::Ready(result)
            }
            Poll::Pending => {
                let write = self.silences.write;
                let stalled = self.stalled.get_or_insert_with(|| Box::pin(tokio::time::sleep(write)));
                ready!(stalled.as_mut().poll(cx));
                Poll::Ready(Err(io::Error::new(io::ErrorKind::TimedOut, "the client stopped reading")))
            }
        }
    }
}

impl<IO: AsyncWrite + Unpin> AsyncWrite for Tracked<IO> {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        let written = Pin::new(&mut self.inner).poll_write(cx, buf);
        self.waited(cx, written)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let written = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        self.waited(cx, written)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let flushed = Pin::new(&mut self.inner).poll_flush(cx);
        self.waited(cx, flushed)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

impl<IO: tonic::transport::server::Connected> tonic::transport::server::Connected for Tracked<IO> {
    type ConnectInfo = IO::ConnectInfo;

    fn connect_info(&self) -> Self::ConnectInfo {
        self.inner.connect_info()
    }
}

/// Sets `TCP_NODELAY` (small answers must not wait for Nagle's algorithm) and TCP keepalive (a client
/// that vanished without a word is noticed within about a minute, even on a connection that only
/// waits) on an accepted socket.
pub fn tune(stream: &tokio::net::TcpStream) {
    let _ = stream.set_nodelay(true);
    let keepalive = socket2::TcpKeepalive::new()
        .with_time(Duration::from_secs(30))
        .with_interval(Duration::from_secs(10))
        .with_retries(3);
    let _ = socket2::SockRef::from(stream).set_tcp_keepalive(&keepalive);
}

/// A TCP stream shared between the HTTP connection that reads and writes it and the answer that
/// watches it (an event stream, to notice at once that its client has gone); see
/// [`rest_gateway::StreamingPeer`].
pub struct Shared(pub Arc<tokio::net::TcpStream>);

impl AsyncRead for Shared {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        loop {
            ready!(self.0.poll_read_ready(cx))?;
            match self.0.try_read(buf.initialize_unfilled()) {
                Ok(n) => {
                    buf.advance(n);
                    return Poll::Ready(Ok(()));
                }
                Err(err) if err.kind() == io::ErrorKind::WouldBlock => continue,
                Err(err) => return Poll::Ready(Err(err)),
            }
        }
    }
}

impl AsyncWrite for Shared {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        loop {
            ready!(self.0.poll_write_ready(cx))?;
            match self.0.try_write(buf) {
                Err(err) if err.kind() == io::ErrorKind::WouldBlock => continue,
                written => return Poll::Ready(written),
            }
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        loop {
            ready!(self.0.poll_write_ready(cx))?;
            match self.0.try_write_vectored(bufs) {
                Err(err) if err.kind() == io::ErrorKind::WouldBlock => continue,
                written => return Poll::Ready(written),
            }
        }
    }

    fn is_write_vectored(&self) -> bool {
        true
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(socket2::SockRef::from(&*self.0).shutdown(std::net::Shutdown::Write))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(last: u8) -> IpAddr {
        IpAddr::from([127, 0, 0, last])
    }

    #[tokio::test]
    async fn an_address_over_its_share_is_refused_and_a_full_face_closes_the_mute_connection_first() {
        let table = ConnectionTable::new("test", 3, 2);
        let a1 = table.admit(ip(1)).expect("a place");
        let a2 = table.admit(ip(1)).expect("a place");
        assert_eq!(table.admit(ip(1)).unwrap_err(), Refusal::PerClient);
        a2.entry.spoke.store(true, Ordering::Relaxed);
        let _b1 = table.admit(ip(2)).expect("a place");
        let c1 = table.admit(ip(3)).expect("room is made");
        assert!(a1.entry.evicted.load(Ordering::Relaxed), "the one that never spoke goes first");
        assert!(!a2.entry.evicted.load(Ordering::Relaxed));
        assert_eq!(table.lock().entries.len(), 3);
        drop(a1);
        assert_eq!(table.lock().entries.len(), 3, "an evicted place is not given back twice");
        drop(c1);
        assert_eq!(table.lock().per_client.get(&ip(3)), None);
    }

    #[tokio::test]
    async fn a_full_face_of_busy_connections_refuses() {
        let table = ConnectionTable::new("test", 1, 1);
        let a = table.admit(ip(1)).expect("a place");
        a.entry.spoke.store(true, Ordering::Relaxed);
        assert_eq!(table.admit(ip(2)).unwrap_err(), Refusal::Full, "it has just been active");
    }
}

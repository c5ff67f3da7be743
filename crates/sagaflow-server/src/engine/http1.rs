//! The participant client: HTTP/1.1 over TCP, one exchange at a time on a connection, and the
//! keep-alive connections pooled by the thread (the event loop) that opened them.
//!
//! It does the dispatcher's one kind of exchange, a request with a small body and an answer read
//! up to a limit, in the calling task: one `write` of the whole request, then the `read`s of the
//! answer, with no connection task, no channel between a request handle and that task and no
//! pool lock, which is what hyper-util's general client spent its time on. In turn with it, the
//! coordinator's CPU per saga at `-c 64` fell by a sixth (BENCHMARKS.md, session 15).
//!
//! What it does not do, because no participant call needs it: TLS (an `https` URL is refused as
//! never sent, as before), proxies, `Expect: 100-continue`, upgrades, request pipelining.

use std::cell::RefCell;
use std::collections::{HashMap, VecDeque};
use std::io::Write as _;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};
use std::time::{Duration, Instant};

use bytes::{Buf, BytesMut};
use http::header::HeaderValue;
use http::{Method, StatusCode, Uri};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// How long opening a connection may take; past it the attempt fails as not delivered.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// TCP keep-alive probes (reqwest's defaults, kept): a participant host that vanished is noticed
/// on a connection parked on a slow step.
const TCP_KEEPALIVE: Duration = Duration::from_secs(15);
const TCP_KEEPALIVE_INTERVAL: Duration = Duration::from_secs(15);
const TCP_KEEPALIVE_RETRIES: u32 = 3;
/// `TCP_USER_TIMEOUT` (reqwest's default on Linux, kept): data unacknowledged this long fails the
/// connection, which counts as a timeout.
#[cfg(any(target_os = "android", target_os = "fuchsia", target_os = "linux"))]
const TCP_USER_TIMEOUT: Duration = Duration::from_secs(30);
/// How long an idle pooled connection is kept.
const IDLE_TIMEOUT: Duration = Duration::from_secs(60);
/// The most idle connections kept per participant host (`host:port`), and on one thread in all.
const IDLE_PER_HOST_MAX: usize = 1024;
const IDLE_MAX: usize = 4096;
/// How often, at most, a thread's pool drops the idle connections that timed out.
const SWEEP_EVERY: Duration = Duration::from_secs(1);
/// The most an answer's status line and headers may take, and how many headers it may have.
const HEAD_BYTES_MAX: usize = 64 * 1024;
const HEADERS_MAX: usize = 100;
/// The most a chunk's size line (with its extensions), or the trailers, may take.
const CHUNK_LINE_BYTES_MAX: usize = 4096;
const TRAILERS_BYTES_MAX: usize = 64 * 1024;
/// How much room each read of an answer asks for.
const READ_BYTES: usize = 8 * 1024;

/// How far an exchange got, kept outside its future so that a deadline which drops it can tell.
pub(super) struct Progress(AtomicU8);

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(super) enum Stage {
    /// No byte of the request was written: the participant cannot have it.
    Connecting = 0,
    /// Some of the request was written: it may have taken effect.
    Sent = 1,
    /// The answer's status and headers arrived.
    Answered = 2,
}

impl Progress {
    pub(super) fn new() -> Progress {
        Progress(AtomicU8::new(Stage::Connecting as u8))
    }

    pub(super) fn stage(&self) -> Stage {
        match self.0.load(Ordering::Acquire) {
            0 => Stage::Connecting,
            1 => Stage::Sent,
            _ => Stage::Answered,
        }
    }

    fn reach(&self, stage: Stage) {
        self.0.fetch_max(stage as u8, Ordering::AcqRel);
    }
}

#[derive(Debug, thiserror::Error)]
pub(super) enum Error {
    #[error("invalid URL, scheme is not http")]
    NotHttp,
    #[error("invalid URL, no host")]
    NoHost,
    #[error("dns error: {0}")]
    Resolve(#[source] std::io::Error),
    #[error("tcp connect error: {0}")]
    Connect(#[source] std::io::Error),
    #[error("tcp connect error: no address answered within {0:?}")]
    ConnectTimeout(Duration),
    #[error("connection error: {0}")]
    Io(#[source] std::io::Error),
    #[error("connection closed before the answer was complete")]
    Closed,
    #[error("invalid answer: {0}")]
    Invalid(&'static str),
}

impl Error {
    /// TCP's own timeout (`TCP_USER_TIMEOUT`, keep-alive probes) on an open connection.
    pub(super) fn is_timeout(&self) -> bool {
        matches!(self, Error::Io(io) if io.kind() == std::io::ErrorKind::TimedOut)
    }
}

/// An answer whose status and headers arrived; its body is read with `body`.
pub(super) struct Answer {
    pool: u64,
    pub(super) status: StatusCode,
    pub(super) retry_after: Option<HeaderValue>,
    pub(super) location: Option<HeaderValue>,
    conn: Conn,
    host: Arc<str>,
    framing: Framing,
    keep_alive: bool,
}

/// Where requests go: the URL, and the `Host` header they carry (also their pool's key),
/// worked out once for every request to it.
#[derive(Debug)]
pub(super) struct Endpoint {
    uri: Uri,
    /// `None` for a URL without a host, which is told when a request is sent to it.
    host: Option<Arc<str>>,
}

impl Endpoint {
    pub(super) fn new(uri: Uri) -> Endpoint {
        let host = host_header(&uri).map(Arc::from);
        Endpoint { uri, host }
    }

    pub(super) fn uri(&self) -> &Uri {
        &self.uri
    }
}

/// Sends one request on a connection of pool `pool` (this thread's for its caller) and reads its
/// answer's head. `headers` writes the caller's header lines (each `name: value\r\n`) into the
/// request. `progress` says how far it got, also when the caller's deadline drops it half way.
pub(super) async fn send(
    pool: u64,
    method: &Method,
    endpoint: &Endpoint,
    headers: impl FnOnce(&mut Vec<u8>),
    body: &[u8],
    progress: &Progress,
) -> Result<Answer, Error> {
    let uri = &endpoint.uri;
    if uri.scheme_str() != Some("http") {
        return Err(Error::NotHttp);
    }
    let host = endpoint.host.as_ref().ok_or(Error::NoHost)?;
    let mut conn = match checkout(pool, host) {
        Some(conn) => conn,
        None => connect(uri).await?,
    };
    let mut request = std::mem::take(&mut conn.out);
    request.clear();
    encode(&mut request, method, uri, host, headers, body);
    let written = write_request(&mut conn.stream, &request, progress).await;
    conn.out = request;
    written?;
    let head = read_head(&mut conn, method).await?;
    progress.reach(Stage::Answered);
    Ok(Answer {
        pool,
        status: head.status,
        retry_after: head.retry_after,
        location: head.location,
        conn,
        host: Arc::clone(host),
        framing: head.framing,
        keep_alive: head.keep_alive,
    })
}

impl Answer {
    /// Reads the body into `into` until it ends (`Ok(true)`) or `into` holds `limit` bytes with
    /// more to come (`Ok(false)`). A connection whose answer was read to its end goes back to
    /// the pool, unless the participant said it closes it.
    pub(super) async fn body(mut self, into: &mut Vec<u8>, limit: usize) -> Result<bool, Error> {
        let ended = read_body(&mut self.conn, &mut self.framing, into, limit).await?;
        if ended && self.keep_alive && self.framing.keeps_connection() && self.conn.buf.is_empty() {
            checkin(self.pool, self.host, self.conn);
        }
        Ok(ended)
    }
}

/// An open connection and what it read past the last answer (nothing, between exchanges).
struct Conn {
    stream: TcpStream,
    buf: BytesMut,
    /// The last request's encoding, kept for its capacity.
    out: Vec<u8>,
}

/// The `Host` header: the URL's host, and its port unless it is 80 (as hyper-util's client).
fn host_header(uri: &Uri) -> Option<String> {
    let host = uri.host()?;
    Some(match uri.port_u16() {
        Some(port) if port != 80 => format!("{host}:{port}"),
        _ => host.to_owned(),
    })
}

async fn connect(uri: &Uri) -> Result<Conn, Error> {
    let host = uri.host().ok_or(Error::NoHost)?;
    let port = uri.port_u16().unwrap_or(80);
    // An IPv6 literal keeps its brackets in the URI.
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    let stream = tokio::time::timeout(CONNECT_TIMEOUT, async {
        let addrs: Vec<SocketAddr> = match bare.parse::<IpAddr>() {
            Ok(ip) => vec![SocketAddr::new(ip, port)],
            Err(_) => tokio::net::lookup_host((bare, port))
                .await
                .map_err(Error::Resolve)?
                .collect(),
        };
        connect_any(addrs).await.map_err(Error::Connect)
    })
    .await
    .map_err(|_| Error::ConnectTimeout(CONNECT_TIMEOUT))??;
    configure(&stream).map_err(Error::Connect)?;
    Ok(Conn {
        stream,
        buf: BytesMut::with_capacity(READ_BYTES),
        out: Vec::new(),
    })
}

/// How long a connection attempt to one address runs alone before the next address is tried
/// beside it (RFC 8305's "connection attempt delay"; hyper-util's client, before this one,
/// waited 300 ms).
const CONNECT_STAGGER: Duration = Duration::from_millis(250);

/// The first connection made to any of `addrs` (Happy Eyeballs, RFC 8305): the address
/// families taken in turn, starting with the resolver's first, and each next address tried
/// once the attempts before it have all failed or `CONNECT_STAGGER` has passed since the last
/// began. An address that does not answer (a dead IPv6 route, a host gone) so costs a quarter
/// of a second, not the whole connect timeout. The caller bounds the whole.
async fn connect_any(addrs: Vec<SocketAddr>) -> std::io::Result<TcpStream> {
    use futures::StreamExt as _;
    let mut waiting = interleave_families(addrs).into_iter();
    let mut attempts = futures::stream::FuturesUnordered::new();
    let mut last_error = None;
    // When the next address is tried if the attempts under way have not ended by then.
    let mut next_at = tokio::time::Instant::now();
    loop {
        if attempts.is_empty() {
            match waiting.next() {
                Some(addr) => {
                    attempts.push(TcpStream::connect(addr));
                    next_at = tokio::time::Instant::now() + CONNECT_STAGGER;
                }
                None => {
                    return Err(last_error.unwrap_or_else(|| {
                        std::io::Error::new(std::io::ErrorKind::NotFound, "no address for the host")
                    }));
                }
            }
        }
        let more = waiting.len() > 0;
        tokio::select! {
            Some(attempt) = attempts.next() => match attempt {
                Ok(stream) => return Ok(stream),
                Err(e) => last_error = Some(e),
            },
            () = tokio::time::sleep_until(next_at), if more => {
                if let Some(addr) = waiting.next() {
                    attempts.push(TcpStream::connect(addr));
                    next_at = tokio::time::Instant::now() + CONNECT_STAGGER;
                }
            }
        }
    }
}

/// `addrs` with the address families in turn (RFC 8305, section 4), starting with the first's.
fn interleave_families(addrs: Vec<SocketAddr>) -> Vec<SocketAddr> {
    let Some(first) = addrs.first() else {
        return addrs;
    };
    let (first_is_v6, count) = (first.is_ipv6(), addrs.len());
    let (mut same, mut other): (VecDeque<SocketAddr>, VecDeque<SocketAddr>) =
        addrs.into_iter().partition(|a| a.is_ipv6() == first_is_v6);
    let mut turns = Vec::with_capacity(count);
    while !same.is_empty() || !other.is_empty() {
        turns.extend(same.pop_front());
        turns.extend(other.pop_front());
    }
    turns
}

fn configure(stream: &TcpStream) -> std::io::Result<()> {
    stream.set_nodelay(true)?;
    let socket = socket2::SockRef::from(stream);
    let keepalive = socket2::TcpKeepalive::new()
        .with_time(TCP_KEEPALIVE)
        .with_interval(TCP_KEEPALIVE_INTERVAL)
        .with_retries(TCP_KEEPALIVE_RETRIES);
    socket.set_tcp_keepalive(&keepalive)?;
    #[cfg(any(target_os = "android", target_os = "fuchsia", target_os = "linux"))]
    socket.set_tcp_user_timeout(Some(TCP_USER_TIMEOUT))?;
    Ok(())
}

/// The request: its line, `Host`, the caller's headers, `Content-Length`, and the body, in one
/// buffer so that it goes in one `write`.
fn encode(
    out: &mut Vec<u8>,
    method: &Method,
    uri: &Uri,
    host: &str,
    headers: impl FnOnce(&mut Vec<u8>),
    body: &[u8],
) {
    out.extend_from_slice(method.as_str().as_bytes());
    out.push(b' ');
    let target = uri.path_and_query().map_or("/", |p| p.as_str());
    out.extend_from_slice(if target.is_empty() { "/" } else { target }.as_bytes());
    out.extend_from_slice(b" HTTP/1.1\r\nhost: ");
    out.extend_from_slice(host.as_bytes());
    out.extend_from_slice(b"\r\n");
    headers(out);
    // Writing to a `Vec` cannot fail.
    let _ = write!(out, "content-length: {}\r\n\r\n", body.len());
    out.extend_from_slice(body);
}

async fn write_request(
    stream: &mut TcpStream,
    request: &[u8],
    progress: &Progress,
) -> Result<(), Error> {
    let mut rest = request;
    while !rest.is_empty() {
        let n = stream.write(rest).await.map_err(Error::Io)?;
        if n == 0 {
            return Err(Error::Closed);
        }
        progress.reach(Stage::Sent);
        rest = &rest[n..];
    }
    Ok(())
}

/// How an answer's body ends (RFC 9112, section 6.3).
#[derive(Debug, PartialEq)]
enum Framing {
    /// No body (a 204 or 304).
    Empty,
    /// `Content-Length`: this many bytes still to read.
    Length(u64),
    Chunked(Chunked),
    /// Neither: the body ends when the participant closes the connection.
    UntilClose,
}

impl Framing {
    /// Whether the connection can carry another exchange once the body ended.
    fn keeps_connection(&self) -> bool {
        !matches!(self, Framing::UntilClose)
    }
}

/// Where a chunked body's decoding stands.
#[derive(Debug, PartialEq)]
enum Chunked {
    Size,
    Data(u64),
    DataEnd,
    Trailers(usize),
    Done,
}

struct Head {
    status: StatusCode,
    retry_after: Option<HeaderValue>,
    location: Option<HeaderValue>,
    framing: Framing,
    keep_alive: bool,
}

async fn read_head(conn: &mut Conn, method: &Method) -> Result<Head, Error> {
    loop {
        if let Some(head) = parse_head(&mut conn.buf, method)? {
            return Ok(head);
        }
        if conn.buf.len() >= HEAD_BYTES_MAX {
            return Err(Error::Invalid(
                "the status and headers are larger than 64 KiB",
            ));
        }
        read_more(conn).await?;
    }
}

/// Parses one head off the front of `buf`, skipping informational (1xx) ones; `None` if it has
/// not all arrived.
fn parse_head(buf: &mut BytesMut, method: &Method) -> Result<Option<Head>, Error> {
    loop {
        let mut headers = [httparse::EMPTY_HEADER; HEADERS_MAX];
        let mut answer = httparse::Response::new(&mut headers);
        let length = match answer.parse(buf) {
            Ok(httparse::Status::Complete(length)) => length,
            Ok(httparse::Status::Partial) => return Ok(None),
            Err(httparse::Error::TooManyHeaders) => {
                return Err(Error::Invalid("more than 100 headers"));
            }
            Err(_) => return Err(Error::Invalid("not an HTTP/1.x status line and headers")),
        };
        let code = answer.code.unwrap_or(0);
        let status = StatusCode::from_u16(code).map_err(|_| Error::Invalid("an unknown status"))?;
        if status == StatusCode::SWITCHING_PROTOCOLS {
            return Err(Error::Invalid("the participant switched protocols"));
        }
        if status.is_informational() {
            buf.advance(length);
            continue;
        }
        let mut head = Head {
            status,
            retry_after: None,
            location: None,
            framing: Framing::UntilClose,
            // HTTP/1.1 keeps the connection unless told; HTTP/1.0 closes it unless told.
            keep_alive: answer.version == Some(1),
        };
        let mut length_seen: Option<u64> = None;
        let mut chunked = false;
        let mut transfer_encoded = false;
        for header in answer.headers.iter() {
            let name = header.name;
            if name.eq_ignore_ascii_case("content-length") {
                let value = std::str::from_utf8(header.value)
                    .ok()
                    .and_then(|v| v.trim().parse::<u64>().ok())
                    .ok_or(Error::Invalid("a Content-Length that is not a number"))?;
                if length_seen.is_some_and(|seen| seen != value) {
                    return Err(Error::Invalid("two different Content-Lengths"));
                }
                length_seen = Some(value);
            } else if name.eq_ignore_ascii_case("transfer-encoding") {
                transfer_encoded = true;
                // Chunked must be the last coding applied.
                chunked = header
                    .value
                    .rsplit(|b| *b == b',')
                    .next()
                    .is_some_and(|last| last.trim_ascii().eq_ignore_ascii_case(b"chunked"));
            } else if name.eq_ignore_ascii_case("connection") {
                for token in header.value.split(|b| *b == b',') {
                    let token = token.trim_ascii();
                    if token.eq_ignore_ascii_case(b"close") {
                        head.keep_alive = false;
                    } else if token.eq_ignore_ascii_case(b"keep-alive") && answer.version == Some(0)
                    {
                        head.keep_alive = true;
                    }
                }
            } else if name.eq_ignore_ascii_case("retry-after") {
                head.retry_after = HeaderValue::from_bytes(header.value).ok();
            } else if name.eq_ignore_ascii_case("location") {
                head.location = HeaderValue::from_bytes(header.value).ok();
            }
        }
        head.framing = if *method == Method::HEAD
            || status == StatusCode::NO_CONTENT
            || status == StatusCode::NOT_MODIFIED
        {
            Framing::Empty
        } else if transfer_encoded {
            if chunked {
                Framing::Chunked(Chunked::Size)
            } else {
                Framing::UntilClose
            }
        } else if let Some(length) = length_seen {
            Framing::Length(length)
        } else {
            Framing::UntilClose
        };
        buf.advance(length);
        return Ok(Some(head));
    }
}

/// Reads more of the answer into the connection's buffer: how many bytes (0 at the stream's end).
async fn fill(conn: &mut Conn) -> Result<usize, Error> {
    conn.buf.reserve(READ_BYTES);
    conn.stream.read_buf(&mut conn.buf).await.map_err(Error::Io)
}

/// `fill`, where the end of the stream is an error: the answer is not complete.
async fn read_more(conn: &mut Conn) -> Result<(), Error> {
    match fill(conn).await? {
        0 => Err(Error::Closed),
        _ => Ok(()),
    }
}

/// Moves up to `n` bytes of the buffer into `into`, never past `limit`; how many it moved.
fn take(buf: &mut BytesMut, n: u64, into: &mut Vec<u8>, limit: usize) -> usize {
    let room = limit.saturating_sub(into.len());
    let n = (buf.len() as u64).min(n).min(room as u64) as usize;
    into.extend_from_slice(&buf[..n]);
    buf.advance(n);
    n
}

/// Reads the body per `framing`; `Ok(true)` once it ended, `Ok(false)` if `into` reached
/// `limit` first.
async fn read_body(
    conn: &mut Conn,
    framing: &mut Framing,
    into: &mut Vec<u8>,
    limit: usize,
) -> Result<bool, Error> {
    loop {
        match framing {
            Framing::Empty => return Ok(true),
            Framing::Length(0) => return Ok(true),
            Framing::Length(rest) => {
                if into.len() >= limit {
                    return Ok(false);
                }
                if conn.buf.is_empty() {
                    read_more(conn).await?;
                }
                *rest -= take(&mut conn.buf, *rest, into, limit) as u64;
            }
            Framing::UntilClose => {
                if into.len() >= limit {
                    return Ok(false);
                }
                if conn.buf.is_empty() && fill(conn).await? == 0 {
                    return Ok(true);
                }
                take(&mut conn.buf, u64::MAX, into, limit);
            }
            Framing::Chunked(state) => {
                if decode_chunked(&mut conn.buf, state, into, limit)? {
                    return Ok(true);
                }
                if into.len() >= limit && matches!(state, Chunked::Data(_)) {
                    return Ok(false);
                }
                read_more(conn).await?;
            }
        }
    }
}

/// Decodes what `buf` holds of a chunked body; `Ok(true)` once the last chunk and the trailers
/// are in. Stops early, with `Ok(false)`, when it needs more bytes or `into` is full.
fn decode_chunked(
    buf: &mut BytesMut,
    state: &mut Chunked,
    into: &mut Vec<u8>,
    limit: usize,
) -> Result<bool, Error> {
    loop {
        match state {
            Chunked::Done => return Ok(true),
            Chunked::Size => {
                let Some(end) = find_crlf(buf) else {
                    if buf.len() > CHUNK_LINE_BYTES_MAX {
                        return Err(Error::Invalid("a chunk size line longer than 4 KiB"));
                    }
                    return Ok(false);
                };
                let line = &buf[..end];
                let digits = line
                    .split(|b| *b == b';')
                    .next()
                    .unwrap_or_default()
                    .trim_ascii();
                let size = std::str::from_utf8(digits)
                    .ok()
                    .filter(|d| !d.is_empty() && d.len() <= 16)
                    .and_then(|d| u64::from_str_radix(d, 16).ok())
                    .ok_or(Error::Invalid("a chunk size that is not a hex number"))?;
                buf.advance(end + 2);
                *state = if size == 0 {
                    Chunked::Trailers(0)
                } else {
                    Chunked::Data(size)
                };
            }
            Chunked::Data(rest) => {
                if buf.is_empty() || into.len() >= limit {
                    return Ok(false);
                }
                *rest -= take(buf, *rest, into, limit) as u64;
                if *rest == 0 {
                    *state = Chunked::DataEnd;
                }
            }
            Chunked::DataEnd => {
                if buf.len() < 2 {
                    return Ok(false);
                }
                if &buf[..2] != b"\r\n" {
                    return Err(Error::Invalid("a chunk not followed by CRLF"));
                }
                buf.advance(2);
                *state = Chunked::Size;
            }
            Chunked::Trailers(seen) => {
                let Some(end) = find_crlf(buf) else {
                    if *seen + buf.len() > TRAILERS_BYTES_MAX {
                        return Err(Error::Invalid("trailers larger than 64 KiB"));
                    }
                    return Ok(false);
                };
                buf.advance(end + 2);
                if end == 0 {
                    *state = Chunked::Done;
                } else {
                    *seen += end + 2;
                    if *seen > TRAILERS_BYTES_MAX {
                        return Err(Error::Invalid("trailers larger than 64 KiB"));
                    }
                }
            }
        }
    }
}

fn find_crlf(buf: &[u8]) -> Option<usize> {
    buf.windows(2).position(|w| w == b"\r\n")
}

/// The most pools one thread keeps: a process normally has one dispatcher, tests make many on
/// the same threads; past it the oldest pool goes, closing its connections.
const POOLS_PER_THREAD_MAX: usize = 8;

/// One dispatcher's idle connections on one thread, by `Host`, oldest first.
struct Pool {
    id: u64,
    idle: HashMap<Arc<str>, VecDeque<(Conn, Instant)>>,
    count: usize,
    swept: Instant,
}

thread_local! {
    /// Each thread pools the connections it opened: they are driven by the task that uses
    /// them, on its thread, so a call never wakes another thread.
    static POOLS: RefCell<Vec<Pool>> = const { RefCell::new(Vec::new()) };
}

/// Runs `f` on this thread's pool `id`, made if it has none.
fn with_pool<T>(id: u64, f: impl FnOnce(&mut Pool) -> T) -> T {
    POOLS.with(|pools| {
        let mut pools = pools.borrow_mut();
        let at = match pools.iter().position(|pool| pool.id == id) {
            Some(at) => at,
            None => {
                if pools.len() >= POOLS_PER_THREAD_MAX {
                    pools.remove(0);
                }
                pools.push(Pool {
                    id,
                    idle: HashMap::new(),
                    count: 0,
                    swept: Instant::now(),
                });
                pools.len() - 1
            }
        };
        f(&mut pools[at])
    })
}

/// The most recently idle connection to `host` that is still open, if any.
fn checkout(pool: u64, host: &str) -> Option<Conn> {
    with_pool(pool, |pool| {
        if pool.swept.elapsed() >= SWEEP_EVERY {
            sweep(pool);
        }
        let idle = pool.idle.get_mut(host)?;
        while let Some((mut conn, since)) = idle.pop_back() {
            pool.count -= 1;
            if since.elapsed() < IDLE_TIMEOUT && is_open(&mut conn) {
                return Some(conn);
            }
        }
        None
    })
}

/// Whether an idle connection is still open: the participant may have closed it meanwhile (its
/// own idle timeout), which its end of the stream, now readable, tells without blocking.
fn is_open(conn: &mut Conn) -> bool {
    let mut probe = [0u8; 1];
    matches!(
        conn.stream.try_read(&mut probe),
        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock
    )
}

fn checkin(pool: u64, host: Arc<str>, conn: Conn) {
    with_pool(pool, |pool| {
        if pool.count >= IDLE_MAX {
            return;
        }
        let idle = pool.idle.entry(host).or_default();
        if idle.len() >= IDLE_PER_HOST_MAX {
            return;
        }
        idle.push_back((conn, Instant::now()));
        pool.count += 1;
    });
}

/// Drops this thread's idle connections that timed out (the event loops call it on their tick,
/// so that a loop making no calls does not keep them).
pub(crate) fn sweep_idle() {
    POOLS.with(|pools| {
        for pool in pools.borrow_mut().iter_mut() {
            if pool.swept.elapsed() >= SWEEP_EVERY {
                sweep(pool);
            }
        }
    });
}

fn sweep(pool: &mut Pool) {
    pool.swept = Instant::now();
    let mut dropped = 0;
    pool.idle.retain(|_, idle| {
        while idle
            .front()
            .is_some_and(|(_, since)| since.elapsed() >= IDLE_TIMEOUT)
        {
            idle.pop_front();
            dropped += 1;
        }
        !idle.is_empty()
    });
    pool.count -= dropped;
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use tokio::io::AsyncBufReadExt;
    use tokio::net::TcpListener;

    /// The tests' pool (each test runs on a thread of its own).
    const POOL: u64 = u64::MAX;

    fn head(text: &str) -> Result<Option<Head>, Error> {
        parse_head(&mut BytesMut::from(text), &Method::POST)
    }

    #[test]
    fn a_head_tells_how_its_body_ends() {
        let framing = |text: &str| head(text).unwrap().unwrap().framing;
        assert_eq!(
            framing("HTTP/1.1 200 OK\r\ncontent-length: 11\r\n\r\n"),
            Framing::Length(11)
        );
        assert_eq!(
            framing("HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n"),
            Framing::Chunked(Chunked::Size)
        );
        // Chunked wins over a length; a coding other than chunked last reads to the close.
        assert_eq!(
            framing("HTTP/1.1 200 OK\r\ncontent-length: 3\r\ntransfer-encoding: chunked\r\n\r\n"),
            Framing::Chunked(Chunked::Size)
        );
        assert_eq!(
            framing("HTTP/1.1 200 OK\r\ntransfer-encoding: gzip\r\n\r\n"),
            Framing::UntilClose
        );
        assert_eq!(framing("HTTP/1.1 200 OK\r\n\r\n"), Framing::UntilClose);
        assert_eq!(
            framing("HTTP/1.1 204 No Content\r\ncontent-length: 9\r\n\r\n"),
            Framing::Empty
        );
        assert!(matches!(
            head("HTTP/1.1 200 OK\r\ncontent-length: 3\r\ncontent-length: 4\r\n\r\n"),
            Err(Error::Invalid(_))
        ));
        assert!(matches!(
            head("HTTP/1.1 200 OK\r\ncontent-length: x\r\n\r\n"),
            Err(Error::Invalid(_))
        ));
        assert!(matches!(
            head("SSH-2.0-OpenSSH\r\n\r\n"),
            Err(Error::Invalid(_))
        ));
        assert!(head("HTTP/1.1 200 OK\r\ncontent-le").unwrap().is_none());
    }

    #[test]
    fn informational_heads_are_skipped_and_keep_alive_follows_the_version() {
        let parsed =
            head("HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nlink: x\r\n\r\nHTTP/1.1 503 Busy\r\nretry-after: 7\r\nconnection: close\r\ncontent-length: 0\r\n\r\n")
                .unwrap()
                .unwrap();
        assert_eq!(parsed.status, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(parsed.retry_after.unwrap(), "7");
        assert!(!parsed.keep_alive);
        let old = head("HTTP/1.0 200 OK\r\ncontent-length: 0\r\n\r\n")
            .unwrap()
            .unwrap();
        assert!(!old.keep_alive);
        let old = head("HTTP/1.0 200 OK\r\nConnection: Keep-Alive\r\ncontent-length: 0\r\n\r\n")
            .unwrap()
            .unwrap();
        assert!(old.keep_alive);
        assert!(matches!(
            head("HTTP/1.1 101 Switching Protocols\r\n\r\n"),
            Err(Error::Invalid(_))
        ));
    }

    fn decode(parts: &[&str], limit: usize) -> Result<(Vec<u8>, bool), Error> {
        let mut state = Chunked::Size;
        let mut into = Vec::new();
        let mut buf = BytesMut::new();
        for part in parts {
            buf.extend_from_slice(part.as_bytes());
            if decode_chunked(&mut buf, &mut state, &mut into, limit)? {
                return Ok((into, true));
            }
        }
        Ok((into, false))
    }

    #[test]
    fn chunked_bodies_decode_however_they_are_split() {
        let body = "5;ext=1\r\nhello\r\n7\r\n, world\r\n0\r\ntrailer: x\r\n\r\n";
        assert_eq!(
            decode(&[body], 1024).unwrap(),
            (b"hello, world".to_vec(), true)
        );
        // Byte by byte.
        let bytes: Vec<String> = body.chars().map(String::from).collect();
        let parts: Vec<&str> = bytes.iter().map(String::as_str).collect();
        assert_eq!(
            decode(&parts, 1024).unwrap(),
            (b"hello, world".to_vec(), true)
        );
        // A limit stops it with what fits.
        assert_eq!(decode(&[body], 7).unwrap(), (b"hello, ".to_vec(), false));
        assert!(matches!(decode(&["zz\r\n"], 1024), Err(Error::Invalid(_))));
        assert!(matches!(
            decode(&["2\r\nabXY"], 1024),
            Err(Error::Invalid(_))
        ));
        let long = format!("1;{}", "e".repeat(CHUNK_LINE_BYTES_MAX + 1));
        assert!(matches!(decode(&[&long], 1024), Err(Error::Invalid(_))));
    }

    /// A participant that answers each request read on a connection with the next of
    /// `answers`, then closes the connection; it reports each connection it accepted.
    async fn participant(
        answers: Vec<&'static str>,
    ) -> (Uri, tokio::sync::mpsc::UnboundedReceiver<usize>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let uri: Uri = format!("http://{}/step", listener.local_addr().unwrap())
            .parse()
            .unwrap();
        let (accepted, accepted_rx) = tokio::sync::mpsc::unbounded_channel();
        tokio::spawn(async move {
            let mut connection = 0;
            loop {
                let (stream, _) = listener.accept().await.unwrap();
                connection += 1;
                accepted.send(connection).unwrap();
                let answers = answers.clone();
                tokio::spawn(async move {
                    let mut reader = tokio::io::BufReader::new(stream);
                    for answer in answers {
                        // The head, then the body its content-length says.
                        let mut length = 0;
                        loop {
                            let mut line = String::new();
                            if reader.read_line(&mut line).await.unwrap() == 0 {
                                return;
                            }
                            if let Some(v) = line.strip_prefix("content-length: ") {
                                length = v.trim().parse().unwrap();
                            }
                            if line == "\r\n" {
                                break;
                            }
                        }
                        let mut body = vec![0; length];
                        reader.read_exact(&mut body).await.unwrap();
                        reader.get_mut().write_all(answer.as_bytes()).await.unwrap();
                    }
                });
            }
        });
        (uri, accepted_rx)
    }

    /// Sends `{}` to `uri` on the tests' pool.
    async fn post(uri: &Uri, progress: &Progress) -> Result<Answer, Error> {
        let endpoint = Endpoint::new(uri.clone());
        send(POOL, &Method::POST, &endpoint, |_| {}, b"{}", progress).await
    }

    async fn call(uri: &Uri) -> Result<(StatusCode, Vec<u8>), Error> {
        let answer = post(uri, &Progress::new()).await?;
        let status = answer.status;
        let mut body = Vec::new();
        assert!(answer.body(&mut body, 1024).await?);
        Ok((status, body))
    }

    #[tokio::test(flavor = "current_thread")]
    async fn connections_are_kept_and_reused_until_the_participant_closes_them() {
        const OK: &str = "HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok";
        const CHUNKED: &str =
            "HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n";
        // Two answers a connection, then the participant closes it.
        let (uri, mut accepted) = participant(vec![OK, CHUNKED]).await;
        for _ in 0..2 {
            assert_eq!(call(&uri).await.unwrap(), (StatusCode::OK, b"ok".to_vec()));
        }
        assert_eq!(accepted.try_recv().unwrap(), 1);
        assert!(
            accepted.try_recv().is_err(),
            "the second call reused the connection"
        );
        // The participant closed it: the next call finds that out before sending, and opens
        // another.
        let closed = async {
            loop {
                let open = with_pool(POOL, |pool| {
                    pool.idle
                        .values_mut()
                        .flatten()
                        .any(|(conn, _)| is_open(conn))
                });
                if !open {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        };
        tokio::time::timeout(Duration::from_secs(5), closed)
            .await
            .unwrap();
        assert_eq!(call(&uri).await.unwrap(), (StatusCode::OK, b"ok".to_vec()));
        assert_eq!(accepted.recv().await.unwrap(), 2);
    }

    #[tokio::test(flavor = "current_thread")]
    async fn a_connection_the_answer_closes_is_not_kept() {
        let (uri, mut accepted) = participant(vec![
            "HTTP/1.1 200 OK\r\nconnection: close\r\ncontent-length: 2\r\n\r\nok",
        ])
        .await;
        assert_eq!(call(&uri).await.unwrap(), (StatusCode::OK, b"ok".to_vec()));
        assert_eq!(call(&uri).await.unwrap(), (StatusCode::OK, b"ok".to_vec()));
        assert_eq!(accepted.recv().await.unwrap(), 1);
        assert_eq!(
            accepted.recv().await.unwrap(),
            2,
            "a new connection for the second"
        );
    }

    #[tokio::test(flavor = "current_thread")]
    async fn an_answer_cut_short_or_a_refused_connection_tell_how_far_the_call_got() {
        let (uri, _accepted) =
            participant(vec!["HTTP/1.1 200 OK\r\ncontent-length: 10\r\n\r\nshort"]).await;
        let progress = Progress::new();
        let answer = post(&uri, &progress).await.unwrap();
        assert_eq!(progress.stage(), Stage::Answered);
        let mut body = Vec::new();
        assert!(matches!(
            answer.body(&mut body, 1024).await,
            Err(Error::Closed)
        ));
        assert_eq!(body, b"short");

        let free = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let refused: Uri = format!("http://{}/", free.local_addr().unwrap())
            .parse()
            .unwrap();
        drop(free);
        let progress = Progress::new();
        let error = post(&refused, &progress).await.err().unwrap();
        assert!(matches!(error, Error::Connect(_)), "{error}");
        assert_eq!(progress.stage(), Stage::Connecting);
        let https: Uri = "https://127.0.0.1:1/".parse().unwrap();
        let error = post(&https, &progress).await.err().unwrap();
        assert!(matches!(error, Error::NotHttp));
    }

    #[test]
    fn address_families_take_turns_starting_with_the_first() {
        let addr = |text: &str| text.parse::<SocketAddr>().unwrap();
        let resolved = vec![
            addr("[::1]:1"),
            addr("[::2]:1"),
            addr("10.0.0.1:1"),
            addr("10.0.0.2:1"),
            addr("[::3]:1"),
        ];
        let expected = vec![
            addr("[::1]:1"),
            addr("10.0.0.1:1"),
            addr("[::2]:1"),
            addr("10.0.0.2:1"),
            addr("[::3]:1"),
        ];
        assert_eq!(interleave_families(resolved), expected);
        assert_eq!(interleave_families(Vec::new()), Vec::<SocketAddr>::new());
    }

    /// A listener whose accept queue is full: the kernel drops further SYNs, so a connection
    /// to it neither opens nor fails (as to a host that vanished). Returns it, with the
    /// connections that filled it.
    fn silent_listener() -> (socket2::Socket, Vec<std::net::TcpStream>) {
        let socket =
            socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
        socket
            .bind(&"127.0.0.1:0".parse::<SocketAddr>().unwrap().into())
            .unwrap();
        socket.listen(0).unwrap();
        let addr = socket.local_addr().unwrap().as_socket().unwrap();
        let mut fillers = Vec::new();
        for _ in 0..16 {
            match std::net::TcpStream::connect_timeout(&addr, Duration::from_millis(200)) {
                Ok(stream) => fillers.push(stream),
                Err(e) if e.kind() == std::io::ErrorKind::TimedOut => return (socket, fillers),
                Err(e) => panic!("filling the listener's queue: {e}"),
            }
        }
        panic!("the listener's queue never filled");
    }

    #[tokio::test(flavor = "current_thread")]
    async fn an_address_that_does_not_answer_holds_the_connection_a_stagger_not_the_timeout() {
        let (silent, _fillers) = silent_listener();
        let silent = silent.local_addr().unwrap().as_socket().unwrap();
        let listening = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let answering = listening.local_addr().unwrap();
        let refused = {
            let free = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            free.local_addr().unwrap()
        };
        let started = Instant::now();
        let stream = tokio::time::timeout(
            Duration::from_secs(3),
            connect_any(vec![silent, refused, answering]),
        )
        .await
        .expect("connected before the connect timeout")
        .unwrap();
        assert_eq!(stream.peer_addr().unwrap(), answering);
        // The silent address had its quarter of a second, the refused one failed at once.
        assert!(
            started.elapsed() >= CONNECT_STAGGER,
            "{:?}",
            started.elapsed()
        );
        // Every address failing is the last failure.
        let error = connect_any(vec![refused]).await.err().unwrap();
        assert_eq!(error.kind(), std::io::ErrorKind::ConnectionRefused);
    }

    #[test]
    fn requests_carry_their_host_headers_and_length() {
        let mut out = Vec::new();
        let headers = |out: &mut Vec<u8>| out.extend_from_slice(b"idempotency-key: s/a/action\r\n");
        let uri: Uri = "http://pay.example:8080/charges?x=1".parse().unwrap();
        let host = host_header(&uri).unwrap();
        encode(&mut out, &Method::PUT, &uri, &host, headers, b"{}");
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "PUT /charges?x=1 HTTP/1.1\r\nhost: pay.example:8080\r\nidempotency-key: s/a/action\r\n\
             content-length: 2\r\n\r\n{}"
        );
        let uri: Uri = "http://pay.example:80".parse().unwrap();
        assert_eq!(host_header(&uri).unwrap(), "pay.example");
        let uri: Uri = "http://[::1]:9000/x".parse().unwrap();
        assert_eq!(host_header(&uri).unwrap(), "[::1]:9000");
    }
}

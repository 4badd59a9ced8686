//! A tiny HTTP/1.1 server on 127.0.0.1 for tests that stand in for the
//! Hugging Face Hub or Graphistry. One thread per connection, one request
//! per connection (`Connection: close`); every request is logged with the
//! body bytes sent back, so tests can assert what crossed the wire.
#![allow(dead_code)]

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Longest request head or body accepted.
const MAX_REQUEST: usize = 64 * 1024 * 1024;

/// A request as the handler sees it.
#[derive(Debug, Clone)]
pub struct Request {
    pub method: String,
    pub path: String,
    /// Header names lowercased.
    pub headers: HashMap<String, String>,
    pub body: Vec<u8>,
}

impl Request {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .get(&name.to_ascii_lowercase())
            .map(String::as_str)
    }
}

/// File content: `head`, then zeros up to `len` bytes (a sparse file).
#[derive(Debug)]
pub struct Content {
    pub head: Vec<u8>,
    pub len: u64,
}

impl Content {
    pub fn bytes(data: Vec<u8>) -> Arc<Content> {
        Arc::new(Content {
            len: data.len() as u64,
            head: data,
        })
    }
}

/// What the server sends.
#[derive(Debug)]
pub enum Body {
    Bytes(Vec<u8>),
    /// Bytes `start..end` of a content.
    Slice {
        content: Arc<Content>,
        start: u64,
        end: u64,
    },
}

#[derive(Debug)]
pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Body,
    /// Close the connection after this many body bytes, whatever
    /// `Content-Length` says (a download cut short).
    pub cut_after: Option<u64>,
}

impl Response {
    pub fn new(status: u16, body: Vec<u8>) -> Response {
        Response {
            status,
            headers: Vec::new(),
            body: Body::Bytes(body),
            cut_after: None,
        }
    }

    pub fn json(status: u16, value: &serde_json::Value) -> Response {
        Response::new(status, value.to_string().into_bytes())
            .header("Content-Type", "application/json")
    }

    pub fn header(mut self, name: &str, value: impl Into<String>) -> Response {
        self.headers.push((name.to_owned(), value.into()));
        self
    }
}

/// One logged exchange.
#[derive(Debug, Clone)]
pub struct Exchange {
    pub request: Request,
    pub status: u16,
    /// Body bytes actually written to the client.
    pub body_bytes_sent: u64,
}

type Handler = dyn Fn(&Request) -> Response + Send + Sync;

/// A running server; stops when dropped.
pub struct Server {
    pub addr: SocketAddr,
    log: Arc<Mutex<Vec<Exchange>>>,
    stop: Arc<AtomicBool>,
    /// Connections accepted whose exchange is not logged yet: a client can
    /// read the whole answer before the server thread logs it.
    active: Arc<AtomicUsize>,
}

impl Server {
    pub fn start(handler: impl Fn(&Request) -> Response + Send + Sync + 'static) -> Server {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1");
        listener
            .set_nonblocking(true)
            .expect("non-blocking listener");
        let addr = listener.local_addr().expect("local address");
        let log = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let handler: Arc<Handler> = Arc::new(handler);
        let active = Arc::new(AtomicUsize::new(0));
        {
            let (log, stop, active) = (log.clone(), stop.clone(), active.clone());
            std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    match listener.accept() {
                        Ok((stream, _)) => {
                            let (log, handler, active) =
                                (log.clone(), handler.clone(), active.clone());
                            active.fetch_add(1, Ordering::SeqCst);
                            std::thread::spawn(move || {
                                serve(stream, &*handler, &log);
                                active.fetch_sub(1, Ordering::SeqCst);
                            });
                        }
                        Err(_) => std::thread::sleep(Duration::from_millis(5)),
                    }
                }
            });
        }
        Server {
            addr,
            log,
            stop,
            active,
        }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Every exchange so far, once the connections in flight are logged
    /// (waiting at most 5 s for them).
    pub fn log(&self) -> Vec<Exchange> {
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while self.active.load(Ordering::SeqCst) > 0 && std::time::Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(1));
        }
        self.log.lock().expect("log").clone()
    }

    /// Forgets every exchange so far, once those in flight are logged.
    pub fn clear_log(&self) {
        let _ = self.log();
        self.log.lock().expect("log").clear();
    }

    /// Body bytes sent so far, over every request.
    pub fn body_bytes_sent(&self) -> u64 {
        self.log().iter().map(|e| e.body_bytes_sent).sum()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

fn serve(stream: TcpStream, handler: &Handler, log: &Mutex<Vec<Exchange>>) {
    let _ = stream.set_read_timeout(Some(Duration::from_secs(30)));
    let _ = stream.set_nonblocking(false);
    let Some(request) = read_request(&stream) else {
        return;
    };
    let response = handler(&request);
    let sent = write_response(&stream, &response);
    log.lock().expect("log").push(Exchange {
        request,
        status: response.status,
        body_bytes_sent: sent,
    });
}

fn read_request(stream: &TcpStream) -> Option<Request> {
    let mut reader = BufReader::new(stream);
    let mut line = String::new();
    reader.read_line(&mut line).ok()?;
    let mut parts = line.split_whitespace();
    let method = parts.next()?.to_owned();
    let path = parts.next()?.to_owned();
    let mut headers = HashMap::new();
    let mut head_len = line.len();
    loop {
        let mut h = String::new();
        if reader.read_line(&mut h).ok()? == 0 {
            return None;
        }
        head_len += h.len();
        if head_len > MAX_REQUEST {
            return None;
        }
        let h = h.trim_end();
        if h.is_empty() {
            break;
        }
        let (name, value) = h.split_once(':')?;
        headers.insert(name.trim().to_ascii_lowercase(), value.trim().to_owned());
    }
    let len: usize = headers
        .get("content-length")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    if len > MAX_REQUEST {
        return None;
    }
    let mut body = vec![0; len];
    reader.read_exact(&mut body).ok()?;
    Some(Request {
        method,
        path,
        headers,
        body,
    })
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        201 => "Created",
        206 => "Partial Content",
        401 => "Unauthorized",
        404 => "Not Found",
        416 => "Range Not Satisfiable",
        500 => "Internal Server Error",
        _ => "Status",
    }
}

/// Writes the response; returns the body bytes written.
fn write_response(mut stream: &TcpStream, response: &Response) -> u64 {
    let len = match &response.body {
        Body::Bytes(b) => b.len() as u64,
        Body::Slice { start, end, .. } => end - start,
    };
    let mut head = format!(
        "HTTP/1.1 {} {}\r\n",
        response.status,
        reason(response.status)
    );
    for (name, value) in &response.headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str(&format!(
        "Content-Length: {len}\r\nConnection: close\r\n\r\n"
    ));
    if stream.write_all(head.as_bytes()).is_err() {
        return 0;
    }
    let limit = response.cut_after.unwrap_or(u64::MAX).min(len);
    let mut sent = 0u64;
    let mut chunk = vec![0u8; 64 * 1024];
    while sent < limit {
        let n = (limit - sent).min(chunk.len() as u64) as usize;
        match &response.body {
            Body::Bytes(b) => chunk[..n].copy_from_slice(&b[sent as usize..sent as usize + n]),
            Body::Slice { content, start, .. } => {
                for (i, byte) in chunk[..n].iter_mut().enumerate() {
                    let at = start + sent + i as u64;
                    *byte = content.head.get(at as usize).copied().unwrap_or(0);
                }
            }
        }
        if stream.write_all(&chunk[..n]).is_err() {
            break;
        }
        sent += n as u64;
    }
    let _ = stream.flush();
    let _ = stream.shutdown(std::net::Shutdown::Both);
    sent
}

/// Parses `Range: bytes=A-B` (B optional, clamped to the content).
pub fn parse_range(value: &str, len: u64) -> Option<(u64, u64)> {
    let spec = value.strip_prefix("bytes=")?;
    let (a, b) = spec.split_once('-')?;
    let start: u64 = a.trim().parse().ok()?;
    let end = match b.trim() {
        "" => len,
        b => b.parse::<u64>().ok()?.saturating_add(1).min(len),
    };
    (start < end).then_some((start, end))
}

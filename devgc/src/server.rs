//! The development GC's HTTP/1.1 plumbing: a thread per connection (bounded), one
//! request per connection (`Connection: close`), httparse for the head, a
//! `Content-Length` body. A development tool: simple over fast.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::api::{handle, Reply};
use super::State;

const MAX_HEAD: usize = 16 * 1024;
const MAX_BODY: usize = 64 * 1024;
const IO_TIMEOUT: Duration = Duration::from_secs(5);

/// One parsed request.
pub struct Request {
    pub method: String,
    pub path: String,
    pub body: Vec<u8>,
}

/// Accept forever; each connection on its own thread, at most `max_connections`.
pub fn serve(listener: TcpListener, state: Arc<State>, max_connections: usize) {
    let live = Arc::new(AtomicUsize::new(0));
    for conn in listener.incoming() {
        let Ok(stream) = conn else { continue };
        if live.fetch_add(1, Ordering::SeqCst) >= max_connections {
            live.fetch_sub(1, Ordering::SeqCst);
            let _ = write_reply(&stream, &Reply::text(503, "too many connections"));
            continue;
        }
        let (state, live) = (state.clone(), live.clone());
        std::thread::spawn(move || {
            connection(stream, &state);
            live.fetch_sub(1, Ordering::SeqCst);
        });
    }
}

fn connection(stream: TcpStream, state: &State) {
    let _ = stream.set_read_timeout(Some(IO_TIMEOUT));
    let _ = stream.set_write_timeout(Some(IO_TIMEOUT));
    let started = Instant::now();
    let peer = stream
        .peer_addr()
        .map(|a| a.to_string())
        .unwrap_or_default();
    let (line, reply) = match read_request(&stream) {
        Ok(req) => {
            let line = format!("{} {}", req.method, req.path);
            (line, handle(state, &req))
        }
        Err(reason) => ("-".to_string(), Reply::text(400, &reason)),
    };
    let _ = write_reply(&stream, &reply);
    super::log(&format!(
        "{peer} {line} -> {} ({} ms){}",
        reply.status,
        started.elapsed().as_millis(),
        reply
            .note
            .as_deref()
            .map(|n| format!(" {n}"))
            .unwrap_or_default()
    ));
}

fn read_request(mut stream: &TcpStream) -> Result<Request, String> {
    let mut buf = Vec::with_capacity(1024);
    let mut chunk = [0u8; 4096];
    loop {
        let n = stream.read(&mut chunk).map_err(|e| format!("read: {e}"))?;
        if n == 0 {
            return Err("connection closed mid-request".into());
        }
        buf.extend_from_slice(chunk.get(..n).unwrap_or_default());
        let mut headers = [httparse::EMPTY_HEADER; 64];
        let mut req = httparse::Request::new(&mut headers);
        let head_len = match req.parse(&buf) {
            Ok(httparse::Status::Complete(len)) => len,
            Ok(httparse::Status::Partial) if buf.len() > MAX_HEAD => {
                return Err("request head too large".into())
            }
            Ok(httparse::Status::Partial) => continue,
            Err(e) => return Err(format!("bad request: {e}")),
        };
        let length = req
            .headers
            .iter()
            .find(|h| h.name.eq_ignore_ascii_case("content-length"))
            .map(|h| {
                std::str::from_utf8(h.value)
                    .ok()
                    .and_then(|v| v.trim().parse::<usize>().ok())
                    .ok_or("bad Content-Length")
            })
            .transpose()?
            .unwrap_or(0);
        if length > MAX_BODY {
            return Err("body too large".into());
        }
        let method = req.method.unwrap_or_default().to_string();
        let path = req.path.unwrap_or_default().to_string();
        while buf.len() < head_len + length {
            let n = stream.read(&mut chunk).map_err(|e| format!("read: {e}"))?;
            if n == 0 {
                return Err("connection closed mid-body".into());
            }
            buf.extend_from_slice(chunk.get(..n).unwrap_or_default());
        }
        let body = buf
            .get(head_len..head_len + length)
            .unwrap_or_default()
            .to_vec();
        return Ok(Request { method, path, body });
    }
}

fn write_reply(mut stream: &TcpStream, reply: &Reply) -> std::io::Result<()> {
    let head = format!(
        "HTTP/1.1 {} {}\r\nContent-Type: {}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        reply.status,
        reason(reply.status),
        reply.content_type,
        reply.body.len()
    );
    stream.write_all(head.as_bytes())?;
    stream.write_all(&reply.body)?;
    stream.flush()
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        201 => "Created",
        400 => "Bad Request",
        404 => "Not Found",
        405 => "Method Not Allowed",
        500 => "Internal Server Error",
        503 => "Service Unavailable",
        _ => "Status",
    }
}

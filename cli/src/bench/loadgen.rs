//! The benchmark's load generator: one keep-alive HTTP/1.1 connection per client thread,
//! each request one pre-built multipart body written with one `write`. A general HTTP
//! client (reqwest, with its own runtime thread per client) took about a fifth of the
//! 2-core machine the nodes under test share with it; Postfix's `smtp-source` is a small C
//! program, and the comparison should not charge Renkei for a heavier load generator.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;

use anyhow::{Context, Result, bail};

const BOUNDARY: &str = "renkei-bench-boundary-7f3a";

/// One client connection to a node's HTTP API.
pub struct Conn {
    addr: String,
    token: String,
    stream: Option<BufReader<TcpStream>>,
}

impl Conn {
    /// A client for `http://HOST:PORT` (connects on first use).
    pub fn new(url: &str, token: &str) -> Result<Conn> {
        let addr = url
            .strip_prefix("http://")
            .with_context(|| format!("not an http:// URL: {url}"))?
            .trim_end_matches('/')
            .to_owned();
        Ok(Conn {
            addr,
            token: token.to_owned(),
            stream: None,
        })
    }

    /// Submits one send unit of one file; returns the HTTP status and the body.
    pub fn submit(&mut self, name: &str, file: &[u8]) -> Result<(u16, Vec<u8>)> {
        let mut body = Vec::with_capacity(file.len() + 256);
        write!(
            body,
            "--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"{name}\"\r\n\
             Content-Type: application/octet-stream\r\n\r\n"
        )?;
        body.extend_from_slice(file);
        write!(body, "\r\n--{BOUNDARY}--\r\n")?;
        let mut req = Vec::with_capacity(body.len() + 256);
        write!(
            req,
            "POST /v1/send-units HTTP/1.1\r\nHost: {}\r\nAuthorization: Bearer {}\r\n\
             Content-Type: multipart/form-data; boundary={BOUNDARY}\r\nContent-Length: {}\r\n\r\n",
            self.addr,
            self.token,
            body.len()
        )?;
        req.extend_from_slice(&body);
        // A keep-alive connection the server closed answers with an error or EOF: retry
        // once on a fresh connection (submission is idempotent for identical files).
        match self.round_trip(&req) {
            Ok(r) => Ok(r),
            Err(_) => {
                self.stream = None;
                self.round_trip(&req)
            }
        }
    }

    fn round_trip(&mut self, req: &[u8]) -> Result<(u16, Vec<u8>)> {
        if self.stream.is_none() {
            let s = TcpStream::connect(&self.addr)
                .with_context(|| format!("connecting to {}", self.addr))?;
            s.set_nodelay(true)?;
            self.stream = Some(BufReader::with_capacity(16 * 1024, s));
        }
        let Some(r) = self.stream.as_mut() else {
            bail!("no connection");
        };
        r.get_mut().write_all(req)?;
        let mut line = String::new();
        if r.read_line(&mut line)? == 0 {
            bail!("connection closed");
        }
        let status: u16 = line
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .with_context(|| format!("bad status line {line:?}"))?;
        let mut len = 0usize;
        let mut close = false;
        loop {
            line.clear();
            if r.read_line(&mut line)? == 0 {
                bail!("connection closed in headers");
            }
            let l = line.trim_end();
            if l.is_empty() {
                break;
            }
            if let Some((k, v)) = l.split_once(':') {
                let (k, v) = (k.trim().to_ascii_lowercase(), v.trim());
                if k == "content-length" {
                    len = v.parse().context("content-length")?;
                } else if k == "connection" && v.eq_ignore_ascii_case("close") {
                    close = true;
                } else if k == "transfer-encoding" {
                    bail!("chunked responses are not expected from send-units");
                }
            }
        }
        let mut body = vec![0u8; len];
        r.read_exact(&mut body)?;
        if close {
            self.stream = None;
        }
        Ok((status, body))
    }
}

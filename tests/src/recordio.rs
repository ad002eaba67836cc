//! A hand-written client of Mesos' v1 scheduler HTTP API (`POST /api/v1/scheduler`), for the
//! tests: raw HTTP/1.1 over a blocking TCP stream, a chunked-body decoder and a RecordIO reader
//! (`<decimal length>\n<record>`), so that what the master writes is checked byte for byte
//! rather than through a library that forgives.
//!
//! [`Subscription::open`] sends a SUBSCRIBE and reads the stream's events on a thread of its own
//! into a channel; [`Subscription::call`] sends the other calls with the stream's id.

use anyhow::{bail, Context, Result};
use serde_json::{json, Value};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, TcpStream};
use std::sync::mpsc;
use std::time::{Duration, Instant};

pub const PATH: &str = "/api/v1/scheduler";

/// A response read whole.
#[derive(Debug, Clone)]
pub struct Response {
    pub status: u16,
    /// Names lowercased.
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Response {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// Writes a request: `headers` (name, value) besides Host and Content-Length.
fn write_request(
    stream: &mut TcpStream,
    addr: &str,
    method: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> Result<()> {
    let mut request = format!("{method} {PATH} HTTP/1.1\r\nHost: {addr}\r\n");
    for (name, value) in headers {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    request.push_str(&format!(
        "Connection: close\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    ));
    stream.write_all(request.as_bytes())?;
    Ok(())
}

/// Reads the status line and headers.
fn read_head(reader: &mut impl BufRead) -> Result<(u16, Vec<(String, String)>)> {
    let mut line = String::new();
    reader.read_line(&mut line)?;
    let status = line
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .with_context(|| format!("bad status line {line:?}"))?;
    let mut headers = Vec::new();
    loop {
        line.clear();
        if reader.read_line(&mut line)? == 0 {
            bail!("the connection ended in the headers");
        }
        let trimmed = line.trim_end();
        if trimmed.is_empty() {
            break;
        }
        if let Some((name, value)) = trimmed.split_once(':') {
            headers.push((name.trim().to_ascii_lowercase(), value.trim().to_string()));
        }
    }
    Ok((status, headers))
}

fn is_chunked(headers: &[(String, String)]) -> bool {
    headers
        .iter()
        .any(|(n, v)| n == "transfer-encoding" && v.eq_ignore_ascii_case("chunked"))
}

/// A `Transfer-Encoding: chunked` body as a plain reader (EOF at the last chunk).
pub struct Chunked<R> {
    inner: R,
    left: usize,
    done: bool,
}

impl<R: BufRead> Chunked<R> {
    pub fn new(inner: R) -> Self {
        Self {
            inner,
            left: 0,
            done: false,
        }
    }
}

impl<R: BufRead> Read for Chunked<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let bad = |why: String| std::io::Error::new(std::io::ErrorKind::InvalidData, why);
        if self.done || buf.is_empty() {
            return Ok(0);
        }
        if self.left == 0 {
            let mut line = String::new();
            if self.inner.read_line(&mut line)? == 0 {
                return Ok(0);
            }
            let size = line.trim_end().split(';').next().unwrap_or("").trim();
            self.left = usize::from_str_radix(size, 16)
                .map_err(|_| bad(format!("bad chunk size line {line:?}")))?;
            if self.left == 0 {
                self.done = true;
                return Ok(0);
            }
        }
        let n = buf.len().min(self.left);
        let n = self.inner.read(&mut buf[..n])?;
        if n == 0 {
            return Ok(0);
        }
        self.left -= n;
        if self.left == 0 {
            let mut crlf = [0u8; 2];
            self.inner.read_exact(&mut crlf)?;
            if &crlf != b"\r\n" {
                return Err(bad(format!("a chunk ends with {crlf:?}, not CRLF")));
            }
        }
        Ok(n)
    }
}

/// Reads RecordIO records: `<decimal length>\n` then exactly that many bytes. `Ok(None)` at a
/// clean end between records; an error for anything malformed.
pub struct RecordIo<R> {
    inner: BufReader<R>,
}

impl<R: Read> RecordIo<R> {
    pub fn new(inner: R) -> Self {
        Self {
            inner: BufReader::new(inner),
        }
    }

    pub fn next_record(&mut self) -> Result<Option<Vec<u8>>> {
        let mut line = Vec::new();
        if self.inner.read_until(b'\n', &mut line)? == 0 {
            return Ok(None);
        }
        if line.last() != Some(&b'\n') {
            bail!(
                "a record's length is cut off: {:?}",
                String::from_utf8_lossy(&line)
            );
        }
        line.pop();
        let len = strata_schema::v1::record_length(&line).map_err(anyhow::Error::msg)?;
        let mut record = vec![0u8; len];
        self.inner
            .read_exact(&mut record)
            .with_context(|| format!("a record of {len} bytes is cut off"))?;
        Ok(Some(record))
    }
}

/// Sends one call on a connection of its own and reads the whole response.
pub fn post(addr: &str, headers: &[(&str, &str)], body: &str) -> Result<Response> {
    request(addr, "POST", headers, body)
}

/// Like [`post`] with any method.
pub fn request(addr: &str, method: &str, headers: &[(&str, &str)], body: &str) -> Result<Response> {
    let mut stream = TcpStream::connect(addr).with_context(|| format!("connect {addr}"))?;
    stream.set_read_timeout(Some(Duration::from_secs(20)))?;
    write_request(&mut stream, addr, method, headers, body)?;
    let mut reader = BufReader::new(stream);
    let (status, headers) = read_head(&mut reader)?;
    let mut raw = Vec::new();
    if is_chunked(&headers) {
        Chunked::new(reader).read_to_end(&mut raw)?;
    } else {
        reader.read_to_end(&mut raw)?;
    }
    Ok(Response {
        status,
        headers,
        body: String::from_utf8_lossy(&raw).into_owned(),
    })
}

/// The JSON headers of a call.
pub const JSON: [(&str, &str); 2] = [
    ("Content-Type", "application/json"),
    ("Accept", "application/json"),
];

/// An event or the end of the stream.
#[derive(Debug)]
pub enum Item {
    Event(Value),
    /// The stream ended; the text says how.
    End(String),
}

/// A framework subscribed through the v1 API: its event stream and its stream id.
pub struct Subscription {
    pub addr: String,
    pub framework_id: String,
    pub stream_id: String,
    /// The SUBSCRIBE response's headers.
    pub headers: Vec<(String, String)>,
    /// The SUBSCRIBED event.
    pub subscribed: Value,
    /// Every event read so far, in order (HEARTBEATs included).
    pub seen: Vec<Value>,
    events: mpsc::Receiver<Item>,
    socket: TcpStream,
    ended: Option<String>,
}

impl Subscription {
    /// SUBSCRIBEs with `framework_info` (and `framework_id` for a re-subscription); waits for
    /// the SUBSCRIBED event. A refusal is `Err(response)` inside the `Ok`.
    pub fn open(
        addr: &str,
        framework_info: Value,
        framework_id: Option<&str>,
    ) -> Result<std::result::Result<Subscription, Response>> {
        let mut call = json!({
            "type": "SUBSCRIBE",
            "subscribe": { "framework_info": framework_info },
        });
        if let Some(id) = framework_id {
            call["framework_id"] = json!({ "value": id });
        }
        Self::open_with(addr, &JSON, &call.to_string())
    }

    /// SUBSCRIBE with the given headers and body.
    pub fn open_with(
        addr: &str,
        headers: &[(&str, &str)],
        body: &str,
    ) -> Result<std::result::Result<Subscription, Response>> {
        let mut stream = TcpStream::connect(addr).with_context(|| format!("connect {addr}"))?;
        stream.set_read_timeout(Some(Duration::from_secs(20)))?;
        write_request(&mut stream, addr, "POST", headers, body)?;
        let socket = stream.try_clone()?;
        let mut reader = BufReader::new(stream);
        let (status, response_headers) = read_head(&mut reader)?;
        if status != 200 {
            let mut raw = Vec::new();
            if is_chunked(&response_headers) {
                Chunked::new(reader).read_to_end(&mut raw)?;
            } else {
                reader.read_to_end(&mut raw)?;
            }
            return Ok(Err(Response {
                status,
                headers: response_headers,
                body: String::from_utf8_lossy(&raw).into_owned(),
            }));
        }
        if !is_chunked(&response_headers) {
            bail!("the SUBSCRIBE response is not chunked: {response_headers:?}");
        }
        // Events come as they happen: no read timeout on the stream itself.
        socket.set_read_timeout(None)?;
        let (tx, events) = mpsc::channel();
        std::thread::spawn(move || {
            let mut records = RecordIo::new(Chunked::new(reader));
            loop {
                let item = match records.next_record() {
                    Ok(Some(record)) => match serde_json::from_slice(&record) {
                        Ok(event) => Item::Event(event),
                        Err(err) => Item::End(format!(
                            "a record is not JSON ({err}): {:?}",
                            String::from_utf8_lossy(&record)
                        )),
                    },
                    Ok(None) => Item::End("the stream ended".into()),
                    Err(err) => Item::End(format!("the stream broke: {err:#}")),
                };
                let last = matches!(item, Item::End(_));
                if tx.send(item).is_err() || last {
                    return;
                }
            }
        });
        let stream_id = response_headers
            .iter()
            .find(|(n, _)| n == "mesos-stream-id")
            .map(|(_, v)| v.clone())
            .context("the SUBSCRIBE response has no Mesos-Stream-Id")?;
        let mut sub = Subscription {
            addr: addr.to_string(),
            framework_id: String::new(),
            stream_id,
            headers: response_headers,
            subscribed: Value::Null,
            seen: Vec::new(),
            events,
            socket,
            ended: None,
        };
        let subscribed = sub.next_of("SUBSCRIBED", Duration::from_secs(20))?;
        sub.framework_id = subscribed["subscribed"]["framework_id"]["value"]
            .as_str()
            .context("SUBSCRIBED has no framework_id.value")?
            .to_string();
        sub.subscribed = subscribed;
        Ok(Ok(sub))
    }

    /// The next event, or `None` if none came within `timeout`; an error once the stream ended.
    pub fn next_event(&mut self, timeout: Duration) -> Result<Option<Value>> {
        if let Some(why) = &self.ended {
            bail!("{why}");
        }
        match self.events.recv_timeout(timeout) {
            Ok(Item::Event(event)) => {
                self.seen.push(event.clone());
                Ok(Some(event))
            }
            Ok(Item::End(why)) => {
                self.ended = Some(why.clone());
                bail!("{why}")
            }
            Err(mpsc::RecvTimeoutError::Timeout) => Ok(None),
            Err(mpsc::RecvTimeoutError::Disconnected) => bail!("the stream's reader is gone"),
        }
    }

    /// Waits for the next event of type `kind`, passing over others (they stay in `seen`).
    pub fn next_of(&mut self, kind: &str, timeout: Duration) -> Result<Value> {
        self.next_matching(timeout, |e| e["type"] == kind)
            .with_context(|| format!("waiting for a {kind} event"))
    }

    /// Waits for the next event `pred` accepts.
    pub fn next_matching(
        &mut self,
        timeout: Duration,
        pred: impl Fn(&Value) -> bool,
    ) -> Result<Value> {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                bail!("no such event within {timeout:?}; seen: {:?}", self.seen);
            }
            if let Some(event) = self.next_event(left)? {
                if pred(&event) {
                    return Ok(event);
                }
            }
        }
    }

    /// Waits until the stream ends; the text says how it ended.
    pub fn wait_end(&mut self, timeout: Duration) -> Result<String> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(why) = &self.ended {
                return Ok(why.clone());
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                bail!("the stream did not end within {timeout:?}");
            }
            let _ = self.next_event(left);
        }
    }

    /// Sends a call of this framework: `framework_id` is added to `call`, the stream id and
    /// JSON headers to the request.
    pub fn call(&self, mut call: Value) -> Result<Response> {
        call["framework_id"] = json!({ "value": self.framework_id });
        let headers = [
            JSON[0],
            JSON[1],
            ("Mesos-Stream-Id", self.stream_id.as_str()),
        ];
        post(&self.addr, &headers, &call.to_string())
    }

    /// Like [`Subscription::call`], failing unless the master answered 202.
    pub fn call_ok(&self, call: Value) -> Result<()> {
        let kind = call["type"].clone();
        let response = self.call(call)?;
        if response.status != 202 {
            bail!("{kind} answered {}: {}", response.status, response.body);
        }
        Ok(())
    }

    /// Closes the connection (the master sees the framework disconnect).
    pub fn close(&self) {
        let _ = self.socket.shutdown(Shutdown::Both);
    }
}

impl Drop for Subscription {
    fn drop(&mut self) {
        self.close();
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn reads_chunked_recordio() {
        // Two records split across chunks in awkward places.
        let body = b"5\r\n3\n{}\n\r\n5\r\n3\n[1]\r\n0\r\n\r\n";
        let mut records = RecordIo::new(Chunked::new(&body[..]));
        assert_eq!(records.next_record().unwrap().unwrap(), b"{}\n");
        assert_eq!(records.next_record().unwrap().unwrap(), b"[1]");
        assert!(records.next_record().unwrap().is_none());
        let mut bad = RecordIo::new(&b"x\n{}"[..]);
        assert!(bad.next_record().is_err());
        let mut cut = RecordIo::new(&b"10\n{}"[..]);
        assert!(cut.next_record().is_err());
    }
}

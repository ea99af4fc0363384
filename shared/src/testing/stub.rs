//! The loopback HTTP server under the AWS stubs ([`super::converse`], [`super::kms`],
//! [`super::eventbridge`]): it accepts connections, reads one request from each (its head and
//! JSON body), and writes the reply the stub's handler makes for it, then closes the
//! connection. Each connection is served in a task of its own.

use std::future::Future;

use anyhow::Result;
use serde_json::Value;
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::{TcpListener, TcpStream},
};

/// One request as a stub sees it.
pub struct Request {
    head: String,
    /// The request line's path.
    pub path: String,
    /// The body as JSON (`Null` when it is not JSON).
    pub body: Value,
}

impl Request {
    /// The header `name` (any case), trimmed.
    pub fn header(&self, name: &str) -> Option<String> {
        self.head.lines().find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case(name).then(|| v.trim().to_string())
        })
    }
}

/// One reply: status, content type, an `x-amzn-errortype` when set, and the body.
pub struct Reply {
    pub status: u16,
    pub content_type: &'static str,
    pub error_type: Option<String>,
    pub payload: String,
}

/// Serves `handler` on a loopback port; answers the server's `http://127.0.0.1:port`. The
/// server runs until the test's runtime ends.
pub async fn serve<H, F>(handler: H) -> Result<String>
where
    H: Fn(Request) -> F + Send + Sync + 'static,
    F: Future<Output = Reply> + Send + 'static,
{
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("http://{}", listener.local_addr()?);
    let handler = std::sync::Arc::new(handler);
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            let handler = std::sync::Arc::clone(&handler);
            tokio::spawn(async move {
                let Some(request) = read_request(&mut socket).await else {
                    return;
                };
                let reply = handler(request).await;
                write_reply(&mut socket, reply).await;
            });
        }
    });
    Ok(url)
}

async fn write_reply(socket: &mut TcpStream, reply: Reply) {
    let mut head = format!(
        "HTTP/1.1 {} X\r\ncontent-type: {}\r\ncontent-length: {}\r\nconnection: close\r\nx-amzn-requestid: stub\r\n",
        reply.status,
        reply.content_type,
        reply.payload.len()
    );
    if let Some(t) = reply.error_type {
        head.push_str(&format!("x-amzn-errortype: {t}\r\n"));
    }
    head.push_str("\r\n");
    let _ = socket.write_all(head.as_bytes()).await;
    let _ = socket.write_all(reply.payload.as_bytes()).await;
    let _ = socket.shutdown().await;
}

async fn read_request(socket: &mut TcpStream) -> Option<Request> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 8192];
    let header_end = loop {
        let n = socket.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
    };
    let head = String::from_utf8_lossy(&buf[..header_end]).to_string();
    let path = head.split_whitespace().nth(1)?.to_string();
    let mut request = Request {
        head,
        path,
        body: Value::Null,
    };
    let length: usize = request
        .header("content-length")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    while buf.len() < header_end + length {
        let n = socket.read(&mut chunk).await.ok()?;
        if n == 0 {
            break;
        }
        buf.extend_from_slice(&chunk[..n]);
    }
    request.body = serde_json::from_slice(&buf[header_end..]).unwrap_or(Value::Null);
    Some(request)
}

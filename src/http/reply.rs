//! HTTP replies: status, content type and a body in memory or streamed from a file.
//!
//! Layer: driver. Files are streamed in 64 KiB chunks read off the executor
//! (`smol::unblock` with positional reads), never loaded whole.

use picoserve::io::Write;
use serde::Serialize;
use std::fs::File;
use std::os::unix::fs::FileExt;
use std::sync::Arc;

const CHUNK: usize = 64 * 1024;

/// A response body.
pub enum Body {
    Bytes(Vec<u8>),
    File { file: Arc<File>, len: u64 },
}

/// A response before it is written.
pub struct Reply {
    pub status: u16,
    pub content_type: &'static str,
    pub body: Body,
    /// `WWW-Authenticate` for 401s, `Allow` for 405s.
    pub header: Option<(&'static str, String)>,
}

impl Reply {
    pub fn bytes(status: u16, content_type: &'static str, body: Vec<u8>) -> Reply {
        Reply {
            status,
            content_type,
            body: Body::Bytes(body),
            header: None,
        }
    }

    pub fn text(status: u16, body: impl Into<String>) -> Reply {
        Reply::bytes(
            status,
            "text/plain; charset=utf-8",
            body.into().into_bytes(),
        )
    }

    pub fn json<T: Serialize + ?Sized>(status: u16, v: &T) -> Reply {
        match serde_json::to_vec_pretty(v) {
            Ok(mut b) => {
                b.push(b'\n');
                Reply::bytes(status, "application/json", b)
            }
            Err(e) => Reply::error(500, None, &format!("cannot encode JSON: {e}")),
        }
    }

    /// `{"error": message, "field": field}`.
    pub fn error(status: u16, field: Option<&str>, message: &str) -> Reply {
        let v = match field {
            Some(f) => serde_json::json!({"status": status, "error": message, "field": f}),
            None => serde_json::json!({"status": status, "error": message}),
        };
        let mut b = serde_json::to_vec(&v).unwrap_or_default();
        b.push(b'\n');
        Reply::bytes(status, "application/json", b)
    }

    pub fn no_content() -> Reply {
        Reply::bytes(204, "application/json", Vec::new())
    }

    pub fn with_header(mut self, name: &'static str, value: String) -> Reply {
        self.header = Some((name, value));
        self
    }
}

/// picoserve content for a [`Body`].
pub struct Content {
    pub content_type: &'static str,
    pub body: Body,
}

impl picoserve::response::Content for Content {
    fn content_type(&self) -> &'static str {
        self.content_type
    }

    fn content_length(&self) -> usize {
        match &self.body {
            Body::Bytes(b) => b.len(),
            Body::File { len, .. } => usize::try_from(*len).unwrap_or(usize::MAX),
        }
    }

    async fn write_content<W: Write>(self, mut writer: W) -> Result<(), W::Error> {
        match self.body {
            Body::Bytes(b) => writer.write_all(&b).await,
            Body::File { file, len } => {
                let mut offset = 0u64;
                let mut buf = vec![0u8; CHUNK];
                while offset < len {
                    let want = usize::try_from((len - offset).min(CHUNK as u64)).unwrap_or(CHUNK);
                    let f = file.clone();
                    let (res, back) = smol::unblock(move || {
                        let mut b = buf;
                        let n = b.get_mut(..want).map(|s| f.read_at(s, offset));
                        (n, b)
                    })
                    .await;
                    buf = back;
                    let n = match res {
                        Some(Ok(n)) if n > 0 => n,
                        // The file shrank or failed under us: the promised
                        // length cannot be met; pad so the framing stays valid.
                        other => {
                            log::warn!("file read failed at offset {offset}: {other:?}");
                            buf.fill(0);
                            want
                        }
                    };
                    writer.write_all(buf.get(..n).unwrap_or_default()).await?;
                    offset += n as u64;
                }
                Ok(())
            }
        }
    }
}

//! The reason phrase of a response's status line.
//!
//! Layer: driver (pure). RFC 9112 §4: `status-line = HTTP-version SP
//! status-code SP [ reason-phrase ]`; RFC 9110 §15 names each status code.
//! The phrase is optional, but some clients read it (or need one), and a
//! log or capture reads better with it. picoserve writes the status line
//! as `HTTP/1.1 <code> \r\n`, with no phrase and no way to give one (its
//! `StatusCode` is a number); so the connection's socket (`super::conn`)
//! completes that line as it is written, with [`completed`]. Every
//! response passes there, picoserve's own (a 400 for a head it cannot
//! parse) included.

/// The RFC 9110 §15 reason phrase of `code`, for the codes it defines.
pub(super) fn phrase(code: u16) -> Option<&'static str> {
    Some(match code {
        100 => "Continue",
        101 => "Switching Protocols",
        200 => "OK",
        201 => "Created",
        202 => "Accepted",
        203 => "Non-Authoritative Information",
        204 => "No Content",
        205 => "Reset Content",
        206 => "Partial Content",
        300 => "Multiple Choices",
        301 => "Moved Permanently",
        302 => "Found",
        303 => "See Other",
        304 => "Not Modified",
        305 => "Use Proxy",
        307 => "Temporary Redirect",
        308 => "Permanent Redirect",
        400 => "Bad Request",
        401 => "Unauthorized",
        402 => "Payment Required",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        406 => "Not Acceptable",
        407 => "Proxy Authentication Required",
        408 => "Request Timeout",
        409 => "Conflict",
        410 => "Gone",
        411 => "Length Required",
        412 => "Precondition Failed",
        413 => "Content Too Large",
        414 => "URI Too Long",
        415 => "Unsupported Media Type",
        416 => "Range Not Satisfiable",
        417 => "Expectation Failed",
        421 => "Misdirected Request",
        422 => "Unprocessable Content",
        426 => "Upgrade Required",
        500 => "Internal Server Error",
        501 => "Not Implemented",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        505 => "HTTP Version Not Supported",
        _ => return None,
    })
}

/// picoserve's status line: `HTTP/1.1 `, three digits, ` \r\n`.
const PREFIX: &[u8] = b"HTTP/1.1 ";
const SUFFIX: &[u8] = b" \r\n";

/// If `written` (the bytes of one formatted write) is exactly a status
/// line without a phrase, the phrase to put before its `\r\n`. Nothing
/// else picoserve formats starts with `HTTP/1.1 ` (header lines start with
/// their name; bodies are written raw, not formatted).
pub(super) fn completed(written: &[u8]) -> Option<&'static str> {
    let code = written.strip_prefix(PREFIX)?.strip_suffix(SUFFIX)?;
    match code {
        [a, b, c] if code.iter().all(u8::is_ascii_digit) => {
            let n = |d: &u8| u16::from(d - b'0');
            phrase(n(a) * 100 + n(b) * 10 + n(c))
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn phrases_of_the_statuses_gopxe_sends() {
        for (code, text) in [
            (200, "OK"),
            (201, "Created"),
            (204, "No Content"),
            (303, "See Other"),
            (400, "Bad Request"),
            (401, "Unauthorized"),
            (403, "Forbidden"),
            (404, "Not Found"),
            (405, "Method Not Allowed"),
            (409, "Conflict"),
            (413, "Content Too Large"),
            (415, "Unsupported Media Type"),
            (421, "Misdirected Request"),
            (422, "Unprocessable Content"),
            (500, "Internal Server Error"),
            (501, "Not Implemented"),
        ] {
            assert_eq!(phrase(code), Some(text), "{code}");
        }
        assert_eq!(phrase(299), None);
        assert_eq!(phrase(0), None);
    }

    #[test]
    fn only_a_bare_status_line_is_completed() {
        assert_eq!(completed(b"HTTP/1.1 200 \r\n"), Some("OK"));
        assert_eq!(completed(b"HTTP/1.1 404 \r\n"), Some("Not Found"));
        assert_eq!(completed(b"HTTP/1.1 299 \r\n"), None, "no phrase known");
        assert_eq!(completed(b"HTTP/1.1 200 OK\r\n"), None, "has one");
        assert_eq!(completed(b"HTTP/1.1 2000 \r\n"), None);
        assert_eq!(completed(b"HTTP/1.1 2x0 \r\n"), None);
        assert_eq!(completed(b"HTTP/1.1 200 \r\nContent-Length: 0\r\n"), None);
        assert_eq!(completed(b"Content-Type: text/plain\r\n"), None);
        assert_eq!(completed(b"HTTP/1.0 200 \r\n"), None);
        assert_eq!(completed(b""), None);
    }
}

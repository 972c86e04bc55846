//! What a deployment's handler sees and returns: a request (method, path, query parameters,
//! headers, body) and a response (status, content type, body).

use axum::http::{HeaderMap, HeaderValue, header};
use bytes::Bytes;
use serde::Serialize;
use serde::de::DeserializeOwned;

/// An HTTP request as a handler sees it (Starlette's `Request` in Ray Serve).
#[derive(Debug, Clone, Default)]
pub struct Request {
    /// `GET`, `POST`, ...
    pub method: String,
    /// The path, route prefix included (`/model/generate`).
    pub path: String,
    /// The query parameters in order, decoded.
    pub query: Vec<(String, String)>,
    /// The headers (names match in any case), as received: no copy is made per request.
    pub headers: HeaderMap,
    /// The body as sent.
    pub body: Bytes,
}

impl Request {
    /// A `GET` of `path_and_query` (`/model?query=hi`), for calls through a handle.
    pub fn get(path_and_query: &str) -> Request {
        let (path, query) = match path_and_query.split_once('?') {
            Some((p, q)) => (p, q),
            None => (path_and_query, ""),
        };
        Request {
            method: "GET".into(),
            path: path.into(),
            query: parse_query(query),
            ..Request::default()
        }
    }

    /// A `POST` of `value` as JSON to `path`, for calls through a handle.
    pub fn post_json(path: &str, value: &impl Serialize) -> Request {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        Request {
            method: "POST".into(),
            path: path.into(),
            headers,
            body: Bytes::from(serde_json::to_vec(value).unwrap_or_default()),
            ..Request::default()
        }
    }

    /// The first query parameter named `name`.
    pub fn query_param(&self, name: &str) -> Option<&str> {
        self.query
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// The first header named `name` (any case), if its value is text.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name)?.to_str().ok()
    }

    /// The body parsed as JSON.
    pub fn json<T: DeserializeOwned>(&self) -> Result<T, serde_json::Error> {
        serde_json::from_slice(&self.body)
    }

    /// The body as UTF-8 text.
    pub fn text(&self) -> Result<&str, std::str::Utf8Error> {
        std::str::from_utf8(&self.body)
    }
}

/// Decoded `key=value` pairs of a query string.
pub(crate) fn parse_query(q: &str) -> Vec<(String, String)> {
    form_urlencoded::parse(q.as_bytes())
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect()
}

/// An HTTP response: status, content type and body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    /// The status code (200 unless set).
    pub status: u16,
    /// The `content-type` header.
    pub content_type: String,
    /// The body.
    pub body: Bytes,
}

impl Response {
    /// `value` as JSON, status 200.
    pub fn json(value: &impl Serialize) -> Response {
        match serde_json::to_vec(value) {
            Ok(body) => Response {
                status: 200,
                content_type: "application/json".into(),
                body: Bytes::from(body),
            },
            Err(e) => Response::error(500, &format!("the response is not JSON: {e}")),
        }
    }

    /// Plain text, status 200.
    pub fn text(s: impl Into<String>) -> Response {
        Response {
            status: 200,
            content_type: "text/plain; charset=utf-8".into(),
            body: Bytes::from(s.into()),
        }
    }

    /// Bytes of a content type, status 200.
    pub fn bytes(body: impl Into<Bytes>, content_type: &str) -> Response {
        Response {
            status: 200,
            content_type: content_type.into(),
            body: body.into(),
        }
    }

    /// `{"error": message}` with this status.
    pub fn error(status: u16, message: &str) -> Response {
        Response::json(&serde_json::json!({ "error": message })).with_status(status)
    }

    /// The same response with another status.
    pub fn with_status(mut self, status: u16) -> Response {
        self.status = status;
        self
    }

    /// The body parsed as JSON.
    pub fn json_body<T: DeserializeOwned>(&self) -> Result<T, serde_json::Error> {
        serde_json::from_slice(&self.body)
    }
}

//! The single unauthenticated tenant listens on loopback only, but a web page in the user's
//! browser can reach loopback too. Browsers always name the page's origin (`Origin`) on
//! cross-origin requests, and a page that rebinds its own DNS name to 127.0.0.1 still sends
//! that name as `Host`; programs (curl, SDKs) send neither a foreign `Origin` nor a foreign
//! `Host`. So without authentication every request must come with no `Origin` and a loopback
//! `Host`. (Non-JSON bodies are refused everywhere: see `body.rs`.)

use axum::extract::Request;
use axum::http::header;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::error::ApiError;

/// Whether `host` (a `Host` header: name or address, optional port) names this machine.
fn is_loopback_host(host: &str) -> bool {
    let name = match host.strip_prefix('[') {
        // [::1]:8080
        Some(rest) => rest.split(']').next().unwrap_or(""),
        None => host.rsplit_once(':').map_or(host, |(name, _port)| name),
    };
    name.eq_ignore_ascii_case("localhost")
        || name
            .parse::<std::net::IpAddr>()
            .is_ok_and(|address| address.is_loopback())
}

/// Refuse browser-borne requests (403) when no key protects the server.
pub async fn only_from_this_machine(request: Request, next: Next) -> Response {
    let headers = request.headers();
    if headers.contains_key(header::ORIGIN) {
        return ApiError::forbidden(
            "forbidden-origin",
            "requests from web pages are refused without authentication (an Origin header was sent)",
        )
        .into_response();
    }
    let host = headers
        .get(header::HOST)
        .map(|value| value.to_str().unwrap_or(""));
    if host.is_some_and(|host| !is_loopback_host(host)) {
        return ApiError::forbidden(
            "forbidden-host",
            "without authentication only localhost, 127.0.0.0/8 and [::1] may be named as Host",
        )
        .into_response();
    }
    next.run(request).await
}

#[cfg(test)]
mod tests {
    use super::is_loopback_host;

    #[test]
    fn only_names_of_this_machine_pass() {
        for host in [
            "localhost",
            "LOCALHOST:8080",
            "127.0.0.1",
            "127.0.0.1:9",
            "127.8.9.10:80",
            "[::1]:8080",
            "[::1]",
        ] {
            assert!(is_loopback_host(host), "{host}");
        }
        for host in [
            "evil.example",
            "evil.example:8080",
            "localhost.evil.example",
            "10.0.0.1:80",
            "[::2]:80",
            "",
            "127.0.0.1.nip.io",
        ] {
            assert!(!is_loopback_host(host), "{host}");
        }
    }
}

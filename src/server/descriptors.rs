//! Descriptors: the process's limit against what the server needs of it. At start the soft
//! limit is raised to the hard one (as Go's runtime does), then the connection cap is checked
//! against what the limit leaves after the stores and the server's own needs: a cap the limit
//! cannot hold is lowered, with a warning that says how to keep it, so accepting never fails
//! for want of descriptors (when it did, `/healthz` went silent).

use rustix::process::{getrlimit, setrlimit, Resource, Rlimit};

/// Descriptors the server needs besides connections and stores: the listener, the runtime's
/// poller and wakers, the log writer, component files, index snapshots.
const SERVER_OWN: u64 = 64;

/// Descriptors one tenant's store holds at rest (SQLite: a connection's file, WAL and shared
/// memory, and the change watch's; PostgreSQL: fewer).
pub const PER_TENANT_AT_REST: u64 = 5;

/// Connections kept back for `/healthz`, `/readyz` and `/metrics` once the cap is reached.
pub const OPS_RESERVE: usize = 8;

/// The fewest client connections a server is worth starting with.
const MIN_CONNECTIONS: u64 = 16;

/// The descriptor limit, after raising the soft limit to the hard one where it is lower.
pub fn raise_limit() -> Option<u64> {
    let limit = getrlimit(Resource::Nofile);
    if let (Some(current), Some(maximum)) = (limit.current, limit.maximum) {
        if current < maximum {
            let raised = Rlimit {
                current: Some(maximum),
                maximum: Some(maximum),
            };
            if setrlimit(Resource::Nofile, raised).is_ok() {
                tracing::info!(
                    from = current,
                    to = maximum,
                    "raised the descriptor limit to its hard limit"
                );
            }
        }
    }
    getrlimit(Resource::Nofile).current
}

/// The connection cap this limit can hold for `tenants` stores: `wanted`, or less (with a
/// warning); refused when not even [`MIN_CONNECTIONS`] fit.
pub fn connection_cap(wanted: usize, tenants: usize, limit: Option<u64>) -> Result<usize, String> {
    let Some(limit) = limit else {
        return Ok(wanted);
    };
    let stores = tenants as u64 * PER_TENANT_AT_REST;
    let kept = stores + SERVER_OWN + OPS_RESERVE as u64;
    let left = limit.saturating_sub(kept);
    if left < MIN_CONNECTIONS {
        return Err(format!(
            "the descriptor limit ({limit}) cannot hold {tenants} tenants' stores ({PER_TENANT_AT_REST} each at rest), {} for the server and {MIN_CONNECTIONS} connections: raise it (ulimit -n, or LimitNOFILE= for systemd) to at least {}",
            SERVER_OWN + OPS_RESERVE as u64,
            kept + MIN_CONNECTIONS
        ));
    }
    if wanted as u64 > left {
        tracing::warn!(
            max_connections = wanted,
            lowered_to = left,
            descriptor_limit = limit,
            tenants,
            "--max-connections is above what the descriptor limit leaves after the stores; the cap is lowered (raise the limit with ulimit -n or LimitNOFILE= to keep it)"
        );
        return Ok(left as usize);
    }
    Ok(wanted)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cap_is_kept_lowered_or_refused_by_what_the_limit_leaves() {
        assert_eq!(connection_cap(1024, 10, Some(20_000)), Ok(1024));
        assert_eq!(connection_cap(1024, 10, Some(1024)), Ok(1024 - 50 - 64 - 8));
        assert_eq!(connection_cap(1024, 3, None), Ok(1024));
        let refused = connection_cap(1024, 2_000, Some(1024)).unwrap_err();
        assert!(
            refused.contains("raise it") && refused.contains("10088"),
            "{refused}"
        );
    }
}

//! Descriptors: the process's limit against what the server needs of it. At start the soft
//! limit is raised to the hard one (as Go's runtime does), then split between connections and
//! open tenants' stores, after the server's own needs: a cap the limit cannot hold is lowered,
//! with a warning that says how to keep it, so accepting never fails for want of descriptors
//! (when it did, `/healthz` went silent), and the tenant count does not enter into it.

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

/// How the descriptor limit is shared.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Split {
    /// Client connections at most.
    pub connections: usize,
    /// Tenants open at once at most.
    pub open_tenants: usize,
    /// Descriptors the open tenants' stores may hold in all: what the connections leave, so
    /// a tenant under load (more connections than at rest) is charged what it holds.
    pub tenant_descriptors: usize,
}

/// The connection cap and the open-tenant cap this limit can hold: `wanted`'s, or less
/// (with a warning). Open tenants get at most half of what the server's own needs leave, so
/// neither can starve the other; refused when not even [`MIN_CONNECTIONS`] connections and
/// one open tenant fit.
pub fn split(
    wanted_connections: usize,
    wanted_open: usize,
    limit: Option<u64>,
) -> Result<Split, String> {
    let Some(limit) = limit else {
        return Ok(Split {
            connections: wanted_connections,
            open_tenants: wanted_open,
            tenant_descriptors: usize::MAX,
        });
    };
    let kept = SERVER_OWN + OPS_RESERVE as u64;
    let left = limit.saturating_sub(kept);
    let open = (left / 2 / PER_TENANT_AT_REST).min(wanted_open as u64);
    let connections = left.saturating_sub(open * PER_TENANT_AT_REST);
    if open == 0 || connections < MIN_CONNECTIONS {
        return Err(format!(
            "the descriptor limit ({limit}) cannot hold {MIN_CONNECTIONS} connections and one open tenant ({PER_TENANT_AT_REST} descriptors) beside the server's own {kept}: raise it (ulimit -n, or LimitNOFILE= for systemd) to at least {}",
            kept + MIN_CONNECTIONS + 2 * PER_TENANT_AT_REST
        ));
    }
    if (open as usize) < wanted_open {
        tracing::warn!(
            max_open_tenants = wanted_open,
            lowered_to = open,
            descriptor_limit = limit,
            "--max-open-tenants is above what the descriptor limit holds; tenants past it are closed to make room (raise the limit with ulimit -n or LimitNOFILE= to keep more open)"
        );
    }
    let connections = if wanted_connections as u64 > connections {
        tracing::warn!(
            max_connections = wanted_connections,
            lowered_to = connections,
            descriptor_limit = limit,
            "--max-connections is above what the descriptor limit leaves after the open tenants; the cap is lowered (raise the limit with ulimit -n or LimitNOFILE= to keep it)"
        );
        connections
    } else {
        wanted_connections as u64
    };
    Ok(Split {
        connections: connections as usize,
        open_tenants: open as usize,
        tenant_descriptors: left.saturating_sub(connections) as usize,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connections_and_open_tenants_share_the_limit_whatever_the_tenant_count() {
        let split_of = |connections, open_tenants, tenant_descriptors| Split {
            connections,
            open_tenants,
            tenant_descriptors,
        };
        // What the connections leave is the tenants' to hold, however busy.
        assert_eq!(
            split(1024, 256, Some(20_000)),
            Ok(split_of(1024, 256, 20_000 - 72 - 1024))
        );
        // 1,024: 72 for the server, at most half the rest (476) to open tenants (95 x 5).
        assert_eq!(
            split(1024, 256, Some(1024)),
            Ok(split_of(1024 - 72 - 475, 95, 475))
        );
        assert_eq!(split(1024, 3, None), Ok(split_of(1024, 3, usize::MAX)));
        let refused = split(1024, 256, Some(90)).unwrap_err();
        assert!(
            refused.contains("raise it") && refused.contains("98"),
            "{refused}"
        );
    }
}

//! One way to send commands: to a single server, or through a Redis Cluster to the master of
//! the one hash slot that holds all of `jobs`' keys (see `docs/cluster.md`).

use redis::aio::{ConnectionLike, ConnectionManager, MultiplexedConnection};
use redis::cluster_async::ClusterConnection;
use redis::cluster_routing::{Route, RoutingInfo, SingleNodeRoutingInfo};
use redis::{Cmd, Pipeline, RedisFuture, Value};

/// A connection that commands and pipelines are sent on.
#[derive(Clone)]
pub(crate) enum Link {
    /// The shared, self-reconnecting connection to one server.
    Shared(ConnectionManager),
    /// A connection of its own to one server (blocking commands, the liveness thread).
    Own(MultiplexedConnection),
    /// A cluster connection, every command and pipeline routed to `route`: the master of the
    /// slot of `jobs`' hash tag. Keyless commands (`PING`, `INFO`, `SCAN`, `SCRIPT LOAD`,
    /// `CLIENT`, `WAIT`) thus reach the node that holds the keys, and a pipeline is one
    /// round trip to it.
    Cluster {
        /// The redis crate's cluster connection: it follows `MOVED` and refreshes its slot map
        /// after a failover.
        connection: ClusterConnection,
        /// Where every command goes.
        route: Route,
    },
}

impl Link {
    /// Where a routed command goes.
    fn routing(route: Route) -> SingleNodeRoutingInfo {
        SingleNodeRoutingInfo::SpecificNode(route)
    }
}

impl ConnectionLike for Link {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            Self::Shared(connection) => connection.req_packed_command(cmd),
            Self::Own(connection) => connection.req_packed_command(cmd),
            Self::Cluster { connection, route } => {
                let routing = RoutingInfo::SingleNode(Self::routing(*route));
                Box::pin(connection.route_command(cmd.clone(), routing))
            }
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match self {
            Self::Shared(connection) => connection.req_packed_commands(pipeline, offset, count),
            Self::Own(connection) => connection.req_packed_commands(pipeline, offset, count),
            Self::Cluster { connection, route } => Box::pin(connection.route_pipeline(
                pipeline.clone(),
                offset,
                count,
                Self::routing(*route),
            )),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Self::Shared(connection) => connection.get_db(),
            Self::Own(connection) => connection.get_db(),
            Self::Cluster { .. } => 0,
        }
    }
}

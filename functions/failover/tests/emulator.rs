//! failover's emulator suite (`suite/failover.rs`) with the routing backend of health checks (the
//! default).

const BACKEND: shared::topology::RoutingBackend = shared::topology::RoutingBackend::HealthCheck;

/// No tests of this backend's own beyond the suite.
macro_rules! backend_tests {
    () => {};
}

#[path = "suite/failover.rs"]
mod suite;

//! failover's emulator suite (`suite/failover.rs`) with the routing backend of ARC routing
//! controls, and the behaviours only that backend has (`suite/arc.rs`).

const BACKEND: shared::topology::RoutingBackend = shared::topology::RoutingBackend::Arc;

/// The backend's own tests, as a child of the suite (they use its `World`).
macro_rules! backend_tests {
    () => {
        #[path = "arc.rs"]
        mod arc;
    };
}

#[path = "suite/failover.rs"]
mod suite;

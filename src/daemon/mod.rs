//! Daemon mode: WSGI applications in process groups of their own (`WSGIDaemonProcess`).
//!
//! ```text
//! Apache parent (no Python) --fork at start/restart--> monitor (monitor.rs, no Python)
//!     --fork+exec--> workers: `pythonX.Y -m modpy.daemon` (pylib/modpy/daemon.py)
//! Apache child thread --UNIX socket, protocol.rs frames--> worker thread (client.rs)
//! ```
//! The parent binds each group's socket once and keeps it across restarts (runtime.rs), so a
//! connection is queued, never refused, while workers or the monitor are being replaced.

pub mod client;
pub mod config;
pub mod monitor;
pub mod protocol;
pub mod runtime;

pub use runtime::register_hooks;

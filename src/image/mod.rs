//! Image stage: connect to the Docker Engine and build the app image from a streamed context, with
//! BuildKit where the daemon has it and the classic builder otherwise.
//!
//! The action runs in a container beside the host's daemon (its socket is mounted), so the
//! context always travels as a tar over the API; no host path is ever handed to the daemon.

mod build;
mod builder;
mod buildkit;
mod context;
pub mod dockerfile;
pub mod dockerignore;
mod progress;
pub mod secrets;

pub use build::{BuildRequest, BuiltImage, build};

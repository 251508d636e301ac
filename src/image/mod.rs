//! Image stage: connect to the Docker Engine and build the app image from a streamed context, with
//! BuildKit where the daemon has it and the classic builder otherwise.
//!
//! The action runs in a container beside the host's daemon (its socket is mounted), so the
//! context always travels over the API (a tar for the classic builder, a build session's file sync for
//! BuildKit); no host path is ever handed to the daemon.

mod build;
mod builder;
mod buildkit;
mod conn;
mod context;
pub mod dockerfile;
pub mod dockerignore;
mod filesync;
mod progress;
pub mod secrets;
mod session;

pub use build::{BuildRequest, BuiltImage, build};

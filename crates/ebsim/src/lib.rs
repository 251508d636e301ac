//! ebsim: a local AWS Elastic Beanstalk emulator that really deploys Docker images.
//!
//! It speaks the Query protocol of Elastic Beanstalk on one port, with a JSON admin API under
//! `/_ebsim/` for fault injection and inspection, and runs each environment's application as a
//! container behind a loopback "load balancer".

pub mod admin;
pub mod bundle;
pub mod cname_proxy;
pub mod config;
pub mod deploy;
pub mod docker;
pub mod faults;
pub mod ids;
pub mod logs;
pub mod ops;
pub mod options;
pub mod protocol;
pub mod proxy;
pub mod registry;
pub mod render;
pub mod rng;
pub mod server;
pub mod state;
pub mod store;
pub mod tags;

pub use config::{Config, Timing};
pub use state::Sim;

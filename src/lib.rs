//! eb-deploy: build a Docker image, push it to Amazon ECR, and deploy it to AWS Elastic Beanstalk,
//! waiting until the environment has truly settled. The binary wires these stages together.
//!
//! The data flows one way: leaves ([`format`], [`names`], [`options`], [`dockerrun`], [`docker`], `sdk`,
//! [`gha`], `beanstalk::model`, [`build_plan`]) → [`inputs`] → [`config`] → stages ([`image`], [`registry`],
//! `bundle`, `beanstalk`, [`verdict`], `logs`, [`journal`], `wait`, [`check`]) → [`report`] → [`aws`] →
//! [`engine`] → `main`. The order is docs/architecture.md's table, and tests/architecture.rs holds the code to it.

pub mod aws;
pub(crate) mod beanstalk;
pub mod build_plan;
pub(crate) mod bundle;
pub mod check;
pub mod config;
pub mod docker;
pub mod dockerrun;
pub mod engine;
pub mod format;
pub mod gha;
pub mod image;
pub mod inputs;
pub mod journal;
pub(crate) mod logs;
pub mod names;
pub mod options;
pub mod registry;
pub mod report;
pub(crate) mod sdk;
pub mod verdict;
pub(crate) mod wait;

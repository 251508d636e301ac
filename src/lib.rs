//! eb-deploy: build a Docker image, push it to Amazon ECR, and deploy it to AWS Elastic Beanstalk,
//! waiting until the environment has truly settled. The binary wires these stages together.
//!
//! The data flows one way: leaves ([`format`], [`names`], [`options`], [`dockerrun`], [`docker`], [`gha`],
//! `sdk`, `beanstalk::model`) → [`inputs`] → [`config`] → stages ([`image`], [`registry`], `bundle`, `beanstalk`,
//! `verdict`, `wait`) → [`engine`] → [`report`] → `main`. See docs/architecture.md.

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

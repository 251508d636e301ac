//! eb-deploy: build a Docker image, push it to Amazon ECR, and deploy it to AWS Elastic Beanstalk,
//! waiting until the environment has truly settled. The binary wires these stages together.

pub mod aws;
pub mod beanstalk;
pub mod bundle;
pub mod config;
pub mod deploy;
pub mod gha;
pub mod image;
pub mod inputs;
pub mod registry;
pub mod report;
#[cfg(test)]
mod testing;
pub mod wait;

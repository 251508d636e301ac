//! eb-deploy: build a Docker image, push it to Amazon ECR, and deploy it to AWS Elastic Beanstalk,
//! waiting until the environment has truly settled. The binary wires these stages together.

pub mod beanstalk;
pub mod bundle;
pub mod config;
pub mod gha;
pub mod inputs;
pub mod wait;

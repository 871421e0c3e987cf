//! provision: converge servers from an inventory and roles in one SSH round trip per host.
//!
//! The pipeline, one module per stage:
//! [`inventory`] → [`vars`] → [`roles`] → [`resources`] (via [`modules`] and [`template`])
//! → [`probe`] (reads [`facts`]) → [`planner`] (makes the [`plan`]) → [`apply`] → [`report`].
//! [`transport`] carries scripts to hosts; [`ops`] chains the stages for each command;
//! [`cli`] parses arguments.

pub mod actions;
pub mod apply;
pub mod cli;
pub mod dbcopy;
pub mod error;
pub mod facts;
pub mod flags;
pub mod inventory;
pub mod modules;
pub mod ops;
pub mod plan;
pub mod planner;
pub mod probe;
pub mod release;
pub mod release_scripts;
pub mod report;
pub mod resources;
pub mod roles;
pub mod secrets;
pub mod shell;
pub mod template;
pub mod terminal;
pub mod transport;
pub mod vars;
pub mod yaml;

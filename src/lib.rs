//! provision: converge servers from an inventory and roles in one SSH round trip per host.
//!
//! The pipeline, one module per stage:
//! [`inventory`] → [`vars`] → [`roles`] → [`resources`] (via [`modules`] and [`template`])
//! → [`probe`] (reads [`facts`]) → [`planner`] (makes the [`plan`]) → [`apply`] → [`report`].
//! [`transport`] carries scripts to hosts; [`project`] loads a project for every verb,
//! [`runner`] works on hosts in parallel; [`ops`] chains the stages for each verb and
//! returns its report, which [`report`] renders; [`cli`] parses arguments, one file a verb.
//! The release's parts: [`release_hosts`] (settings), [`artifact`], [`deploy_lock`],
//! [`release_scripts`], [`release_rails`] (bundle, default migration), [`assets`] (built on the controller).

pub mod actions;
pub mod artifact;
pub mod assets;
pub mod apply;
pub mod cli;
pub mod context;
pub mod deploy_lock;
pub mod error;
pub mod facts;
pub mod flags;
pub mod grammar;
pub mod host_facts;
pub mod inventory;
pub mod live;
pub mod modules;
pub mod ops;
pub mod plan;
pub mod planner;
pub mod probe;
pub mod project;
pub mod release_hosts;
pub mod release_rails;
pub mod release_scripts;
pub mod report;
pub mod resources;
pub mod roles;
pub mod runner;
pub mod secrets;
pub mod shell;
pub mod ssh_persist;
pub mod template;
pub mod template_topology;
pub mod template_unit;
pub mod terminal;
pub mod transport;
pub mod vars;
pub mod yaml;

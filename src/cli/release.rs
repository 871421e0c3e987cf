//! `provision release`: ship the app, health-checked before it takes traffic.

use crate::artifact::Source;
use crate::flags::Hosts;
use crate::ops::{self, ReleaseOptions};
use crate::release_hosts::Batch;
use std::path::PathBuf;

pub const HELP: &str = "Examples:
  provision release inventories/staging.yml --dir ../flipper
      pack a directory and release it (a Rails app's assets are precompiled first, in a copy)
  provision release --artifact build/flipper-1a2b3c.tar.gz --revision 1a2b3c
  provision release inventories/staging.yml --dir . --limit app1

Steps: assets built on the controller in a copy of --dir (release_assets: auto, off or a
command); deploy lock; upload once per host (by sha256) and unpack to releases/TIMESTAMP;
shared links (linked_files, linked_dirs); bundle (release_bundle, default `bundle install
--local`, skipped where Gemfile.lock is unchanged) on puma and sidekiq hosts; migrations
(release_migrate, default `bin/rails db:migrate` if the release has bin/rails) on the primary
host only; the health gate (on every puma host the new release answers beside the running one, on a
loopback port, before it takes traffic: a failure switches nothing); switch `current`
(all at once, or --batch N at a time); restart (puma phased restart or start, sidekiq
quieted before and restarted after, faye restarted); GET /up on every puma host; on
failure every switched host goes back to its previous release and the exit status is 1;
revisions.log; keep the last keep_releases (default 5).

Exit status: 0 released, 1 failed (rolled back when the health check failed).";

#[derive(clap::Args, Debug, Clone)]
#[command(group(clap::ArgGroup::new("source").required(true).args(["dir", "artifact"])))]
pub struct ReleaseArgs {
    #[command(flatten)]
    pub hosts: Hosts,
    /// Pack this directory and release it (Rails assets are precompiled in a copy first; see release_assets)
    #[arg(long, value_name = "PATH")]
    pub dir: Option<PathBuf>,
    /// Release this .tar.gz
    #[arg(long, value_name = "FILE.tar.gz")]
    pub artifact: Option<PathBuf>,
    /// The revision recorded in REVISION and revisions.log [default: git HEAD of --dir, else the artifact's sha256]
    #[arg(long, value_name = "REV")]
    pub revision: Option<String>,
    /// Switch the puma hosts N (or N%) at a time, each batch healthy before the next [default: all at once]
    #[arg(long, value_name = "N|N%")]
    pub batch: Option<Batch>,
}

pub fn run(a: ReleaseArgs) -> i32 {
    let reporter = a.hosts.options.reporter();
    // clap's group makes one of them present.
    let source = match (a.dir, a.artifact) {
        (Some(d), _) => Source::Dir(d),
        (None, Some(f)) => Source::Artifact(f),
        (None, None) => Source::Dir(PathBuf::from(".")),
    };
    let opts = ReleaseOptions { selection: a.hosts.selection(), source, revision: a.revision, forks: a.hosts.options.forks, batch: a.batch };
    reporter.conclude("release", super::block_on(ops::release(&opts, &reporter)).and_then(|r| r))
}

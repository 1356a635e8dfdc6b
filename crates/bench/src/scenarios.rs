//! The scenarios beyond the queue path, one module each, run in turn on one more Azurite with
//! the test servers ([`Bench`]); each prints its own table and goal lines.

use crate::services::Bench;
use crate::{Plan, degraded, dispatch, idle, startup};

/// The scenarios beyond the queue path, on an Azurite of their own; false when one found a
/// command unanswered or undispatched.
pub async fn run(plan: &Plan, names: &[&str]) -> anyhow::Result<bool> {
    if !names.iter().any(|s| plan.runs(s)) {
        return Ok(true);
    }
    let started = std::time::Instant::now();
    let bin = crate::ingress::build_binaries()?;
    let mut bench = Bench::start(&bin).await?;
    eprintln!(
        "scenarios: started in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    let mut ok = true;
    for name in names {
        if !plan.runs(name) {
            continue;
        }
        let scenario = std::time::Instant::now();
        ok &= match *name {
            "dispatch" => dispatch::run(&mut bench, plan).await?,
            "idle" => idle::run(&mut bench, plan).await?,
            "startup" => startup::run(&mut bench, plan).await?,
            _ => degraded::run(&mut bench, plan).await?,
        };
        eprintln!("{name}: {:.1} s", scenario.elapsed().as_secs_f64());
    }
    eprintln!(
        "scenarios: done in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    bench.app.forget_queue();
    Ok(ok)
}

//! Renders advice and plans as text that reads in 100 columns. Pure: takes values, returns a String.
//! Does not decide anything (advice.rs does) and does not print (the binary does).

use std::fmt::Write as _;

use crate::advice::{Advice, CapacityPlan, Status, Workload, group};
use crate::host::PortSet;
use crate::profile::{Action, PlannedChange, Profile, ProfileValue, normalize};

const SETTING_WIDTH: usize = 32;
const CURRENT_WIDTH: usize = 26;
const NEEDED_WIDTH: usize = 26;

/// The `check` table: one block per setting (values, then `why:` and `fix:` lines), then a summary.
pub fn render_check(workload: &Workload, plan: &CapacityPlan, rows: &[Advice]) -> String {
    let mut out = String::new();
    let ends = if workload.loopback { "loopback connections (both ends on this host)" } else { "connections" };
    let _ = writeln!(out, "ringline-tune check: {} {ends}\n", group(workload.connections));
    let needed_header = format!("NEEDED FOR {}", group(workload.connections));
    let _ = writeln!(
        out,
        "{:<SETTING_WIDTH$} {:<CURRENT_WIDTH$} {:<NEEDED_WIDTH$} STATUS",
        "SETTING", "CURRENT", needed_header
    );
    let _ = writeln!(out, "{}", "-".repeat(SETTING_WIDTH + CURRENT_WIDTH + NEEDED_WIDTH + 9));
    for row in rows {
        let _ = writeln!(
            out,
            "{:<SETTING_WIDTH$} {:<CURRENT_WIDTH$} {:<NEEDED_WIDTH$} {}",
            row.setting,
            clip(&row.current, CURRENT_WIDTH),
            clip(&row.needed, NEEDED_WIDTH),
            row.status
        );
        let _ = writeln!(out, "    why: {}", row.why);
        if let Some(fix) = &row.fix {
            let _ = writeln!(out, "    fix: {fix}");
        }
    }
    let warnings = rows.iter().filter(|r| r.status == Status::Warn).count();
    let _ = writeln!(out, "\ncapacity on this host as it is:");
    let _ = writeln!(out, "  sockets per process max: {}", group(plan.sockets_per_process_max));
    let _ = writeln!(out, "  server processes:        {}", group(plan.server_processes));
    if workload.loopback {
        let _ = writeln!(out, "  client processes:        {}", group(plan.client_processes));
        let _ = writeln!(
            out,
            "  source addresses:        {} in 127.0.0.0/8, {} ephemeral ports each",
            group(plan.source_addresses),
            group(plan.ephemeral_ports_per_source_address)
        );
    }
    let _ = writeln!(out, "{} of {} settings need attention", warnings, rows.len());
    out
}

/// The `apply` listing: one line per sysctl with old → new, in the order they are (or would be) written.
pub fn render_plan(profile_name: &str, dry_run: bool, plan: &[PlannedChange]) -> String {
    let mut out = String::new();
    let mode = if dry_run { " (dry run: nothing is written)" } else { "" };
    let _ = writeln!(out, "ringline-tune apply --profile {profile_name}{mode}");
    for change in plan {
        let line = match change.action {
            Action::Write => format!("{}: {} -> {}", change.key, or_empty(&change.old), change.new),
            Action::Keep => format!("{}: {} (unchanged)", change.key, change.old),
            Action::SkipMissing => format!("{}: skipped, not present (module not loaded)", change.key),
        };
        let _ = writeln!(out, "  {line}");
    }
    let writes = plan.iter().filter(|c| c.action == Action::Write).count();
    let verb = if dry_run { "would change" } else { "changed" };
    let _ = writeln!(out, "{verb} {writes} of {} settings", plan.len());
    out
}

fn or_empty(value: &str) -> &str {
    if value.is_empty() { "(empty)" } else { value }
}

fn clip(text: &str, width: usize) -> String {
    if text.chars().count() <= width {
        return text.to_string();
    }
    let mut clipped: String = text.chars().take(width - 1).collect();
    clipped.push('…');
    clipped
}

/// `profile` as a file for /etc/sysctl.d/ (`ringline-tune profiles --sysctl-d NAME`): each setting with
/// why, in the profile's order, `reserve_ports` as the reserved ports, an "at least" value as that value,
/// and a `-` before an optional one (sysctl ignores it where absent).
pub fn render_sysctl_d(profile: &Profile, reserve_ports: &PortSet) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "# ringline, profile {}: {}", profile.name, profile.description);
    let _ =
        writeln!(out, "# Made by `ringline-tune profiles --sysctl-d {}`; do not edit (docs/TUNING.md).", profile.name);
    let _ = writeln!(
        out,
        "# `ringline-tune apply --profile {}` sets the same now, raising \"at least\" values only;",
        profile.name
    );
    let _ = writeln!(
        out,
        "# this file sets them exactly at boot. Install: cp to /etc/sysctl.d/ and run `sysctl --system`."
    );
    let _ = writeln!(out, "# Lines apply in order: the server ports are reserved before any port range widens.");
    for setting in profile.settings {
        let value = match setting.value {
            ProfileValue::Exact(text) => normalize(text),
            ProfileValue::AtLeast(value) => value.to_string(),
            ProfileValue::ReservedPorts => reserve_ports.to_string(),
        };
        let optional = if setting.required { "" } else { "-" };
        let _ = writeln!(out, "\n# {}{}", setting.why, if setting.required { "" } else { " (optional: '-')" });
        let _ = writeln!(out, "{optional}{} = {value}", setting.key);
    }
    out
}

//! What a failure ends in, carried out on this machine: the policy's
//! decision given what the boot root can run, then the old init, a shell, a
//! reboot, a power-off or the wait; and a reboot or power-off asked for
//! while PID 1 waits (Ctrl-Alt-Del, SIGPWR): for the volume, for the rescue
//! shell, or for good.

use std::ffi::OsString;
use std::path::Path;

use crate::config::{Config, OnFail};
use crate::error::Error;
use crate::exec;
use crate::kmsg;
use crate::policy::{self, Decision, Have};
use crate::stage::Stage;
use crate::sys::{End, ErrnoText, Halt, Supervised, Sys, SysError};

/// The policy's decision for a failure now: `pivot.onfail` (or the mode's
/// default), stepped down past what the boot root cannot run (each logged).
pub fn decide(sys: &dyn Sys, cfg: &Config, switched: bool) -> Decision {
    let root = Path::new("/");
    let have = Have {
        old_init: exec::executable_in(sys, root, &cfg.old_init),
        shell: exec::executable_in(sys, root, Path::new("/bin/sh")),
    };
    let d = policy::decide(cfg.onfail, cfg.initramfs, switched, have);
    for skipped in &d.unusable {
        match skipped {
            OnFail::OldInit => log::warn!("no usable old init at {}", cfg.old_init.display()),
            _ => log::warn!("no usable shell at /bin/sh"),
        }
    }
    d
}

/// The one status line of a failure: `FAILED at <stage>: <reason>; action:
/// <action>`, the action kept whole however long the reason is (a kmsg
/// record has a limit). `undo`: the switch was undone after a failed exec
/// (or why it could not be).
pub fn status_line(
    stage: Stage,
    err: &Error,
    d: &Decision,
    cfg: &Config,
    undo: Option<&Result<(), String>>,
) {
    let what = match undo {
        Some(Err(why)) => format!("wait (the switch could not be undone: {why})"),
        Some(Ok(())) => format!("{} (switch undone)", d.describe(&cfg.old_init)),
        None => d.describe(&cfg.old_init),
    };
    let line = format!("FAILED at {}: {err}", stage.name());
    log::error!(
        "{}",
        kmsg::fit_keeping_tail(&line, &format!("; action: {what}"))
    );
}

/// Carries out `action`. `None` only after the shell action's shell exits
/// (the boot is retried); what cannot be carried out ends in the wait.
/// `api_mounted`: what pivot-init mounted, unmounted before a reboot or
/// power-off asked for during the shell or the wait.
pub fn carry_out(
    sys: &dyn Sys,
    cfg: &Config,
    argv: &[OsString],
    api_mounted: &[&str],
    action: OnFail,
) -> Option<End> {
    match action {
        OnFail::OldInit => match exec::exec(sys, &cfg.old_init, argv) {
            Ok(end) => return Some(end),
            Err(e) => log::error!("{e}"),
        },
        OnFail::Shell => match exec::console_shell(sys) {
            Ok(Supervised::Exited(status)) => {
                log::info!("/bin/sh ended: {status}");
                sys.reap_children();
                return None;
            }
            Ok(Supervised::Requested(how)) => return Some(honor(sys, api_mounted, how)),
            Ok(Supervised::Forever) => return Some(End::Forever),
            Err(e) => log::error!("cannot run /bin/sh: {}", ErrnoText(e)),
        },
        OnFail::Reboot | OnFail::PowerOff => {
            let how = if action == OnFail::Reboot {
                Halt::Reboot
            } else {
                Halt::PowerOff
            };
            match sys.halt(how) {
                Ok(end) => return Some(end),
                Err(e) => log::error!("{e}"),
            }
        }
        OnFail::Wait => {}
    }
    log::error!("nothing left to run; PID 1 waits");
    Some(wait_forever(sys, api_mounted))
}

/// The last resort: PID 1 must not exit, so it waits for good, reaping
/// orphans as they exit; Ctrl-Alt-Del and SIGPWR still reboot or power off
/// (as [`honor`] says), SIGTERM is logged. Returns only on the fake, or
/// when the machine halted.
pub fn wait_forever(sys: &dyn Sys, api_mounted: &[&str]) -> End {
    loop {
        match sys.supervise(None) {
            Supervised::Requested(how) => match halt_as_asked(sys, api_mounted, how) {
                Ok(end) => return end,
                Err(e) => log::error!("{e}; PID 1 waits"),
            },
            Supervised::Exited(_) => {}
            Supervised::Forever => return End::Forever,
        }
    }
}

/// Ctrl-Alt-Del or SIGPWR while waiting (for the volume, for the rescue
/// shell, for good): a request, not a failure. Logs it, unmounts what
/// pivot-init mounted (`api_mounted`), syncs and reboots or powers off;
/// when the halt fails, PID 1 waits for good.
pub fn honor(sys: &dyn Sys, api_mounted: &[&str], how: Halt) -> End {
    match halt_as_asked(sys, api_mounted, how) {
        Ok(end) => end,
        Err(e) => {
            log::error!("{e}; PID 1 waits");
            wait_forever(sys, api_mounted)
        }
    }
}

fn halt_as_asked(sys: &dyn Sys, api_mounted: &[&str], how: Halt) -> Result<End, SysError> {
    log::warn!(
        "{}: syncing, unmounting what pivot-init mounted, then {}",
        Error::Requested(how),
        match how {
            Halt::Reboot => "rebooting",
            Halt::PowerOff => "powering off",
            Halt::Halt => "halting",
            Halt::Kexec => "rebooting into the loaded kernel",
        }
    );
    for m in api_mounted.iter().rev() {
        let _ = sys.unmount(Path::new(m));
    }
    sys.halt(how)
}

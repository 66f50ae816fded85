//! Calling a step body: panics are caught and reported with their location, as the
//! failure of that task only.

use std::cell::RefCell;
use std::panic::{self, AssertUnwindSafe};
use std::sync::Once;

use crate::error::chain;
use crate::flow::{Flow, StepCall, UnreadableInput};

thread_local! {
    static PANIC_INFO: RefCell<Option<String>> = const { RefCell::new(None) };
    static IN_STEP: RefCell<bool> = const { RefCell::new(false) };
}

/// Record where step panics happen (for the error message) instead of printing them:
/// the run summary reports them with their task.
fn install_panic_hook() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let previous = panic::take_hook();
        panic::set_hook(Box::new(move |info| {
            let in_step = IN_STEP.with(|f| *f.borrow());
            if in_step {
                let loc = info
                    .location()
                    .map(|l| format!(" at {}:{}:{}", l.file(), l.line(), l.column()))
                    .unwrap_or_default();
                PANIC_INFO.with(|p| *p.borrow_mut() = Some(loc));
            } else {
                previous(info);
            }
        }));
    });
}

fn panic_message(payload: Box<dyn std::any::Any + Send>) -> String {
    let loc = PANIC_INFO.with(|p| p.borrow_mut().take());
    if let Some(u) = payload.downcast_ref::<UnreadableInput>() {
        return format!("cannot read a join input: {}", u.0);
    }
    let msg = if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_string()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "non-string panic payload".to_string()
    };
    format!("panicked{}: {msg}", loc.unwrap_or_default())
}

/// Run step `step` of `state`; `Err` carries the step's error or panic as text.
pub(super) fn call_step<F: Flow>(
    state: &mut F,
    step: usize,
    call: &mut StepCall<'_, F>,
) -> Result<(), String> {
    install_panic_hook();
    IN_STEP.with(|f| *f.borrow_mut() = true);
    let r = panic::catch_unwind(AssertUnwindSafe(|| state.__run_step(step, call)));
    IN_STEP.with(|f| *f.borrow_mut() = false);
    match r {
        Ok(Ok(())) => Ok(()),
        Ok(Err(e)) => Err(chain(e.as_ref())),
        Err(payload) => Err(panic_message(payload)),
    }
}

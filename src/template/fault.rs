//! Faults inside Tera itself, contained: its parser and renderer panic on some inputs (a
//! test given a list as its argument; a sum of floats a value makes infinite), where they
//! should return an error. Run inside [`contained`], such a panic becomes a [`Fault`] that
//! fails the one template or render, and the process — every other entry, and the same
//! entry's next render — goes on. The panic prints nothing: the fault is reported once,
//! as the template's error.

use std::any::Any;
use std::cell::{Cell, RefCell};
use std::panic::{self, AssertUnwindSafe};
use std::sync::Once;

/// A panic inside the template engine: its message, without the place in Tera's source.
#[derive(Debug)]
pub struct Fault(pub String);

thread_local! {
    /// Whether this thread runs inside [`contained`] now.
    static CONTAINING: Cell<bool> = const { Cell::new(false) };
    /// The message of the panic [`contained`] is catching on this thread.
    static MESSAGE: RefCell<Option<String>> = const { RefCell::new(None) };
}

/// Runs `work`; a panic inside it becomes a [`Fault`]. `work` is an engine call whose
/// inputs it only reads: nothing it leaves half changed is used afterwards.
pub fn contained<T>(work: impl FnOnce() -> T) -> Result<T, Fault> {
    quiet_hook();
    let outer = CONTAINING.replace(true);
    let result = panic::catch_unwind(AssertUnwindSafe(work));
    CONTAINING.set(outer);
    result.map_err(|payload| Fault(MESSAGE.take().unwrap_or_else(|| message(payload.as_ref()))))
}

/// Installs, once, a panic hook that keeps the message of a panic being contained instead
/// of printing it; every other panic prints as before.
fn quiet_hook() {
    static INSTALLED: Once = Once::new();
    INSTALLED.call_once(|| {
        let previous = panic::take_hook();
        panic::set_hook(Box::new(move |info| {
            if CONTAINING.get() {
                MESSAGE.set(Some(message(info.payload())));
            } else {
                previous(info);
            }
        }));
    });
}

/// The text a panic was raised with.
fn message(payload: &(dyn Any + Send)) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a panic without a message".to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_panic_becomes_a_fault_with_its_message_and_the_thread_goes_on() {
        let fault = contained(|| -> u8 { panic!("broken: {}", 7) }).unwrap_err();
        assert_eq!(fault.0, "broken: 7");
        let empty: Vec<u8> = Vec::new();
        let fault = contained(|| empty[0]).unwrap_err();
        assert!(fault.0.contains("index out of bounds"), "{fault:?}");
        assert_eq!(contained(|| 5).unwrap(), 5);
        // Nested: the inner fault is the inner one's; the outer region still contains.
        let outer = contained(|| {
            let inner = contained(|| -> u8 { panic!("inner") });
            assert_eq!(inner.unwrap_err().0, "inner");
            panic!("outer")
        });
        assert_eq!(outer.unwrap_err().0, "outer");
    }
}

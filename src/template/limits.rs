//! The render limits ([`RenderLimits`]) enforced while Tera renders, which has none of its
//! own: a template including itself or a macro calling itself would overflow the stack and
//! abort the process, and a loop over `range(end=n)` with `n` from etcd could run for
//! minutes and take gigabytes.
//!
//! Tera gives no hook into its loops or macro calls, so each compiled template is
//! instrumented: every loop body starts with `{{ __step() }}`, and every macro body and
//! every template (the unit of an include) is wrapped in `{{ __enter() }}` … `{{ __leave()
//! }}`. These print nothing; they count iterations and nesting against the limits of the
//! render in progress, and check its clock. Output goes through [`Output`], which counts
//! bytes. `range`, Tera's `replace` and the functions that build values from a number
//! (`rb_range`, `rb_times`) are checked before they allocate. The first limit hit is kept,
//! and the render's error names it ([`Exceeded`]).
//!
//! A render may also be given a *slice*: a shorter time after which it stops with
//! [`Exceeded::Slice`], so that a caller running it on a shared thread can finish it on
//! another one instead (see the daemon's workers).

use std::cell::RefCell;
use std::collections::HashMap;
use std::fmt;
use std::io;
use std::marker::PhantomData;
use std::time::{Duration, Instant};

use serde_json::Value;
use tera::ast::{Expr, ExprVal, FunctionCall, Node};
use tera::Tera;

use super::args::Args;
pub use crate::config::RenderLimits;

/// The instrumentation's calls: one loop iteration, one level in, one level out.
pub const STEP_FN: &str = "__step";
/// See [`STEP_FN`].
pub const ENTER_FN: &str = "__enter";
/// See [`STEP_FN`].
pub const LEAVE_FN: &str = "__leave";

/// The clock is read once every this many checks: reading it costs more than a check.
pub const CLOCK_EVERY: u32 = 256;

/// A nesting level is refused when less stack than this is left: enough for what Tera puts
/// on the stack between two levels (a debug build takes tens of KiB a level), so that no
/// template, however its levels are built, overflows the thread it renders on.
const STACK_RESERVE: usize = 256 * 1024;

/// Which limit stopped a render.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exceeded {
    /// The render ran longer than its time limit.
    Time(Duration),
    /// Its loops ran more iterations than allowed.
    Iterations(u64),
    /// It produced (or built a value) larger than allowed.
    Output(u64),
    /// Includes and macro calls nested deeper than allowed.
    Depth(u32),
    /// Includes and macro calls, this many deep, left too little of the thread's stack.
    Stack(u32),
    /// It used up the slice of time it was given; it may be finished elsewhere.
    Slice,
}

impl Exceeded {
    /// Whether the limit is one of time (the render would stop at another point if run
    /// again, so re-running it cannot locate the failure).
    pub fn is_time(self) -> bool {
        matches!(self, Exceeded::Time(_) | Exceeded::Slice)
    }
}

impl fmt::Display for Exceeded {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Exceeded::Time(limit) => write!(
                f,
                "the render took longer than {} (render_timeout)",
                humantime::format_duration(*limit)
            ),
            Exceeded::Iterations(limit) => write!(
                f,
                "the render ran more than {limit} loop iterations (render_max_iterations)"
            ),
            Exceeded::Output(limit) => write!(
                f,
                "the render's output larger than {limit} bytes (render_max_output)"
            ),
            Exceeded::Depth(limit) => write!(
                f,
                "includes or macro calls nesting deeper than {limit} (render_max_depth)"
            ),
            Exceeded::Stack(depth) => write!(
                f,
                "includes or macro calls nesting {depth} deep left too little stack \
                 (lower render_max_depth)"
            ),
            Exceeded::Slice => write!(f, "the render's time slice ran out"),
        }
    }
}

/// One render's account against its limits.
struct Account {
    limits: RenderLimits,
    /// When the time limit runs out.
    deadline: Instant,
    /// When the slice runs out, if the render was given one.
    slice_end: Option<Instant>,
    iterations: u64,
    depth: u32,
    checks: u32,
    /// The first limit hit; later checks fail with it too.
    exceeded: Option<Exceeded>,
}

impl Account {
    fn check(&mut self, outcome: Result<(), Exceeded>) -> Result<(), Exceeded> {
        if let Some(exceeded) = self.exceeded {
            return Err(exceeded);
        }
        outcome
            .and_then(|()| self.clock())
            .inspect_err(|&exceeded| {
                self.exceeded = Some(exceeded);
            })
    }

    fn clock(&mut self) -> Result<(), Exceeded> {
        self.checks = self.checks.wrapping_add(1);
        if self.checks % CLOCK_EVERY != 0 {
            return Ok(());
        }
        self.clock_now()
    }

    fn clock_now(&self) -> Result<(), Exceeded> {
        let now = Instant::now();
        if self.slice_end.is_some_and(|end| now >= end) {
            return Err(Exceeded::Slice);
        }
        if now >= self.deadline {
            return Err(Exceeded::Time(self.limits.timeout));
        }
        Ok(())
    }

    fn step(&mut self, count: u64) -> Result<(), Exceeded> {
        self.iterations = self.iterations.saturating_add(count);
        if self.iterations > self.limits.iterations {
            return Err(Exceeded::Iterations(self.limits.iterations));
        }
        Ok(())
    }
}

thread_local! {
    static ACCOUNTS: RefCell<Vec<Account>> = const { RefCell::new(Vec::new()) };
}

/// Runs `charge` on the account of the render in progress on this thread, keeping the
/// first limit hit; no render in progress, no limit.
fn charge(charge: impl FnOnce(&mut Account) -> Result<(), Exceeded>) -> Result<(), Exceeded> {
    ACCOUNTS.with(|accounts| match accounts.borrow_mut().last_mut() {
        Some(account) => {
            let outcome = charge(account);
            account.check(outcome)
        }
        None => Ok(()),
    })
}

/// One render's limits, in force on this thread until dropped.
pub struct Budget {
    /// The account lives on the thread that opened it.
    _not_send: PhantomData<*const ()>,
}

impl Budget {
    /// Opens the account of a render held to `limits`, stopping after `slice` if given.
    pub fn open(limits: RenderLimits, slice: Option<Duration>) -> Budget {
        let now = Instant::now();
        ACCOUNTS.with(|accounts| {
            accounts.borrow_mut().push(Account {
                limits,
                deadline: now + limits.timeout,
                slice_end: slice.map(|slice| now + slice),
                iterations: 0,
                depth: 0,
                checks: 0,
                exceeded: None,
            })
        });
        Budget {
            _not_send: PhantomData,
        }
    }

    /// The first limit this render hit, if any.
    pub fn exceeded(&self) -> Option<Exceeded> {
        ACCOUNTS.with(|accounts| accounts.borrow().last().and_then(|a| a.exceeded))
    }

    /// Starts the count again for a second render of the same input (the line-marked twin
    /// that locates an error), with the time that is left.
    pub fn restart(&self) {
        ACCOUNTS.with(|accounts| {
            if let Some(account) = accounts.borrow_mut().last_mut() {
                account.iterations = 0;
                account.depth = 0;
                account.exceeded = None;
            }
        });
    }
}

impl Drop for Budget {
    fn drop(&mut self) {
        ACCOUNTS.with(|accounts| accounts.borrow_mut().pop());
    }
}

/// The render's output, held to the output limit.
pub struct Output {
    bytes: Vec<u8>,
    limit: u64,
}

impl Output {
    /// An empty output of `capacity` bytes, for a render held to `limits`.
    pub fn new(capacity: usize, limits: &RenderLimits) -> Output {
        let capacity = capacity.min(usize::try_from(limits.output).unwrap_or(usize::MAX));
        Output {
            bytes: Vec::with_capacity(capacity),
            limit: limits.output,
        }
    }

    /// What was written.
    pub fn into_bytes(self) -> Vec<u8> {
        self.bytes
    }
}

impl io::Write for Output {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.write_all(buf)?;
        Ok(buf.len())
    }

    fn write_all(&mut self, buf: &[u8]) -> io::Result<()> {
        let total = (self.bytes.len() + buf.len()) as u64;
        if total > self.limit {
            let limit = self.limit;
            let _ = charge(|_| Err(Exceeded::Output(limit)));
            return Err(io::Error::other(Exceeded::Output(limit).to_string()));
        }
        self.bytes.extend_from_slice(buf);
        Ok(())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// One loop iteration of the render in progress (for loops outside Tera's, such as the
/// Ruby block filters' calls).
pub fn step(a: &Args<'_>) -> tera::Result<()> {
    count_steps(1).map_err(|e| a.error(e))
}

/// `count` loop iterations of the render in progress (`__step` counts one at a time).
pub fn count_steps(count: u64) -> Result<(), Exceeded> {
    charge(|account| account.step(count))
}

/// Reads the clock of the render in progress now, against its time limit and slice: for a
/// walk that charged a loop's iterations ahead, every [`CLOCK_EVERY`] of them.
pub fn check_clock() -> Result<(), Exceeded> {
    charge(|account| account.clock_now())
}

/// The render in progress goes one include or macro call deeper (what `__enter` counts).
pub fn enter() -> Result<(), Exceeded> {
    charge(|account| {
        account.depth += 1;
        if account.depth > account.limits.depth {
            Err(Exceeded::Depth(account.limits.depth))
        } else if stacker::remaining_stack().is_some_and(|left| left < STACK_RESERVE) {
            Err(Exceeded::Stack(account.depth))
        } else {
            Ok(())
        }
    })
}

/// The render in progress comes back one level (what `__leave` counts).
pub fn leave() {
    ACCOUNTS.with(|accounts| {
        if let Some(account) = accounts.borrow_mut().last_mut() {
            account.depth = account.depth.saturating_sub(1);
        }
    });
}

/// Fails before a function makes a list of `count` items to loop over, when that alone
/// would run past the iteration limit.
pub fn check_iterations(a: &Args<'_>, count: u64) -> tera::Result<()> {
    charge(|account| {
        let limit = account.limits.iterations;
        if account.iterations.saturating_add(count) > limit {
            Err(Exceeded::Iterations(limit))
        } else {
            Ok(())
        }
    })
    .map_err(|e| a.error(e))
}

/// Fails before a function builds a value of `bytes` bytes, when that alone is larger
/// than the render may produce.
pub fn check_size(a: &Args<'_>, bytes: u64) -> tera::Result<()> {
    charge(|account| {
        let limit = account.limits.output;
        if bytes > limit {
            Err(Exceeded::Output(limit))
        } else {
            Ok(())
        }
    })
    .map_err(|e| a.error(e))
}

/// Registers the counting functions, and `range` and `replace` held to the limits in place
/// of Tera's own.
pub fn register(tera: &mut Tera) {
    tera.register_function(STEP_FN, |args: &HashMap<String, Value>| {
        let a = Args::new(STEP_FN, args, &[])?;
        step(&a).map(|()| Value::Null)
    });
    tera.register_function(ENTER_FN, |args: &HashMap<String, Value>| {
        let a = Args::new(ENTER_FN, args, &[])?;
        enter().map(|()| Value::Null).map_err(|e| a.error(e))
    });
    tera.register_function(LEAVE_FN, |_: &HashMap<String, Value>| {
        leave();
        Ok(Value::Null)
    });
    tera.register_function("range", range);
    tera.register_filter("replace", replace);
}

/// Tera's `range(start=0, end, step_by=1)`: `start`, `start + step_by`, … below `end`.
fn range(args: &HashMap<String, Value>) -> tera::Result<Value> {
    let a = Args::new("range", args, &["start", "end", "step_by"])?;
    let number = |name: &str, default: Option<u64>| -> tera::Result<u64> {
        match (args.get(name), default) {
            (None, Some(default)) => Ok(default),
            (None, None) => Err(a.error(format!("needs the argument `{name}`"))),
            (Some(value), _) => value
                .as_u64()
                .ok_or_else(|| a.error(format!("`{name}` must be a whole number of 0 or more"))),
        }
    };
    let start = number("start", Some(0))?;
    let end = number("end", None)?;
    let step_by = number("step_by", Some(1))?;
    if start > end {
        return Err(a.error("`start` is greater than `end`"));
    }
    if step_by == 0 {
        return Err(a.error("`step_by` must be above 0"));
    }
    check_iterations(&a, (end - start).div_ceil(step_by))?;
    let items = (start..end).step_by(usize::try_from(step_by).unwrap_or(usize::MAX));
    Ok(Value::Array(items.map(Value::from).collect()))
}

/// Tera's `replace(from, to)` filter, checked against the output limit before it builds
/// the result.
fn replace(value: &Value, args: &HashMap<String, Value>) -> tera::Result<Value> {
    let a = Args::new("replace", args, &["from", "to"])?;
    let text = value
        .as_str()
        .ok_or_else(|| a.error("can only be applied to a string"))?;
    let from = a.string("from")?;
    let to = a.string("to")?;
    let count = if from.is_empty() {
        text.chars().count() + 1
    } else {
        text.matches(from).count()
    };
    let grown = (count as u64).saturating_mul(to.len().saturating_sub(from.len()) as u64);
    check_size(&a, (text.len() as u64).saturating_add(grown))?;
    Ok(Value::String(text.replace(from, to)))
}

/// Instruments every template of `tera` (see the module's comment).
pub fn instrument(tera: &mut Tera) {
    for template in tera.templates.values_mut() {
        instrument_one(template);
    }
}

/// [`instrument`] for one template (a twin added to an engine already instrumented).
pub fn instrument_one(template: &mut tera::Template) {
    wrap(&mut template.ast);
    for definition in template.macros.values_mut() {
        wrap(&mut definition.body);
    }
    for block in template.blocks.values_mut() {
        count_loops(&mut block.body);
    }
    for levels in template.blocks_definitions.values_mut() {
        for (_, block) in levels {
            count_loops(&mut block.body);
        }
    }
}

/// `{{ name() }}`: a call that prints nothing.
fn call(name: &str) -> Node {
    Node::VariableBlock(
        Default::default(),
        Expr::new(ExprVal::FunctionCall(FunctionCall {
            name: name.to_string(),
            args: HashMap::new(),
        })),
    )
}

/// A unit of nesting (a template's body, a macro's): counted in and out, its loops counted.
fn wrap(body: &mut Vec<Node>) {
    count_loops(body);
    insert(body, 0, call(ENTER_FN));
    insert(body, body.len(), call(LEAVE_FN));
}

/// Inserts `node` at `at`, growing `body` by exactly one: a template's AST is kept for the
/// process's life, and a doubled capacity would cost every template about its size again.
fn insert(body: &mut Vec<Node>, at: usize, node: Node) {
    body.reserve_exact(1);
    body.insert(at, node);
}

/// Every loop in `body`, however deep, starts each iteration with a step.
fn count_loops(body: &mut [Node]) {
    for node in body {
        match node {
            Node::Forloop(_, forloop, _) => {
                count_loops(&mut forloop.body);
                insert(&mut forloop.body, 0, call(STEP_FN));
                if let Some(empty) = &mut forloop.empty_body {
                    count_loops(empty);
                }
            }
            Node::If(conditions, _) => {
                for (_, _, body) in &mut conditions.conditions {
                    count_loops(body);
                }
                if let Some((_, body)) = &mut conditions.otherwise {
                    count_loops(body);
                }
            }
            Node::FilterSection(_, section, _) => count_loops(&mut section.body),
            Node::Block(_, block, _) => count_loops(&mut block.body),
            Node::MacroDefinition(_, definition, _) => wrap(&mut definition.body),
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_name_the_limit_and_its_setting() {
        let time = Exceeded::Time(Duration::from_secs(15)).to_string();
        assert!(time.contains("longer than 15s") && time.contains("render_timeout"));
        let depth = Exceeded::Depth(64).to_string();
        assert!(depth.contains("nesting deeper than 64"), "{depth}");
        assert!(Exceeded::Slice.is_time() && !Exceeded::Depth(1).is_time());
    }

    #[test]
    fn the_first_limit_hit_sticks() {
        let limits = RenderLimits {
            iterations: 2,
            ..RenderLimits::default()
        };
        let budget = Budget::open(limits, None);
        assert_eq!(charge(|a| a.step(2)), Ok(()));
        assert_eq!(charge(|a| a.step(1)), Err(Exceeded::Iterations(2)));
        assert_eq!(charge(|_| Ok(())), Err(Exceeded::Iterations(2)));
        assert_eq!(budget.exceeded(), Some(Exceeded::Iterations(2)));
        budget.restart();
        assert_eq!(budget.exceeded(), None);
    }

    #[test]
    fn a_slice_stops_a_render_before_its_time_limit() {
        let budget = Budget::open(RenderLimits::default(), Some(Duration::ZERO));
        let hit = (0..CLOCK_EVERY).find_map(|_| charge(|_| Ok(())).err());
        assert_eq!(hit, Some(Exceeded::Slice));
        assert_eq!(budget.exceeded(), Some(Exceeded::Slice));
    }

    #[test]
    fn no_render_no_limit() {
        assert_eq!(charge(|a| a.step(u64::MAX)), Ok(()));
    }
}

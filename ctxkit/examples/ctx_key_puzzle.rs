//! The chapter's last "What does this print?" (12.12), about context keys:
//!
//! ```go
//! type ctxKey string
//! const userKey ctxKey = "user"
//! ctx = context.WithValue(ctx, userKey, "ana")
//! ctx = context.WithValue(ctx, ctxKey("user"), "beto")
//! fmt.Println(ctx.Value(userKey))  // beto
//! fmt.Println(ctx.Value("user"))   // <nil>
//! ```
//!
//! Go's answer: `beto`, then `<nil>`. Go compares keys as interface values, type *and* value:
//! `ctxKey("user")` equals `userKey`, so "beto" shadows "ana"; the untyped constant `"user"`
//! becomes a plain `string`, a different type, so it finds nothing.
//!
//! The Rust answer is the same output, for a simpler reason: in ctxkit the key *is* the value's
//! type, and there is no separate key value to get equal or unequal by accident.
//!
//! * `User("ana")` and then `User("beto")`: same type, so the inner one shadows the outer one,
//!   exactly as Go's two equal keys do; `value::<User>()` is "beto", while the outer context
//!   still says "ana".
//! * Asking with another type (`value::<&str>()` or `value::<String>()`, Rust's "plain string
//!   key") finds nothing, because nothing of that type was stored.
//!
//! The only way to be surprised is Go's trap in another form: storing a bare `&str`/`String`,
//! which every module can name. Wrap it in a private type instead (see `request_meta`).
//!
//! The program prints Go's two lines, then one line of "why" for each.
//!
//! Run it with `cargo run --example ctx_key_puzzle`.

use std::io::{self, Write};

use ctxkit::Context;

/// The user; the type is the key (Go's `ctxKey("user")`).
struct User(&'static str);

/// Formats a lookup the way Go's `fmt.Println` prints an `any`.
fn show(value: Option<&str>) -> &str {
    value.unwrap_or("<nil>")
}

/// The program.
///
/// # Errors
///
/// Only errors writing to `out`.
pub fn run(out: &mut dyn Write) -> io::Result<()> {
    let ctx = Context::background();
    let ctx = ctx.with_value(User("ana"));
    let ctx = ctx.with_value(User("beto")); // same key (same type): shadows "ana"
    let user = show(ctx.value::<User>().map(|u| u.0));
    let plain = show(ctx.value::<&'static str>().copied());
    writeln!(out, "{user}")?; // beto
    writeln!(out, "{plain}")?; // <nil>
    writeln!(out)?;
    writeln!(
        out,
        "why {user}: the key is the value's type; User(\"beto\") has the same type as User(\"ana\"), so the inner value shadows the outer one"
    )?;
    writeln!(
        out,
        "why {plain}: nothing of type &str was stored; a lookup by another type never matches (Go: the plain string \"user\" is not a ctxKey)"
    )?;
    Ok(())
}

fn main() -> io::Result<()> {
    run(&mut io::stdout().lock())
}

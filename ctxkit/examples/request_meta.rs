//! Section 12.3 of the chapter: request-scoped values with private keys.
//!
//! Go keys values by an `any` key and warns: use an unexported key *type*, because two
//! packages that both use the string `"traceID"` silently shadow each other. In ctxkit a value
//! is keyed by its Rust *type*, so a module's private newtype is a private key by
//! construction:
//!
//! * `requestmeta::TraceId` and `billing::TraceId` below have the same name and both hold a
//!   `String`, yet they are different types. Neither module can even name the other's, so
//!   neither can read, overwrite or shadow the other's value: the collision of the chapter's
//!   anti-pattern cannot happen.
//! * The one way to get Go's collision back is to store a bare std type (`String`, `u64`) as a
//!   value: any code can name `String`. The last part of the output shows it; don't do that,
//!   just as Go's staticcheck SA1029 says.
//!
//! Run it with `cargo run --example request_meta`.

use std::io::{self, Write};

use ctxkit::Context;

/// A library that tags requests with a trace id.
pub mod requestmeta {
    use ctxkit::Context;

    /// Private: no other module can construct, read or shadow this key.
    struct TraceId(String);

    /// Returns a child of `ctx` carrying trace id `id`.
    pub fn with_trace_id(ctx: &Context, id: &str) -> Context {
        ctx.with_value(TraceId(id.to_owned()))
    }

    /// The trace id carried by `ctx`, if any.
    pub fn trace_id(ctx: &Context) -> Option<&str> {
        ctx.value::<TraceId>().map(|t| t.0.as_str())
    }
}

/// Another library that, by coincidence, also calls its key `TraceId`.
pub mod billing {
    use ctxkit::Context;

    /// Private, and a different type from `requestmeta`'s, despite the same name and shape.
    struct TraceId(String);

    /// Returns a child of `ctx` carrying billing's own trace id.
    pub fn with_trace_id(ctx: &Context, id: &str) -> Context {
        ctx.with_value(TraceId(id.to_owned()))
    }

    /// Billing's trace id carried by `ctx`, if any.
    pub fn trace_id(ctx: &Context) -> Option<&str> {
        ctx.value::<TraceId>().map(|t| t.0.as_str())
    }
}

/// The program.
///
/// # Errors
///
/// Only errors writing to `out`.
pub fn run(out: &mut dyn Write) -> io::Result<()> {
    let ctx = requestmeta::with_trace_id(&Context::background(), "abc-123");
    // Billing sets "its" trace id later, deeper in the call tree.
    let ctx = billing::with_trace_id(&ctx, "xyz-999");
    writeln!(
        out,
        "requestmeta trace id: {}",
        requestmeta::trace_id(&ctx).unwrap_or("none")
    )?;
    writeln!(
        out,
        "billing trace id: {}",
        billing::trace_id(&ctx).unwrap_or("none")
    )?;
    writeln!(out, "no collision: two private types are two keys")?;

    // The anti-pattern, for contrast: a bare String as the value type is a public key.
    let ctx = ctx.with_value(String::from("abc-123"));
    let ctx = ctx.with_value(String::from("xyz-999")); // silently shadows the first one!
    writeln!(
        out,
        "bare String value: {} (shadowed: never store std types directly)",
        ctx.value::<String>().map_or("none", String::as_str)
    )?;
    Ok(())
}

fn main() -> io::Result<()> {
    run(&mut io::stdout().lock())
}

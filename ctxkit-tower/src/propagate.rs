//! [`Propagator`]: request-scoped values a user chooses to send across a hop, typed on both
//! sides.
//!
//! Nothing crosses by default: a context's values are in-process data (the chapter's rule:
//! values for request-scoped data, never for parameters), and most must not leave the
//! process. A type crosses when it implements [`WireValue`] (its header name and its text
//! form) and is listed in the [`Propagator`] of the client layer (which writes it) and of the
//! server layer (which reads it back into the request's context with
//! [`Context::with_value`]).

use std::fmt;

use ctxkit::Context;
use http::{HeaderMap, HeaderName, HeaderValue};

/// A context value that can cross the wire in one header.
///
/// # Examples
///
/// ```
/// use http::HeaderValue;
/// use ctxkit_tower::WireValue;
///
/// #[derive(Clone, Debug, PartialEq)]
/// struct RequestId(String);
///
/// impl WireValue for RequestId {
///     const HEADER: &'static str = "x-request-id";
///     fn encode(&self) -> Option<HeaderValue> {
///         HeaderValue::from_str(&self.0).ok()
///     }
///     fn decode(value: &HeaderValue) -> Option<Self> {
///         value.to_str().ok().map(|id| RequestId(id.to_owned()))
///     }
/// }
/// ```
pub trait WireValue: Send + Sync + Sized + 'static {
    /// The header's name: lowercase, as HTTP/2 requires.
    const HEADER: &'static str;
    /// The header's value, or `None` to send nothing.
    fn encode(&self) -> Option<HeaderValue>;
    /// The value read back, or `None` to leave it out of the context (a value that does not
    /// parse is dropped, never an error for the request).
    fn decode(value: &HeaderValue) -> Option<Self>;
}

#[derive(Clone)]
struct Field {
    header: HeaderName,
    type_name: &'static str,
    inject: fn(&Context, &HeaderName, &mut HeaderMap),
    extract: fn(&HeaderMap, &HeaderName, Context) -> Context,
}

fn inject<T: WireValue>(ctx: &Context, header: &HeaderName, headers: &mut HeaderMap) {
    if let Some(value) = ctx.value::<T>().and_then(T::encode) {
        headers.insert(header.clone(), value);
    }
}

fn extract<T: WireValue>(headers: &HeaderMap, header: &HeaderName, ctx: Context) -> Context {
    match headers.get(header).and_then(T::decode) {
        Some(value) => ctx.with_value(value),
        None => ctx,
    }
}

/// The list of [`WireValue`] types sent by a client layer and read by a server layer.
///
/// # Examples
///
/// ```
/// use http::{HeaderMap, HeaderValue};
/// use ctxkit::Context;
/// use ctxkit_tower::{Propagator, WireValue};
///
/// #[derive(Clone, Debug, PartialEq)]
/// struct RequestId(u64);
///
/// impl WireValue for RequestId {
///     const HEADER: &'static str = "x-request-id";
///     fn encode(&self) -> Option<HeaderValue> {
///         Some(HeaderValue::from(self.0))
///     }
///     fn decode(value: &HeaderValue) -> Option<Self> {
///         value.to_str().ok()?.parse().ok().map(RequestId)
///     }
/// }
///
/// let propagator = Propagator::new().value::<RequestId>();
/// let mut headers = HeaderMap::new();
/// propagator.inject(&Context::background().with_value(RequestId(42)), &mut headers);
/// assert_eq!(headers["x-request-id"], "42");
///
/// let ctx = propagator.extract(&headers, Context::background());
/// assert_eq!(ctx.value::<RequestId>(), Some(&RequestId(42)));
/// ```
#[derive(Clone, Default)]
pub struct Propagator {
    fields: Vec<Field>,
}

impl Propagator {
    /// A propagator that sends nothing.
    ///
    /// # Examples
    ///
    /// ```
    /// assert!(ctxkit_tower::Propagator::new().is_empty());
    /// ```
    pub fn new() -> Propagator {
        Propagator::default()
    }

    /// Adds `T`: its value in a context is written under `T::HEADER`, and read back.
    ///
    /// # Panics
    ///
    /// If `T::HEADER` is not a valid lowercase header name: a programmer error, found the
    /// first time the propagator is built.
    ///
    /// # Examples
    ///
    /// See [`Propagator`].
    #[must_use]
    pub fn value<T: WireValue>(mut self) -> Propagator {
        let header = HeaderName::from_lowercase(T::HEADER.as_bytes()).unwrap_or_else(|_| {
            panic!(
                "WireValue::HEADER of {} is {:?}: not a valid lowercase header name",
                std::any::type_name::<T>(),
                T::HEADER
            )
        });
        self.fields.retain(|field| field.header != header);
        self.fields.push(Field {
            header,
            type_name: std::any::type_name::<T>(),
            inject: inject::<T>,
            extract: extract::<T>,
        });
        self
    }

    /// Whether no type is listed.
    ///
    /// # Examples
    ///
    /// See [`new`](Propagator::new).
    pub fn is_empty(&self) -> bool {
        self.fields.is_empty()
    }

    /// Writes each listed value present in `ctx` into `headers`.
    ///
    /// # Examples
    ///
    /// See [`Propagator`].
    pub fn inject(&self, ctx: &Context, headers: &mut HeaderMap) {
        for field in &self.fields {
            (field.inject)(ctx, &field.header, headers);
        }
    }

    /// Returns `ctx` with each listed value found in `headers` added.
    ///
    /// # Examples
    ///
    /// See [`Propagator`].
    pub fn extract(&self, headers: &HeaderMap, ctx: Context) -> Context {
        self.fields.iter().fold(ctx, |ctx, field| {
            (field.extract)(headers, &field.header, ctx)
        })
    }
}

impl fmt::Debug for Propagator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map()
            .entries(
                self.fields
                    .iter()
                    .map(|field| (&field.header, field.type_name)),
            )
            .finish()
    }
}

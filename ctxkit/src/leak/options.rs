//! [`Options`]: how long a leak check retries, and what it ignores. Plain data.

use std::time::Duration;

/// How long a check retries before it reports, and what it ignores.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use ctxkit::leak::{self, Options};
///
/// let options = Options::new()
///     .retry_for(Duration::from_secs(2)) // a slow shutdown is not a leak
///     .ignore_thread_name("metrics-flusher") // a process-wide thread of a library
///     .ignore_spawn_site("src/cache.rs"); // work that outlives requests on purpose
/// leak::check_with(options, || {
///     // the test's body
/// });
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Options {
    pub(crate) retry_for: Duration,
    pub(crate) ignored_names: Vec<String>,
    pub(crate) ignored_sites: Vec<String>,
}

/// What [`Options::new`] retries for: a thread or task that is just exiting (its join is
/// under way, its runtime is dropping it) is not a leak.
pub const DEFAULT_RETRY_FOR: Duration = Duration::from_millis(500);

impl Options {
    /// Retry for [`DEFAULT_RETRY_FOR`], ignore nothing.
    ///
    /// # Examples
    ///
    /// See [`Options`].
    pub fn new() -> Options {
        Options {
            retry_for: DEFAULT_RETRY_FOR,
            ignored_names: Vec::new(),
            ignored_sites: Vec::new(),
        }
    }

    /// Retries for up to `total` (with growing pauses: 1 ms, 2 ms, ... up to 100 ms) before
    /// reporting. `Duration::ZERO` reports at the first look.
    ///
    /// # Examples
    ///
    /// See [`Options`].
    #[must_use = "retry_for returns new options; it does not change these"]
    pub fn retry_for(mut self, total: Duration) -> Options {
        self.retry_for = total;
        self
    }

    /// Ignores threads and tasks named `name` exactly (the name given to ctxkit, or the OS's
    /// name of a thread, which Linux cuts to 15 bytes).
    ///
    /// # Examples
    ///
    /// See [`Options`].
    #[must_use = "ignore_thread_name returns new options; it does not change these"]
    pub fn ignore_thread_name(mut self, name: impl Into<String>) -> Options {
        self.ignored_names.push(name.into());
        self
    }

    /// Ignores work started through ctxkit at a site whose `file:line:column` contains `site`
    /// (a file, `"src/cache.rs"`, or a line, `"src/cache.rs:42"`).
    ///
    /// # Examples
    ///
    /// See [`Options`].
    #[must_use = "ignore_spawn_site returns new options; it does not change these"]
    pub fn ignore_spawn_site(mut self, site: impl Into<String>) -> Options {
        self.ignored_sites.push(site.into());
        self
    }

    pub(crate) fn ignores_name(&self, name: &str) -> bool {
        self.ignored_names.iter().any(|ignored| ignored == name)
    }

    pub(crate) fn ignores_site(&self, site: &std::panic::Location<'_>) -> bool {
        if self.ignored_sites.is_empty() {
            return false; // nothing to compare: the site need not be formatted
        }
        let site = site.to_string();
        self.ignored_sites
            .iter()
            .any(|ignored| site.contains(ignored.as_str()))
    }
}

impl Default for Options {
    fn default() -> Options {
        Options::new()
    }
}

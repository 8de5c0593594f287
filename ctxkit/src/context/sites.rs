//! Where each context was made, and what a unit waiting on one says about it in a leak report.
//!
//! Kept only while tags are in use (a leak check has started in the process: `spawn::tracking`):
//! then each new cancelable node's creation site (the `#[track_caller]` site of `with_cancel`,
//! `with_deadline`, `with_timeout` and their `_cause` forms) is recorded here by the node's
//! address, and forgotten when the node is dropped. Otherwise recording and forgetting are one
//! relaxed load each, and nodes carry nothing more.
//!
//! # Lock order
//!
//! One lock, `SITES`, a leaf: taken under nothing else, nothing taken under it.

use std::collections::HashMap;
use std::panic::Location;
use std::time::Instant;

use super::tree::{self, Node};
use crate::spawn::{self, Waitable};
use crate::sync::{self, Arc, Mutex};
use crate::time::{self, NO_DEADLINE};

sync::lazy_static! {
    /// Creation sites by node address, while tracking.
    static ref SITES: Mutex<HashMap<usize, &'static Location<'static>>> = Mutex::new(HashMap::new());
}

/// Records where `node` was made, if tracking.
pub(crate) fn record(node: &Arc<Node>, site: &'static Location<'static>) {
    if spawn::tracking() {
        SITES.lock().insert(Arc::as_ptr(node) as usize, site);
    }
}

/// Forgets the node at `address` (it is being dropped), if tracking.
pub(crate) fn forget(address: *const Node) {
    if spawn::tracking() {
        SITES.lock().remove(&(address as usize));
    }
}

fn site_of(node: &Node) -> Option<&'static Location<'static>> {
    SITES.lock().get(&(node as *const Node as usize)).copied()
}

impl Waitable for Node {
    fn describe(&self) -> String {
        let made = match site_of(self) {
            Some(site) => format!("a context made at {site}"),
            None => "a context (made before the leak check started)".to_owned(),
        };
        let deadline = self.deadline();
        let deadline = if deadline == NO_DEADLINE {
            "no deadline".to_owned()
        } else {
            let at = time::decode(deadline);
            let now = Instant::now();
            if at > now {
                format!("deadline in {:.1?}", at - now)
            } else {
                format!("deadline passed {:.1?} ago", now - at)
            }
        };
        let state = match tree::err(self) {
            Some(error) => format!("done ({error})"),
            None => "not done".to_owned(),
        };
        format!("{made}, {deadline}, {state}")
    }
}

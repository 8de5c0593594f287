//! No memory is pinned: after building, canceling and dropping contexts in
//! every way the API allows, the number of live cancel-tree nodes returns to where it started.
//! One test, in its own process: the count is process-wide (`__live_nodes()`, debug builds).

mod common;

use std::time::Duration;

use common::{poll_once, wait_until};
use ctxkit::context::__live_nodes;
use ctxkit::Context;

fn live() -> usize {
    __live_nodes().expect("debug build")
}

#[test]
fn every_node_is_freed() {
    let Some(start) = __live_nodes() else {
        eprintln!("skipped: __live_nodes() counts only in debug builds");
        return;
    };
    let root = Context::background();

    // 1. A canceled tree, dropped.
    {
        let (top, cancel) = root.with_cancel().into_parts();
        let mut keep = Vec::new();
        for i in 0..100 {
            let (c, h) = top.with_cancel().into_parts();
            let (t, th) = c.with_timeout(Duration::from_secs(3600 + i)).into_parts();
            keep.push((c, h, t, th));
        }
        assert_eq!(live(), start + 201);
        cancel.cancel();
    }
    assert_eq!(live(), start, "a canceled tree was kept alive");

    // 2. Timeouts with async waiters (which arm the timer), canceled by dropping their handles.
    for _ in 0..50 {
        let ctx = root.with_timeout(Duration::from_secs(3600));
        let mut done = ctx.done();
        assert!(poll_once(&mut done).is_pending());
    }
    assert_eq!(live(), start, "an armed, canceled timeout was kept alive");

    // 3. Disarmed handles: the nodes go when the last clone goes, in any order.
    {
        let (parent, cancel_parent) = root.with_cancel().into_parts();
        cancel_parent.disarm();
        let (child, cancel_child) = parent.with_timeout(Duration::from_secs(3600)).into_parts();
        cancel_child.disarm();
        let clones = [child.clone(), child.clone(), parent.clone()];
        let (grandchild, g) = child.with_cancel().into_parts();
        g.disarm();
        assert_eq!(live(), start + 3);
        drop(parent); // the parent context goes first: the child keeps it
        drop(child);
        let [c1, c2, p2] = clones;
        drop(c2);
        drop(p2);
        drop(c1);
        assert_eq!(live(), start + 3, "a node with a live descendant was freed");
        drop(grandchild); // the last holder of the whole chain
    }
    assert_eq!(
        live(),
        start,
        "disarmed nodes were kept alive after every clone was dropped"
    );

    // 4. Children outliving their parents' handles and contexts, then canceled from the top.
    {
        let (top, cancel_top) = root.with_cancel_cause().into_parts();
        let children: Vec<Context> = (0..20)
            .map(|_| {
                let (c, h) = top.with_cancel().into_parts();
                h.disarm();
                c
            })
            .collect();
        drop(top);
        cancel_top.cancel_with("done");
        assert!(children.iter().all(Context::is_done));
    }
    assert_eq!(live(), start);

    // 5. A deep disarmed chain released from the leaf (iterative drop).
    {
        let mut ctx = root.clone();
        for _ in 0..10_000 {
            let (next, h) = ctx.with_cancel().into_parts();
            h.disarm();
            ctx = next;
        }
        assert_eq!(live(), start + 10_000);
    }
    assert_eq!(live(), start, "a deep chain was not released");

    // 6. Values, without_cancel, after-functions and Done futures hold nothing extra.
    {
        let (ctx, cancel) = root.with_value(1u32).with_cancel().into_parts();
        let detached = ctx.without_cancel().with_value(2u64);
        let after = ctx.after_func(|| {});
        let stopped = ctx.after_func(|| {});
        assert!(stopped.stop());
        let mut done = ctx.done();
        assert!(poll_once(&mut done).is_pending());
        drop(done);
        cancel.cancel();
        drop((after, stopped, detached));
    }
    assert_eq!(live(), start);

    // 7. Disarmed short timeouts with async waiters: the timer holds them until they fire, then
    //    lets go.
    for _ in 0..20 {
        let (ctx, h) = root.with_timeout(Duration::from_millis(10)).into_parts();
        h.disarm();
        let mut done = ctx.done();
        let _ = poll_once(&mut done); // pending, or ready on a machine slower than 10 ms
    }
    wait_until(
        "fired timeouts let go (live nodes back at the start)",
        || live() - start,
        |&above| above == 0,
    );
    // Children of a parent removed from the tree never leave a slot behind.
    let parent = root.with_cancel();
    for _ in 0..100 {
        let (c, h) = parent.with_cancel().into_parts();
        h.disarm();
        drop(c);
    }
    assert_eq!(parent.__child_count(), 0);
    drop(parent);
    assert_eq!(live(), start, "node count did not return to its start");
}

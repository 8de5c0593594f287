package main

// ctx.* workloads on the standard library's context package.

import (
	"context"
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"
	"time"
)

const (
	flatChildren = 100000 // ctx.build_flat_100k, ctx.cancel_flat_100k, ctx.bytes_per_child
	deepChain    = 10000  // ctx.cancel_deep_10k
	awaitedTasks = 100000 // ctx.timeout_awaited_100k
	afterFuncs   = 10000  // ctx.after_func_10k
	// wakeSettle is how long the canceler spins after the waiter said it is about to block,
	// so that the waiter is really parked (and the idle runtime thread asleep).
	wakeSettle = 100 * time.Microsecond
)

func runCtx(cfg *config) {
	cancelChild(cfg)
	timeoutChild(cfg)
	values(cfg)
	buildFlat(cfg)
	bytesPerChild(cfg)
	cancelFlat(cfg)
	cancelDeep(cfg)
	wakeLatency(cfg)
	timeoutAwaited(cfg)
	afterFunc(cfg)
	contendedCreateCancel(cfg)
}

func cancelChild(cfg *config) {
	if !cfg.want("ctx.cancel_child") {
		return
	}
	progress("ctx.cancel_child")
	parent, cancelParent := context.WithCancel(context.Background())
	defer cancelParent()
	s := nsPerOp(cfg.microTarget(), cfg.microRuns(), func(n int) {
		for i := 0; i < n; i++ {
			_, cancel := context.WithCancel(parent)
			cancel()
		}
	})
	emit(cfg, "ctx.cancel_child", implName, "ns_per_op", s,
		"c, cancel := context.WithCancel(parent); cancel(), from a long-lived cancelable parent (the child joins and leaves the parent's children map)")
}

func timeoutChild(cfg *config) {
	if !cfg.want("ctx.timeout_child") {
		return
	}
	progress("ctx.timeout_child")
	parent, cancelParent := context.WithCancel(context.Background())
	defer cancelParent()
	s := nsPerOp(cfg.microTarget(), cfg.microRuns(), func(n int) {
		for i := 0; i < n; i++ {
			_, cancel := context.WithTimeout(parent, time.Hour)
			cancel()
		}
	})
	emit(cfg, "ctx.timeout_child", implName, "ns_per_op", s,
		"context.WithTimeout(parent, time.Hour) then cancel(), from a long-lived cancelable parent: a runtime timer is armed at creation and stopped by cancel")
}

// ===== values =====

// valueKey i is the key of layer i of a value chain; distinct keys of one defined type.
type valueKey int

// valueChain returns Background wrapped in depth WithValue layers; layer 0 is nearest the root.
func valueChain(depth int) context.Context {
	ctx := context.Background()
	for i := 0; i < depth; i++ {
		ctx = context.WithValue(ctx, valueKey(i), i)
	}
	return ctx
}

func values(cfg *config) {
	for _, depth := range []int{1, 16, 256} {
		workload := fmt.Sprintf("ctx.value_d%d", depth)
		if !cfg.want(workload) {
			continue
		}
		progress(workload)
		ctx := valueChain(depth)
		var key interface{} = valueKey(0)
		s := nsPerOp(cfg.microTarget(), cfg.microRuns(), func(n int) {
			hits := 0
			for i := 0; i < n; i++ {
				if ctx.Value(key) != nil {
					hits++
				}
			}
			if hits != n {
				panic(fmt.Sprintf("%s: %d of %d lookups found the value", workload, hits, n))
			}
		})
		emit(cfg, workload, implName, "ns_per_op", s, fmt.Sprintf(
			"ctx.Value(valueKey(0)) on a chain of %d context.WithValue layers over Background, layer i holding valueKey(i); key 0 is the layer nearest the root, so Value walks all %d layers (worst case)",
			depth, depth))
	}
	if cfg.want("ctx.value_miss_d16") {
		progress("ctx.value_miss_d16")
		ctx := valueChain(16)
		var key interface{} = valueKey(1 << 20)
		s := nsPerOp(cfg.microTarget(), cfg.microRuns(), func(n int) {
			misses := 0
			for i := 0; i < n; i++ {
				if ctx.Value(key) == nil {
					misses++
				}
			}
			if misses != n {
				panic("ctx.value_miss_d16: a lookup found a value")
			}
		})
		emit(cfg, "ctx.value_miss_d16", implName, "ns_per_op", s,
			"ctx.Value(k) for a key no layer of a 16-layer WithValue chain holds: walks the 16 layers and Background")
	}
}

// ===== trees =====

// flatTree holds a root and its children, in slices allocated before any measurement.
type flatTree struct {
	root       context.Context
	cancelRoot context.CancelFunc
	children   []context.Context
	cancels    []context.CancelFunc
}

func newFlatTree(n int) *flatTree {
	t := &flatTree{children: make([]context.Context, n), cancels: make([]context.CancelFunc, n)}
	t.root, t.cancelRoot = context.WithCancel(context.Background())
	return t
}

// build creates the children (the part build_flat_100k times).
func (t *flatTree) build() {
	for i := range t.children {
		t.children[i], t.cancels[i] = context.WithCancel(t.root)
	}
}

// cancelAndObserve cancels the root and receives from every child's Done (what
// cancel_flat_100k and scale.cancel_fanout time).
func (t *flatTree) cancelAndObserve() {
	t.cancelRoot()
	for _, c := range t.children {
		<-c.Done()
	}
}

func buildFlat(cfg *config) {
	if !cfg.want("ctx.build_flat_100k") {
		return
	}
	progress("ctx.build_flat_100k")
	s := batches(cfg.heavyRuns(), func() float64 {
		t := newFlatTree(flatChildren)
		runtime.GC()
		start := time.Now()
		t.build()
		ms := millis(time.Since(start))
		t.cancelRoot()
		return ms
	})
	emit(cfg, "ctx.build_flat_100k", implName, "ms", s,
		"100,000 context.WithCancel(root) on one cancelable root, ctx and cancel kept in slices allocated before timing; runtime.GC() before each batch (not timed), the GC the batch itself triggers is included")
}

// heapInUse runs a full GC and returns the live heap bytes and the count of allocations so far.
func heapInUse() (heap, mallocs uint64) {
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapAlloc, m.Mallocs
}

func bytesPerChild(cfg *config) {
	if !cfg.want("ctx.bytes_per_child") {
		return
	}
	progress("ctx.bytes_per_child")
	var s, allocs, waitBytes, waitAllocs []float64
	warmUpThen(cfg.heavyRuns(), func(record bool) {
		t := newFlatTree(flatChildren)
		dones := make([]<-chan struct{}, flatChildren)
		h0, m0 := heapInUse()
		t.build()
		h1, m1 := heapInUse()
		for i, c := range t.children {
			dones[i] = c.Done()
		}
		h2, m2 := heapInUse()
		runtime.KeepAlive(t)
		runtime.KeepAlive(dones)
		t.cancelRoot()
		if record {
			s = append(s, (float64(h1)-float64(h0))/flatChildren)
			allocs = append(allocs, float64(m1-m0)/flatChildren)
			waitBytes = append(waitBytes, (float64(h2)-float64(h1))/flatChildren)
			waitAllocs = append(waitAllocs, float64(m2-m1)/flatChildren)
		}
	})
	plain := median(s)
	emit(cfg, "ctx.bytes_per_child", implName, "bytes", s, fmt.Sprintf(
		"runtime.MemStats.HeapAlloc after runtime.GC(), after minus before building 100,000 WithCancel(root) children, / 100,000: the cancelCtx, its cancel closure and the parent's children-map entry (%.2f allocations/child); the harness slices are allocated before and excluded. Waiting adds %.1f B/child (%.2f allocations): Done() creates the done channel lazily; so %.1f B/child with Done() called",
		median(allocs), median(waitBytes), median(waitAllocs), plain+median(waitBytes)))
}

func cancelFlat(cfg *config) {
	if !cfg.want("ctx.cancel_flat_100k") {
		return
	}
	progress("ctx.cancel_flat_100k")
	run := func(callDone bool) func() float64 {
		return func() float64 { return millis(timedFlatCancel(flatChildren, callDone)) }
	}
	waited := batches(cfg.heavyRuns(), run(true))
	unwaited := batches(cfg.heavyRuns(), run(false))
	emit(cfg, "ctx.cancel_flat_100k", implName, "ms", waited, fmt.Sprintf(
		"every child called Done() before (so cancel closes 100,000 channels); timed: root cancel() + <-c.Done() on every child; runtime.GC() before each batch (not timed). When no child had called Done() (cancel stores a shared closed channel instead): median %.2f ms",
		median(unwaited)))
}

// timedFlatCancel builds a root with n cancelable children (each child's Done() called first
// when callDone, so the cancel closes n channels), collects garbage, then times cancelling the
// root until every child reports done.
func timedFlatCancel(n int, callDone bool) time.Duration {
	t := newFlatTree(n)
	t.build()
	if callDone {
		for _, c := range t.children {
			if c.Done() == nil {
				panic("a cancelable context without a done channel")
			}
		}
	}
	runtime.GC()
	start := time.Now()
	t.cancelAndObserve()
	return time.Since(start)
}

func cancelDeep(cfg *config) {
	if !cfg.want("ctx.cancel_deep_10k") {
		return
	}
	progress("ctx.cancel_deep_10k")
	s := batches(cfg.heavyRuns(), func() float64 {
		root, cancelRoot := context.WithCancel(context.Background())
		cancels := make([]context.CancelFunc, 0, deepChain)
		leaf := root
		for i := 1; i < deepChain; i++ {
			var cancel context.CancelFunc
			leaf, cancel = context.WithCancel(leaf)
			cancels = append(cancels, cancel)
		}
		leafDone := leaf.Done()
		runtime.GC()
		start := time.Now()
		cancelRoot()
		<-leafDone
		ms := millis(time.Since(start))
		if leaf.Err() != context.Canceled {
			panic("ctx.cancel_deep_10k: the leaf is not canceled")
		}
		runtime.KeepAlive(cancels)
		return ms
	})
	emit(cfg, "ctx.cancel_deep_10k", implName, "ms", s,
		"chain of 10,000 nested WithCancel contexts including the root, the leaf's Done() called before; timed: root cancel() + <-leaf.Done() (cancel recurses synchronously through the chain); runtime.GC() before each batch (not timed)")
}

// ===== wake latency =====

type wakeJob struct {
	ctx   context.Context
	ready *int32
}

func wakeLatency(cfg *config) {
	if !cfg.want("ctx.wake_latency_p50", "ctx.wake_latency_p99") {
		return
	}
	progress("ctx.wake_latency")
	trials := cfg.pick(10000, 2000)
	runs := cfg.runs()

	jobs := make(chan wakeJob)
	woke := make(chan time.Time, 1)
	go func() {
		for j := range jobs {
			done := j.ctx.Done()
			atomic.StoreInt32(j.ready, 1)
			<-done
			woke <- time.Now()
		}
	}()
	defer close(jobs)
	// One trial: hand the waiter a fresh context, wait until it is about to block, let it
	// park, then cancel; the canceler then blocks on the receive (or, keepRunning, spins on it).
	trial := func(keepRunning bool) float64 {
		ctx, cancel := context.WithCancel(context.Background())
		var ready int32
		jobs <- wakeJob{ctx: ctx, ready: &ready}
		for atomic.LoadInt32(&ready) == 0 {
		}
		spin(wakeSettle)
		t0 := time.Now()
		cancel()
		var t1 time.Time
		if keepRunning {
			for received := false; !received; {
				select {
				case t1 = <-woke:
					received = true
				default:
				}
			}
		} else {
			t1 = <-woke
		}
		return micros(t1.Sub(t0))
	}
	for i := 0; i < trials/10; i++ {
		trial(false)
	}
	perRun := make([][]float64, runs)
	for r := range perRun {
		perRun[r] = make([]float64, trials)
		for i := range perRun[r] {
			perRun[r][i] = trial(false)
		}
	}
	spinTrials := make([]float64, trials/5)
	for i := range spinTrials {
		spinTrials[i] = trial(true)
	}
	for _, q := range []struct {
		workload string
		p        float64
	}{{"ctx.wake_latency_p50", 50}, {"ctx.wake_latency_p99", 99}} {
		if !cfg.want(q.workload) {
			continue
		}
		s := make([]float64, runs)
		for r := range perRun {
			s[r] = percentile(perRun[r], q.p)
		}
		emit(cfg, q.workload, implName, "us", s, fmt.Sprintf(
			"one persistent waiter goroutine on <-ctx.Done(); the canceler (the main goroutine) waits until the waiter is about to block, spins %d us more, takes t0, calls cancel() and blocks on a channel receive; the waiter sends time.Now() when it runs. %d trials per batch, p%.0f per batch. When the canceler keeps running after cancel() (polls the channel instead of blocking): p50 %.1f us, p99 %.1f us (one batch of %d trials)",
			wakeSettle.Microseconds(), trials, q.p,
			percentile(spinTrials, 50), percentile(spinTrials, 99), len(spinTrials)))
	}
}

// ===== awaited timeouts and after-functions =====

// awaitedRun starts n goroutines; each (withTimeout) makes a child of root with a 10 s timeout
// (more above 100,000 goroutines: awaitedTimeout) and selects on the child's Done and its
// oneshot, then cancels the child, or (bare) only receives from its oneshot. Once every goroutine is about to wait, all oneshots fire.
// Returns the wall time from the first spawn until every goroutine has finished, / n.
func awaitedRun(root context.Context, n int, withTimeout bool) float64 {
	var parked, finished sync.WaitGroup
	var timedOut int32
	timeout := awaitedTimeout(n)
	oneshots := make([]chan struct{}, n)
	parked.Add(n)
	finished.Add(n)
	start := time.Now()
	for i := range oneshots {
		oneshot := make(chan struct{})
		oneshots[i] = oneshot
		if withTimeout {
			go func() {
				defer finished.Done()
				c, cancel := context.WithTimeout(root, timeout)
				parked.Done()
				select {
				case <-c.Done():
					atomic.AddInt32(&timedOut, 1)
				case <-oneshot:
				}
				cancel()
			}()
		} else {
			go func() {
				defer finished.Done()
				parked.Done()
				<-oneshot
			}()
		}
	}
	parked.Wait()
	for _, oneshot := range oneshots {
		close(oneshot)
	}
	finished.Wait()
	ns := float64(time.Since(start).Nanoseconds()) / float64(n)
	if timedOut != 0 {
		panic(fmt.Sprintf("ctx.timeout_awaited: %d of %d requests timed out", timedOut, n))
	}
	return ns
}

// awaitedTimeout is the timeout of the requests of a run of n: 10 s up to 100,000, 10 s per
// 100,000 above, so that a run of 1,000,000 on a loaded machine (which may take more than 10 s
// to start) sees none fire. As ctxkit-bench's.
func awaitedTimeout(n int) time.Duration {
	k := n / awaitedTasks
	if k < 1 {
		k = 1
	}
	return time.Duration(k) * 10 * time.Second
}

// awaitedBatches runs a warm-up batch, then runs batches of awaitedRun with n goroutines: per
// batch one run with the timeout and one bare run, alternating which goes first, runtime.GC()
// before each (not timed). It returns per batch the difference (with minus bare), and both.
func awaitedBatches(root context.Context, n, runs int) (diff, with, bare []float64) {
	round := 0
	warmUpThen(runs, func(record bool) {
		// Alternate which variant goes first, so neither always runs on the other's garbage.
		var w, b float64
		runtime.GC()
		if round%2 == 0 {
			w = awaitedRun(root, n, true)
			runtime.GC()
			b = awaitedRun(root, n, false)
		} else {
			b = awaitedRun(root, n, false)
			runtime.GC()
			w = awaitedRun(root, n, true)
		}
		round++
		if record {
			diff = append(diff, w-b)
			with = append(with, w)
			bare = append(bare, b)
		}
	})
	return diff, with, bare
}

func timeoutAwaited(cfg *config) {
	if !cfg.want("ctx.timeout_awaited_100k") {
		return
	}
	progress("ctx.timeout_awaited_100k")
	root, cancelRoot := context.WithCancel(context.Background())
	defer cancelRoot()
	diff, with, bare := awaitedBatches(root, awaitedTasks, cfg.runs())
	emit(cfg, "ctx.timeout_awaited_100k", implName, "ns_per_op", diff, fmt.Sprintf(
		"100,000 goroutines, each: c, cancel := context.WithTimeout(root, 10*time.Second) on one cancelable root; select on <-c.Done() and its own oneshot channel; cancel(). Once all are about to wait, the main goroutine closes every oneshot; per request, wall time from the first go statement until all have finished (sync.WaitGroup) / 100,000, minus the same run without the timeout (go + <-oneshot only), per batch; runtime.GC() before each half (not timed). Medians: %.1f ns with the timeout, %.1f ns bare",
		median(with), median(bare)))
}

func afterFunc(cfg *config) {
	if !cfg.want("ctx.after_func_10k_cancel_return", "ctx.after_func_10k_all_ran") {
		return
	}
	progress("ctx.after_func_10k")
	var returned, allRan []float64
	warmUpThen(cfg.runs(), func(record bool) {
		ctx, cancel := context.WithCancel(context.Background())
		var started int32
		var ran sync.WaitGroup
		ran.Add(afterFuncs)
		for i := 0; i < afterFuncs; i++ {
			go func() {
				atomic.AddInt32(&started, 1)
				<-ctx.Done()
				time.Sleep(time.Millisecond)
				ran.Done()
			}()
		}
		for atomic.LoadInt32(&started) < afterFuncs {
			time.Sleep(100 * time.Microsecond)
		}
		time.Sleep(2 * time.Millisecond) // let every goroutine park on Done
		runtime.GC()
		t0 := time.Now()
		cancel()
		t1 := time.Now()
		ran.Wait()
		t2 := time.Now()
		if record {
			returned = append(returned, millis(t1.Sub(t0)))
			allRan = append(allRan, millis(t2.Sub(t0)))
		}
	})
	const how = "10,000 after-functions in the Go 1.19 idiom (before context.AfterFunc): a goroutine each running <-ctx.Done(); time.Sleep(time.Millisecond) on one cancelable context, all parked (then 2 ms) before t0"
	if cfg.want("ctx.after_func_10k_cancel_return") {
		emit(cfg, "ctx.after_func_10k_cancel_return", implName, "ms", returned,
			how+"; timed: cancel() until it returns (closing Done readies all 10,000 goroutines)")
	}
	if cfg.want("ctx.after_func_10k_all_ran") {
		emit(cfg, "ctx.after_func_10k_all_ran", implName, "ms", allRan,
			how+"; timed: cancel() until every function has finished (sync.WaitGroup.Wait returns)")
	}
}

func contendedCreateCancel(cfg *config) {
	if !cfg.want("ctx.contended_create_cancel") {
		return
	}
	progress("ctx.contended_create_cancel")
	d := cfg.pickDuration(time.Second, 150*time.Millisecond)
	parent, cancelParent := context.WithCancel(context.Background())
	defer cancelParent()
	op := func() {
		_, cancel := context.WithCancel(parent)
		cancel()
	}
	contended(2, d/10, op)
	s := make([]float64, cfg.runs())
	for i := range s {
		ops, secs := contended(2, d, op)
		s[i] = float64(ops) / secs / 1e6
	}
	emit(cfg, "ctx.contended_create_cancel", implName, "mops_per_s", s, fmt.Sprintf(
		"2 goroutines each doing WithCancel(parent) + cancel() on one shared cancelable parent for %d ms per batch; total ops over both / wall time",
		d.Milliseconds()))
}

package main

// The scale series (-scale): how the cost per item moves with the size of the problem. Every
// line carries its size in "n".

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"sync/atomic"
	"time"

	"golang.org/x/sync/errgroup"
)

func runScale(cfg *config) {
	scaleCancelFanout(cfg)
	scaleValueDepth(cfg)
	scalePoolWorkers(cfg)
	scaleGroupTasks(cfg)
	scaleGroupBytes(cfg)
	scaleLimiterThreads(cfg)
	scaleTimeoutAwaited(cfg)
}

// bigSeries is 10^k from `from` up to 1,000,000 (100,000 with -quick).
func bigSeries(cfg *config, from int) []int {
	top := cfg.pick(1000000, 100000)
	var out []int
	for n := from; n <= top; n *= 10 {
		out = append(out, n)
	}
	return out
}

// bigRuns is the batch count at n for the series that reach 1,000,000.
func bigRuns(cfg *config, n int) int {
	if cfg.quick || n > 100000 {
		return 3
	}
	return 7
}

func scaleCancelFanout(cfg *config) {
	const workload = "scale.cancel_fanout"
	if !cfg.want(workload) {
		return
	}
	for _, n := range bigSeries(cfg, 1000) {
		progress("%s n=%d", workload, n)
		n := n
		s := batches(bigRuns(cfg, n), func() float64 {
			return float64(timedFlatCancel(n, true).Nanoseconds()) / float64(n)
		})
		emitScale(cfg, workload, implName, n, "ns_per_child", s,
			"a fresh context.WithCancel(Background) root with n WithCancel children, each child's Done() called before; timed: root cancel() + <-c.Done() on every child, / n; runtime.GC() before each batch (not timed)")
	}
}

func scaleValueDepth(cfg *config) {
	const workload = "scale.value_depth"
	if !cfg.want(workload) {
		return
	}
	for n := 1; n <= 1024; n *= 2 {
		progress("%s n=%d", workload, n)
		ctx := valueChain(n)
		var key interface{} = valueKey(0)
		s := nsPerOp(cfg.microTarget(), cfg.pick(7, 3), func(k int) {
			hits := 0
			for i := 0; i < k; i++ {
				if ctx.Value(key) != nil {
					hits++
				}
			}
			if hits != k {
				panic("scale.value_depth: a lookup missed")
			}
		})
		emitScale(cfg, workload, implName, n, "ns_per_op", s,
			"ctx.Value(valueKey(0)) on a chain of n context.WithValue layers over Background, layer i holding valueKey(i); key 0 is nearest the root (walks all n layers)")
	}
}

func scalePoolWorkers(cfg *config) {
	const workload = "scale.pool_workers"
	if !cfg.want(workload) {
		return
	}
	jobs := cfg.pick(poolJobs, 200000)
	for n := 1; n <= 8; n++ {
		progress("%s n=%d", workload, n)
		s := poolBatches(cfg.pick(5, 3), jobs, n, 1024)
		emitScale(cfg, workload, implName+"-buffered", n, "ns_per_job", s, fmt.Sprintf(
			"classic worker pool as pool.squares_1m_* with n workers, jobs and results channels buffered 1024, %d jobs per run, sum checked; a fresh pool per run, one warm-up pool of %d jobs",
			jobs, jobs/10))
	}
}

func scaleGroupTasks(cfg *config) {
	const workload = "scale.group_tasks"
	if !cfg.want(workload) {
		return
	}
	for _, n := range bigSeries(cfg, 10000) {
		progress("%s n=%d", workload, n)
		n := n
		s := batches(bigRuns(cfg, n), func() float64 {
			runtime.GC()
			start := time.Now()
			goWait(context.Background(), n, -1)
			return float64(time.Since(start).Nanoseconds()) / float64(n)
		})
		emitScale(cfg, workload, implName, n, "ns_per_task", s,
			"errgroup.WithContext(Background), n g.Go(func() error { return nil }), g.Wait() (nil checked); one group per batch, / n; runtime.GC() before each batch (not timed)")
	}
}

// memHeld is the memory a goroutine-heavy workload holds: live heap plus stack spans, after a
// full GC.
func memHeld() float64 {
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return float64(m.HeapAlloc + m.StackInuse)
}

func scaleGroupBytes(cfg *config) {
	const workload = "scale.group_bytes"
	if !cfg.want(workload) {
		return
	}
	for _, n := range bigSeries(cfg, 10000) {
		progress("%s n=%d", workload, n)
		n := n
		s := make([]float64, 0, 3)
		for run := 0; run < 3; run++ {
			parent, cancel := context.WithCancel(context.Background())
			var started int32
			before := memHeld()
			g, ctx := errgroup.WithContext(parent)
			for i := 0; i < n; i++ {
				g.Go(func() error {
					atomic.AddInt32(&started, 1)
					<-ctx.Done()
					return ctx.Err()
				})
			}
			for atomic.LoadInt32(&started) < int32(n) {
				time.Sleep(100 * time.Microsecond)
			}
			time.Sleep(2 * time.Millisecond) // let every task park
			held := memHeld()
			cancel()
			if err := g.Wait(); !errors.Is(err, context.Canceled) {
				panic(fmt.Sprintf("scale.group_bytes: Wait returned %v, want context.Canceled", err))
			}
			s = append(s, (held-before)/float64(n))
		}
		emitScale(cfg, workload, implName, n, "bytes_per_task", s,
			"errgroup.WithContext(parent), n tasks each <-ctx.Done() on the group's context; once all have started and parked (then 2 ms): (HeapAlloc + StackInuse) after runtime.GC() minus the same before the group, / n; then the parent is canceled and Wait checked (not measured). Go keeps the descriptors (g structs) of exited goroutines for reuse and never frees them, so a goroutine reusing one adds no heap for it: the figure is mostly the goroutine's stack (Go 1.19 starts a new stack at the average stack size seen by the last GC, 2 KB at least, so earlier workloads move it between about 2 and 4 KB), plus its closure and its sudog on the channel")
	}
}

func scaleLimiterThreads(cfg *config) {
	const workload = "scale.limiter_threads"
	if !cfg.want(workload) {
		return
	}
	d := cfg.pickDuration(500*time.Millisecond, 100*time.Millisecond)
	for n := 1; n <= 4; n++ {
		progress("%s n=%d", workload, n)
		lim := bigLimiter()
		op := func() {
			if !lim.Allow() {
				panic("scale.limiter_threads: refused; the limiter always has tokens")
			}
		}
		contended(n, d/10, op)
		s := make([]float64, cfg.pick(5, 3))
		for i := range s {
			ops, secs := contended(n, d, op)
			s[i] = float64(ops) / secs / 1e6
		}
		emitScale(cfg, workload, rateImpl, n, "mops_per_s", s, fmt.Sprintf(
			"n goroutines calling Allow() on one shared rate.NewLimiter(1e9, 1e9) for %d ms per batch (GOMAXPROCS %d); total allows / wall time",
			d.Milliseconds(), runtime.GOMAXPROCS(0)))
	}
}

// scaleTimeoutAwaited is ctx.timeout_awaited_100k with n goroutines (awaitedBatches).
func scaleTimeoutAwaited(cfg *config) {
	const workload = "scale.timeout_awaited"
	if !cfg.want(workload) {
		return
	}
	root, cancelRoot := context.WithCancel(context.Background())
	defer cancelRoot()
	for _, n := range bigSeries(cfg, 10000) {
		progress("%s n=%d", workload, n)
		diff, with, bare := awaitedBatches(root, n, bigRuns(cfg, n))
		emitScale(cfg, workload, implName, n, "ns_per_op", diff, fmt.Sprintf(
			"as ctx.timeout_awaited_100k with n goroutines: each WithTimeout(root, timeout) (10 s per 100,000 goroutines, at least 10 s: none fires on a loaded machine), select on <-c.Done() and its own oneshot, cancel(); all oneshots closed once every goroutine is about to wait; wall time from the first go statement until all finished / n, minus the same run with go + <-oneshot only, per batch (halves alternating, runtime.GC() before each, not timed); medians: %.1f ns with the timeout, %.1f ns bare",
			median(with), median(bare)))
	}
}

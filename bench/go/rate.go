package main

// rate.* workloads on golang.org/x/time/rate, and ticker.accuracy on time.Ticker.

import (
	"context"
	"fmt"
	"math"
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// rateImpl names the limiter lines.
var rateImpl = implName + "-x/time/rate"

// bigLimiter always has tokens: 1e9 per second with a burst of 1e9 (real token arithmetic,
// not the rate.Inf fast path). It starts full.
func bigLimiter() *rate.Limiter { return rate.NewLimiter(1e9, 1e9) }

func runRate(cfg *config) {
	allow(cfg)
	allowContended(cfg)
	waitAccuracy(cfg)
	waitersCPU(cfg)
}

// allowLoop returns a micro benchmark body calling lim.Allow() n times, all allowed.
func allowLoop(lim *rate.Limiter) func(n int) {
	return func(n int) {
		ok := 0
		for i := 0; i < n; i++ {
			if lim.Allow() {
				ok++
			}
		}
		if ok != n {
			panic(fmt.Sprintf("rate.allow: %d of %d allowed; the limiter always has tokens", ok, n))
		}
	}
}

func allow(cfg *config) {
	if !cfg.want("rate.allow") {
		return
	}
	progress("rate.allow")
	s := nsPerOp(cfg.microTarget(), cfg.microRuns(), allowLoop(bigLimiter()))
	inf := nsPerOp(cfg.microTarget(), cfg.microRuns(), allowLoop(rate.NewLimiter(rate.Inf, 0)))
	emit(cfg, "rate.allow", rateImpl, "ns_per_op", s, fmt.Sprintf(
		"lim.Allow() on rate.NewLimiter(1e9, 1e9), one goroutine (always has tokens; time.Now() plus token arithmetic under the limiter's mutex). The rate.Inf fast path: median %.1f ns",
		median(inf)))
}

func allowContended(cfg *config) {
	if !cfg.want("rate.allow_contended_2") {
		return
	}
	progress("rate.allow_contended_2")
	d := cfg.pickDuration(500*time.Millisecond, 150*time.Millisecond)
	lim := bigLimiter()
	op := func() {
		if !lim.Allow() {
			panic("rate.allow_contended_2: refused; the limiter always has tokens")
		}
	}
	contended(2, d/10, op)
	s := make([]float64, cfg.runs())
	for i := range s {
		ops, secs := contended(2, d, op)
		s[i] = float64(ops) / secs / 1e6
	}
	emit(cfg, "rate.allow_contended_2", rateImpl, "mops_per_s", s, fmt.Sprintf(
		"2 goroutines calling Allow() on one shared rate.NewLimiter(1e9, 1e9) for %d ms per batch; total allows over both / wall time",
		d.Milliseconds()))
}

// waitFigures are the figures of one run of sequential waits at 1,000/s, burst 1.
type waitFigures struct {
	errPct, p99, p50, max float64
}

// figuresOfWaits computes them from each wait's call and return time: achieved rate =
// (waits-1) / (last return - first return); wait i was due at s_0 = call_0,
// s_i = max(call_i, s_(i-1) + 1 ms); lateness_i = return_i - s_i.
func figuresOfWaits(calls, returns []time.Time) waitFigures {
	n := len(calls)
	span := returns[n-1].Sub(returns[0]).Seconds()
	achieved := float64(n-1) / span
	late := make([]float64, n)
	due := calls[0]
	for i := range calls {
		if i > 0 {
			due = due.Add(time.Millisecond)
			if calls[i].After(due) {
				due = calls[i]
			}
		}
		late[i] = math.Max(0, micros(returns[i].Sub(due)))
	}
	f := waitFigures{errPct: (achieved/1000 - 1) * 100, p99: percentile(late, 99), p50: percentile(late, 50)}
	for _, l := range late {
		f.max = math.Max(f.max, l)
	}
	return f
}

// sequentialWaits runs n sequential lim.Wait calls on a fresh 1,000/s, burst 1 limiter.
func sequentialWaits(n int) waitFigures {
	lim := rate.NewLimiter(1000, 1)
	ctx := context.Background()
	calls := make([]time.Time, n)
	returns := make([]time.Time, n)
	for i := 0; i < n; i++ {
		calls[i] = time.Now()
		if err := lim.Wait(ctx); err != nil {
			panic(fmt.Sprintf("rate.wait: Wait returned %v", err))
		}
		returns[i] = time.Now()
	}
	return figuresOfWaits(calls, returns)
}

func waitAccuracy(cfg *config) {
	if !cfg.want("rate.wait_accuracy", "rate.wait_lateness_p99") {
		return
	}
	progress("rate.wait_accuracy / rate.wait_lateness_p99")
	waits := cfg.pick(2000, 300)
	sequentialWaits(waits / 10) // warm-up
	figs := make([]waitFigures, cfg.runs())
	for i := range figs {
		figs[i] = sequentialWaits(waits)
	}
	col := func(f func(waitFigures) float64) []float64 {
		out := make([]float64, len(figs))
		for i, fig := range figs {
			out[i] = f(fig)
		}
		return out
	}
	how := fmt.Sprintf("rate.NewLimiter(1000, 1), %d sequential lim.Wait(Background) in one goroutine per run (a time.Timer per wait; one warm-up run of %d waits)", waits, waits/10)
	if cfg.want("rate.wait_accuracy") {
		emit(cfg, "rate.wait_accuracy", rateImpl, "error_pct",
			col(func(f waitFigures) float64 { return f.errPct }),
			how+"; signed: (achieved/1000 - 1) * 100, achieved = (waits-1) / (last return - first return); negative = slower than 1,000/s")
	}
	if cfg.want("rate.wait_lateness_p99") {
		emit(cfg, "rate.wait_lateness_p99", rateImpl, "us",
			col(func(f waitFigures) float64 { return f.p99 }),
			fmt.Sprintf("%s; lateness_i = return_i - s_i, s_0 = call_0, s_i = max(call_i, s_(i-1) + 1 ms); p99 per run; medians over runs: p50 %.1f us, max %.1f us",
				how, median(col(func(f waitFigures) float64 { return f.p50 })),
				median(col(func(f waitFigures) float64 { return f.max }))))
	}
}

// waitersRun starts n goroutines that each call lim.Wait once on a fresh limiter of
// perSecond, burst 1; it returns the process's CPU time over the wall time (in percent) from
// the first go statement until the last wait has returned, and that wall time.
func waitersRun(n int, perSecond float64) (float64, time.Duration) {
	lim := rate.NewLimiter(rate.Limit(perSecond), 1)
	ctx := context.Background()
	var wg sync.WaitGroup
	wg.Add(n)
	errs := make(chan error, n)
	cpu0 := cpuTime()
	start := time.Now()
	for i := 0; i < n; i++ {
		go func() {
			defer wg.Done()
			if err := lim.Wait(ctx); err != nil {
				errs <- err
			}
		}()
	}
	wg.Wait()
	wall := time.Since(start)
	cpu := cpuTime() - cpu0
	close(errs)
	if err := <-errs; err != nil {
		panic(fmt.Sprintf("rate.waiters_cpu_20k: Wait returned %v", err))
	}
	return 100 * cpu.Seconds() / wall.Seconds(), wall
}

func waitersCPU(cfg *config) {
	if !cfg.want("rate.waiters_cpu_20k") {
		return
	}
	progress("rate.waiters_cpu_20k")
	const waiters = 20000
	waitersRun(waiters/10, waiters) // warm-up
	s := make([]float64, cfg.runs())
	walls := make([]float64, len(s))
	for i := range s {
		var wall time.Duration
		s[i], wall = waitersRun(waiters, waiters)
		walls[i] = millis(wall)
	}
	emit(cfg, "rate.waiters_cpu_20k", rateImpl, "cpu_pct", s, fmt.Sprintf(
		"20,000 goroutines each calling lim.Wait(Background) once, all started at once, on one rate.NewLimiter(20000, 1) (each reserves its slot and sleeps on its own time.Timer); process CPU time (getrusage user+system, all threads, GOMAXPROCS as default) / wall time from the first go statement until the last Wait returned, in percent of one CPU; median wall %.0f ms; one warm-up run of 2,000 waiters",
		median(walls)))
}

// ===== ticker =====

func runTicker(cfg *config) {
	if !cfg.want("ticker.accuracy") {
		return
	}
	progress("ticker.accuracy")
	ticks := cfg.pick(1000, 200)
	type tickFigures struct{ mad, maxInterval, perSecond float64 }
	run := func(ticks int) tickFigures {
		stamps := make([]time.Time, 0, ticks+1)
		t := time.NewTicker(time.Millisecond)
		stamps = append(stamps, time.Now())
		for i := 0; i < ticks; i++ {
			<-t.C
			stamps = append(stamps, time.Now())
		}
		t.Stop()
		var f tickFigures
		var sum float64
		for i := 1; i < len(stamps); i++ {
			iv := micros(stamps[i].Sub(stamps[i-1]))
			sum += math.Abs(iv - 1000)
			f.maxInterval = math.Max(f.maxInterval, iv)
		}
		f.mad = sum / float64(ticks)
		f.perSecond = float64(ticks) / stamps[ticks].Sub(stamps[0]).Seconds()
		return f
	}
	run(ticks / 10) // warm-up
	mad := make([]float64, cfg.runs())
	maxIv := make([]float64, len(mad))
	perSec := make([]float64, len(mad))
	for i := range mad {
		f := run(ticks)
		mad[i], maxIv[i], perSec[i] = f.mad, f.maxInterval, f.perSecond
	}
	emit(cfg, "ticker.accuracy", implName, "us", mad, fmt.Sprintf(
		"time.NewTicker(time.Millisecond), %d receives from t.C per run; intervals between receiver-side time.Now() stamps, the first taken when NewTicker returned; mean |interval - 1 ms|; medians over runs: %.0f ticks per second, max interval %.1f us (a late receiver makes the ticker drop ticks)",
		ticks, median(perSec), median(maxIv)))
}

package main

// What every workload file shares: the run configuration, batch timing, statistics, the JSON
// line format and the check for other processes' CPU use.

import (
	"fmt"
	"math"
	"os"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// config is what to run, from the command line.
type config struct {
	quick bool     // smaller batches, about 15 s in all
	scale bool     // the scale series instead of the regular workloads
	only  []string // workload name prefixes; empty selects everything
}

// want reports whether any of the workloads is selected.
func (c *config) want(workloads ...string) bool {
	if len(c.only) == 0 {
		return true
	}
	for _, w := range workloads {
		for _, p := range c.only {
			if strings.HasPrefix(w, p) {
				return true
			}
		}
	}
	return false
}

// wantArea reports whether any workload named area+"..." can be selected.
func (c *config) wantArea(area string) bool {
	if len(c.only) == 0 {
		return true
	}
	for _, p := range c.only {
		if strings.HasPrefix(area, p) || strings.HasPrefix(p, area) {
			return true
		}
	}
	return false
}

// pick returns full normally and quick with -quick.
func (c *config) pick(full, quick int) int {
	if c.quick {
		return quick
	}
	return full
}

// pickDuration is pick for durations.
func (c *config) pickDuration(full, quick time.Duration) time.Duration {
	if c.quick {
		return quick
	}
	return full
}

// microRuns is the batch count of a micro benchmark.
func (c *config) microRuns() int { return c.pick(11, 7) }

// microTarget is the length one micro batch is calibrated to.
func (c *config) microTarget() time.Duration {
	return c.pickDuration(50*time.Millisecond, 10*time.Millisecond)
}

// heavyRuns is the batch count of a 100k/10k tree workload.
func (c *config) heavyRuns() int { return c.pick(9, 7) }

// runs is the batch count of every other workload.
func (c *config) runs() int { return c.pick(7, 3) }

// quickNote is appended to every note in quick mode.
func (c *config) quickNote() string {
	if c.quick {
		return "; quick mode (smaller batches)"
	}
	return ""
}

// started is when the process started, for the progress lines.
var started = time.Now()

// progress writes one line of progress to stderr, with the seconds since the start.
func progress(format string, args ...interface{}) {
	fmt.Fprintf(os.Stderr, "[bench/go %5.1fs] "+format+"\n",
		append([]interface{}{time.Since(started).Seconds()}, args...)...)
}

// ===== statistics =====

// summary holds the figures of one JSON line.
type summary struct {
	value, min, max float64
	runs            int
}

// summarize returns the median, minimum and maximum of per-batch figures.
func summarize(samples []float64) summary {
	if len(samples) == 0 {
		panic("summarize: no samples")
	}
	s := append([]float64(nil), samples...)
	sort.Float64s(s)
	n := len(s)
	median := s[n/2]
	if n%2 == 0 {
		median = (s[n/2-1] + s[n/2]) / 2
	}
	return summary{value: median, min: s[0], max: s[n-1], runs: n}
}

// median of unsorted samples.
func median(samples []float64) float64 { return summarize(samples).value }

// percentile is the nearest-rank percentile (p in 0..100) of unsorted samples.
func percentile(samples []float64, p float64) float64 {
	s := append([]float64(nil), samples...)
	sort.Float64s(s)
	rank := int(math.Ceil(p / 100 * float64(len(s))))
	if rank < 1 {
		rank = 1
	}
	if rank > len(s) {
		rank = len(s)
	}
	return s[rank-1]
}

// ===== output =====

// implName is "go" plus major.minor of the runtime that built the binary, e.g. "go1.19".
var implName = func() string {
	v := runtime.Version()
	if !strings.HasPrefix(v, "go") {
		return "go"
	}
	parts := strings.SplitN(v, ".", 3)
	if len(parts) < 2 {
		return v
	}
	minor := parts[1]
	// Pre-releases look like go1.21rc2: keep the digits only.
	for i, r := range minor {
		if r < '0' || r > '9' {
			minor = minor[:i]
			break
		}
	}
	return parts[0] + "." + minor
}()

func number(x float64) string {
	switch {
	case math.IsNaN(x) || math.IsInf(x, 0):
		return "null"
	case x == 0 || math.Abs(x) >= 1:
		return strconv.FormatFloat(x, 'f', 3, 64)
	default:
		return strconv.FormatFloat(x, 'f', 5, 64)
	}
}

func jsonString(s string) string {
	var b strings.Builder
	b.WriteByte('"')
	for _, r := range s {
		switch {
		case r == '"':
			b.WriteString(`\"`)
		case r == '\\':
			b.WriteString(`\\`)
		case r == '\n':
			b.WriteString(`\n`)
		case r < 0x20:
			fmt.Fprintf(&b, `\u%04x`, r)
		default:
			b.WriteRune(r)
		}
	}
	b.WriteByte('"')
	return b.String()
}

// stdoutMu guards stdout and linesPrinted.
var stdoutMu sync.Mutex

// linesPrinted counts the JSON lines printed: none means -only matched no workload.
var linesPrinted int

// emitLine prints one JSON line on stdout. n < 0 leaves the "n" field out (regular workloads);
// s == nil prints "value":null, with the note saying why.
func emitLine(workload, impl string, n int, metric string, s *summary, note string) {
	var b strings.Builder
	fmt.Fprintf(&b, `{"workload":%s,"impl":%s,`, jsonString(workload), jsonString(impl))
	if n >= 0 {
		fmt.Fprintf(&b, `"n":%d,`, n)
	}
	fmt.Fprintf(&b, `"metric":%s,`, jsonString(metric))
	if s != nil {
		fmt.Fprintf(&b, `"value":%s,"min":%s,"max":%s,"runs":%d`,
			number(s.value), number(s.min), number(s.max), s.runs)
	} else {
		b.WriteString(`"value":null,"min":null,"max":null,"runs":0`)
	}
	if note != "" {
		fmt.Fprintf(&b, `,"note":%s`, jsonString(note))
	}
	b.WriteString("}\n")
	stdoutMu.Lock()
	defer stdoutMu.Unlock()
	os.Stdout.WriteString(b.String())
	linesPrinted++
}

// emit prints a regular workload's line.
func emit(cfg *config, workload, impl, metric string, samples []float64, note string) {
	s := summarize(samples)
	emitLine(workload, impl, -1, metric, &s, note+cfg.quickNote())
}

// emitScale prints a scale series line (with "n").
func emitScale(cfg *config, workload, impl string, n int, metric string, samples []float64, note string) {
	s := summarize(samples)
	emitLine(workload, impl, n, metric, &s, note+cfg.quickNote())
}

// ===== timing =====

// sink keeps results observable so the compiler cannot drop the work producing them.
var sink uint64

// batches runs f once as a warm-up, then runs times; it returns each run's figure.
func batches(runs int, f func() float64) []float64 {
	f()
	out := make([]float64, runs)
	for i := range out {
		out[i] = f()
	}
	return out
}

// warmUpThen calls f(false) once as a warm-up, then f(true) runs times; f records its figures
// only when told to (for workloads that produce several figures per batch).
func warmUpThen(runs int, f func(record bool)) {
	f(false)
	for i := 0; i < runs; i++ {
		f(true)
	}
}

// nsPerOp calibrates n so that op(n) takes about target, runs one warm-up batch, then times
// runs batches; it returns the nanoseconds per operation of each batch.
func nsPerOp(target time.Duration, runs int, op func(n int)) []float64 {
	n := 100
	for {
		start := time.Now()
		op(n)
		took := time.Since(start)
		if took >= target/20 || n >= 1<<30 {
			if took <= 0 {
				took = 1
			}
			n = int(float64(n) * float64(target) / float64(took))
			break
		}
		n *= 10
	}
	if n < 1 {
		n = 1
	}
	op(n)
	out := make([]float64, runs)
	for i := range out {
		start := time.Now()
		op(n)
		out[i] = float64(time.Since(start).Nanoseconds()) / float64(n)
	}
	return out
}

// contended runs op in g goroutines until d has passed; it returns the total number of
// operations and the wall seconds from the common start until every goroutine stopped.
func contended(g int, d time.Duration, op func()) (uint64, float64) {
	var stop int32
	var total uint64
	var ready, finished sync.WaitGroup
	start := make(chan struct{})
	ready.Add(g)
	finished.Add(g)
	for i := 0; i < g; i++ {
		go func() {
			defer finished.Done()
			ready.Done()
			<-start
			var n uint64
			for atomic.LoadInt32(&stop) == 0 {
				for j := 0; j < 256; j++ {
					op()
				}
				n += 256
			}
			atomic.AddUint64(&total, n)
		}()
	}
	ready.Wait()
	t0 := time.Now()
	close(start)
	time.Sleep(d)
	atomic.StoreInt32(&stop, 1)
	finished.Wait()
	return atomic.LoadUint64(&total), time.Since(t0).Seconds()
}

// spin keeps this goroutine's thread busy for d.
func spin(d time.Duration) {
	start := time.Now()
	for time.Since(start) < d {
	}
}

// micros converts a duration to microseconds.
func micros(d time.Duration) float64 { return float64(d.Nanoseconds()) / 1e3 }

// millis converts a duration to milliseconds.
func millis(d time.Duration) float64 { return float64(d.Nanoseconds()) / 1e6 }

// cpuTime is the CPU time (user + system) this process has used so far.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// ===== other processes' CPU use =====

// systemTicks returns the busy and total jiffies of all CPUs from /proc/stat.
func systemTicks() (busy, total float64, ok bool) {
	data, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0, 0, false
	}
	line := strings.SplitN(string(data), "\n", 2)[0]
	fields := strings.Fields(line)
	if len(fields) < 5 || fields[0] != "cpu" {
		return 0, 0, false
	}
	for i, f := range fields[1:] {
		v, err := strconv.ParseFloat(f, 64)
		if err != nil {
			return 0, 0, false
		}
		total += v
		if i != 3 && i != 4 { // idle, iowait
			busy += v
		}
	}
	return busy, total, true
}

// clockTicks is USER_HZ, the unit of /proc/stat (100 on every Linux platform Go supports).
const clockTicks = 100

// loadMark is a point from which othersLoad measures.
type loadMark struct {
	busy, total float64
	own         time.Duration
	ok          bool
}

func markLoad() loadMark {
	b, t, ok := systemTicks()
	return loadMark{busy: b, total: t, own: cpuTime(), ok: ok}
}

// report prints on stderr the share of all CPUs' time that other processes used since m, and
// a warning above 5 %.
func (m loadMark) report(what string) {
	if !m.ok {
		return
	}
	b, t, ok := systemTicks()
	if !ok || t <= m.total {
		return
	}
	own := (cpuTime() - m.own).Seconds() * clockTicks
	share := ((b - m.busy) - own) / (t - m.total)
	if share < 0 {
		share = 0
	}
	fmt.Fprintf(os.Stderr, "# %s: other processes used %.0f%% of the CPUs\n", what, share*100)
	if share > 0.05 {
		fmt.Fprintf(os.Stderr, "# WARNING (%s): timings are perturbed; rerun on a quiet machine\n", what)
	}
}

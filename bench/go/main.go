// Command bench/go measures the workloads of ctxkit's benchmark runner (ctxkit-bench) on Go's
// own packages: context, golang.org/x/sync/errgroup, the classic channel worker pool,
// golang.org/x/time/rate and time.Ticker. It prints one JSON line per workload on stdout, in
// the format ctxkit-bench prints, so that `ctxkit-bench compare` can put both in one table.
// Progress, the Go version and GOMAXPROCS go to stderr.
//
//	go run . [-quick] [-only PREFIX[,PREFIX...]] [-scale]
//
// Build it with run.sh, which builds offline against Debian's packages (GOPATH mode).
package main

import (
	"flag"
	"fmt"
	"os"
	"runtime"
	"strings"
	"time"
)

// prefixes collects -only values: comma-separated, the flag repeatable.
type prefixes []string

func (p *prefixes) String() string { return strings.Join(*p, ",") }

func (p *prefixes) Set(v string) error {
	for _, s := range strings.Split(v, ",") {
		if s = strings.TrimSpace(s); s != "" {
			*p = append(*p, s)
		}
	}
	return nil
}

func main() {
	cfg := &config{}
	var only prefixes
	flag.BoolVar(&cfg.quick, "quick", false, "smaller batches: about 15 s in all")
	flag.BoolVar(&cfg.scale, "scale", false, "print the scale series instead of the regular workloads")
	flag.Var(&only, "only", "run only workloads whose name starts with PREFIX (comma-separated, repeatable)")
	flag.Usage = func() {
		fmt.Fprintln(os.Stderr, "usage: bench/go/run.sh [-quick] [-only PREFIX[,PREFIX...]] [-scale]")
		flag.PrintDefaults()
	}
	flag.Parse()
	if flag.NArg() > 0 {
		fmt.Fprintf(os.Stderr, "unexpected argument %q\n", flag.Arg(0))
		flag.Usage()
		os.Exit(2)
	}
	cfg.only = only

	fmt.Fprintf(os.Stderr, "# %s %s/%s, GOMAXPROCS=%d, NumCPU=%d, impl %q\n",
		runtime.Version(), runtime.GOOS, runtime.GOARCH, runtime.GOMAXPROCS(0), runtime.NumCPU(), implName)

	type area struct {
		name string
		run  func(*config)
	}
	areas := []area{
		{"ctx", runCtx},
		{"group", runGroup},
		{"pool", runPool},
		{"rate", runRate},
		{"ticker", runTicker},
	}
	if cfg.scale {
		areas = []area{{"scale", runScale}}
	}
	whole := markLoad()
	wholeStart := time.Now()
	for _, a := range areas {
		if !cfg.wantArea(a.name + ".") {
			continue
		}
		mark := markLoad()
		start := time.Now()
		a.run(cfg)
		fmt.Fprintf(os.Stderr, "# %s: %.1f s\n", a.name, time.Since(start).Seconds())
		mark.report(a.name)
	}
	fmt.Fprintf(os.Stderr, "# whole run: %.1f s\n", time.Since(wholeStart).Seconds())
	whole.report("whole run")
	if linesPrinted == 0 {
		// Exit status 3: -only matched nothing (ctxkit-bench uses the same status).
		fmt.Fprintf(os.Stderr, "bench/go: no workload matches -only %s\n", strings.Join(cfg.only, ","))
		os.Exit(3)
	}
}

package main

// pool.* workloads: the classic channel worker pool. A producer goroutine sends 0..n-1 on a
// jobs channel, N workers range over it and send the squares on a results channel, a closer
// goroutine closes results once the workers' sync.WaitGroup is done, and the main goroutine
// sums the results.

import (
	"fmt"
	"sync"
	"time"
)

const poolJobs = 1000000

// squaresSum is the sum of i*i for i in 0..n-1, which every pool run must produce.
func squaresSum(n int) int64 {
	m := int64(n)
	return (m - 1) * m * (2*m - 1) / 6
}

// squaresPool runs one whole pool of workers over 0..n-1 with channels of capacity buffer
// (0: unbuffered) and returns the consumer's sum.
func squaresPool(n, workers, buffer int) int64 {
	jobs := make(chan int64, buffer)
	results := make(chan int64, buffer)
	var wg sync.WaitGroup
	wg.Add(workers)
	for w := 0; w < workers; w++ {
		go func() {
			defer wg.Done()
			for j := range jobs {
				results <- j * j
			}
		}()
	}
	go func() {
		wg.Wait()
		close(results)
	}()
	go func() {
		for i := 0; i < n; i++ {
			jobs <- int64(i)
		}
		close(jobs)
	}()
	var sum int64
	for r := range results {
		sum += r
	}
	return sum
}

// poolBatches runs a warm-up pool of n/10 jobs, then runs timed pools of n jobs, each a fresh
// pool and each sum checked; it returns the nanoseconds per job of each run.
func poolBatches(runs, n, workers, buffer int) []float64 {
	if got := squaresPool(n/10, workers, buffer); got != squaresSum(n/10) {
		panic(fmt.Sprintf("pool warm-up sum %d, want %d", got, squaresSum(n/10)))
	}
	out := make([]float64, runs)
	for i := range out {
		start := time.Now()
		got := squaresPool(n, workers, buffer)
		out[i] = float64(time.Since(start).Nanoseconds()) / float64(n)
		if got != squaresSum(n) {
			panic(fmt.Sprintf("pool sum %d, want %d", got, squaresSum(n)))
		}
	}
	return out
}

func runPool(cfg *config) {
	for _, w := range []struct {
		workload string
		workers  int
	}{{"pool.squares_1m_w2", 2}, {"pool.squares_1m_w3", 3}} {
		if !cfg.want(w.workload) {
			continue
		}
		for _, form := range []struct {
			impl   string
			buffer int
			what   string
		}{
			{implName, 0, "unbuffered jobs and results channels"},
			{implName + "-buffered", 1024, "jobs and results channels buffered 1024"},
		} {
			progress("%s (%s)", w.workload, form.impl)
			s := poolBatches(cfg.runs(), poolJobs, w.workers, form.buffer)
			emit(cfg, w.workload, form.impl, "ns_per_job", s, fmt.Sprintf(
				"classic worker pool, %s: a producer goroutine sends 0..999,999 and closes jobs, %d workers range over jobs sending j*j, a closer goroutine closes results once every worker has finished, the main goroutine sums (sum checked); a fresh pool per run (goroutine starts included), one warm-up pool of 100,000 jobs",
				form.what, w.workers))
		}
	}
}

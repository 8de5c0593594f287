package main

// group.* workloads on golang.org/x/sync/errgroup.

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	"golang.org/x/sync/errgroup"
)

const (
	groupTasks     = 10000 // group.go_wait_10k, group.go_wait_limit2_10k
	groupsPerBatch = 5
	groupBlockers  = 1000 // group.first_error_cancel
)

var errBoom = errors.New("boom")

// goWait runs one group of n tasks that succeed at once (limit < 0: no limit) and waits.
func goWait(parent context.Context, n, limit int) {
	g, _ := errgroup.WithContext(parent)
	if limit >= 0 {
		g.SetLimit(limit)
	}
	for i := 0; i < n; i++ {
		g.Go(func() error { return nil })
	}
	if err := g.Wait(); err != nil {
		panic(fmt.Sprintf("errgroup: no task fails, yet Wait returned %v", err))
	}
}

// firstErrorTrial: groupBlockers tasks block on the group's context and one more fails once
// triggered; microseconds from just before its error return until Wait has returned it.
func firstErrorTrial() float64 {
	g, ctx := errgroup.WithContext(context.Background())
	var started int32
	for i := 0; i < groupBlockers; i++ {
		g.Go(func() error {
			atomic.AddInt32(&started, 1)
			<-ctx.Done()
			return ctx.Err()
		})
	}
	trigger := make(chan struct{})
	var t0 time.Time
	g.Go(func() error {
		<-trigger
		t0 = time.Now()
		return errBoom
	})
	for atomic.LoadInt32(&started) < groupBlockers {
		time.Sleep(100 * time.Microsecond)
	}
	time.Sleep(2 * time.Millisecond) // let every blocker park
	close(trigger)
	err := g.Wait()
	t1 := time.Now()
	if !errors.Is(err, errBoom) {
		panic(fmt.Sprintf("group.first_error_cancel: Wait returned %v, not the failing task's error", err))
	}
	// Wait's return happens after the failing task's, so reading t0 here is race-free.
	return micros(t1.Sub(t0))
}

func runGroup(cfg *config) {
	for _, w := range []struct {
		workload string
		limit    int
		how      string
	}{
		{"group.go_wait_10k", -1, "no limit: every Go starts a goroutine at once"},
		{"group.go_wait_limit2_10k", 2, "g.SetLimit(2): Go blocks while 2 tasks are active (a channel semaphore)"},
	} {
		if !cfg.want(w.workload) {
			continue
		}
		progress(w.workload)
		limit := w.limit
		s := batches(cfg.microRuns(), func() float64 {
			start := time.Now()
			for i := 0; i < groupsPerBatch; i++ {
				goWait(context.Background(), groupTasks, limit)
			}
			return float64(time.Since(start).Nanoseconds()) / (groupsPerBatch * groupTasks)
		})
		emit(cfg, w.workload, implName, "ns_per_task", s, fmt.Sprintf(
			"errgroup.WithContext(Background), 10,000 g.Go(func() error { return nil }), g.Wait() (nil checked); %s; %d groups per batch, ns per task",
			w.how, groupsPerBatch))
	}

	if cfg.want("group.first_error_cancel") {
		progress("group.first_error_cancel")
		s := batches(cfg.pick(21, 7), firstErrorTrial)
		emit(cfg, "group.first_error_cancel", implName, "us", s,
			"errgroup.WithContext: 1,000 tasks <-ctx.Done(); return ctx.Err(), plus one that, once triggered (all blockers parked, then 2 ms), takes t0 and returns an error; t1 when g.Wait() has returned that error in the main goroutine (the first error cancels the context, the 1,000 wake and return, the last wg.Done wakes Wait); one trial per run")
	}
}

package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"sync"
	"time"

	"github.com/schollz/progressbar/v3"
	"golang.org/x/term"
)

// output keeps stdout clean: under --json it carries JSON lines only, and
// every diagnostic goes to stderr (as JSON lines too).
type output struct {
	json   bool
	quiet  bool
	stdout io.Writer
	stderr io.Writer

	start time.Time // the command's start, for progress rates

	mu  sync.Mutex // serialises writes and guards bar
	bar *progressbar.ProgressBar
}

func newOutput(g *globalFlags) *output {
	return &output{json: g.json, quiet: g.quiet, stdout: os.Stdout, stderr: os.Stderr, start: time.Now()}
}

// isTerminal reports whether stderr is a terminal (progress bars go there).
func isTerminal() bool { return term.IsTerminal(int(os.Stderr.Fd())) }

// emit writes one JSON line on stdout.
func (o *output) emit(v any) {
	o.mu.Lock()
	defer o.mu.Unlock()
	b, err := json.Marshal(v)
	if err != nil {
		b, _ = json.Marshal(map[string]string{"type": "error", "message": err.Error()})
	}
	o.stdout.Write(append(b, '\n'))
}

// printf writes human output on stdout (never under --json).
func (o *output) printf(format string, a ...any) {
	if o.json {
		return
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	o.clearBar()
	fmt.Fprintf(o.stdout, format, a...)
}

// warn reports a problem with one path on stderr.
func (o *output) warn(path string, err error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.json {
		b, _ := json.Marshal(map[string]string{"type": "warning", "path": path, "message": err.Error()})
		o.stderr.Write(append(b, '\n'))
		return
	}
	o.clearBar()
	if path != "" {
		fmt.Fprintf(o.stderr, "warning: %s: %v\n", path, err)
	} else {
		fmt.Fprintf(o.stderr, "warning: %v\n", err)
	}
}

// info prints a human note on stderr (not under --json or --quiet).
func (o *output) info(format string, a ...any) {
	if o.json || o.quiet {
		return
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	o.clearBar()
	fmt.Fprintf(o.stderr, format, a...)
}

func (o *output) fatal(err error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.json {
		b, _ := json.Marshal(map[string]string{"type": "error", "message": err.Error()})
		o.stderr.Write(append(b, '\n'))
		return
	}
	o.clearBar()
	fmt.Fprintf(o.stderr, "cairn: %v\n", err)
}

// progress shows a bar on a terminal, or progress events under --json.
// total < 0 means unknown.
func (o *output) progress(desc string, done, total int64, event any) {
	if o.quiet {
		return
	}
	if o.json {
		if event != nil {
			o.emit(event)
		}
		return
	}
	if !isTerminal() {
		return
	}
	o.showBar(desc, done, total, time.Now())
}

// showBar draws the bar. The bar's own rate is not shown: it starts with
// the bar, at the first report, and so divides bytes done before by a
// moment (4 MiB in 0.2 s made "153 GB/s"). The description carries the
// bytes done and their rate over the time since the command started
// instead (see progressText).
func (o *output) showBar(desc string, done, total int64, now time.Time) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if total >= 0 && done >= total {
		total = -1 // past the estimate: a bar at 100% would finish (and vanish)
	}
	text := progressText(desc, done, total, now.Sub(o.start))
	if o.bar == nil {
		o.bar = progressbar.NewOptions64(total,
			progressbar.OptionSetWriter(o.stderr),
			progressbar.OptionSetDescription(text),
			progressbar.OptionSetPredictTime(false),
			progressbar.OptionSetElapsedTime(false),
			progressbar.OptionThrottle(200*time.Millisecond),
			progressbar.OptionSetWidth(30),
			progressbar.OptionClearOnFinish(),
		)
	}
	if total >= 0 && o.bar.GetMax64() != total {
		o.bar.ChangeMax64(total)
	}
	o.bar.Describe(text)
	o.bar.Set64(done)
}

// minRateTime is how long a command runs before progress shows a rate:
// over less, a burst of buffered or unchanged data says nothing.
const minRateTime = 2 * time.Second

// progressText is the bar's description: what runs, the bytes done, the
// rate over the real elapsed time once there is enough of it, the elapsed
// time and, with a rate and a total (< 0: unknown), the time left, e.g.
// "backup 1.2 GiB, 85.3 MiB/s [14s, 9s left]".
func progressText(desc string, done, total int64, elapsed time.Duration) string {
	s := desc + " " + humanBytes(uint64(max(done, 0)))
	when := elapsed.Truncate(time.Second).String()
	if elapsed >= minRateTime && done > 0 {
		rate := float64(done) / elapsed.Seconds()
		s += ", " + humanBytes(uint64(rate)) + "/s"
		if total > done {
			left := time.Duration(float64(total-done) / rate * float64(time.Second))
			when += ", " + left.Round(time.Second).String() + " left"
		}
	}
	return s + " [" + when + "]"
}

// done removes the bar.
func (o *output) done() {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.clearBar()
}

func (o *output) clearBar() {
	if o.bar != nil {
		o.bar.Clear()
		o.bar.Exit()
		o.bar = nil
	}
}

func humanBytes(n uint64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := uint64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}

// plural writes a count with its noun: "1 file", "2 files", "0 files".
func plural[N ~int | ~int64 | ~uint64](n N, one, many string) string {
	if n == 1 {
		return "1 " + one
	}
	return fmt.Sprintf("%d %s", n, many)
}

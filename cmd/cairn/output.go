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

	mu  sync.Mutex // serialises writes and guards bar
	bar *progressbar.ProgressBar
}

func newOutput(g *globalFlags) *output {
	return &output{json: g.json, quiet: g.quiet, stdout: os.Stdout, stderr: os.Stderr}
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
	o.mu.Lock()
	defer o.mu.Unlock()
	if total >= 0 && done >= total {
		total = -1 // past the estimate: a bar at 100% would finish (and vanish)
	}
	if o.bar == nil {
		o.bar = progressbar.NewOptions64(total,
			progressbar.OptionSetWriter(o.stderr),
			progressbar.OptionShowBytes(true),
			progressbar.OptionSetDescription(desc),
			progressbar.OptionThrottle(200*time.Millisecond),
			progressbar.OptionShowElapsedTimeOnFinish(),
			progressbar.OptionSetWidth(30),
			progressbar.OptionClearOnFinish(),
		)
	}
	if total >= 0 && o.bar.GetMax64() != total {
		o.bar.ChangeMax64(total)
	}
	o.bar.Set64(done)
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

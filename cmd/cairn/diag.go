package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"log"
	"strings"

	"github.com/cairn-backup/cairn/repo/backend"
)

// Diagnostics on stderr: without --json, "cairn: …" lines; under --json,
// one JSON object per line, so that a reader can parse both streams
// strictly (DESIGN.md §7, §10; issue 14). Every line on stderr goes
// through output (warn, fatal, note, retry) or through the log package,
// which logTo sends here too.

// note reports an event on stderr: "cairn: msg", or under --json an
// object with "type": kind, "message": msg and fields.
func (o *output) note(kind, msg string, fields map[string]any) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.json {
		v := map[string]any{"type": kind, "message": msg}
		for k, f := range fields {
			v[k] = f
		}
		b, err := json.Marshal(v)
		if err != nil {
			b, _ = json.Marshal(map[string]string{"type": kind, "message": msg})
		}
		o.stderr.Write(append(b, '\n'))
		return
	}
	o.clearBar()
	fmt.Fprintf(o.stderr, "cairn: %s\n", msg)
}

// retry reports a storage operation about to be tried again (the OnRetry
// of location.Options). Retries are shown even with --quiet: they say why
// a run is slow.
func (o *output) retry(op string, h backend.Handle, attempt int, err error) {
	obj := h.String()
	if op == "list" {
		obj = string(h.Type)
	}
	o.note("retry", fmt.Sprintf("retrying %s %s (attempt %d): %v", op, obj, attempt, err),
		map[string]any{"op": op, "object": obj, "attempt": attempt, "error": err.Error()})
}

// logTo sends the log package's lines (the FUSE layer's errors, go-fuse's
// own) through o: JSON objects of type "log" under --json.
func logTo(o *output) {
	if !o.json {
		return
	}
	log.SetFlags(0)
	log.SetOutput(logWriter{o})
}

// logWriter turns each line written to it into a note of type "log".
type logWriter struct{ o *output }

func (w logWriter) Write(p []byte) (int, error) {
	for _, line := range bytes.Split(bytes.TrimRight(p, "\n"), []byte("\n")) {
		w.o.note("log", strings.TrimPrefix(string(line), "cairn: "), nil)
	}
	return len(p), nil
}

package plan

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"time"
)

// DefaultHookTimeout bounds a hook command when the plan sets none.
const DefaultHookTimeout = 10 * time.Minute

// hookRunner runs a plan's hook commands and logs their output.
type hookRunner struct {
	m     *Manager
	st    *planState
	plan  string
	hooks Hooks
	// secrets are the variables hooks never get (secretEnv of the
	// configuration the run uses), whatever the plan lists.
	secrets map[string]string
}

// runEnv are the variables each run sets for its hooks.
var runEnv = []string{"CAIRN_PLAN", "CAIRN_REPO", "CAIRN_SNAPSHOT", "CAIRN_STATUS"}

// baseEnv are the variables of cairn's environment every hook gets, if
// set: where to find programs and how to talk to the user, nothing that
// authenticates anyone.
var baseEnv = []string{"PATH", "HOME", "USER", "LOGNAME", "SHELL", "LANG", "LC_ALL", "TZ", "TMPDIR"}

// defaultPath is PATH for hooks when cairn has none.
const defaultPath = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

// hookEnv builds a hook's environment from scratch rather than from
// cairn's, which holds passwords and credentials (DESIGN.md §8): baseEnv
// (PATH defaulting to defaultPath), then the plan's Hooks.Env ("NAME"
// passed from lookup, "NAME=value" as given), then run, the run's own
// "NAME=value" of runEnv, which nothing overrides. A name in secrets is
// never passed, even if a definition listing it got past validation.
func hookEnv(lookup func(string) (string, bool), extra []string, secrets map[string]string, run []string) []string {
	vals := make(map[string]string)
	var order []string
	set := func(name, value string) {
		if secrets[name] != "" {
			return
		}
		if _, ok := vals[name]; !ok {
			order = append(order, name)
		}
		vals[name] = value
	}
	for _, name := range baseEnv {
		if v, ok := lookup(name); ok {
			set(name, v)
		} else if name == "PATH" {
			set(name, defaultPath)
		}
	}
	for _, e := range extra {
		if name, value, ok := strings.Cut(e, "="); ok {
			set(name, value)
		} else if v, ok := lookup(name); ok {
			set(name, v)
		}
	}
	for _, e := range run {
		name, value, _ := strings.Cut(e, "=")
		set(name, value)
	}
	env := make([]string, len(order))
	for i, name := range order {
		env[i] = name + "=" + vals[name]
	}
	return env
}

// run runs cmds one after another with /bin/sh -c, each with the plan's
// name, the repository (space-separated for several), the snapshot label
// and the run's status so far in CAIRN_PLAN, CAIRN_REPO, CAIRN_SNAPSHOT
// and CAIRN_STATUS besides the rest of hookEnv, and with the timeout of
// the plan's hooks. Output goes to the log line by line. The first
// command that fails (non-zero exit, timeout) ends the list with its
// error.
func (h hookRunner) run(ctx context.Context, kind string, cmds []string, repoName, snapshot, status string) error {
	timeout := DefaultHookTimeout
	if h.hooks.Timeout != "" {
		if d, err := ParseDuration(h.hooks.Timeout); err == nil {
			timeout = d
		}
	}
	env := hookEnv(os.LookupEnv, h.hooks.Env, h.secrets, []string{
		"CAIRN_PLAN=" + h.plan, "CAIRN_REPO=" + repoName, "CAIRN_SNAPSHOT=" + snapshot, "CAIRN_STATUS=" + status})
	for _, c := range cmds {
		ev := func(e Event) {
			e.Hook, e.Command = kind, c
			if e.Repo == "" {
				e.Repo = repoName
			}
			h.st.event(h.m.opts.Now(), e)
		}
		ev(Event{Event: "hook", Message: "running"})
		if err := runHook(ctx, c, env, timeout, func(line string) {
			ev(Event{Event: "hook_output", Message: line})
		}); err != nil {
			ev(Event{Event: "hook", Error: err.Error()})
			return fmt.Errorf("%s hook %q: %w", kind, c, err)
		}
		ev(Event{Event: "hook", Message: "ok"})
	}
	return nil
}

// runHook runs one command; its stdout and stderr lines go to out. The
// command gets a process group of its own so that a timeout stops what
// it started too.
func runHook(ctx context.Context, command string, env []string, timeout time.Duration, out func(string)) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	cmd := exec.Command("/bin/sh", "-c", command)
	cmd.Env = env
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	pr, pw := io.Pipe()
	cmd.Stdout, cmd.Stderr = pw, pw
	if err := cmd.Start(); err != nil {
		return err
	}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		sc := bufio.NewScanner(pr)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			out(sc.Text())
		}
		io.Copy(io.Discard, pr) // a line too long: drain the rest
	}()
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	var err error
	select {
	case err = <-done:
	case <-ctx.Done():
		syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		<-done
		err = ctx.Err()
		if errors.Is(err, context.DeadlineExceeded) {
			err = fmt.Errorf("timed out after %v", timeout)
		}
	}
	pw.Close()
	wg.Wait()
	return err
}

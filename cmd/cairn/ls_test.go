package main

import (
	"bytes"
	"encoding/json"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/cairn-backup/cairn/repo"
)

// TestModeStringMatchesLs compares modeString with GNU ls -l for every
// file type and every combination of the setuid, setgid and sticky bits
// with and without the execute bits under them.
func TestModeStringMatchesLs(t *testing.T) {
	ls, err := exec.LookPath("ls")
	if err != nil {
		t.Skip("no ls")
	}
	dir := t.TempDir()
	type entry struct {
		name string
		typ  repo.NodeType
	}
	var entries []entry
	modes := []uint32{0o777, 0o755, 0o644, 0o000, 0o4755, 0o4644, 0o2755, 0o2745, 0o1777, 0o1776, 0o7777, 0o7666, 0o640}
	for i, m := range modes {
		for _, typ := range []repo.NodeType{repo.NodeFile, repo.NodeDir, repo.NodeFIFO, repo.NodeCharDev, repo.NodeDev, repo.NodeSocket} {
			name := filepath.Join(dir, string(typ)+"-"+string(rune('a'+i)))
			var err error
			switch typ {
			case repo.NodeFile:
				err = os.WriteFile(name, nil, 0o600)
			case repo.NodeDir:
				err = os.Mkdir(name, 0o700)
			case repo.NodeFIFO:
				err = unix.Mkfifo(name, 0o600)
			case repo.NodeCharDev:
				err = unix.Mknod(name, unix.S_IFCHR|0o600, int(unix.Mkdev(1, 3)))
			case repo.NodeDev:
				err = unix.Mknod(name, unix.S_IFBLK|0o600, int(unix.Mkdev(7, 0)))
			case repo.NodeSocket:
				var l net.Listener
				if l, err = net.Listen("unix", name); err == nil {
					l.(*net.UnixListener).SetUnlinkOnClose(false)
					l.Close()
				}
			}
			if err != nil {
				if typ == repo.NodeCharDev || typ == repo.NodeDev {
					continue // mknod needs root
				}
				t.Fatal(err)
			}
			if err := unix.Chmod(name, m); err != nil {
				t.Fatal(err)
			}
			entries = append(entries, entry{name, typ})
		}
	}
	link := filepath.Join(dir, "link")
	if err := os.Symlink("target", link); err != nil {
		t.Fatal(err)
	}
	entries = append(entries, entry{link, repo.NodeSymlink})

	for _, e := range entries {
		var st unix.Stat_t
		if err := unix.Lstat(e.name, &st); err != nil {
			t.Fatal(err)
		}
		out, err := exec.Command(ls, "-ld", "--", e.name).Output()
		if err != nil {
			t.Fatal(err)
		}
		want, _, _ := strings.Cut(string(out), " ")
		want = strings.TrimRight(want, ".+") // SELinux/ACL markers
		got := modeString(&repo.Node{Type: e.typ, Mode: st.Mode & 0o7777})
		if got != want {
			t.Errorf("%s (%o): modeString %q, ls -l %q", filepath.Base(e.name), st.Mode&0o7777, got, want)
		}
	}
}

func TestSnapshotJSON(t *testing.T) {
	for _, s := range []*repo.Snapshot{
		{Label: "adhoc"},
		{Label: "planned", Plan: "home", Tags: []string{"laptop"}, Paths: []string{"/home"}},
	} {
		b, err := json.Marshal(snapshotJSON(s))
		if err != nil {
			t.Fatal(err)
		}
		var m map[string]json.RawMessage
		json.Unmarshal(b, &m)
		for _, k := range []string{"tags", "paths"} {
			if !bytes.HasPrefix(m[k], []byte("[")) {
				t.Errorf("%s: %q is %s, want an array", s.Label, k, m[k])
			}
		}
		if p, ok := m["plan"]; ok != (s.Plan != "") || ok && string(p) == `""` {
			t.Errorf("%s: plan %s (present %v)", s.Label, p, ok)
		}
	}
}

func TestPlural(t *testing.T) {
	for _, c := range []struct {
		n    int
		want string
	}{{0, "0 files"}, {1, "1 file"}, {2, "2 files"}} {
		if got := plural(c.n, "file", "files"); got != c.want {
			t.Errorf("plural(%d) = %q, want %q", c.n, got, c.want)
		}
	}
}

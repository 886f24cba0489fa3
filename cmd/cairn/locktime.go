package main

import (
	"fmt"
	"os"
	"time"

	"github.com/cairn-backup/cairn/repo"
)

// lockStaleEnv is a test aid: CAIRN_LOCK_STALE=DURATION shortens the time
// after which a lock not refreshed is stale (30 min), and with it the
// refresh interval (a sixth of it) and the give-up time (two thirds), so
// that tests can take a lock for stale, or suspend a process past it,
// within seconds. Not for production: a short stale time lets a slow
// refresh cost a lock.
const lockStaleEnv = "CAIRN_LOCK_STALE"

func init() {
	v := os.Getenv(lockStaleEnv)
	if v == "" {
		return
	}
	d, err := time.ParseDuration(v)
	if err != nil || d <= 0 {
		fmt.Fprintf(os.Stderr, "cairn: ignoring $%s=%q: not a positive duration\n", lockStaleEnv, v)
		return
	}
	repo.StaleAfter = d
	repo.RefreshEvery = d / 6
	repo.GiveUpAfter = d * 2 / 3
}
